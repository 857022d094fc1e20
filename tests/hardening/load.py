"""Load runs shared by ``test_load.py`` and ``benchmarks/bench_load.py``.

A CLI subprocess is started with a lowered open-file limit (``ulimit -n``) and
watched from outside: open file descriptors (``/proc/<pid>/fd``), live
descendant processes and resident memory (``/proc/<pid>/status``) are sampled
while it runs; the peak RSS is the kernel's high-water mark (``VmHWM``) of the
CLI process and of each child, read while they run.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._media import ffmpeg

FD_LIMIT = 256


@dataclass
class LoadRun:
    returncode: int
    seconds: float
    peak_rss_mb: float
    max_fds: int
    max_procs: int
    rss_samples_mb: list[float] = field(default_factory=list)
    peak_tree_rss_mb: float = 0.0
    stdout: str = ""
    stderr: str = ""

    def figures(self) -> str:
        return (
            f"exit {self.returncode}, {self.seconds:.1f} s, peak RSS {self.peak_rss_mb:.0f} MB "
            f"(CLI process or one child, high-water), peak {self.peak_tree_rss_mb:.0f} MB "
            f"with its ffmpeg/worker processes (sampled), max {self.max_fds} open fds "
            f"(limit {FD_LIMIT}), max {self.max_procs} live child processes"
        )


def make_video_batch(folder: Path, n: int) -> list[Path]:
    """``n`` tiny 64x48 1-second videos: one encode, then copies."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "v_00000.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", first),
    )
    paths = [first]
    for i in range(1, n):
        dst = folder / f"v_{i:05d}.mp4"
        shutil.copyfile(first, dst)
        paths.append(dst)
    return paths


def make_stills(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` tiny PNG stills, about half of them near-duplicates."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = (rng.random((max(n // 2, 1), 4, 4)) * 255).astype(np.uint8)
    for i in range(n):
        img = bases[rng.integers(len(bases))].repeat(8, 0).repeat(8, 1)
        Image.fromarray(img).save(folder / f"s_{i:06d}.png", compress_level=1)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
                out += kids
                todo += kids
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def _status_mb(pid: int, field: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _rss_mb(pid: int) -> float | None:
    return _status_mb(pid, "VmRSS")


def _high_water_mb(pid: int) -> float | None:
    # VmHWM belongs to the process image after exec. ru_maxrss does not: it
    # keeps the high-water mark of the pre-exec fork, i.e. of the pytest
    # process that started the run, so it grew with whatever ran before.
    return _status_mb(pid, "VmHWM")


def run_watched(*args: str | os.PathLike, timeout: float = 600) -> LoadRun:
    """Run the CLI with ``ulimit -n FD_LIMIT``; sample fds, processes and RSS."""

    def limit_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    argv = [sys.executable, "-m", "napari_video_extract", *map(os.fspath, args)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit_fds,
    )
    streams: dict[str, bytes] = {}

    def drain(name, pipe):
        streams[name] = pipe.read()

    readers = [
        threading.Thread(target=drain, args=(n, p), daemon=True)
        for n, p in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for r in readers:
        r.start()
    max_fds = max_procs = 0
    rss: list[float] = []
    peak_tree = peak_self = peak_kid = 0.0
    while True:
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        with contextlib.suppress(FileNotFoundError):
            max_fds = max(max_fds, len(os.listdir(f"/proc/{proc.pid}/fd")))
        kids = _descendants(proc.pid)
        max_procs = max(max_procs, len(kids))
        high = _high_water_mb(proc.pid)
        if high is not None:
            peak_self = max(peak_self, high)
        for kid in kids:
            peak_kid = max(peak_kid, _high_water_mb(kid) or 0.0)
        value = _rss_mb(proc.pid)
        if value is not None:
            rss.append(value)
            tree = value + sum(_rss_mb(k) or 0.0 for k in kids)
            peak_tree = max(peak_tree, tree)
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"load run took longer than {timeout} s: {argv}")
        time.sleep(0.05)
    for r in readers:
        r.join()
    return LoadRun(
        returncode=proc.returncode,
        seconds=time.perf_counter() - t0,
        peak_rss_mb=max(peak_self, peak_kid),
        max_fds=max_fds,
        max_procs=max_procs,
        rss_samples_mb=rss,
        peak_tree_rss_mb=peak_tree,
        stdout=streams.get("out", b"").decode(),
        stderr=streams.get("err", b"").decode(),
    )


def memory_is_flat(samples: list[float], slack_mb: float = 40.0) -> bool:
    """RSS in the last half of the run stays within ``slack`` of the first half's peak."""
    if len(samples) < 4:
        return True
    half = len(samples) // 2
    return max(samples[half:]) <= max(samples[:half]) + slack_mb
