"""The trainer: the EncDecResNet (``model``), the ranking loss (``loss``), Ray Data input from shards
(``data``), the Ray Train loop (``train``), checkpoints and metrics (``checkpoint``, ``metrics``),
WHDR/WKDR evaluation (``evaluate``), depth-map files (``predict``), settings (``config``) and the
``dynocc train / eval / predict`` commands (``commands``).

Convention: the network predicts relative *inverse* depth (larger = closer to the camera).
"""
