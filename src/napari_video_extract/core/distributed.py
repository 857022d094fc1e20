"""Run batches on a Dask distributed cluster instead of local threads.

Extraction (:func:`extract_batch_distributed`) is one task per video: each task calls
:func:`~napari_video_extract.core.extract.extract_video` on a worker and
returns its :class:`~napari_video_extract.core.extract.ExtractResult`. The
client gathers results as they complete; a video that fails is a failed
result, exactly as in :func:`~napari_video_extract.core.extract.extract_batch`,
never an exception that stops the batch.

Dedup (:func:`dedup_folders_distributed`) hashes the images that are not in
a folder's hash cache in chunks, one task per chunk; the client reads and
writes the hash caches, clusters all hashes globally, and moves the
duplicates, exactly as
:func:`~napari_video_extract.core.dedup.dedup_folders` does locally (it is
the same function, given :class:`DaskJobMap` as its ``map_jobs``).

Shared storage
    Workers open the videos and write the images themselves, so every worker
    must see the inputs and the output root **at the same absolute paths as
    the client** (an NFS/SMB/Lustre mount, or all processes on one machine).
    Paths are made absolute on the client before they are sent.

Software
    The scheduler and every worker need ``napari-video-extract`` installed,
    the same version as the client (the scheduler unpickles the tasks, the
    workers run them); the ffmpeg binary comes with it (imageio-ffmpeg).

Worker failures
    If a worker process dies mid-video (killed, out of memory, machine lost),
    the scheduler runs the task again on another worker. That is safe: images
    are written atomically (temporary file + rename) and recorded in
    ``frames.csv`` right after, so the retry resumes from what the dead worker
    finished; the per-folder lock is an ``flock`` that dies with its process,
    so it never blocks the retry. No still is lost or written twice (at
    most a hidden ``.<name>.tmp-<pid>-<thread>`` file of the interrupted
    write is left behind). A task
    that keeps killing workers ends as a failed video
    (``distributed.scheduler.allowed-failures``, 3 by default).

``distributed`` is an optional dependency (the ``[distributed]`` extra); it is
imported only when these functions run.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_video_extract.core.errors import InputError
from napari_video_extract.core.extract import (
    DEFAULT_NAME_TEMPLATE,
    BatchResult,
    ExtractResult,
    SamplingSpec,
    extract_video,
    output_folders,
)
from napari_video_extract.core.pick import Pick

if TYPE_CHECKING:
    from distributed import Client

    from napari_video_extract.core.dedup import DedupReport

__all__ = [
    "INSTALL_HINT",
    "DaskJobMap",
    "DistributedTaskError",
    "DistributedUnavailableError",
    "SchedulerConnectionError",
    "connect",
    "dedup_folders_distributed",
    "extract_batch_distributed",
    "extract_video_task",
]

INSTALL_HINT = "pip install napari-video-extract[distributed]"

#: Seconds to wait for the scheduler when connecting by address.
CONNECT_TIMEOUT = 30.0


class DistributedUnavailableError(ImportError):
    """The ``distributed`` package (the ``[distributed]`` extra) is not installed."""


class SchedulerConnectionError(ConnectionError):
    """No Dask scheduler answered at the given address."""


class DistributedTaskError(RuntimeError):
    """A Dask task failed for good (e.g. it killed every worker it ran on)."""


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise DistributedUnavailableError(
            f"running on a Dask cluster needs the 'distributed' package: {INSTALL_HINT} ({exc})"
        ) from None
    return distributed


def connect(scheduler: str | Client, *, timeout: float = CONNECT_TIMEOUT) -> tuple[Client, bool]:
    """A client for ``scheduler``, and whether the caller must close it.

    Parameters
    ----------
    scheduler : str or distributed.Client
        A scheduler address (``tcp://host:8786``, ``host:8786``) or an open
        client, which is used as is.
    timeout : float
        Seconds to wait for the scheduler.

    Returns
    -------
    client : distributed.Client
    owned : bool
        True when the client was opened here (close it when done).

    Raises
    ------
    DistributedUnavailableError
        ``distributed`` is not installed.
    SchedulerConnectionError
        Nothing answered at the address in time.
    """
    distributed = _import_distributed()
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    try:
        client = distributed.Client(str(scheduler), timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SchedulerConnectionError(
            f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({exc})"
        ) from None
    return client, True


# --------------------------------------------------------------------------- extraction


def extract_video_task(
    video: str,
    out_dir: str,
    spec: SamplingSpec,
    options: dict[str, Any],
) -> ExtractResult:
    """Extract one video on a worker; failures become a failed result.

    This is the function shipped to Dask workers. It mirrors the per-video
    step of :func:`~napari_video_extract.core.extract.extract_batch`: a bad
    input, a bad parameter or even a bug gives an :class:`ExtractResult` with
    ``error`` set instead of raising, so one video never fails the batch.

    Parameters
    ----------
    video : str
        Absolute path of the video, as the client sees it.
    out_dir : str
        Absolute path of this video's output folder.
    spec : Interval or HeadTail
        What to sample.
    options : dict
        Keyword arguments for :func:`extract_video` (``fmt``, ``quality``,
        ``name_template``, ``overwrite``, ``workers``).

    Returns
    -------
    ExtractResult
    """
    path = Path(video)
    folder = Path(out_dir)
    if not path.exists():
        # The client saw it (it collected the inputs), so this worker does not.
        return ExtractResult(
            video=path,
            out_dir=folder,
            error=f"no such file on Dask worker {_worker_name()} "
            "(workers must see the inputs at the same paths as the client: shared storage)",
        )
    try:
        return extract_video(path, folder, spec, **options)
    except InputError as exc:
        about_this_video = exc.path in (path, Path(os.path.abspath(path)))
        return ExtractResult(
            video=path, out_dir=folder, error=exc.reason if about_this_video else str(exc)
        )
    except ValueError as exc:
        return ExtractResult(video=path, out_dir=folder, error=str(exc))
    except Exception as exc:  # a bug must not kill the batch either
        return ExtractResult(video=path, out_dir=folder, error=f"{type(exc).__name__}: {exc}")


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return os.uname().nodename


def extract_batch_distributed(
    videos: Sequence[str | os.PathLike],
    out_root: str | os.PathLike,
    spec: SamplingSpec,
    *,
    scheduler: str | Client,
    fmt: str = "jpg",
    quality: int = 95,
    name_template: str = DEFAULT_NAME_TEMPLATE,
    overwrite: bool = False,
    workers: int | None = None,
    pick: Pick | None = None,
    retries: int = 2,
    on_result: Callable[[ExtractResult], None] | None = None,
    progress: Callable[[Path, int, int], None] | None = None,
) -> BatchResult:
    """Extract many videos on a Dask cluster, one task per video.

    Same inputs, outputs and failure reporting as
    :func:`~napari_video_extract.core.extract.extract_batch`: the same output
    folder for each video, the same images and ``frames.csv``, results in the
    order of ``videos``, and a failing video reported in
    :attr:`BatchResult.failures` without stopping the others.

    Parameters
    ----------
    videos : sequence of path
        Video files (see :func:`~napari_video_extract.core.extract.collect_videos`).
        Workers must see them at the same absolute paths (shared storage).
    out_root : path
        Root output folder, on storage the workers share; each video gets
        ``out_root/<stem>``.
    spec : Interval or HeadTail
        What to sample.
    scheduler : str or distributed.Client
        Scheduler address (``tcp://host:8786``) or an open client.
    fmt, quality, name_template, overwrite, pick
        As for :func:`~napari_video_extract.core.extract.extract_video`.
    workers : int, optional
        Decoder processes per video on a worker (default: up to 4, by the
        worker machine's CPU count).
    retries : int
        Dask retries of a task that raised. A video's errors are results, not
        exceptions, so this only covers failures of the task machinery; a task
        whose worker died is rescheduled by the scheduler regardless.
    on_result : callable(ExtractResult), optional
        Called on the client as each video finishes, in completion order.
    progress : callable(video, done, total), optional
        Called on the client as each video finishes (``done`` stills of
        ``total`` planned); the granularity is one video, not one image.

    Returns
    -------
    BatchResult

    Raises
    ------
    DistributedUnavailableError
        ``distributed`` is not installed.
    SchedulerConnectionError
        The scheduler cannot be reached.
    """
    distributed = _import_distributed()
    t0 = time.perf_counter()
    paths = [Path(v) for v in videos]
    folders = output_folders(paths, Path(out_root))
    options: dict[str, Any] = dict(
        fmt=fmt, quality=quality, name_template=name_template, overwrite=overwrite
    )
    if workers is not None:
        options["workers"] = workers
    if pick is not None:
        options["pick"] = pick

    client, owned = connect(scheduler)
    try:
        index_of: dict[Any, int] = {}
        futures = []
        for i, v in enumerate(paths):
            fut = client.submit(
                extract_video_task,
                os.path.abspath(v),
                os.path.abspath(folders[v]),
                spec,
                options,
                key=f"nve-extract-{v.stem[:40]}-{os.urandom(6).hex()}",
                retries=retries,
                pure=False,
            )
            index_of[fut.key] = i
            futures.append(fut)

        results: list[ExtractResult | None] = [None] * len(paths)
        for fut in distributed.as_completed(futures, loop=client.loop):
            i = index_of[fut.key]
            v = paths[i]
            res = _result_of(fut, v, folders[v])
            fut.release()  # results are small, but do not keep them on the cluster
            results[i] = res
            if progress:
                progress(v, res.written + res.resumed, res.planned)
            if on_result:
                on_result(res)
    finally:
        if owned:
            client.close()
    batch = BatchResult(results=[r for r in results if r is not None])
    batch.seconds = time.perf_counter() - t0
    return batch


def _result_of(future: Any, video: Path, out_dir: Path) -> ExtractResult:
    """The task's result, or a failed result when the task itself failed."""
    try:
        res = future.result()
    except Exception as exc:  # KilledWorker, CancelledError, lost scheduler...
        reason = f"Dask task failed: {type(exc).__name__}: {exc}"
        return ExtractResult(video=video, out_dir=out_dir, error=" ".join(reason.split()))
    # Report paths the way the local batch does: the output folder as derived
    # from ``out_root``, and a failed video as it was given.
    res.out_dir = out_dir
    if not res.ok:
        res.video = video
    return res


# --------------------------------------------------------------------------- dedup


def _run_chunk(func: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
    """Worker side of :class:`DaskJobMap`: ``func`` over one chunk, in order."""
    return [func(job) for job in jobs]


class DaskJobMap:
    """Map a function over jobs on a Dask cluster, in chunks, results in order.

    An instance is the ``map_jobs`` hook of
    :func:`~napari_video_extract.core.hashing.hash_files` and
    :func:`~napari_video_extract.core.dedup.dedup_folders`: calling it with
    ``(func, jobs)`` submits one task per chunk of jobs and yields
    ``func(job)`` for every job in the order of ``jobs``, chunk by chunk as
    they arrive. A job's first item is a file path; relative paths are made
    absolute here, on the client, since workers run elsewhere.

    Parameters
    ----------
    client : distributed.Client
        An open client.
    chunk_size : int, optional
        Jobs per task. Default: about four tasks per worker thread, between
        8 and 256 jobs each.
    retries : int
        Dask retries of a chunk whose task raised.
    """

    def __init__(self, client: Client, *, chunk_size: int | None = None, retries: int = 2) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.client = client
        self.chunk_size = chunk_size
        self.retries = retries

    def _chunk_size(self, n_jobs: int) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        threads = max(1, sum(self.client.nthreads().values()))
        return max(8, min(256, math.ceil(n_jobs / (4 * threads))))

    def __call__(self, func: Callable[[Any], Any], jobs: list[Any]) -> Iterator[Any]:
        jobs = [(os.path.abspath(job[0]), *job[1:]) for job in jobs]
        size = self._chunk_size(len(jobs))
        tag = os.urandom(6).hex()
        futures = [
            self.client.submit(
                _run_chunk,
                func,
                jobs[start : start + size],
                key=f"nve-hash-{tag}-{start}",
                retries=self.retries,
                pure=False,
            )
            for start in range(0, len(jobs), size)
        ]
        return self._ordered(futures)

    @staticmethod
    def _ordered(futures: list[Any]) -> Iterator[Any]:
        try:
            for fut in futures:
                try:
                    outputs = fut.result()
                except Exception as exc:  # KilledWorker, CancelledError...
                    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                    raise DistributedTaskError(
                        f"hashing on the Dask cluster failed ({reason}); nothing was moved"
                    ) from None
                fut.release()
                yield from outputs
        finally:
            # Stopped early (error, or the consumer gave up): leave no work behind.
            pending = [fut for fut in futures if not fut.done()]
            if pending:
                with contextlib.suppress(Exception):
                    pending[0].client.cancel(pending)


def dedup_folders_distributed(
    folders: Sequence[str | os.PathLike],
    *,
    scheduler: str | Client,
    chunk_size: int | None = None,
    **options: Any,
) -> DedupReport:
    """:func:`~napari_video_extract.core.dedup.dedup_folders` with hashing on a Dask cluster.

    The images not found in the folders' hash caches are hashed on the
    workers, in chunks (:class:`DaskJobMap`). Everything else runs here, as
    in a local run: reading and writing the hash caches, the global
    clustering of all hashes, the moves, ``dedup.csv`` and the undo journal.
    The result is the same as a local run's.

    Parameters
    ----------
    folders : sequence of path
        Input folders, on storage the workers share (same absolute paths).
    scheduler : str or distributed.Client
        Scheduler address (``tcp://host:8786``) or an open client.
    chunk_size : int, optional
        Images per task (see :class:`DaskJobMap`).
    **options
        Passed to :func:`~napari_video_extract.core.dedup.dedup_folders`
        (``method``, ``threshold``, ``mode``, ``keep``, ``dry_run``, ...).

    Returns
    -------
    DedupReport

    Raises
    ------
    DistributedUnavailableError
        ``distributed`` is not installed.
    SchedulerConnectionError
        The scheduler cannot be reached.
    DistributedTaskError
        A chunk could not be hashed on the cluster; nothing was moved.
    ValueError, InputError, OutputError
        As :func:`~napari_video_extract.core.dedup.dedup_folders`.
    """
    from napari_video_extract.core.dedup import dedup_folders

    client, owned = connect(scheduler)
    try:
        return dedup_folders(
            folders, map_jobs=DaskJobMap(client, chunk_size=chunk_size), **options
        )
    finally:
        if owned:
            client.close()
