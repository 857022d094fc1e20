"""The one list of file extensions treated as videos.

The folder scan (:func:`~napari_video_extract.core.extract.collect_videos`),
the napari reader (``_reader.py``), the reader's ``filename_patterns`` in
``napari.yaml`` and the widgets' file dialog all derive from
:data:`VIDEO_EXTENSIONS`; a test holds ``napari.yaml`` to it.

This module imports only the standard library: napari imports the reader at
start-up, and the reader imports this.
"""

from __future__ import annotations

import os

__all__ = ["VIDEO_EXTENSIONS", "dialog_filter", "filename_patterns", "is_video_name"]

#: Extensions treated as videos: lower-case, with the dot, compared
#: case-insensitively. An extension only decides what is *tried*; whether a
#: file really is a video is decided by opening it.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".m4v",
    ".mov",
    ".avi",
    ".mkv",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".mts",
    ".m2ts",
    ".3gp",
    ".ogv",
    ".mxf",
    ".vob",
    ".asf",
    ".divx",
    ".dv",
)


def is_video_name(name: str | os.PathLike) -> bool:
    """Whether a file name (or path) has a video extension, in any case.

    Parameters
    ----------
    name : str or PathLike
        A file name or path; only its last suffix counts.

    Returns
    -------
    bool
    """
    return os.path.splitext(os.fspath(name))[1].lower() in VIDEO_EXTENSIONS


def filename_patterns() -> list[str]:
    """Glob patterns (``"*.mp4"``...) for the napari reader's manifest entry."""
    return [f"*{ext}" for ext in VIDEO_EXTENSIONS]


def dialog_filter() -> str:
    """A Qt file-dialog filter string for videos, then "All files".

    Both cases are listed: Qt matches dialog filters case-sensitively on
    some platforms.

    Returns
    -------
    str
        E.g. ``"Videos (*.mp4 ... *.MP4 ...);;All files (*)"``.
    """
    lower = " ".join(filename_patterns())
    upper = " ".join(p.upper() for p in filename_patterns())
    return f"Videos ({lower} {upper});;All files (*)"
