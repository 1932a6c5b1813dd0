"""User tools over a mining output (committed data only): ``query``, ``stats``, ``show``, ``export``, ``overlay``."""
