"""The frame-index sidecar: reused for the same file, never stale, never beside the video."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core import ffmpeg_probe, mp4index
from napari_video_extract.core import probe as probe_module
from napari_video_extract.core.frame_index import CACHE_DIR_ENV, ENTRY_SUFFIX, cache_dir
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
    # The probe imports the index readers when it reads a file: patched at their source.
    real_mp4, real_scan = mp4index.read_mp4_frame_table, ffmpeg_probe.list_packets

    def mp4(path, **kwargs):
        table = real_mp4(path, **kwargs)
        if table is not None:  # None: not an MP4, the packets are listed instead
            seen.append(path)
        return table

    def scan(path, timeout):
        seen.append(path)
        return real_scan(path, timeout)

    monkeypatch.setattr(mp4index, "read_mp4_frame_table", mp4)
    monkeypatch.setattr(ffmpeg_probe, "list_packets", scan)
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
    assert len(list(cache.glob("*" + ENTRY_SUFFIX))) == 1
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
    assert len(list(cache.glob("*" + ENTRY_SUFFIX))) == 2


def test_a_damaged_entry_is_ignored_and_replaced(tmp_path, cache, scans, cfr_video):
    good = probe(cfr_video)
    (entry,) = cache.glob("*" + ENTRY_SUFFIX)
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


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every time the probe opened the file with PyAV or ran ffmpeg on it."""
    seen: list[str] = []
    real_open, real_run = probe_module.open_container, ffmpeg_probe.run_ffmpeg

    def open_container(path, **kwargs):
        seen.append("pyav")
        return real_open(path, **kwargs)

    def run_ffmpeg(args, **kwargs):
        seen.append("ffmpeg")
        return real_run(args, **kwargs)

    monkeypatch.setattr(probe_module, "open_container", open_container)
    monkeypatch.setattr(ffmpeg_probe, "run_ffmpeg", run_ffmpeg)
    return seen


@pytest.mark.parametrize("kind", ["cfr_video", "rotated_video", "ts_video"])
def test_a_cached_probe_opens_no_decoder(request, cache, opened, kind):
    video = request.getfixturevalue(kind)
    first = probe(video)
    # ffmpeg times frame 0 only where its timestamps may differ from PyAV's (MPEG-TS).
    assert "pyav" in opened and ("ffmpeg" in opened) == (kind == "ts_video")
    opened.clear()
    second = probe(video)
    assert opened == []  # neither PyAV nor ffmpeg touched the file
    _same_table(first, second)
    assert second.as_dict() == first.as_dict()  # codec, size, rotation, start, fps...


def test_the_sidecar_holds_the_probes_facts(cache, rotated_video):
    from napari_video_extract.core.frame_index import load_probe_record

    info = probe(rotated_video)
    (entry,) = cache.glob("*" + ENTRY_SUFFIX)
    assert entry.read_bytes()[:8] == b"NVE-FIDX"
    record = load_probe_record(Path(rotated_video).resolve())
    assert (record.codec, record.pix_fmt, record.container) == (
        info.codec,
        info.pix_fmt,
        info.container,
    )
    assert len(record.table.ticks) == info.frame_count == 50
    assert record.table.keyframe.dtype == bool and record.table.keyframe[0]
    assert (record.stream_index, record.coded_size) == (0, (120, 160))  # as coded
    assert record.rotation == info.rotation in (90, 270)
    assert record.fps == pytest.approx(info.nominal_fps)
    assert (record.container_start, record.first_pts) == (info.container_start, info.first_pts)


@pytest.mark.parametrize(
    "damage",
    ["truncated", "one byte more", "a flipped bit", "a flipped bit in the header", "empty"],
)
def test_a_truncated_or_corrupt_entry_is_never_trusted(cache, opened, cfr_video, damage):
    good = probe(cfr_video)
    (entry,) = cache.glob("*" + ENTRY_SUFFIX)
    data = bytearray(entry.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "one byte more":
        data += b"\0"
    elif damage == "a flipped bit":
        data[len(data) // 2] ^= 0x10  # inside the frame table: only the CRC sees it
    elif damage == "a flipped bit in the header":
        data[20] ^= 0x01  # the frame count
    else:
        data = bytearray()
    entry.write_bytes(bytes(data))
    opened.clear()
    _same_table(good, probe(cfr_video))
    assert "pyav" in opened  # probed from the file again, not from the entry
    assert entry.read_bytes()[:8] == b"NVE-FIDX" and len(entry.read_bytes()) > len(data) // 2
    opened.clear()
    _same_table(good, probe(cfr_video))
    assert opened == []  # the rewritten entry is trusted again


def test_an_old_npz_entry_is_left_alone_and_the_file_probed_again(cache, opened, cfr_video):
    cache.mkdir(parents=True)
    old = cache / "0123abcd.npz"
    old.write_bytes(b"an entry of format 3")
    probe(cfr_video)
    assert "pyav" in opened
    assert old.read_bytes() == b"an entry of format 3"
    assert len(list(cache.glob("*" + ENTRY_SUFFIX))) == 1


def test_an_entry_of_another_format_version_is_ignored(cache, opened, cfr_video, monkeypatch):
    probe(cfr_video)
    from napari_video_extract.core import frame_index

    monkeypatch.setattr(frame_index, "_FORMAT_VERSION", frame_index._FORMAT_VERSION + 1)
    opened.clear()
    assert probe(cfr_video).frame_count == 100
    assert "pyav" in opened  # probed again from the file


def test_the_identity_names_the_device_as_well_as_the_inode(cfr_video):
    # An inode number is unique on one file system only: a file on another
    # device with the same inode, size and times must not match.
    from napari_video_extract.core.frame_index import file_identity

    st = os.stat(cfr_video)
    identity = file_identity(Path(cfr_video))
    assert identity[-2:] == [str(st.st_dev), str(st.st_ino)]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_in_place_of_the_entry_never_blocks_a_probe(cache, cfr_video):
    from napari_video_extract.core import frame_index

    path = Path(os.path.abspath(cfr_video))
    entry = frame_index._entry(frame_index.file_identity(path))
    cache.mkdir(parents=True)
    os.mkfifo(entry)  # opening it for reading would wait for a writer
    assert probe(cfr_video).frame_count == 100


def _entry_of(video) -> Path:
    from napari_video_extract.core import frame_index

    return frame_index._entry(frame_index.file_identity(Path(os.path.abspath(video))))


def _in_time(call, *, seconds: float = 30.0):
    """``call()``'s result, failing (not hanging) if it blocks."""
    import threading

    result = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    return thread, result


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_swapped_in_after_a_name_check_never_blocks_a_probe(cache, cfr_video, monkeypatch):
    # The entry's name is never checked and then opened: as if a FIFO replaced
    # a regular entry right after such a check, every name check says "file".
    entry = _entry_of(cfr_video)
    cache.mkdir(parents=True)
    os.mkfifo(entry)
    monkeypatch.setattr(Path, "is_file", lambda self: True)
    thread, result = _in_time(lambda: probe(cfr_video))
    if thread.is_alive():  # blocked opening the FIFO: a writer releases it
        os.close(os.open(entry, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail("the probe blocked on a FIFO in place of its cache entry")
    assert result[0].frame_count == 100


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_a_symbolic_link_in_place_of_the_entry_is_not_followed(cache, opened, cfr_video):
    probe(cfr_video)
    entry = _entry_of(cfr_video)
    elsewhere = cache / "elsewhere"
    entry.rename(elsewhere)  # a good entry, but reached through a link
    entry.symlink_to(elsewhere)
    opened.clear()
    assert probe(cfr_video).frame_count == 100
    assert "pyav" in opened  # probed from the file, the link not followed


def _rewrite_entry(entry: Path, **changes) -> None:
    """Rewrite ``entry`` with header fields changed and a valid checksum."""
    import struct
    import zlib

    from napari_video_extract.core import frame_index

    data = bytearray(entry.read_bytes())
    fields = list(frame_index._HEAD.unpack_from(data))
    names = ["magic", "version", "text", "n", "num", "den", "stream", "width", "height"]
    names += ["rotation", "fps", "start", "first_pts"]
    for name, value in changes.items():
        fields[names.index(name)] = value
    frame_index._HEAD.pack_into(data, 0, *fields)
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(data[:-4]))
    entry.write_bytes(bytes(data))


def test_a_whole_entry_of_format_version_4_is_ignored(cache, opened, cfr_video):
    # Version 4 entries of H.264-in-AVI files may hold a wrong first_pts.
    good = probe(cfr_video)
    entry = _entry_of(cfr_video)
    _rewrite_entry(entry, version=4)
    opened.clear()
    _same_table(good, probe(cfr_video))
    assert "pyav" in opened  # probed again, and the entry rewritten in this format
    opened.clear()
    probe(cfr_video)
    assert opened == []


@pytest.mark.parametrize(
    "changes",
    [
        {"width": 20_000, "height": 20_000},  # 400 megapixels, past MAX_PIXELS
        {"width": 1 << 40, "height": 1},
        {"rotation": -90},  # the probe's rotations are in [0, 360)
        {"rotation": 360},
        {"stream": -1},
    ],
)
def test_a_cached_record_past_the_probes_limits_is_refused(cache, opened, cfr_video, changes):
    good = probe(cfr_video)
    entry = _entry_of(cfr_video)
    _rewrite_entry(entry, **changes)  # checksum valid: only the limits can refuse it
    opened.clear()
    again = probe(cfr_video)
    assert "pyav" in opened  # probed from the file again
    assert again.as_dict() == good.as_dict()
    opened.clear()
    assert probe(cfr_video).as_dict() == good.as_dict()
    assert opened == []  # the rewritten entry holds the real facts
