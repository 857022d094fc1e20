"""Load: 200 videos in one batch and thousands of stills in one dedup run.

Each run is a CLI subprocess with ``ulimit -n 256``, watched from outside for
open file descriptors, live child processes and memory. The full-size run
(20,000 stills) is ``benchmarks/bench_load.py``; here the size comes from
``NVE_LOAD_STILLS`` (default 3,000) to keep the suite fast.
"""

from __future__ import annotations

import os

import pytest

from .load import FD_LIMIT, make_stills, make_video_batch, memory_is_flat, run_watched

pytestmark = pytest.mark.slow

N_VIDEOS = 200
N_STILLS = int(os.environ.get("NVE_LOAD_STILLS", "3000"))


def test_batch_of_200_videos(tmp_path):
    make_video_batch(tmp_path / "videos", N_VIDEOS)
    out = tmp_path / "out"
    run = run_watched("interval", tmp_path / "videos", "--every", "0.5", "--jobs", "2", "-o", out)
    print(f"\n{N_VIDEOS} videos: {run.figures()}")
    assert run.returncode == 0, run.stderr[-2000:]
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(folders) == N_VIDEOS
    assert all(len(list(f.glob("*.jpg"))) == 2 for f in folders)
    assert f"{N_VIDEOS} of {N_VIDEOS} video(s) done, {2 * N_VIDEOS} still(s) written" in run.stdout
    # Bounded by the parallelism, not by the number of videos.
    assert run.max_fds < FD_LIMIT // 4, run.figures()
    assert run.max_procs <= 16, run.figures()
    assert run.peak_rss_mb < 300 and memory_is_flat(run.rss_samples_mb), run.figures()


def test_dedup_of_many_stills(tmp_path):
    folder = tmp_path / "stills"
    make_stills(folder, N_STILLS)
    run = run_watched("dedup", folder)
    print(f"\n{N_STILLS} stills: {run.figures()}")
    assert run.returncode == 0, run.stderr[-2000:]
    left = len(list(folder.glob("*.png")))
    moved = len(list((folder / "duplicates").glob("*.png")))
    assert left + moved == N_STILLS and 0 < moved < N_STILLS
    assert run.max_fds < FD_LIMIT // 4, run.figures()
    assert run.max_procs <= 16, run.figures()
    assert run.peak_rss_mb < 500 and memory_is_flat(run.rss_samples_mb), run.figures()
