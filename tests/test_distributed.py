"""Batch extraction on a real Dask cluster: a scheduler and worker processes on 127.0.0.1.

Nothing is mocked: ``dask scheduler`` and ``dask worker`` run as subprocesses,
the CLI runs with ``--scheduler``, and the files it writes are compared byte
for byte with a local run. One test SIGKILLs a worker while it is writing a
video's stills and checks that the Dask retry neither loses nor duplicates a
still.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from napari_video_extract.cli import main
from napari_video_extract.core.ffmpeg import ffmpeg_exe
from napari_video_extract.core.manifest import MANIFEST_NAME, read_manifest

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(120)]

LOCK_NAME = ".nve-extract.lock"
START_TIMEOUT = 30.0


# --------------------------------------------------------------------------- cluster


class LocalDaskCluster:
    """A ``dask scheduler`` and ``dask worker`` subprocesses on 127.0.0.1.

    Workers run without a nanny, so a worker's pid is the process doing the
    work (the one a test kills), and a killed worker stays dead.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scheduler_file = root / "scheduler.json"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.address = ""

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",  # a free port, published in the scheduler file
                "--no-dashboard",
                "--scheduler-file",
                str(self.scheduler_file),
            ],
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.scheduler_file.exists():
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start:\n" + self.log("scheduler"))
            time.sleep(0.1)
        while not self.address:
            try:
                self.address = json.loads(self.scheduler_file.read_text())["address"]
            except (ValueError, KeyError):  # written but not complete yet
                time.sleep(0.05)

    def start_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(
            name,
            [
                "worker",
                "--scheduler-file",
                str(self.scheduler_file),
                "--host",
                "127.0.0.1",
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--name",
                name,
                "--local-directory",
                str(self.root / "scratch"),
                "--death-timeout",
                "30",
            ],
        )

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=START_TIMEOUT, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=START_TIMEOUT)

    def tasks_executed(self) -> int:
        """Tasks run so far by the live workers (to see that work went there)."""
        from distributed import Client

        with Client(self.address, timeout=START_TIMEOUT, set_as_default=False) as client:
            counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
        return sum(counts.values())

    def alive_workers(self) -> dict[str, subprocess.Popen]:
        return {k: p for k, p in self.workers.items() if p.poll() is None}

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """Workers first (they say goodbye to the scheduler), then the scheduler."""
        for group in (list(self.workers.values()), [self.scheduler]):
            for proc in group:
                if proc is not None and proc.poll() is None:
                    proc.terminate()
            for proc in group:
                if proc is None:
                    continue
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDaskCluster]:
    """One scheduler and two single-threaded workers for this module."""
    c = LocalDaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        # Workers wait for the scheduler file, so all three start together.
        c.start_worker("w1")
        c.start_worker("w2")
        c.start_scheduler()
        c.wait_for_workers(2)
        yield c
    finally:
        c.stop()


# --------------------------------------------------------------------------- inputs


def make_video(path: Path, *, seconds: float, size: str = "160x120") -> Path:
    """An H.264 test pattern video made with the bundled ffmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate=25:duration={seconds}",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-g",
            "25",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def visible_files(root: Path) -> dict[str, bytes]:
    """Every non-hidden file under ``root`` by relative path, with its bytes.

    Hidden files are the engine's own (lock, temporary files of an interrupted
    write), never outputs.
    """
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(stderr: str) -> list[str]:
    return sorted(line for line in stderr.splitlines() if ": error: " in line)


# --------------------------------------------------------------------------- tests


def test_cli_scheduler_matches_local_run(
    cluster: LocalDaskCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same folders, byte-identical PNGs, identical frames.csv, same failures."""
    videos = tmp_path / "videos"
    make_video(videos / "a.mp4", seconds=2)
    make_video(videos / "b.mp4", seconds=3)
    make_video(videos / "c.mp4", seconds=4)
    make_video(tmp_path / "more" / "a.mp4", seconds=2.5)  # same stem: a distinct folder
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    inputs = [str(videos), str(tmp_path / "more" / "a.mp4")]
    common = ["interval", *inputs, "--every", "0.3", "--format", "png", "--quiet"]

    code_local, _, err_local = run_cli([*common, "--out", str(tmp_path / "local")], capsys)
    before = cluster.tasks_executed()
    code_dask, _, err_dask = run_cli(
        [*common, "--out", str(tmp_path / "dask"), "--scheduler", cluster.address], capsys
    )
    assert cluster.tasks_executed() - before == 5  # one task per video, broken one included

    assert code_local == code_dask == 1  # broken.mp4 fails in both
    assert error_lines(err_dask) == error_lines(err_local)
    assert any("broken.mp4" in line for line in error_lines(err_dask))
    local = visible_files(tmp_path / "local")
    dask = visible_files(tmp_path / "dask")
    assert sorted(dask) == sorted(local)
    assert sum(name.endswith(".png") for name in dask) > 30
    assert len([name for name in dask if name.endswith(MANIFEST_NAME)]) == 4
    for name, data in local.items():
        assert dask[name] == data, f"{name} differs from the local run"


def _worker_writing(cluster: LocalDaskCluster, out_root: Path) -> tuple[str, Path] | None:
    """(worker name, folder) of a worker holding a folder's extraction lock."""
    for name, proc in cluster.alive_workers().items():
        fd_dir = Path(f"/proc/{proc.pid}/fd")
        try:
            targets = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        for target in targets:
            if target.endswith("/" + LOCK_NAME) and target.startswith(str(out_root)):
                return name, Path(target).parent
    return None


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to find the worker")
def test_killed_worker_loses_and_duplicates_nothing(
    cluster: LocalDaskCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL a worker mid-video; the retry elsewhere resumes it exactly."""
    names = [f"clip{i}" for i in range(3)]
    videos = [
        make_video(tmp_path / "videos" / f"{n}.mp4", seconds=4, size="320x240") for n in names
    ]
    common = ["interval", *map(str, videos), "--every", "0.04", "--format", "png"]
    out = tmp_path / "dask"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "napari_video_extract",
            *common,
            "--out",
            str(out),
            "--scheduler",
            cluster.address,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed: tuple[str, Path] | None = None
    try:
        deadline = time.monotonic() + 60
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            found = _worker_writing(cluster, out)
            # Kill once the worker has written some of the video's stills.
            partial = len(list(found[1].glob("*.png"))) if found else 0
            if found and 5 <= partial < 90:
                cluster.workers[found[0]].send_signal(signal.SIGKILL)
                cluster.workers[found[0]].wait(timeout=10)
                killed = found
            else:
                time.sleep(0.01)
        assert killed is not None, "the batch ended before a worker could be killed mid-video"
        cluster.start_worker("w3")  # a fresh worker joins; the survivor also goes on
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    # The retry resumed the killed worker's stills: the summary counts them.
    assert "already there" in stdout, stdout

    code, _, _ = run_cli([*common, "--quiet", "--out", str(tmp_path / "local")], capsys)
    assert code == 0
    local = visible_files(tmp_path / "local")
    dask = visible_files(out)
    assert sorted(dask) == sorted(local), "a still was lost or added"
    for name, data in local.items():
        assert dask[name] == data, f"{name} differs from the local run"
    for folder in sorted(out.iterdir()):
        records = read_manifest(folder)
        assert len(records) == 100
        assert len({r.frame for r in records}) == len({r.file for r in records}) == 100


def _journal_entries(folder: Path) -> list[dict]:
    """The undo journal without its run id (random per run) and the moved
    files' identity (device and inode differ between two folders)."""
    path = folder / ".nve-moves.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for entry in entries:
        for key in ("run", "dev", "ino"):
            entry.pop(key, None)
    return entries


def test_cli_dedup_scheduler_matches_local_run(
    cluster: LocalDaskCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hashing in chunks on the workers gives the same moves, dedup.csv, cache, journal."""
    from napari_video_extract.core.extract import Interval, extract_batch

    videos = [
        make_video(tmp_path / "videos" / f"{name}.mp4", seconds=s)
        for name, s in (("a", 2), ("b", 3), ("c", 3))
    ]
    stills = tmp_path / "stills"
    batch = extract_batch(videos, stills, Interval(every=0.15), fmt="png")
    assert not batch.failures and batch.written > 50
    (stills / "b" / "notes.txt").write_text("not an image")
    (stills / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    # Two copies with the same names and mtimes; each run from inside its copy
    # so the paths written to dedup.csv are the same relative paths.
    for copy in ("local", "dask"):
        shutil.copytree(stills, tmp_path / copy)
    args = ["dedup", "a", "b", "c", "--keep", "sharpest"]

    monkeypatch.chdir(tmp_path / "local")
    code_local, out_local, err_local = run_cli(args, capsys)
    monkeypatch.chdir(tmp_path / "dask")
    before = cluster.tasks_executed()
    code_dask, out_dask, err_dask = run_cli([*args, "--scheduler", cluster.address], capsys)
    assert cluster.tasks_executed() - before >= 4  # hashed in chunks on the workers

    assert code_local == code_dask == 1  # broken.png is reported in both
    assert error_lines(err_dask) == error_lines(err_local)
    assert _summary(out_dask) == _summary(out_local)
    local = visible_files(tmp_path / "local")
    dask = visible_files(tmp_path / "dask")
    assert sorted(dask) == sorted(local)
    assert any("/duplicates/" in name for name in dask), "nothing was deduplicated"
    for name, data in local.items():
        assert dask[name] == data, f"{name} differs from the local run"
    for folder in ("a", "b", "c"):
        cache = ".nve-hashcache.json"
        assert (tmp_path / "dask" / folder / cache).read_bytes() == (
            tmp_path / "local" / folder / cache
        ).read_bytes()
        assert _journal_entries(tmp_path / "dask" / folder) == _journal_entries(
            tmp_path / "local" / folder
        )


def _summary(stdout: str) -> str:
    """The summary line without its timing."""
    line = next(line for line in stdout.splitlines() if " clusters, " in line)
    return line.rsplit(",", 1)[0]
