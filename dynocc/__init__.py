"""dynocc: relative-depth training data from dynamic web videos (DynOcc) and web stereo photos (ReDWeb)."""

__version__ = "0.1.0"
