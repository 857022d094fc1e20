"""Replace a small text file atomically: a temporary file beside it, fsynced, renamed over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_text_atomic"]


def write_text_atomic(path: Path, text: str, *, newline: str | None = "") -> None:
    """Write ``text`` (UTF-8) to ``path`` in one rename.

    ``newline`` as for :func:`open`: ``""`` writes newlines as given (a csv
    that chose its own), ``None`` translates them as a text file does.

    A reader sees the old file or the new one, never a part. A process
    killed before the rename leaves the old file (and a ``<name>.*.tmp``
    beside it); a write that fails here removes its temporary file.
    """
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
