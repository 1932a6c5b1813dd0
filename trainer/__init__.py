"""The trainer: the EncDecResNet (``model``), the ranking loss (``loss``), Ray Data input from shards
(``data``), the Ray Train loop (``train``), checkpoints and metrics (``checkpoint``, ``metrics``),
WHDR/WKDR evaluation (``evaluate``), depth-map files (``predict``) and settings (``config``). The
``dynocc train / eval / predict`` commands are in the CLI package (``dynocc/train_commands.py``).

Convention: the network predicts relative *inverse* depth (larger = closer to the camera).
"""
