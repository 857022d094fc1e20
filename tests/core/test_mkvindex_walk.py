"""The Matroska walk's windows, maps and odd blocks give the packet listing's table.

:func:`~napari_video_extract.core.mkvindex.read_mkv_frame_table` reads the
file through a window (:mod:`~napari_video_extract.core.file_window`) and
copies the header bytes of the blocks it noted before the window moves:
clusters that straddle a window, clusters mapped instead of read, blocks
without payload and every real clip remuxed into Matroska must all give
exactly ffmpeg's packet listing (the ffmpeg executable's ``framecrc``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core import ffmpeg_probe, file_window, mkvindex
from napari_video_extract.core.file_window import FileWindow
from napari_video_extract.core.mkvindex import read_mkv_frame_table

_LAVFI = ["-f", "lavfi", "-i"]
_SRC = "testsrc=size=160x120:rate=25"
_SIMPLE_BLOCK = 0xA3
#: Real clips that ffmpeg copies into Matroska, and the codec it names.
_CLIPS = {
    "bbb_720p_h264_5s.mp4": "h264",
    "city_cc0_mpeg2.mpg": "mpeg2video",
    "megamind_xvid_cuts.avi": "mpeg4",
    "bbb_720p_vp8_30s.webm": "vp8",
}


def _listing(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ticks, keyframe, durations, _ = ffmpeg_probe.list_packets(path, 60)
    return ticks, keyframe, durations


def _assert_is_listing(table, path: Path) -> None:
    assert table is not None
    ticks, keyframe, durations = _listing(path)
    np.testing.assert_array_equal(table.ticks, ticks)
    np.testing.assert_array_equal(table.keyframe, keyframe)
    np.testing.assert_array_equal(table.durations, durations)


@pytest.fixture(scope="module")
def two_tracks(tmp_path_factory) -> Path:
    """6 s of H.264 (B-frames) after an Opus track: several clusters of both tracks."""
    path = tmp_path_factory.mktemp("walk") / "two_tracks.mkv"
    maps = ["-t", "6", "-map", "0:a", "-map", "1:v", "-c:a", "libopus"]
    x264 = ["-c:v", "libx264", "-bf", "2", "-g", "25", "-cluster_size_limit", "20000"]
    synthetic.run([*_LAVFI, "sine", *_LAVFI, _SRC, *maps, *x264, str(path)])
    return path


def test_clusters_across_small_windows(two_tracks, monkeypatch):
    """Windows smaller than a cluster: every cluster is read anew, and a window
    holding several clusters keeps them all: the table is the same."""
    whole = read_mkv_frame_table(two_tracks, stream=1)
    _assert_is_listing(whole, two_tracks)
    assert len(whole.ticks) == 150
    for step in (512, 4096, 30_000):
        monkeypatch.setattr(file_window.FileWindow.__init__, "__kwdefaults__", {"step": step})
        table = read_mkv_frame_table(two_tracks, stream=1)
        assert table is not None
        for field in ("ticks", "keyframe", "durations"):
            np.testing.assert_array_equal(getattr(table, field), getattr(whole, field))


def test_a_cluster_over_the_limit_is_not_walked(two_tracks, monkeypatch):
    """A cluster larger than the walk reads at once: no table from the walk
    (the probe lists the packets instead), never a memory map of it."""
    monkeypatch.setattr(mkvindex, "MAX_CLUSTER_BYTES", 1024)
    assert read_mkv_frame_table(two_tracks, stream=1) is None


def test_a_file_that_shrinks_during_the_walk_gives_no_table(two_tracks, tmp_path, monkeypatch):
    """Cut to half while its first cluster is walked: a short read, no table,
    and the process lives (a memory map of the cluster would have died of SIGBUS)."""
    path = tmp_path / "shrinks.mkv"
    path.write_bytes(two_tracks.read_bytes())
    walk = mkvindex._cluster_blocks
    cut: list[int] = []

    def walk_then_cut(*args, **kwargs):
        walk(*args, **kwargs)
        if not cut:
            cut.append(path.stat().st_size // 2)
            os.truncate(path, cut[0])

    monkeypatch.setattr(mkvindex, "_cluster_blocks", walk_then_cut)
    monkeypatch.setattr(file_window.FileWindow.__init__, "__kwdefaults__", {"step": 4096})
    assert read_mkv_frame_table(path, stream=1) is None
    assert cut and path.stat().st_size == cut[0]


def test_frequent_header_copies(two_tracks, monkeypatch):
    """Copying the noted header bytes out often (a copy every 7 blocks) changes nothing."""
    monkeypatch.setattr(mkvindex, "_CHECK_EVERY", 7)
    _assert_is_listing(read_mkv_frame_table(two_tracks, stream=1), two_tracks)


def _blocks(data: bytes):
    """(position, size) of the SimpleBlocks of track 1 written with a 2-byte size."""
    out = []
    pos = data.find(b"\x1f\x43\xb6\x75")
    while pos >= 0:
        at = pos + 4
        n = next(k for k in range(1, 9) if data[at] & (0x80 >> (k - 1)))
        cluster_end = at + n + (int.from_bytes(data[at : at + n], "big") & ((1 << (7 * n)) - 1))
        p = at + n
        while p < cluster_end:
            eid = data[p]
            first = data[p + 1]
            m = next(k for k in range(1, 9) if first & (0x80 >> (k - 1)))
            size = int.from_bytes(data[p + 1 : p + 1 + m], "big") & ((1 << (7 * m)) - 1)
            payload = p + 1 + m
            if eid == _SIMPLE_BLOCK and m == 2 and data[payload] == 0x81:
                out.append((p, size))
            p = payload + size
        pos = data.find(b"\x1f\x43\xb6\x75", cluster_end)
    return out


def test_a_block_without_payload_is_not_a_frame(tmp_path):
    """A SimpleBlock cut to its 4 header bytes (the rest made a Void element):
    the packet listing has no frame there, nor has the table."""
    path = tmp_path / "plain.mkv"
    synthetic.run([*_LAVFI, _SRC, "-t", "2", "-c:v", "libx264", "-g", "12", str(path)])
    data = bytearray(path.read_bytes())
    pos, size = _blocks(bytes(data))[5]
    assert size > 8
    # A3 40 04 and the 4 header bytes, then a Void element (EC, 2-byte size) over the rest.
    data[pos + 1 : pos + 3] = b"\x40\x04"
    data[pos + 7] = 0xEC
    data[pos + 8 : pos + 10] = (0x4000 | (size - 7)).to_bytes(2, "big")
    edited = tmp_path / "empty_block.mkv"
    edited.write_bytes(bytes(data))
    table = read_mkv_frame_table(edited, stream=0, codec="h264")
    _assert_is_listing(table, edited)
    assert len(table.ticks) == 49


def test_a_file_that_shrinks_gives_a_short_read(tmp_path):
    path = tmp_path / "shrinks.bin"
    path.write_bytes(bytes(10_000))
    with open(path, "rb") as fh:
        window = FileWindow(fh.fileno(), 10_000, step=4096)
        assert window.hold(0, 100) == 0 and len(window.data) == 4096
        assert window.hold(50, 4000) == 50  # already held
        assert window.hold(5000, 5100) == 0 and window.base == 5000
        os.truncate(path, 6000)
        with pytest.raises(OSError):
            window.hold(9000, 9500)
        with pytest.raises(ValueError):
            window.hold(9000, 10_001)


@pytest.mark.parametrize("clip", sorted(_CLIPS))
def test_real_clips_remuxed_into_matroska(media_dir, tmp_path, clip):
    """Each real clip copied into Matroska (no re-encoding): the table is the
    packet listing's, and the probe takes it from the block headers."""
    source = media_dir / clip
    if not source.is_file():
        pytest.skip(f"{clip} is not in {media_dir}")
    path = tmp_path / f"{Path(clip).stem}.mkv"
    # (genpts: AVI packets have no pts of their own, which Matroska needs.)
    copy = ["-map", "0:v:0", "-c", "copy", str(path)]
    synthetic.run(["-fflags", "+genpts", "-i", str(source), *copy])
    table = read_mkv_frame_table(path, stream=0, codec=_CLIPS[clip])
    _assert_is_listing(table, path)
    assert len(table.ticks) > 50
