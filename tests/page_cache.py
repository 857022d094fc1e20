"""Which pages of a file are in the kernel's page cache (Linux ``mincore``).

Shared by the read-ahead tests and ``benchmarks/bench_reader.py`` (which puts
this folder on its path, as ``bench_load.py`` does for the hardening helpers).
"""

from __future__ import annotations

import ctypes
import mmap
import os

import numpy as np

__all__ = ["cached_pages"]


def cached_pages(path: str | os.PathLike) -> np.ndarray | None:
    """One bool per page of ``path``: True if it is in the page cache now.

    The file is mapped but never touched, so asking loads nothing. None where
    ``mincore`` is not available (not Linux, or the call failed).
    """
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(0, dtype=bool)
    pages = -(-size // mmap.PAGESIZE)
    vector = (ctypes.c_ubyte * pages)()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY) as m:
            mapped = (ctypes.c_char * size).from_buffer(m)
            try:
                status = libc.mincore(
                    ctypes.c_void_p(ctypes.addressof(mapped)), ctypes.c_size_t(size), vector
                )
            finally:
                del mapped
    except (OSError, AttributeError, ValueError):
        return None
    if status != 0:
        return None
    return (np.frombuffer(vector, dtype=np.uint8) & 1).astype(bool)
