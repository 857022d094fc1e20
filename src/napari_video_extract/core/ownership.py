"""Proof that a file the tool is about to replace is one it wrote.

The tool replaces only its own files. A ``frames.csv`` or ``dedup.csv`` is
ours when its first line is exactly the header this tool writes (every
version so far wrote the same header); anything else under that name is the
user's and is never replaced. Moved files are proven by the move journal
(size, SHA-256, and the file's identity), see
:mod:`~napari_video_extract.core.dedup`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["NOT_OURS", "csv_header", "csv_is_ours"]

#: The reason given when a file is left alone because it is not ours.
NOT_OURS = "exists and was not written by this tool; not replaced"


def csv_header(columns: Sequence[str]) -> str:
    """The header line this tool writes for ``columns`` (no line end)."""
    return ",".join(columns)


def csv_is_ours(path: str | os.PathLike, columns: Sequence[str]) -> bool:
    """Whether ``path`` may be replaced: absent, or a CSV with our exact header.

    Parameters
    ----------
    path : path
        The CSV file.
    columns : sequence of str
        The columns this tool writes in that file, in order.

    Returns
    -------
    bool
        ``True`` if the file does not exist or its first line is our header;
        ``False`` for anything else (another header, an empty file, a folder,
        a symbolic link, an unreadable file).
    """
    path = Path(path)
    if not os.path.lexists(path):
        return True
    if path.is_symlink() or not path.is_file():
        return False
    header = csv_header(columns).encode("utf-8")
    try:
        with open(path, "rb") as handle:
            first = handle.readline(len(header) + 3)
    except OSError:
        return False
    return first.rstrip(b"\r\n") == header and first.endswith(b"\n")
