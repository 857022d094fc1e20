"""A generated corpus of malformed and hostile media files.

Used by ``test_malformed_corpus.py`` and ``benchmarks/bench_load.py``. Every
file is made from a small synthetic clip (made here with the bundled ffmpeg)
or from the real clips in ``../shared/media`` (optional), so the corpus is
reproducible: byte flips use fixed seeds.

Each entry says what is acceptable for it:

* ``"error"``: the file holds nothing decodable; the tool must refuse it
  with one clear line naming it;
* ``"ok"``: a valid video under a misleading name; stills must be written;
* ``"either"``: damaged but maybe partly decodable; either the decodable
  stills are written, or one clear error line names the file.
"""

from __future__ import annotations

import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path

from ._media import ffmpeg, make_video

__all__ = ["REAL_CLIPS", "CorpusFile", "build_corpus"]

#: The small real clips used for byte flips and truncation.
REAL_CLIPS = ("bbb_720p_h264_5s.mp4", "megamind_xvid_cuts.avi", "tree_cinepak.avi")


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    kind: str  # what was done to it
    expect: str  # "error", "ok" or "either"


def _truncations(src: Path, out: Path, label: str, fractions) -> list[CorpusFile]:
    data = src.read_bytes()
    files = []
    for frac in fractions:
        n = max(1, int(len(data) * frac)) if frac < 1 else int(frac)
        dst = out / f"trunc_{label}_{n:08d}{src.suffix}"
        dst.write_bytes(data[:n])
        files.append(CorpusFile(dst, f"truncated {label} at {n} of {len(data)} bytes", "either"))
    return files


def _flips(src: Path, out: Path, label: str, seeds, count: int) -> list[CorpusFile]:
    data = src.read_bytes()
    files = []
    for seed in seeds:
        rng = random.Random(seed)
        buf = bytearray(data)
        for _ in range(count):
            pos = rng.randrange(len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
        dst = out / f"flip_{label}_s{seed}{src.suffix}"
        dst.write_bytes(bytes(buf))
        files.append(CorpusFile(dst, f"{count} bit flips in {label} (seed {seed})", "either"))
    return files


def _broken_middle(src: Path, out: Path, label: str) -> CorpusFile:
    data = bytearray(src.read_bytes())
    mid, span = len(data) // 2, max(len(data) // 8, 1024)
    rng = random.Random(7)
    data[mid : mid + span] = bytes(rng.randrange(256) for _ in range(span))
    dst = out / f"broken_middle_{label}{src.suffix}"
    dst.write_bytes(bytes(data))
    return CorpusFile(dst, f"{span} random bytes over the middle of {label}", "either")


def _patch_avi_size(src: bytes, width: int, height: int) -> bytes:
    """Set the frame size in the AVI main header and in the video stream format."""
    data = bytearray(src)
    avih = data.find(b"avih")
    struct.pack_into("<II", data, avih + 8 + 32, width, height)
    strf = data.find(b"strf", data.find(b"vids"))
    struct.pack_into("<ii", data, strf + 8 + 4, width, height)
    return bytes(data)


def build_corpus(out: Path, media: Path | None) -> list[CorpusFile]:
    """Write the corpus into ``out`` and describe it.

    Parameters
    ----------
    out : Path
        An empty folder.
    media : Path or None
        ``../shared/media``; without it only synthetic files are made.
    """
    src = out / "_sources"
    src.mkdir(parents=True)
    mp4 = make_video(src / "synth.mp4", seconds=2.0)  # moov at the end
    fast = make_video(src / "synthfs.mp4", seconds=2.0, extra=("-movflags", "+faststart"))
    avi = make_video(src / "synth.avi", seconds=2.0, codec="mpeg4", extra=("-q:v", "5"))
    ts = make_video(src / "synth.ts", seconds=2.0, codec="mpeg2video", extra=("-q:v", "5"))
    raw_avi = src / "raw.avi"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1"),
        *("-c:v", "rawvideo", "-pix_fmt", "bgr24", raw_avi),
    )
    audio = src / "audio.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", audio)
    png = src / "still.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", png)

    files: list[CorpusFile] = []
    # Truncated at many offsets: moov-at-end mp4 (nothing decodable once the
    # index is cut), faststart mp4 (the first frames may survive), AVI, TS.
    offsets = (1, 64, 0.1, 0.25, 0.5, 0.75, 0.99)
    files += _truncations(mp4, out, "synth", offsets)
    files += _truncations(fast, out, "synthfs", offsets)
    files += _truncations(avi, out, "synthavi", (0.05, 0.5, 0.95))
    files += _truncations(ts, out, "synthts", (0.05, 0.5, 0.95))

    # Misleading names for valid videos: content decides, not the extension.
    for source, name in ((avi, "avi_named.mp4"), (mp4, "mp4_named.mkv"), (ts, "ts_named.avi")):
        dst = out / name
        dst.write_bytes(source.read_bytes())
        files.append(CorpusFile(dst, f"valid {source.suffix} video named {name}", "ok"))

    # Nothing decodable in these.
    (out / "zero.mp4").write_bytes(b"")
    files.append(CorpusFile(out / "zero.mp4", "zero-byte file", "error"))
    (out / "text.mp4").write_text("this is not a video\n" * 50)
    files.append(CorpusFile(out / "text.mp4", "text file named .mp4", "error"))
    (out / "png_named.mp4").write_bytes(png.read_bytes())
    files.append(CorpusFile(out / "png_named.mp4", "PNG image named .mp4", "error"))
    (out / "audio_only.mp4").write_bytes(audio.read_bytes())
    files.append(CorpusFile(out / "audio_only.mp4", "audio-only mp4", "error"))
    (out / "random.mkv").write_bytes(random.Random(3).randbytes(200_000))
    files.append(CorpusFile(out / "random.mkv", "200 kB of random bytes named .mkv", "error"))
    moov = bytearray(mp4.read_bytes())
    pos = moov.rfind(b"moov")
    moov[pos : pos + 4] = b"zzzz"  # not "free": ffmpeg looks for a moov in those
    (out / "no_moov.mp4").write_bytes(bytes(moov))
    files.append(CorpusFile(out / "no_moov.mp4", "mp4 whose moov box is renamed", "error"))
    fifo = out / "fifo.mp4"
    os.mkfifo(fifo)  # opening it for reading would block forever
    files.append(CorpusFile(fifo, "named pipe called .mp4", "error"))

    # Huge declared dimensions.
    (out / "huge.y4m").write_bytes(
        b"YUV4MPEG2 W99999 H99999 F25:1 C420jpeg\nFRAME\n" + b"\x80" * 4096
    )
    files.append(CorpusFile(out / "huge.y4m", "y4m header W99999 H99999", "error"))
    (out / "big.y4m").write_bytes(
        b"YUV4MPEG2 W16000 H16000 F25:1 C420jpeg\nFRAME\n" + b"\x80" * 4096
    )
    files.append(CorpusFile(out / "big.y4m", "y4m header W16000 H16000, 4 kB of data", "error"))
    dst = out / "huge_raw.avi"
    dst.write_bytes(_patch_avi_size(raw_avi.read_bytes(), 60000, 60000))
    files.append(CorpusFile(dst, "raw AVI with a 60000x60000 header", "error"))
    dst = out / "big_raw.avi"
    dst.write_bytes(_patch_avi_size(raw_avi.read_bytes(), 16000, 16000))
    files.append(CorpusFile(dst, "raw AVI with a 16000x16000 header", "error"))

    # A broken middle.
    files.append(_broken_middle(ts, out, "synthts"))
    files.append(_broken_middle(avi, out, "synthavi"))

    if media is not None:
        for i, name in enumerate(REAL_CLIPS):
            clip = media / name
            label = Path(name).stem
            files += _flips(clip, out, label, seeds=(11 + i, 23 + i), count=40)
            files += _truncations(clip, out, label, (0.003, 0.4, 0.8))
            files.append(_broken_middle(clip, out, label))
        dst = out / "huge_cinepak.avi"
        dst.write_bytes(_patch_avi_size((media / "tree_cinepak.avi").read_bytes(), 60000, 60000))
        files.append(CorpusFile(dst, "cinepak AVI with a 60000x60000 header", "either"))
    return files
