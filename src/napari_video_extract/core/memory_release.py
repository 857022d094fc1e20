"""Giving memory back to the operating system: pages of memory maps, the freed heap.

A long review (hashing a video, verifying thousands of pairs) frees what it
allocated, but the process does not shrink by itself: glibc's allocator keeps
freed small blocks for reuse, and pages of a memory map that were read or
written stay counted as resident. After a run the napari process should be
back near where it started, so the next run does not add to it.

Module-level API
----------------
:func:`release_pages`
    Let the OS drop the resident pages of a memory-mapped array.
:func:`give_back`
    Collect garbage (main thread), then hand freed heap memory back to the OS (glibc only).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import mmap
import sys
import threading
from typing import Any

__all__ = ["give_back", "release_pages"]


def release_pages(array: Any) -> bool:
    """Let the OS drop the pages of a memory-mapped array read or written so far.

    The data stays in the file (for a shared map, in the page cache until
    written back): rows are read again when next used. Nothing happens for
    an array in memory.

    Parameters
    ----------
    array : ndarray or numpy.memmap
        The array.

    Returns
    -------
    bool
        Whether the pages were released.
    """
    mapping = getattr(array, "_mmap", None)
    if mapping is None:
        base = getattr(array, "base", None)
        mapping = base if isinstance(base, mmap.mmap) else None
    if mapping is None or not hasattr(mapping, "madvise"):
        return False
    with contextlib.suppress(OSError, ValueError):  # only a memory hint
        mapping.madvise(mmap.MADV_DONTNEED)
        return True
    return False


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here: the hashing workers import this module's caller
    import ctypes.util

    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl does not)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def give_back() -> bool:
    """Collect garbage (main thread only) and return the freed heap to the OS.

    Meant for the end of a run (a few to a few hundred milliseconds in a
    large process, mostly the garbage collection), not for inner loops. In
    another thread only the heap is trimmed: a full collection there could
    finalise GUI objects (Qt's must be deleted in the GUI thread).

    Returns
    -------
    bool
        Whether ``malloc_trim`` ran (glibc only; elsewhere only the garbage
        collection happens).
    """
    if threading.current_thread() is threading.main_thread():
        gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
