"""Fixtures for the hardening suite (helpers live in ``_media``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._media import MEDIA, make_video


@pytest.fixture(scope="session")
def media_dir() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"real clips folder {MEDIA} is absent")
    return MEDIA


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    """Session-wide folder of small synthetic videos."""
    d = tmp_path_factory.mktemp("clips")
    make_video(d / "good.mp4", seconds=2.0)
    make_video(d / "good.avi", seconds=2.0, codec="mpeg4", extra=("-q:v", "5"))
    make_video(d / "good.ts", seconds=2.0, codec="mpeg2video", extra=("-q:v", "5"))
    return d
