"""napari dock widgets: interval extraction, credits extraction, duplicate finder,
contact sheet.

One widget per module: :mod:`.interval`, :mod:`.credits` (both built on
:mod:`.extraction`), :mod:`.duplicates`, :mod:`.contact_sheet`; :mod:`._common`
holds what they share. The npe2 manifest points at the modules themselves, so opening one widget
imports only its module; the names below are re-exported lazily for scripts.

Every widget is a magicgui :class:`~magicgui.widgets.Container` built per call
with the viewer injected (npe2 ``widgets`` contribution). Long work runs in a
:func:`napari.qt.threading.create_worker` thread with a napari progress bar and
a Cancel button; layers are only created or changed in the worker's
``yielded`` / ``returned`` handlers, which napari runs on the main thread.
Errors become napari notifications (:func:`napari.utils.notifications.show_error`).

All the work goes through the same core functions as the CLI:
:func:`~napari_video_extract.core.extract.extract_video` for stills,
:func:`~napari_video_extract.core.hashing.hash_frames` and
:func:`~napari_video_extract.core.dedup.cluster_hashes` for duplicates.

Per-frame features
    napari 0.9 ``Image`` layers have no ``features`` table, so stills layers
    carry a :class:`~napari_video_extract.core.still_features.StillFeatures`
    table (one row per frame: ``time``, ``frame``, ``file``, ``video``; numpy
    columns, ``.to_pandas()`` for a DataFrame) in ``layer.metadata["features"]``.

"Show only kept frames"
    adds a layer holding only the kept frames (updated when a decision is
    overridden) and hides the reviewed stack and its cluster overlay; turning
    it off removes that layer and shows them again.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CLUSTER_PALETTE",
    "DUPLICATE_RGB",
    "KEPT_RGB",
    "ContactSheetWidget",
    "CreditsExtractionWidget",
    "DuplicateFinderWidget",
    "IntervalExtractionWidget",
    "to_uint8",
]

_HOME = {
    "IntervalExtractionWidget": "interval",
    "CreditsExtractionWidget": "credits",
    "ContactSheetWidget": "contact_sheet",
    "DuplicateFinderWidget": "duplicates",
    "CLUSTER_PALETTE": "duplicates",
    "DUPLICATE_RGB": "duplicates",
    "KEPT_RGB": "duplicates",
    "to_uint8": "duplicates",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
