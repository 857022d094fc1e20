"""Videos for the widget tests, generated with the bundled ffmpeg (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_video_extract.core.ffmpeg import run_ffmpeg

#: Scenes of ``scenes_video``: (lavfi source, seconds). The first and last are
#: the same static bars (duplicates far apart); the middle two differ.
SCENES = (("smptebars", 2), ("rgbtestsrc", 2), ("testsrc", 2), ("smptebars", 2))
SIZE = (320, 180)
FPS = 25


def _make(path: Path, graph: str) -> Path:
    proc = run_ffmpeg(
        ["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast",
         "-crf", "18", "-g", "25", "-pix_fmt", "yuv420p", "-f", "mp4", str(path)],
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-500:]
    return path


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Path:
    """Widget settings go to a fresh config dir per test, never the user's."""
    config = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture(scope="session")
def scenes_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s, 25 fps, 320x180: bars, RGB test pattern, test card, bars again."""
    w, h = SIZE
    parts = [f"{src}=s={w}x{h}:r={FPS}:d={d}[s{k}]" for k, (src, d) in enumerate(SCENES)]
    inputs = "".join(f"[s{k}]" for k in range(len(SCENES)))
    graph = ";".join(parts) + f";{inputs}concat=n={len(SCENES)}:v=1:a=0,format=yuv420p[v]"
    return _make(tmp_path_factory.mktemp("scenes") / "scenes.mp4", graph)


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 s of a moving test card at 25 fps, to cancel mid-run."""
    graph = f"testsrc2=s=320x240:r={FPS}:d=40,format=yuv420p[v]"
    return _make(tmp_path_factory.mktemp("long") / "long.mp4", graph)
