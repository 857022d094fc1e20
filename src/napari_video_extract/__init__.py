"""napari-video-extract: turn videos into clean sets of still images.

The engine lives in :mod:`napari_video_extract.core` and imports neither Qt nor
napari, so a notebook, a CLI or a cluster worker can use it without a display.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
