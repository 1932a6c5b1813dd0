"""The algorithm layer: the papers' methods as pure functions on NumPy/torch arrays.

Nothing here reads or writes storage, touches Parquet, Ray or the CLI (``tests/unit/test_architecture.py``
fails on such an import): frames and photos in, pairs and depth maps out.

* ``flow``, ``raft``: optical-flow backends (OpenCV DIS on CPU; RAFT-small, learned, for GPUs)
* ``boundaries``, ``vote``, ``pairs``, ``miner``: DynOcc sections 3.1, 3.2, 3.3 and the per-video loop
* ``stereo``, ``sky``, ``stereo_pairs``: ReDWeb section 3.1 (disparity, sky, the stored depth PNG) and 3.2
* ``sampling``: reading images and flows at sub-pixel points, filling gaps
"""
