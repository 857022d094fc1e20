"""The process pool that hashes files: fork while safe, else a preloaded forkserver."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor

__all__ = ["chunk_size", "executor"]


def executor(n_workers: int) -> ProcessPoolExecutor:
    # fork is the cheapest start, but only safe while this process has no
    # other threads (a napari session has many): then use a preloaded forkserver.
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
    elif "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["napari_video_extract.core.hashing"])
    else:  # pragma: no cover - Windows / macOS spawn
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=n_workers, mp_context=context)


def chunk_size(n_jobs: int, n_workers: int) -> int:
    """Jobs sent to a worker at once: about four chunks per worker, at most 32."""
    return max(1, min(32, n_jobs // (4 * n_workers)))
