"""Read a large file front to back through a window of a few megabytes.

A walk over every block header of a two-hour Matroska film needs nearly
every page of the file (its frames average 4 KB: a header lies in 53 % of
its 4 KB pages and in 97 % of its 64 KB pieces), so the whole file is read,
in order. :class:`FileWindow` reads it in ``pread`` calls of
:data:`READ_BYTES` (plus whatever a longer range needs) and tells the kernel
the reading is sequential (``POSIX_FADV_SEQUENTIAL``: Linux then reads twice
as far ahead, while the caller parses what it has).

Measured on the benchmark's 675 MB file taken out of the page cache
(Linux 6.18 on a shared 2-core VM, so noisy): each read into a new
``bytes`` object cost 0.06-0.14 s of system time in all, reads into one
reused buffer 0.36-0.60 s and more wall time. Hence a new buffer per read
(the process holds one window at a time). The kernel's own read-ahead
alone did not keep the disk busy (see :mod:`.read_ahead`): a
:class:`~.read_ahead.ReadAhead` the window tells where it reads has the
kernel read further ahead, from a thread of its own. A file that shrinks
while it is read gives a short read (an ``OSError``), where a memory map
of it would kill the process with ``SIGBUS``.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from napari_video_extract.core.read_ahead import ReadAhead

__all__ = ["READ_BYTES", "FileWindow"]

#: Bytes read at a time, unless a range needs more.
READ_BYTES = 1024 * 1024


class FileWindow:
    """Bytes ``[base, base + len(data))`` of a file, read by :meth:`hold`.

    Parameters
    ----------
    fileno : int
        An open file descriptor, read from front to back.
    size : int
        The file's size in bytes.
    step : int, optional
        The least a read reads.
    read_ahead : ReadAhead, optional
        Told where each read starts, so it asks the kernel for what follows.

    Attributes
    ----------
    data : bytes
        The window; ``data[i]`` is the byte at ``base + i``.
    base : int
        The file position of ``data[0]``.
    """

    def __init__(
        self,
        fileno: int,
        size: int,
        *,
        step: int = READ_BYTES,
        read_ahead: ReadAhead | None = None,
    ) -> None:
        self._fileno, self._size, self._step = fileno, size, step
        self._read_ahead = read_ahead
        self.data = b""
        self.base = 0
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(fileno, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def holds(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` is in the window now."""
        return self.base <= start and end <= self.base + len(self.data)

    def hold(self, start: int, end: int) -> int:
        """Make ``[start, end)`` present; its offset in :attr:`data`.

        If it is not in the window, the window is read anew from ``start``:
        at least ``step`` bytes, or to the end of the file.

        Raises
        ------
        ValueError
            If the range is outside the file.
        OSError
            If the file ends early (it shrank) or cannot be read.
        """
        if self.holds(start, end):
            return start - self.base
        if not 0 <= start <= end <= self._size:
            raise ValueError("range outside the file")
        length = min(max(end - start, self._step), self._size - start)
        if self._read_ahead is not None:
            self._read_ahead.reached(start)
        self.data = b""  # the old window goes before the new one is read
        data = os.pread(self._fileno, length, start)
        if len(data) != length:
            raise OSError("the file ended early")
        self.data, self.base = data, start
        return 0
