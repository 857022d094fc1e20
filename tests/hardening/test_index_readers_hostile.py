"""Hostile Matroska and AVI files: the index readers give None, fast and small.

:mod:`~napari_video_extract.core.mkvindex` and
:mod:`~napari_video_extract.core.aviindex` read frame tables without ffmpeg;
on anything unusual they must give None so that the probe lists the packets
instead. Each file here is a small ffmpeg-made file with one hostile edit
(the bugs an independent review found): the reader gives None with a small
peak of traced memory, and the probe then gives the packet listing's frames
or one clear error naming the file.
"""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core import mkvindex
from napari_video_extract.core.aviindex import read_avi_frame_table
from napari_video_extract.core.errors import VideoOpenError
from napari_video_extract.core.ffmpeg_probe import list_packets
from napari_video_extract.core.mkvindex import read_mkv_frame_table
from napari_video_extract.core.probe import probe

_LAVFI = ["-f", "lavfi", "-i"]
_SRC = "testsrc=size=160x120:rate=25"
#: Peak of traced Python memory a reader may use on these small files.
_PEAK_BYTES = 4 * 1024 * 1024

_CLUSTER = 0x1F43B675
_TIMESTAMP = 0xE7
_SIMPLE_BLOCK = 0xA3
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


# ------------------------------------------------------------------ helpers


def _vint(n: int) -> bytes:
    length = next(k for k in range(1, 9) if n < (1 << (7 * k)) - 1)
    return (n | (1 << (7 * length))).to_bytes(length, "big")


def _el(eid: int, payload: bytes) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big") + _vint(len(payload)) + payload


def _elements(data: bytes, start: int, end: int):
    """(id, element start, payload start, payload end) of the elements in [start, end)."""
    pos = start
    while pos < end:
        first = data[pos]
        n = next(k for k in range(1, 5) if first & (0x80 >> (k - 1)))
        eid = int.from_bytes(data[pos : pos + n], "big")
        at = pos + n
        first = data[at]
        m = next(k for k in range(1, 9) if first & (0x80 >> (k - 1)))
        size = int.from_bytes(data[at : at + m], "big") & ((1 << (7 * m)) - 1)
        payload = at + m
        yield eid, pos, payload, payload + size
        pos = payload + size


def _mkv_parts(path: Path) -> tuple[bytes, bytes, list[list[tuple[int, bytes]]]]:
    """(EBML header, Info + Tracks, clusters as lists of (id, payload)) of ``path``."""
    data = path.read_bytes()
    (_, _, _, ebml_end), (_, _, seg, seg_end) = list(_elements(data, 0, len(data)))[:2]
    head, clusters = b"", []
    for eid, start, payload, end in _elements(data, seg, seg_end):
        if eid in (0x1549A966, 0x1654AE6B):  # Info, Tracks
            head += data[start:end]
        elif eid == _CLUSTER:
            clusters.append([(c, data[p:e]) for c, _, p, e in _elements(data, payload, end)])
    return data[:ebml_end], head, clusters


def _write_mkv(path: Path, ebml: bytes, head: bytes, clusters) -> Path:
    """A Matroska file of unknown segment size with these clusters."""
    body = b"".join(_el(_CLUSTER, b"".join(_el(c, p) for c, p in cl)) for cl in clusters)
    path.write_bytes(ebml + b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + head + body)
    return path


def _peak(read, path: Path, **kwargs):
    """(result, peak traced bytes) of ``read(path, **kwargs)``."""
    tracemalloc.start()
    try:
        result = read(path, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _probe_falls_back(path: Path) -> None:
    """The probe gives the packet listing's frames, or one error naming the file."""
    try:
        info = probe(path, cache=False)
    except VideoOpenError as exc:
        assert exc.path == path and str(path) in str(exc)
        return
    ticks = list_packets(path, 60)[0]
    assert info.frame_count == len(np.unique(ticks))


def _hostile_mkv(path: Path) -> None:
    table, peak = _peak(read_mkv_frame_table, path, stream=0)
    assert table is None
    assert peak < _PEAK_BYTES
    _probe_falls_back(path)


# ------------------------------------------------------------------ Matroska


@pytest.fixture(scope="module")
def mkvs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile_mkv")
    paths = {
        "plain": folder / "plain.mkv",
        "two": folder / "two.mkv",
        "vfw": folder / "vfw.mkv",
    }
    synthetic.run([*_LAVFI, _SRC, "-t", "2", "-c:v", "libx264", "-g", "12", str(paths["plain"])])
    maps = ["-t", "2", "-map", "0:a", "-map", "1:v", "-c:a", "libopus", "-c:v", "libx264"]
    synthetic.run([*_LAVFI, "sine", *_LAVFI, _SRC, *maps, str(paths["two"])])
    # msmpeg4v2 has no Matroska CodecID: ffmpeg writes V_MS/VFW/FOURCC.
    synthetic.run([*_LAVFI, _SRC, "-t", "1", "-c:v", "msmpeg4v2", str(paths["vfw"])])
    return paths


def test_the_rebuilt_file_is_read(mkvs, tmp_path):
    """The rebuilding the hostile files start from keeps the frame table."""
    rebuilt = _write_mkv(tmp_path / "rebuilt.mkv", *_mkv_parts(mkvs["plain"]))
    table = read_mkv_frame_table(rebuilt, stream=0, codec="h264")
    assert table is not None and len(table.ticks) == 50
    np.testing.assert_array_equal(table.ticks, list_packets(rebuilt, 60)[0])


@pytest.mark.parametrize("value", [2**64 - 2, 2**62])
def test_a_huge_cluster_timestamp(mkvs, tmp_path, value):
    ebml, head, clusters = _mkv_parts(mkvs["plain"])
    clusters[0] = [(c, value.to_bytes(8, "big") if c == _TIMESTAMP else p) for c, p in clusters[0]]
    _hostile_mkv(_write_mkv(tmp_path / "ovf.mkv", ebml, head, clusters))


def test_a_huge_block_duration(mkvs, tmp_path):
    ebml, head, clusters = _mkv_parts(mkvs["plain"])
    at = next(i for i, (c, _) in enumerate(clusters[0]) if c == _SIMPLE_BLOCK)
    block = clusters[0][at][1]
    group = _el(0xA1, block) + _el(0x9B, (2**64 - 2).to_bytes(8, "big"))
    clusters[0][at] = (0xA0, group)  # a BlockGroup: Block + BlockDuration
    _hostile_mkv(_write_mkv(tmp_path / "duration.mkv", ebml, head, clusters))


def test_a_negative_tick(mkvs, tmp_path):
    ebml, head, clusters = _mkv_parts(mkvs["plain"])
    at = next(i for i, (c, _) in enumerate(clusters[0]) if c == _SIMPLE_BLOCK)
    block = clusters[0][at][1]
    clusters[0][at] = (_SIMPLE_BLOCK, block[:1] + b"\x80\x00" + block[3:])  # -32768
    table = read_mkv_frame_table(_write_mkv(tmp_path / "neg.mkv", ebml, head, clusters), stream=0)
    assert table is None


def test_two_million_empty_clusters(mkvs, tmp_path):
    """10 MB of empty clusters (5 bytes each): was 30 s and 300 MB."""
    ebml, head, _ = _mkv_parts(mkvs["plain"])
    path = tmp_path / "bomb.mkv"
    path.write_bytes(
        ebml + b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + head + _el(_CLUSTER, b"") * 2_000_000
    )
    table, peak = _peak(read_mkv_frame_table, path, stream=0)
    assert table is None and peak < _PEAK_BYTES


def test_many_tiny_clusters(mkvs, tmp_path):
    """One one-byte frame per cluster: more clusters than the file size allows."""
    ebml, head, _ = _mkv_parts(mkvs["plain"])
    tiny = [(_TIMESTAMP, b"\x00"), (_SIMPLE_BLOCK, b"\x81\x00\x00\x80\x00")]
    path = _write_mkv(tmp_path / "tiny.mkv", ebml, head, [tiny] * 100_000)
    table, peak = _peak(read_mkv_frame_table, path, stream=0)
    assert table is None and peak < _PEAK_BYTES
    # The same clusters, fewer than the cap, are read: the cap is the reason.
    few = _write_mkv(tmp_path / "few.mkv", ebml, head, [tiny] * 100)
    assert len(read_mkv_frame_table(few, stream=0).ticks) == 100


def test_the_frame_cap_holds_inside_a_cluster(mkvs, tmp_path, monkeypatch):
    """The cap is checked in the fast path, not only after a cluster."""
    ebml, head, _ = _mkv_parts(mkvs["plain"])
    blocks = [(_TIMESTAMP, b"\x00")] + [(_SIMPLE_BLOCK, b"\x81\x00\x00\x80\x00")] * 40_000
    path = _write_mkv(tmp_path / "dense.mkv", ebml, head, [blocks])
    assert len(read_mkv_frame_table(path, stream=0).ticks) == 40_000
    monkeypatch.setattr(mkvindex, "_MAX_FRAMES", 20_000)
    assert read_mkv_frame_table(path, stream=0) is None


def _edit_blocks(clusters, edit):
    """``clusters`` with every SimpleBlock payload replaced by ``edit(payload)``."""
    return [[(c, edit(p) if c == _SIMPLE_BLOCK else p) for c, p in cl] for cl in clusters]


def test_a_track_number_written_in_two_bytes_is_still_read(mkvs, tmp_path):
    """0x40 0x01 is track 1 too (a longer size than needed): the general path reads it."""
    ebml, head, clusters = _mkv_parts(mkvs["plain"])
    clusters = _edit_blocks(clusters, lambda p: b"\x40\x01" + p[1:])
    path = _write_mkv(tmp_path / "long_track.mkv", ebml, head, clusters)
    table = read_mkv_frame_table(path, stream=0, codec="h264")
    assert table is not None and len(table.ticks) == 50
    ticks, keyframe, durations, _ = list_packets(path, 60)
    np.testing.assert_array_equal(table.ticks, ticks)
    np.testing.assert_array_equal(table.keyframe, keyframe)
    np.testing.assert_array_equal(table.durations, durations)


def test_block_groups_give_their_own_duration_and_key_flag(mkvs, tmp_path):
    """Every other frame in a BlockGroup (Block, BlockDuration, ReferenceBlock on
    the non-keyframes): the table is the packet listing's."""
    ebml, head, clusters = _mkv_parts(mkvs["plain"])
    edited = []
    for cl in clusters:
        out = []
        for i, (c, p) in enumerate(cl):
            if c == _SIMPLE_BLOCK and i % 2:
                group = _el(0xA1, p[:3] + b"\x00" + p[4:]) + _el(0x9B, b"\x03")
                if not p[3] & 0x80:
                    group += _el(0xFB, b"\xd8")  # ReferenceBlock -40
                out.append((0xA0, group))
            else:
                out.append((c, p))
        edited.append(out)
    path = _write_mkv(tmp_path / "groups.mkv", ebml, head, edited)
    table = read_mkv_frame_table(path, stream=0, codec="h264")
    assert table is not None and len(table.ticks) == 50
    assert set(table.durations.tolist()) == {3, 40}  # BlockDuration / the default
    ticks, keyframe, durations, _ = list_packets(path, 60)
    np.testing.assert_array_equal(table.ticks, ticks)
    np.testing.assert_array_equal(table.keyframe, keyframe)
    np.testing.assert_array_equal(table.durations, durations)


def test_a_file_of_block_groups_only_costs_little_memory(mkvs, tmp_path):
    """BlockGroups everywhere (a file may hold millions): their fields are kept in
    compact columns (a dict of tuples took ~175 bytes a frame), and the table is exact."""
    ebml, head, _ = _mkv_parts(mkvs["plain"])
    per, n = 400, 10
    clusters = []
    for k in range(n):
        cluster = [(_TIMESTAMP, (k * per).to_bytes(4, "big"))]
        for i in range(per):
            # Block: track 1, time i, no flags, one byte; BlockDuration 1 + 2 * (i % 3).
            group = _el(0xA1, b"\x81" + i.to_bytes(2, "big") + b"\x00\x00")
            group += _el(0x9B, bytes([1 + 2 * (i % 3)]))
            if i % 2:
                group += _el(0xFB, b"\xff")  # ReferenceBlock -1: not a keyframe
            cluster.append((0xA0, group))
        clusters.append(cluster)
    path = _write_mkv(tmp_path / "groups_only.mkv", ebml, head, clusters)
    table, peak = _peak(read_mkv_frame_table, path, stream=0)
    frames = np.arange(n * per)
    np.testing.assert_array_equal(table.ticks, frames)
    np.testing.assert_array_equal(table.keyframe, frames % 2 == 0)
    np.testing.assert_array_equal(table.durations, 1 + 2 * (frames % per % 3))
    assert peak < 100 * len(frames)  # ~75 bytes a frame, the numpy table's


def test_a_block_too_short_for_its_header(mkvs, tmp_path):
    ebml, head, clusters = _mkv_parts(mkvs["plain"])
    at = next(i for i, (c, _) in enumerate(clusters[1]) if c == _SIMPLE_BLOCK)
    clusters[1][at] = (_SIMPLE_BLOCK, clusters[1][at][1][:3])  # track and time, no flags
    _hostile_mkv(_write_mkv(tmp_path / "short.mkv", ebml, head, clusters))


def test_an_exhausted_parse_budget_falls_back(mkvs, monkeypatch):
    monkeypatch.setattr(mkvindex, "PARSE_BUDGET_S", -1.0)
    assert read_mkv_frame_table(mkvs["plain"], stream=0) is None
    info = probe(mkvs["plain"], cache=False)
    assert info.frame_count == len(list_packets(mkvs["plain"], 60)[0]) == 50


def test_a_track_ffmpeg_skips(mkvs, tmp_path):
    """An audio track whose CodecID says video: ffmpeg skips it, so the
    video track (second TrackEntry) is ffmpeg's stream 0."""
    data = mkvs["two"].read_bytes()
    assert data.count(b"A_OPUS") == 1
    path = tmp_path / "skipped.mkv"
    path.write_bytes(data.replace(b"A_OPUS", b"V_OPUS"))
    assert read_mkv_frame_table(mkvs["two"], stream=1) is not None  # unedited: read
    for stream in (0, 1):
        assert read_mkv_frame_table(path, stream=stream) is None
    _probe_falls_back(path)
    assert probe(path, cache=False).frame_count == 50


def test_a_codec_id_that_is_not_the_probed_codec(mkvs):
    assert read_mkv_frame_table(mkvs["plain"], stream=0, codec="h264") is not None
    assert read_mkv_frame_table(mkvs["plain"], stream=0, codec="hevc") is None


def test_a_vfw_track_is_left_to_ffmpeg(mkvs):
    """ffmpeg times V_MS/VFW/FOURCC blocks as dts, not pts."""
    assert b"V_MS/VFW/FOURCC" in mkvs["vfw"].read_bytes()
    _hostile_mkv(mkvs["vfw"])
    assert probe(mkvs["vfw"], cache=False).frame_count == 25


# ------------------------------------------------------------------ AVI


@pytest.fixture(scope="module")
def avi(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile_avi") / "plain.avi"
    synthetic.run([*_LAVFI, _SRC, "-t", "2", "-c:v", "mpeg4", "-g", "12", str(path)])
    return path


def _riff(data: bytes) -> bytearray:
    """``data`` with its RIFF size made to fit its length."""
    out = bytearray(data)
    out[4:8] = struct.pack("<I", len(out) - 8)
    return out


def _idx1(data: bytes) -> tuple[int, np.ndarray]:
    """(payload position, writable entries) of the idx1 chunk."""
    pos = data.rindex(b"idx1") + 8
    (size,) = struct.unpack_from("<I", data, pos - 4)
    dtype = np.dtype([("id", "S4"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])
    return pos, np.frombuffer(data[pos : pos + size], dtype=dtype).copy()


def _with_idx1(data: bytes, entries: np.ndarray) -> bytes:
    pos, _ = _idx1(data)
    return data[:pos] + entries.tobytes() + data[pos + entries.nbytes :]


def _hostile_avi(path: Path, data: bytes) -> None:
    path.write_bytes(bytes(data))
    table, peak = _peak(read_avi_frame_table, path, stream=0)
    assert table is None
    assert peak < _PEAK_BYTES
    _probe_falls_back(path)


def test_a_hdrl_list_of_size_3(avi, tmp_path):
    """Read ``size - 4`` bytes as unsigned: the whole (here 8 MB larger) file."""
    data = bytearray(avi.read_bytes())
    hdrl = data.index(b"hdrl") - 8
    data[hdrl + 4 : hdrl + 8] = struct.pack("<I", 3)
    data += b"JUNK" + struct.pack("<I", 8 << 20) + bytes(8 << 20)
    _hostile_avi(tmp_path / "hdrl3.avi", _riff(data))


def test_many_top_level_chunks(avi, tmp_path):
    data = avi.read_bytes()
    movi = data.index(b"movi") - 8  # idx1 offsets count from movi: unchanged
    for count, readable in ((10, True), (100_000, False)):
        junk = (b"JUNK" + bytes(4)) * count
        path = tmp_path / f"junk{count}.avi"
        path.write_bytes(bytes(_riff(data[:movi] + junk + data[movi:])))
        table, peak = _peak(read_avi_frame_table, path, stream=0)
        assert (table is not None) == readable and peak < _PEAK_BYTES


@pytest.mark.parametrize(("start", "first_tick"), [(100, 100), (3600 * 25 + 1, 0)])
def test_dw_start_as_ffmpeg_reads_it(avi, tmp_path, start, first_tick):
    """ffmpeg reads a start over an hour as 0 ("crazy start time")."""
    data = bytearray(avi.read_bytes())
    strh = data.index(b"strh") + 8
    data[strh + 28 : strh + 32] = struct.pack("<I", start)  # dwStart
    path = tmp_path / "start.avi"
    path.write_bytes(bytes(data))
    table = read_avi_frame_table(path, stream=0)
    ticks = list_packets(path, 60)[0]
    assert table.ticks[0] == first_tick
    np.testing.assert_array_equal(table.ticks, ticks)


def test_an_index_at_odds_with_movi(avi, tmp_path):
    data = avi.read_bytes()
    _, entries = _idx1(data)
    assert read_avi_frame_table(avi, stream=0) is not None
    overlap = entries.copy()
    overlap["offset"][1] = overlap["offset"][0] + 8 + overlap["size"][0] - 2
    _hostile_avi(tmp_path / "overlap.avi", _with_idx1(data, overlap))
    outside = entries.copy()  # the last frame "in" the idx1 chunk itself
    outside["offset"][-1] = data.rindex(b"idx1") - data.index(b"movi") + 8
    _hostile_avi(tmp_path / "outside.avi", _with_idx1(data, outside))
    wrong = entries.copy()  # the first chunk's size shrunk: no overlap, wrong header
    wrong["size"][0] -= 2
    _hostile_avi(tmp_path / "wrong.avi", _with_idx1(data, wrong))
