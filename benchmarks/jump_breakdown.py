"""Where the time of the reader's random access goes (PyAV decoder).

For each index, a :class:`~napari_video_extract.core.video_reader.VideoReader`
(no cache, no prefetch) reads the frame after a jump, and the parts are
timed on the calling thread: the seek (``PyAVStream.restart``: the
container's seek and the decoder's flush, which waits for the frames still
in flight in its threads), the decoder calls (``decode(packet)``: the
packets fed, the frames that came out; the decoding itself runs on
FFmpeg's frame threads, so this is the wait for it), the RGB conversion,
and the rest (Python: choosing, demuxing, mapping timestamps). Wall and CPU
time (this process, all threads) per read are printed next to them.

Run alone: ``python benchmarks/jump_breakdown.py [video]`` (default: the
reader benchmark video); ``bench_reader.py`` prints the same line.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path


class _TimedCodec:
    """A codec context whose ``decode`` calls are timed and counted."""

    def __init__(self, codec, record: dict) -> None:
        object.__setattr__(self, "_codec", codec)
        object.__setattr__(self, "_record", record)

    def decode(self, packet):
        t0 = time.perf_counter()
        frames = self._codec.decode(packet)
        self._record["decode"] += time.perf_counter() - t0
        self._record["packets"] += 1
        self._record["frames"] += len(frames)
        return frames

    def __getattr__(self, name):
        return getattr(self._codec, name)

    def __setattr__(self, name, value):
        setattr(self._codec, name, value)


def jump_breakdown(path: Path, indices: list[int]) -> dict[str, float]:
    """Mean seconds (and counts) per jump, so that the parts add up to the
    wall time: ``wall``, ``cpu``, ``seek``, ``decode``, ``rgb``, ``rest``,
    ``packets``, ``frames``; and ``wall_median``."""
    from napari_video_extract.core.pyav_source import PyAVStream
    from napari_video_extract.core.rgb_frames import RGBConverter
    from napari_video_extract.core.video_reader import VideoReader

    rows: list[dict] = []
    record: dict = {}
    restart, to_rgb = PyAVStream.restart, RGBConverter.__call__

    def timed_restart(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return restart(self, *args, **kwargs)
        finally:
            record["seek"] += time.perf_counter() - t0
            if not isinstance(self._codec, _TimedCodec):
                self._codec = _TimedCodec(self._codec, record)

    def timed_rgb(self, frame):
        t0 = time.perf_counter()
        try:
            return to_rgb(self, frame)
        finally:
            record["rgb"] += time.perf_counter() - t0

    PyAVStream.restart, RGBConverter.__call__ = timed_restart, timed_rgb
    try:
        with VideoReader(path, backend="pyav", cache_bytes=0, prefetch=0) as video:
            for i in indices:
                record.update(seek=0.0, decode=0.0, rgb=0.0, packets=0, frames=0)
                t0, c0 = time.perf_counter(), time.process_time()
                video.read(i)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                parts = record["seek"] + record["decode"] + record["rgb"]
                rows.append({**record, "wall": wall, "cpu": cpu, "rest": wall - parts})
    finally:
        PyAVStream.restart, RGBConverter.__call__ = restart, to_rgb
    means = {key: statistics.mean(r[key] for r in rows) for key in rows[0]}
    return {**means, "wall_median": statistics.median(r["wall"] for r in rows)}


def describe(b: dict[str, float]) -> str:
    """One line for the benchmark's output."""
    ms = {k: 1000 * v for k, v in b.items() if k not in ("packets", "frames")}
    return (
        f"a jump (PyAV, means over the random reads; median wall {ms['wall_median']:.1f} ms): "
        f"{ms['wall']:.1f} ms wall, {ms['cpu']:.1f} ms CPU = "
        f"seek + flush {ms['seek']:.1f} ms + waiting for the decoder {ms['decode']:.1f} ms "
        f"({b['packets']:.0f} packets fed, {b['frames']:.0f} frames out), "
        f"+ RGB conversion {ms['rgb']:.1f} ms + the rest {ms['rest']:.1f} ms"
    )


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    video = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else here / "_work" / ("reader_bench_720p_h264_irregular_gop.mp4")
    )
    from napari_video_extract.core.probe import probe

    count = probe(video).frame_count
    rng = random.Random(11)
    print(describe(jump_breakdown(video, [rng.randrange(count) for _ in range(30)])))
