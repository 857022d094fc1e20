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


def _plain_decode(
    path: Path, output: list[str], *, threads: int = 0, vf: str | None = None, timeout: float
) -> bytes:
    """stdout of one sequential ffmpeg run over the first video stream (no seeking),
    on the engine's ``-copyts`` timeline, timestamps in the stream's time base."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-threads", str(threads)]
    cmd += ["-copyts", "-i", path, "-map", "0:V:0", "-fps_mode", "passthrough"]
    cmd += ["-vf", vf] if vf else []
    cmd += ["-enc_time_base:v", "filter", "-avoid_negative_ts", "disabled", "-pix_fmt", "rgb24"]
    return subprocess.run([*cmd, *output], capture_output=True, timeout=timeout).stdout


def _framehash_lines(stdout: bytes) -> tuple[list[float], list[str]]:
    """(seconds, last field) of each packet line of a framecrc/framemd5 listing."""
    from fractions import Fraction

    time_base = Fraction(1)
    times, last = [], []
    for line in stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#tb 0:"):
            time_base = Fraction(line.split(":", 1)[1].strip())
        elif line.startswith("0,"):
            fields = [f.strip() for f in line.split(",")]
            times.append(float(int(fields[2]) * time_base))
            last.append(fields[-1])
    return times, last


def plain_decode_hashes(
    path: Path, *, threads: int = 0, timeout: float = 120
) -> tuple[list[float], list[str]]:
    """(timestamp in seconds, MD5 of the RGB pixels) of every frame of a plain decode.

    ``framemd5`` on stdout carries only ffmpeg's own numbers, never the
    file's metadata. ``threads`` are the decoder's (0: ffmpeg's choice): a
    damaged H.264 frame is concealed differently with each thread count.
    """
    out = _plain_decode(path, ["-f", "framemd5", "-"], threads=threads, timeout=timeout)
    return _framehash_lines(out)


def plain_decode_thumbnails(
    path: Path, size: tuple[int, int], *, threads: int = 0, timeout: float = 120
) -> tuple[list[float], list[bytes]]:
    """(timestamp in seconds, RGB bytes shrunk to ``size``) of every frame of a plain decode.

    ``threads`` as in :func:`plain_decode_hashes`.
    """
    vf = f"scale={size[0]}:{size[1]}:flags=area"
    raw = _plain_decode(path, ["-f", "rawvideo", "-"], vf=vf, threads=threads, timeout=timeout)
    listing = _plain_decode(path, ["-f", "framecrc", "-"], vf=vf, timeout=timeout)
    times, _ = _framehash_lines(listing)
    n = size[0] * size[1] * 3
    frames = [raw[i * n : (i + 1) * n] for i in range(len(raw) // n)]
    return times[: len(frames)], frames
