"""Fixtures shared by the whole test suite.

* ``indexed_video_factory``: session-cached synthetic videos whose frame ``i``
  shows the index ``i`` in its pixels (see ``tests/synthetic.py``), so a test
  can check that "frame i is really frame i";
* ``media_dir``: the real clips in ``<repo>/../shared/media`` (skips if absent);
* every test under ``tests/napari/`` gets the ``napari`` marker, and is skipped
  when there is no display to open a viewer on (run them under ``xvfb-run``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
#: CI clones the repository next to ``shared/``; here the repo is /work/main.
MEDIA_DIR = REPO_ROOT.parent / "shared" / "media"
NAPARI_TESTS_DIR = TESTS_DIR / "napari"

if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import synthetic  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark viewer tests ``napari``; skip them (clearly) without a display."""
    no_display = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    skip = pytest.mark.skip(
        reason="no display for a napari viewer: run under xvfb-run "
        '-a -s "-screen 0 1280x1024x24" pytest'
    )
    for item in items:
        if NAPARI_TESTS_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.napari)
            if no_display:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _private_frame_index_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the probe's frame-index cache out of the user's cache folder
    (also for the CLI runs, which inherit the environment)."""
    from napari_video_extract.core.frame_index import CACHE_DIR_ENV

    old = os.environ.get(CACHE_DIR_ENV)
    os.environ[CACHE_DIR_ENV] = str(tmp_path_factory.mktemp("frame_index_cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_DIR_ENV, None)
    else:
        os.environ[CACHE_DIR_ENV] = old


@pytest.fixture(scope="session")
def indexed_video_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., Path]:
    """Make (once per session and parameters) a video whose frame i shows i.

    Returns a function ``make(*, frames=250, fps=25, gop=25, suffix=".mp4",
    extra=())`` giving the path of an H.264 video with two B-frames, a
    keyframe every ``gop`` frames, and ``synthetic.decode_index(frame) == i``.
    """
    folder = tmp_path_factory.mktemp("indexed_videos")
    made: dict[tuple, Path] = {}

    def make(
        *,
        frames: int = 250,
        fps: float = 25,
        gop: int = 25,
        suffix: str = ".mp4",
        extra: tuple[str, ...] = (),
    ) -> Path:
        key = (frames, fps, gop, suffix, extra)
        if key not in made:
            path = folder / f"indexed_{len(made)}_{frames}f_g{gop}{suffix}"
            made[key] = synthetic.make_cfr(path, frames=frames, fps=fps, gop=gop, extra=extra)
        return made[key]

    return make


@pytest.fixture(scope="session")
def indexed_video(indexed_video_factory: Callable[..., Path]) -> Path:
    """250 frames, 25 fps, H.264 with B-frames, keyframe every 25 frames."""
    return indexed_video_factory()


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The real clips of ``<repo>/../shared/media``; skips when absent."""
    if not (MEDIA_DIR / "bbb_720p_h264_5s.mp4").is_file():
        pytest.skip(f"real clips not available: {MEDIA_DIR} is absent")
    return MEDIA_DIR
