"""The read-ahead thread: what it has the kernel read, and that it stops."""

from __future__ import annotations

import mmap
import os
import threading
import time

import numpy as np
import pytest

from napari_video_extract.core.read_ahead import ReadAhead
from page_cache import cached_pages

pytestmark = pytest.mark.skipif(
    not hasattr(os, "posix_fadvise"), reason="posix_fadvise is not available here"
)

MB = 1024 * 1024


def _cached_pages(path) -> np.ndarray:
    """Which pages of ``path`` are in the page cache (skips where ``mincore`` is not there)."""
    pages = cached_pages(path)
    if pages is None:
        pytest.skip("mincore is not available here")
    return pages


@pytest.fixture
def uncached_file(tmp_path):
    """A 12 MB file written to disk and dropped from the page cache."""
    path = tmp_path / "film.bin"
    with open(path, "wb") as fh:
        fh.write(os.urandom(12 * MB))
        fh.flush()
        os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if _cached_pages(path).any():
        pytest.skip("this file system keeps the file in memory (tmpfs?)")
    return path


def _wait_for(predicate, seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_reads_ahead_of_the_reader_and_no_further(uncached_file):
    page = mmap.PAGESIZE
    with open(uncached_file, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        with ReadAhead(fh.fileno(), size, ahead=2 * MB, chunk=MB) as ahead:
            assert _wait_for(lambda: _cached_pages(uncached_file)[: 2 * MB // page].all())
            # It asks for nothing past ahead bytes beyond the reader.
            time.sleep(0.2)
            assert not _cached_pages(uncached_file)[6 * MB // page :].any()
            ahead.reached(10 * MB)
            assert _wait_for(lambda: _cached_pages(uncached_file).all())


def test_close_stops_the_thread_and_the_caller_may_close_first(uncached_file):
    fd = os.open(uncached_file, os.O_RDONLY)
    ahead = ReadAhead(fd, os.fstat(fd).st_size, ahead=2 * MB, chunk=2 * MB)
    os.close(fd)  # the thread reads through its own descriptor
    ahead.reached(4 * MB)
    ahead.close()
    assert not any(t.name == "read-ahead" and t.is_alive() for t in threading.enumerate())
    ahead.reached(8 * MB)  # harmless once closed
    ahead.close()


def test_a_descriptor_that_is_not_a_file_stops_it_quietly():
    read, write = os.pipe()
    try:
        with ReadAhead(read, 10 * MB) as ahead:
            ahead.reached(MB)
    finally:
        os.close(read)
        os.close(write)
