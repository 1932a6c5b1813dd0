"""Engines: run item miners over many work items, locally or on Ray, with resume and accounting.

* ``items``: the :class:`~.items.ItemMiner` protocol the engines run, and its :class:`~.items.ItemResult`
* ``miners``: which item miner a config asks for (one line per kind of work)
* ``video_items``: DynOcc work (a video or frame folder in, frame rows out)
* ``stereo_items``: ReDWeb work (one stereo photo in, one row out)
* ``job``: planning (resolve, skip committed items), accounting, the local engine
* ``ray_engine``: the same job on Ray Data, an actor pool of item miners
* ``ray_console``: Ray on the console (logs hidden, errors one line); the one user of Ray's private API
"""
