"""Dask distributed benchmark: 1 vs 2 workers, and the scheduling overhead per video.

Builds (once, cached in ``benchmarks/_work/distributed/videos``) 40 short
H.264 test-pattern videos made with the bundled ffmpeg, then extracts the same
stills from all of them three ways, each into a fresh output folder:

``local``
    :func:`~napari_video_extract.core.extract.extract_batch` in this process
    with ``jobs=1``: one video after the other, no Dask.
``dask, 1 worker`` / ``dask, 2 workers``
    :func:`~napari_video_extract.core.distributed.extract_batch_distributed`
    on a :class:`distributed.LocalCluster` of single-threaded worker
    processes on 127.0.0.1 (one video at a time per worker). The cluster is
    started and the package imported on its workers before the clock starts.

Each video uses ``--decoders`` decoder processes (default 1), so a worker
uses about one CPU and the 1-vs-2 comparison shows what a second worker adds
rather than two workers fighting over the same CPUs.

The speed-up is ``dask 1 worker / dask 2 workers``; the scheduling overhead
per video is ``(dask 1 worker - local) / videos`` (both process one video at
a time, so the difference is task submission, scheduling, result transfer
and gathering). For scale, the round trip of as many no-op tasks on the
1-worker cluster is printed too. Every run's ``frames.csv`` files are checked to be identical.
Each measurement is repeated ``--repeat`` times and the fastest kept (the
machine may be shared).

Run: ``python benchmarks/bench_distributed.py`` (a few minutes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from napari_video_extract.core.distributed import extract_batch_distributed
from napari_video_extract.core.extract import BatchResult, Interval, extract_batch
from napari_video_extract.core.ffmpeg import ffmpeg_exe
from napari_video_extract.core.manifest import MANIFEST_NAME

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "distributed"


def make_videos(n: int, *, seconds: float, size: str) -> list[Path]:
    """``n`` test-pattern videos (cached), each a different pattern offset."""
    folder = WORK / "videos" / f"{size}_{seconds:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    for i in range(n):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists():
            tmp = path.with_name(f".{path.name}.tmp.mp4")
            subprocess.run(
                [
                    ffmpeg_exe(),
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    # A different start point per clip so the videos differ.
                    f"testsrc2=size={size}:rate=25:duration={seconds + i * 0.04}",
                    "-vf",
                    f"trim=start={i * 0.04},setpts=PTS-STARTPTS",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:v",
                    "libx264",
                    "-g",
                    "25",
                    str(tmp),
                ],
                check=True,
                timeout=120,
            )
            tmp.rename(path)
        videos.append(path)
    return videos


def manifests(root: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(root.glob(f"*/{MANIFEST_NAME}"))}


def timed(run: Callable[[Path], BatchResult], out: Path, repeat: int) -> tuple[float, Path]:
    """Fastest of ``repeat`` runs, each into an empty ``out``."""
    best = float("inf")
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        batch = run(out)
        elapsed = time.perf_counter() - t0
        if batch.failures:
            raise SystemExit(f"failed: {batch.failures[0].video}: {batch.failures[0].error}")
        best = min(best, elapsed)
    return best, out


def _noop(i: int) -> int:
    return i


def task_round_trip(client, n: int) -> float:
    """Seconds for ``n`` no-op tasks submitted and gathered like the video tasks."""
    from distributed import as_completed

    t0 = time.perf_counter()
    futures = [client.submit(_noop, i, pure=False) for i in range(n)]
    for fut in as_completed(futures, loop=client.loop):
        fut.result()
        fut.release()
    return time.perf_counter() - t0


def dask_run(
    n_workers: int, videos: list[Path], spec: Interval, options: dict, out: Path, repeat: int
) -> tuple[float, float]:
    """Best wall time of the batch, and of as many no-op tasks, on ``n_workers``."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # a free port, no clash with a running cluster
            local_directory=str(WORK / "scratch"),
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers, timeout=60)
        # Import the engine on every worker before timing (a one-time cost).
        client.run(__import__, "napari_video_extract.core.extract")
        seconds, _ = timed(
            lambda o: extract_batch_distributed(videos, o, spec, scheduler=client, **options),
            out,
            repeat,
        )
        noop = min(task_round_trip(client, len(videos)) for _ in range(repeat))
    return seconds, noop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each video")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between stills")
    parser.add_argument("--format", dest="fmt", default="jpg", choices=["jpg", "png", "webp"])
    parser.add_argument(
        "--decoders",
        type=int,
        default=1,
        help="decoder processes per video (default 1, so one worker uses about one CPU and "
        "the 2-worker run can show scaling; 0 = the engine's default)",
    )
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)

    videos = make_videos(args.videos, seconds=args.seconds, size=args.size)
    spec = Interval(every=args.every)
    options = dict(fmt=args.fmt, quality=90)
    if args.decoders:
        options["workers"] = args.decoders
    out = WORK / "out"

    local, _ = timed(
        lambda o: extract_batch(videos, o, spec, jobs=1, **options), out / "local", args.repeat
    )
    one, noop = dask_run(1, videos, spec, options, out / "dask1", args.repeat)
    two, _ = dask_run(2, videos, spec, options, out / "dask2", args.repeat)

    reference = manifests(out / "local")
    stills = sum(b.count(b"\n") - 1 for b in reference.values())
    for name in ("dask1", "dask2"):
        if manifests(out / name) != reference:
            raise SystemExit(f"{name}: frames.csv differs from the local run")

    n = len(videos)
    print(
        f"{n} videos, {args.size}, {args.seconds:g} s each, a {args.fmt} still every "
        f"{args.every:g} s ({stills} stills); {os.cpu_count()} CPUs; "
        f"python {sys.version.split()[0]}; best of {args.repeat}\n"
    )
    print("| run | wall time (s) | per video (ms) | stills/s |")
    print("|---|---:|---:|---:|")
    for label, seconds in (
        ("local `extract_batch(jobs=1)`", local),
        ("dask, 1 worker", one),
        ("dask, 2 workers", two),
    ):
        print(f"| {label} | {seconds:.2f} | {1000 * seconds / n:.0f} | {stills / seconds:.0f} |")
    print(
        f"\nspeed-up 2 workers vs 1: **{one / two:.2f}x**; "
        f"scheduling overhead: **{1000 * (one - local) / n:.1f} ms per video** "
        f"((dask 1 worker - local) / videos); a bare no-op task round trip: "
        f"{1000 * noop / n:.1f} ms per task. frames.csv identical in all runs."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
