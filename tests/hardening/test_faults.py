"""Faults: SIGKILL at random points, a full disk, a read-only output, three runs at once.

Killed runs are real CLI subprocesses killed with SIGKILL (no cleanup code
runs); the re-run must give exactly what an uninterrupted run gives.
"""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ._media import check_output_folder, make_video, run_cli, temp_leftovers

N_IMAGES = 500  # enough for a kill to land between the first and the last move
EXTRACT_ARGS = ("interval", "--every", "0.04", "--format", "png", "-q")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("faults")
    return make_video(d / "clip.mp4", seconds=4.0, size="320x240", gop=25)


@pytest.fixture(scope="module")
def reference(long_clip, tmp_path_factory) -> tuple[Path, list[dict], float]:
    out = tmp_path_factory.mktemp("reference")
    run = run_cli(*EXTRACT_ARGS, long_clip, "-o", out)
    assert run.returncode == 0, run.stderr
    folder = out / "clip"
    rows = check_output_folder(folder)
    assert len(rows) == 100
    return folder, rows, run.seconds


def _popen_cli(*args) -> subprocess.Popen:
    argv = [sys.executable, "-m", "napari_video_extract", *map(os.fspath, args)]
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _sigkill(proc: subprocess.Popen) -> None:
    """SIGKILL the CLI process (as `kill -9`), then reap its ffmpeg children."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _complete_images(folder: Path) -> list[Path]:
    """Every image under a final name is complete, even right after a kill."""
    from PIL import Image

    finals = [p for p in folder.glob("*.png") if not p.name.startswith(".")]
    for p in finals:
        with Image.open(p) as im:
            im.load()
    return finals


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sigkill_extraction_then_rerun_gives_the_uninterrupted_result(
    seed, long_clip, reference, tmp_path
):
    ref_dir, ref_rows, ref_seconds = reference
    out = tmp_path / "out"
    proc = _popen_cli(*EXTRACT_ARGS, long_clip, "-o", out)
    # Wait for the first still so that the kill lands during the extraction.
    folder = out / "clip"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and any(folder.glob("*.png")):
            break
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.0, 0.4 * ref_seconds))
    finished_first = proc.poll() is not None
    _sigkill(proc)
    before = _complete_images(folder) if folder.exists() else []
    print(f"seed {seed}: killed with {len(before)} of 100 stills written")

    rerun = run_cli(*EXTRACT_ARGS, long_clip, "-o", out)
    assert rerun.returncode == 0, rerun.stderr
    rows = check_output_folder(folder)  # also: no temp files, all listed
    assert rows == ref_rows
    for row in rows:
        assert filecmp.cmp(folder / row["file"], ref_dir / row["file"], shallow=False)
    assert not temp_leftovers(out)
    if not finished_first:
        assert len(before) < 100 or rerun.stdout == ""  # the kill was mid-run


def test_sigkill_points_hit_mid_run(long_clip, reference, tmp_path):
    """At least one kill of a seeded series lands mid-extraction (not vacuous)."""
    mid = 0
    for seed in (5, 6):
        out = tmp_path / f"out{seed}"
        proc = _popen_cli(*EXTRACT_ARGS, long_clip, "-o", out)
        folder = out / "clip"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (folder.is_dir() and any(folder.glob("*.png"))):
            time.sleep(0.005)
        _sigkill(proc)
        n = len(_complete_images(folder))
        mid += 0 < n < 100
    assert mid >= 1


# --------------------------------------------------------------------------- tmpfs


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_disk_full_gives_a_clear_error_and_nothing_corrupt(long_clip, tmp_path):
    with tmpfs(tmp_path / "small", "2m") as disk:
        run = run_cli(*EXTRACT_ARGS, long_clip, "-o", disk / "out")
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
        assert len(run.error_lines) == 1, run.stderr
        assert str(long_clip) in run.error_lines[0] or "out/clip" in run.error_lines[0]
        assert "No space left on device" in run.error_lines[0], run.error_lines
        folder = disk / "out" / "clip"
        rows = check_output_folder(folder)  # listed images decode; no temp files
        assert 0 < len(rows) < 100
        # Once space is back, a re-run completes the job.
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        rerun = run_cli(*EXTRACT_ARGS, long_clip, "-o", disk / "out")
        assert rerun.returncode == 0, rerun.stderr
        assert len(check_output_folder(folder)) == 100


def test_read_only_output_is_refused_clearly(long_clip, tmp_path):
    with tmpfs(tmp_path / "ro", "4m") as disk:
        (disk / "out").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        run = run_cli(*EXTRACT_ARGS, long_clip, "-o", disk / "out")
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert len(run.error_lines) == 1, run.stderr
        line = run.error_lines[0]
        assert "cannot write output folder" in line and "Read-only file system" in line, line
        assert str(disk / "out" / "clip") in line


def test_three_runs_on_one_output_folder(long_clip, reference, tmp_path):
    """A run holds the folder; a second is refused; a third must be refused too.

    The first run is an extraction in this process, paused in its progress
    callback after its first stills, with a temporary file of its own (named
    as ``_write_image`` names them, with this process's pid) in the folder.
    A refused run must leave the lock alone, so the third is refused as well
    and cannot clean that temporary up from under the first.
    """
    import threading

    from napari_video_extract.core.extract import Interval, extract_video

    _, ref_rows, _ = reference
    out = tmp_path / "out"
    folder = out / "clip"
    paused, resume = threading.Event(), threading.Event()
    live_tmp = folder / f".in-flight.png.tmp-{os.getpid()}-1"

    def progress(done: int, total: int) -> None:
        if done >= 3 and not paused.is_set():
            live_tmp.write_bytes(b"half an image the first run is writing")
            paused.set()
            assert resume.wait(120)

    first: dict = {}

    def run_first() -> None:
        try:
            first["result"] = extract_video(
                long_clip, folder, Interval(every=0.04), fmt="png", progress=progress
            )
        except BaseException as exc:  # reported by the main thread
            first["error"] = exc

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert paused.wait(60), first
        lock = folder / ".nve-extract.lock"
        refused = []
        for _ in range(2):  # the second run, then the third once it has ended
            run = run_cli(*EXTRACT_ARGS, long_clip, "-o", out)
            refused.append(run)
            assert run.returncode == 1, run.stderr
            assert len(run.error_lines) == 1, run.stderr
            assert "another extraction is writing this folder" in run.error_lines[0]
            assert lock.exists(), "a refused run removed the lock of the running one"
        assert live_tmp.read_bytes() == b"half an image the first run is writing"
        assert all(run.stdout == "" for run in refused)
    finally:
        resume.set()
        thread.join(120)
    assert "error" not in first, first
    assert first["result"].written == 100
    live_tmp.unlink()
    assert not (folder / ".nve-extract.lock").exists()  # the holder removes it
    assert check_output_folder(folder) == ref_rows


# --------------------------------------------------------------------------- dedup


def _image_folder(folder: Path, n: int, seed: int = 0) -> dict[str, str]:
    """``n`` small PNGs, about one in three a near-copy of an earlier one."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    bases: list[np.ndarray] = []
    for i in range(n):
        if bases and rng.random() < 0.35:
            img = bases[rng.integers(len(bases))].copy()
            img[rng.integers(32), rng.integers(32)] ^= 1  # still a duplicate
        else:
            img = (rng.random((8, 8, 3)) * 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
            bases.append(img)
        Image.fromarray(img).save(folder / f"img_{i:05d}.png")
    return _snapshot(folder)


def _snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every image under root (journals/csv excluded)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def _contents(snapshot: dict[str, str]) -> list[str]:
    return sorted(snapshot.values())


def _files(root: Path) -> list[str]:
    """sha256 of every distinct image file (inode) under root.

    A move is link-then-unlink (it never overwrites), so a kill can leave one
    file under two names for an instant: that is one file, not a copy.
    """
    inodes = {}
    for p in root.rglob("*.png"):
        st = p.stat()
        inodes[(st.st_dev, st.st_ino)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return sorted(inodes.values())


@pytest.fixture(scope="module")
def dedup_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedup_ref")
    original = _image_folder(root / "imgs", N_IMAGES)
    run = run_cli("dedup", root / "imgs", "-q", timeout=120)
    assert run.returncode == 0, run.stderr
    after = _snapshot(root / "imgs")
    moved = [k for k in after if k.startswith("duplicates/")]
    assert N_IMAGES // 10 < len(moved) < N_IMAGES // 2
    return original, after, run.seconds


def _kill_when(proc, cond, delay):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not cond():
        time.sleep(0.002)
    time.sleep(delay)
    _sigkill(proc)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_dedup_and_undo_lose_and_duplicate_nothing(seed, dedup_reference, tmp_path):
    original, deduped, _ = dedup_reference
    folder = tmp_path / "imgs"
    assert _image_folder(folder, N_IMAGES) == original
    rng = random.Random(seed)
    dups = folder / "duplicates"

    proc = _popen_cli("dedup", folder, "-q")
    _kill_when(proc, lambda: dups.is_dir() and any(dups.iterdir()), rng.uniform(0, 0.3))
    state = _snapshot(folder)
    # Each image is either in place or in duplicates/ (or both names of one
    # in-flight file), never copied, never gone.
    assert _files(folder) == _contents(original), "a file was lost or duplicated"
    print(f"seed {seed}: dedup killed after {sum(k.startswith('dup') for k in state)} moves")

    rerun = run_cli("dedup", folder, "-q", timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert _snapshot(folder) == deduped

    proc = _popen_cli("undo", folder, "-q")
    n_moved = sum(k.startswith("duplicates/") for k in deduped)
    _kill_when(proc, lambda: len(list(dups.glob("*.png"))) < n_moved - 5, rng.uniform(0, 0.1))
    assert _files(folder) == _contents(original), "undo lost or duplicated a file"
    rerun = run_cli("undo", folder, "-q", timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert _snapshot(folder) == original  # undo(dedup(x)) == x, names and bytes


def test_dedup_rerun_after_kill_between_link_and_unlink(dedup_reference, tmp_path):
    """The move is link-then-unlink; a kill in between leaves the file under both
    names. Rebuild exactly that state, then re-run: nothing may end up twice."""
    original, deduped, _ = dedup_reference
    folder = tmp_path / "imgs"
    _image_folder(folder, N_IMAGES)
    assert run_cli("dedup", folder, "-q", timeout=120).returncode == 0
    moved = sorted((folder / "duplicates").glob("*.png"))
    victim = moved[len(moved) // 2]
    os.link(victim, folder / victim.name)  # the state right before os.unlink(src)
    rerun = run_cli("dedup", folder, "-q", timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert _snapshot(folder) == deduped
    assert run_cli("undo", folder, "-q", timeout=120).returncode == 0
    assert _snapshot(folder) == original


def test_dedup_on_read_only_folder_moves_nothing(tmp_path):
    with tmpfs(tmp_path / "ro", "8m") as disk:
        original = _image_folder(disk / "imgs", 60)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        run = run_cli("dedup", disk / "imgs")
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert len(run.error_lines) == 1 and str(disk / "imgs") in run.error_lines[0]
        assert _snapshot(disk / "imgs") == original
