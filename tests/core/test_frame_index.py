"""The frame-index sidecar: reused for the same file, never stale, never beside the video."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core import probe as probe_module
from napari_video_extract.core.frame_index import CACHE_DIR_ENV, cache_dir
from napari_video_extract.core.probe import probe


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def scans(monkeypatch) -> list[Path]:
    """Every frame table really read from a file (MP4 index or packet listing)."""
    seen: list[Path] = []
    real_mp4, real_scan = probe_module.read_mp4_frame_table, probe_module._scan_packets

    def mp4(path, **kwargs):
        table = real_mp4(path, **kwargs)
        if table is not None:  # None: not an MP4, the packets are listed instead
            seen.append(path)
        return table

    def scan(path, timeout):
        seen.append(path)
        return real_scan(path, timeout)

    monkeypatch.setattr(probe_module, "read_mp4_frame_table", mp4)
    monkeypatch.setattr(probe_module, "_scan_packets", scan)
    return seen


def _same_table(a, b) -> None:
    np.testing.assert_array_equal(a.frame_times, b.frame_times)
    np.testing.assert_array_equal(a.keyframes, b.keyframes)
    assert a.duration == b.duration and a.first_pts == b.first_pts


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
def test_second_probe_reads_the_cache(tmp_path, cache, scans, suffix):
    folder = tmp_path / "videos"
    folder.mkdir()
    extra = ["-f", "mpegts"] if suffix == ".ts" else []
    video = synthetic.make_cfr(folder / f"clip{suffix}", frames=60, extra=extra)
    first = probe(video)
    assert len(scans) == 1
    second = probe(video)
    assert len(scans) == 1  # not scanned again
    _same_table(first, second)
    assert second.frame_count == 60
    assert len(list(cache.glob("*.npz"))) == 1
    # Nothing beside the video.
    assert sorted(p.name for p in folder.iterdir()) == [f"clip{suffix}"]


def test_a_changed_file_is_scanned_again(tmp_path, cache, scans):
    video = tmp_path / "clip.mp4"
    synthetic.make_cfr(video, frames=60)
    assert probe(video).frame_count == 60
    synthetic.make_cfr(tmp_path / "other.mp4", frames=40)
    os.replace(tmp_path / "other.mp4", video)  # same path, another file
    assert probe(video).frame_count == 40
    assert len(scans) == 2


def test_a_copy_elsewhere_has_its_own_entry(tmp_path, cache, scans, cfr_video):
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(cfr_video, copy)
    probe(cfr_video)
    probe(copy)
    assert len(scans) == 2
    assert len(list(cache.glob("*.npz"))) == 2


def test_a_damaged_entry_is_ignored_and_replaced(tmp_path, cache, scans, cfr_video):
    good = probe(cfr_video)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"not a numpy archive")
    _same_table(good, probe(cfr_video))
    assert len(scans) == 2
    _same_table(good, probe(cfr_video))  # the rewritten entry is good again
    assert len(scans) == 2


def test_an_unwritable_cache_never_fails_a_probe(tmp_path, monkeypatch, cfr_video):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker / "cache"))  # cannot be created
    assert probe(cfr_video).frame_count == 100


def test_cache_can_be_disabled(monkeypatch, scans, cfr_video, tmp_path):
    monkeypatch.setenv(CACHE_DIR_ENV, "")
    assert cache_dir() is None
    probe(cfr_video)
    probe(cfr_video)
    assert len(scans) == 2
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "c"))
    probe(cfr_video, cache=False)
    assert not (tmp_path / "c").exists()


def test_default_folder_is_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert cache_dir() == tmp_path / "xdg" / "napari-video-extract" / "frame-index"
