"""Input and output: what the user typed becomes work items, work items become frames, rows become shards.

* ``sources``: resolve inputs (files, folders, globs, URLs, buckets, ``@lists``, YouTube-VOS) into work items
* ``remote``: fetch a remote work item to a local file (http, yt-dlp, fsspec buckets), with retries
* ``decode``: decode a video or frame folder into RGB frames (at a target fps); test-video writers
* ``stereo_inputs``: the stereo branch's inputs (side-by-side, MPO, left/right lists) and loading them
* ``storage``: URLs (``is_url``/``is_local``) and ``StorageRoot``, the one atomic-write rule under an output root
* ``codecs``: image codecs (RGB <-> JPEG/PNG)
* ``weights``: model weights from any URL with the job's storage options; the engines' flow backends
* ``writer``: Parquet shards, stats and failure rows under any fsspec root, commit records written last
"""
