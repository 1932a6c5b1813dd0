"""Engines: run an item miner over many work items, locally or on Ray, with resume and accounting.

* ``job``: planning (resolve, skip committed items), the video item miner, the local engine
* ``stereo_items``: the stereo item miner (one photo in, one row out)
* ``ray_engine``: the same job on Ray Data, an actor pool of item miners
"""
