"""The sample video: generated on first use from ffmpeg's synthetic sources.

Six 4-second scenes at 640x360, 25 fps, H.264: colour bars, a Mandelbrot
zoom, a test pattern, Conway's game of life, slowly moving gradients, and the
colour bars again. Static scenes give near-identical stills and the repeated
bars give a duplicate far apart, so the demo and the napari sample show what
extraction and duplicate removal do. Nothing is downloaded; the file is
cached and rebuilt if missing or damaged.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_video_extract.core.ffmpeg import run_ffmpeg

__all__ = ["SAMPLE_SCENES", "sample_video_path"]

#: (name, start second, end second) of each scene in the sample video.
SAMPLE_SCENES = (
    ("colour bars", 0, 4),
    ("mandelbrot", 4, 8),
    ("test pattern", 8, 12),
    ("game of life", 12, 16),
    ("gradients", 16, 20),
    ("colour bars again", 20, 24),
)

_SIZE = "640x360"
_RATE = 25
_GRAPH = (
    f"smptehdbars=s={_SIZE}:r={_RATE}:d=4[a];"
    f"mandelbrot=s={_SIZE}:r={_RATE},trim=duration=4[b];"
    f"testsrc2=s={_SIZE}:r={_RATE}:d=4[c];"
    f"life=s={_SIZE}:r={_RATE}:mold=10:ratio=0.1:seed=7:death_color=#C83232:"
    f"life_color=#00ff00,trim=duration=4,format=yuv420p[d];"
    f"gradients=s={_SIZE}:r={_RATE}:d=4:speed=0.01:seed=3[e];"
    f"smptehdbars=s={_SIZE}:r={_RATE}:d=4[f];"
    "[a][b][c][d][e][f]concat=n=6:v=1:a=0,format=yuv420p[v]"
)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "napari-video-extract"


def sample_video_path(*, folder: str | os.PathLike | None = None) -> Path:
    """Path of the sample video, generating it (about 2 s) if needed.

    Parameters
    ----------
    folder : path, optional
        Where to keep it (default: the user cache folder,
        ``$XDG_CACHE_HOME/napari-video-extract``).

    Returns
    -------
    Path

    Raises
    ------
    RuntimeError
        ffmpeg could not generate it.
    """
    folder = Path(folder) if folder is not None else _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sample_scenes.mp4"
    if path.is_file() and path.stat().st_size > 10_000:
        return path
    tmp = folder / f".sample_scenes.{os.getpid()}.mp4"
    proc = run_ffmpeg(
        [
            "-filter_complex",
            _GRAPH,
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "28",
            "-g",
            "50",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(tmp),
        ],
        timeout=300,
    )
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise RuntimeError(f"could not generate the sample video: {' '.join(tail)}")
    os.replace(tmp, path)
    return path
