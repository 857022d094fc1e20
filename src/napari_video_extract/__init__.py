"""napari-video-extract: turn videos into clean sets of still images.

The engine lives in :mod:`napari_video_extract.core` and imports neither Qt nor
napari, so a notebook, a CLI or a cluster worker can use it without a display.
Its public functions and types are re-exported here and imported on first use
(module-level ``__getattr__``), so ``import napari_video_extract as nve`` costs
next to nothing and napari's start-up, which imports this package to find the
plugin, stays fast::

    import napari_video_extract as nve

    info = nve.probe("talk.mp4")
    result = nve.extract_video("talk.mp4", "stills/", nve.Interval(every=2.0))
    report = nve.dedup_folders(["stills/"])
    stack = nve.open_stills("stills/")  # lazy (n, height, width, 3) array
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> (module under ``napari_video_extract``, attribute there).
_EXPORTS: dict[str, tuple[str, str]] = {
    "probe": ("core.probe", "probe"),
    "VideoInfo": ("core.probe", "VideoInfo"),
    "VideoReader": ("core.video_reader", "VideoReader"),
    "Interval": ("core.extract", "Interval"),
    "HeadTail": ("core.extract", "HeadTail"),
    "extract_video": ("core.extract", "extract_video"),
    "extract_batch": ("core.extract", "extract_batch"),
    "ExtractResult": ("core.extract", "ExtractResult"),
    "BatchResult": ("core.extract", "BatchResult"),
    "hash_files": ("core.hashing", "hash_files"),
    "cluster_hashes": ("core.dedup", "cluster_hashes"),
    "dedup_folders": ("core.dedup", "dedup_folders"),
    "DedupReport": ("core.dedup", "DedupReport"),
    "undo": ("core.dedup", "undo_folder"),
    "StillStack": ("core.stills", "StillStack"),
    "StillInfo": ("core.stills", "StillInfo"),
    "open_stills": ("core.stills", "open_stills"),
    "read_manifest": ("core.manifest", "read_manifest"),
    "InputError": ("core.errors", "InputError"),
    "VideoOpenError": ("core.errors", "VideoOpenError"),
    "NotAVideoError": ("core.errors", "NotAVideoError"),
    "DecodeError": ("core.errors", "DecodeError"),
    "OutputError": ("core.errors", "OutputError"),
    "SettingError": ("core.errors", "SettingError"),
}

__all__ = [
    "BatchResult",
    "DecodeError",
    "DedupReport",
    "ExtractResult",
    "HeadTail",
    "InputError",
    "Interval",
    "NotAVideoError",
    "OutputError",
    "SettingError",
    "StillInfo",
    "StillStack",
    "VideoInfo",
    "VideoOpenError",
    "VideoReader",
    "__version__",
    "cluster_hashes",
    "dedup_folders",
    "extract_batch",
    "extract_video",
    "hash_files",
    "open_stills",
    "probe",
    "read_manifest",
    "undo",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ does this
    from napari_video_extract.core.dedup import DedupReport, cluster_hashes, dedup_folders
    from napari_video_extract.core.dedup import undo_folder as undo
    from napari_video_extract.core.errors import (
        DecodeError,
        InputError,
        NotAVideoError,
        OutputError,
        SettingError,
        VideoOpenError,
    )
    from napari_video_extract.core.extract import (
        BatchResult,
        ExtractResult,
        HeadTail,
        Interval,
        extract_batch,
        extract_video,
    )
    from napari_video_extract.core.hashing import hash_files
    from napari_video_extract.core.manifest import read_manifest
    from napari_video_extract.core.probe import VideoInfo, probe
    from napari_video_extract.core.stills import StillInfo, StillStack, open_stills
    from napari_video_extract.core.video_reader import VideoReader


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
