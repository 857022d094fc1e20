"""Helpers shared by the hardening tests and benchmarks/bench_load.py.

Every test here drives the real command line (``python -m
napari_video_extract``) in a subprocess with a hard timeout, so a hang or a
crash is a test failure and never takes the test run with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from napari_video_extract.core.ffmpeg import ffmpeg_exe

REPO = Path(__file__).resolve().parents[2]
MEDIA = REPO.parent / "shared" / "media"

#: Hard limit for one CLI run over one small file. The tool's own limits
#: (probe timeout, decoder stall watchdog) are longer; a hostile file must be
#: dealt with far quicker than both.
CLI_TIMEOUT = 60.0


@dataclass
class CliRun:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ": error: " in ln]


def run_cli(
    *args: str | os.PathLike,
    timeout: float = CLI_TIMEOUT,
    cwd: str | os.PathLike | None = None,
    **popen,
) -> CliRun:
    """Run ``python -m napari_video_extract ARGS``; fail the test on a hang."""
    argv = [sys.executable, "-m", "napari_video_extract", *map(os.fspath, args)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            **popen,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"CLI hung for more than {timeout} s: {argv}") from exc
    return CliRun(
        [os.fspath(a) for a in args],
        proc.returncode,
        proc.stdout,
        proc.stderr,
        time.perf_counter() - t0,
    )


def ffmpeg(*args: str | os.PathLike, timeout: float = 60) -> None:
    """Run the bundled ffmpeg (test-side generation only)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    subprocess.run([*cmd, *map(os.fspath, args)], check=True, timeout=timeout)


def make_video(
    path: Path,
    *,
    seconds: float = 2.0,
    size: str = "64x48",
    rate: int = 25,
    codec: str = "libx264",
    gop: int = 25,
    extra: tuple[str, ...] = (),
) -> Path:
    """A synthetic test-pattern video (changes every frame)."""
    args = [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
        "-c:v",
        codec,
        "-g",
        str(gop),
        "-pix_fmt",
        "yuv420p",
    ]
    if codec == "libx264":
        args += ["-preset", "ultrafast", "-bf", "0"]
    ffmpeg(*args, *extra, path)
    return path


def temp_leftovers(folder: Path) -> list[Path]:
    """Temporary files the engine may leave (``.<name>.tmp-*``) under ``folder``."""
    return sorted(p for p in folder.rglob("*") if ".tmp-" in p.name)


def check_output_folder(folder: Path) -> list[dict[str, str]]:
    """Assert a video's output folder is consistent; return its frames.csv rows.

    Every row of ``frames.csv`` names an image that exists and decodes
    completely; every image in the folder is listed; no temporary file is left.
    """
    import csv

    from PIL import Image

    with open(folder / "frames.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    listed = {r["file"] for r in rows}
    assert len(listed) == len(rows), f"{folder}: a file is listed twice in frames.csv"
    assert len({r["frame"] for r in rows}) == len(rows), f"{folder}: a frame is written twice"
    for row in rows:
        with Image.open(folder / row["file"]) as im:
            im.load()  # raises on a truncated image
            assert im.size == (int(row["width"]), int(row["height"]))
    images = {
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in (".jpg", ".png", ".webp")
    }
    assert images == listed, f"{folder}: images not in frames.csv: {sorted(images - listed)}"
    assert not temp_leftovers(folder), f"{folder}: temporary files left: {temp_leftovers(folder)}"
    return rows
