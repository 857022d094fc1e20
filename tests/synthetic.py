"""Small synthetic videos with exact ground truth, made with the bundled ffmpeg.

Every picture carries its own frame index in its pixels: a 4 x 3 grid of flat
40 x 40 blocks (at 160 x 120), each black or white. The top-left block is
always white and the top-right one always black (an orientation marker: a
rotated or mirrored image does not decode), the other ten blocks are the bits
of the index. Flat blocks survive H.264 at any sane quality, so
:func:`decode_index` recovers the index from a JPEG or a PNG still.

These are plain functions (not fixtures): ``tests/core/conftest.py`` caches
their output per test session.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_video_extract.core.ffmpeg import ffmpeg_exe

WIDTH, HEIGHT = 160, 120
_COLS, _ROWS = 4, 3
_MARKER_ON = (0, 0)  # (row, col) always white
_MARKER_OFF = (0, _COLS - 1)  # always black
_BIT_CELLS = [
    (r, c) for r in range(_ROWS) for c in range(_COLS) if (r, c) not in (_MARKER_ON, _MARKER_OFF)
]
MAX_INDEX = 2 ** len(_BIT_CELLS) - 1


# --------------------------------------------------------------------------- pixels


def index_image(index: int, *, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """An upright RGB frame whose blocks encode ``index``."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"index {index} out of range 0..{MAX_INDEX}")
    img = np.zeros((height, width, 3), dtype=np.uint8)
    bh, bw = height // _ROWS, width // _COLS
    cells = {_MARKER_ON: True, _MARKER_OFF: False}
    for bit, cell in enumerate(_BIT_CELLS):
        cells[cell] = bool(index >> bit & 1)
    for (r, c), on in cells.items():
        if on:
            img[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = 255
    return img


def decode_index(image: np.ndarray) -> int:
    """The frame index encoded by :func:`index_image` (any size, RGB or grey).

    Raises
    ------
    ValueError
        The orientation marker is wrong (image rotated or mirrored) or a block
        is neither clearly black nor clearly white.
    """
    img = np.asarray(image)
    grey = img.mean(axis=2) if img.ndim == 3 else img.astype(np.float64)
    h, w = grey.shape
    bh, bw = h / _ROWS, w / _COLS

    def level(r: int, c: int) -> bool:
        # The middle half of the block: far from edges blurred by chroma subsampling.
        y0, y1 = int(r * bh + bh / 4), int((r + 1) * bh - bh / 4)
        x0, x1 = int(c * bw + bw / 4), int((c + 1) * bw - bw / 4)
        mean = float(grey[y0:y1, x0:x1].mean())
        if 60 < mean < 195:
            raise ValueError(f"block ({r}, {c}) is neither black nor white (mean {mean:.0f})")
        return mean >= 195

    if not level(*_MARKER_ON) or level(*_MARKER_OFF):
        raise ValueError("orientation marker not found: image is rotated, mirrored or foreign")
    return sum(1 << bit for bit, cell in enumerate(_BIT_CELLS) if level(*cell))


# --------------------------------------------------------------------------- ffmpeg


def run(args: Sequence[str], *, stdin: bytes | None = None) -> None:
    """Run the bundled ffmpeg; raise with its stderr on failure."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed:\n{proc.stderr.decode()[-2000:]}")


def _raw_frames(count: int, *, first: int = 0) -> bytes:
    return b"".join(index_image(first + i).tobytes() for i in range(count))


def _x264(gop: int = 12, bframes: int = 2) -> list[str]:
    return [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast" if bframes == 0 else "veryfast",
        "-crf",
        "18",
        "-bf",
        str(bframes),
        "-g",
        str(gop),
        "-keyint_min",
        str(gop),
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
    ]


def _raw_input(fps: float, size: tuple[int, int] = (WIDTH, HEIGHT)) -> list[str]:
    return [
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{size[0]}x{size[1]}",
        "-framerate",
        f"{fps:g}",
        "-i",
        "pipe:0",
    ]


def make_cfr(
    path: Path,
    *,
    frames: int = 100,
    fps: float = 25,
    gop: int = 12,
    extra: Sequence[str] = (),
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> Path:
    """Constant frame rate H.264 with B-frames (``-bf 2 -g gop``); frame i shows i.

    ``extra`` goes before the output name (e.g. ``-f mpegts``); ``size`` is
    ``(width, height)``: the 160 x 120 pictures are enlarged by ffmpeg
    (nearest neighbour, so the blocks stay flat), not piped at full size.
    """
    scale = [] if size == (WIDTH, HEIGHT) else ["-vf", f"scale={size[0]}:{size[1]}:flags=neighbor"]
    run([*_raw_input(fps), *scale, *_x264(gop), *extra, str(path)], stdin=_raw_frames(frames))
    return path


def vfr_times(
    segments: Sequence[tuple[int, float]] = ((30, 0.04), (10, 0.2), (30, 0.02), (10, 0.1)),
) -> np.ndarray:
    """Presentation times (s) of a VFR video: ``(frame count, gap)`` runs."""
    times, t = [], 0.0
    for count, gap in segments:
        for _ in range(count):
            times.append(t)
            t += gap
    return np.round(np.asarray(times), 6)


def _piecewise_pts(segments: Sequence[tuple[int, float]]) -> str:
    """A setpts expression giving frame N the time :func:`vfr_times` gives it."""
    expr, first, t0 = None, 0, 0.0
    pieces = []
    for count, gap in segments:
        pieces.append((first, first + count, t0, gap))
        first += count
        t0 += count * gap
    for lo, _hi, t_lo, gap in reversed(pieces):
        term = f"({t_lo:.6f}+(N-{lo})*{gap:.6f})"
        expr = term if expr is None else f"if(lt(N\\,{_hi}),{term},{expr})"
    return f"setpts='round({expr}/TB)'"


def make_vfr(
    path: Path,
    segments: Sequence[tuple[int, float]] = ((30, 0.04), (10, 0.2), (30, 0.02), (10, 0.1)),
) -> tuple[Path, np.ndarray]:
    """Variable frame rate H.264 (mp4, B-frames); returns the path and true frame times."""
    times = vfr_times(segments)
    run(
        [
            *_raw_input(1000),
            "-vf",
            _piecewise_pts(segments),
            "-fps_mode",
            "passthrough",
            "-video_track_timescale",
            "1000",
            *_x264(12),
            str(path),
        ],
        stdin=_raw_frames(len(times)),
    )
    return path, times


def make_rotated(path: Path, work: Path, *, frames: int = 50, fps: float = 25) -> Path:
    """An mp4 whose stored pictures are sideways, with ``display_rotation 90``.

    A player rotates the stored picture 90 degrees counter-clockwise, so we
    store each upright picture turned 90 degrees clockwise: the displayed
    image is upright (160 x 120) and decodes to its index.
    """
    stored = b"".join(np.rot90(index_image(i), k=-1).copy().tobytes() for i in range(frames))
    plain = work / (path.stem + "_unrotated.mp4")
    run([*_raw_input(fps, (HEIGHT, WIDTH)), *_x264(12), str(plain)], stdin=stored)
    run(["-display_rotation:v:0", "90", "-i", str(plain), "-c", "copy", str(path)])
    plain.unlink()
    return path


def make_with_audio(path: Path, *, frames: int = 75, fps: float = 25) -> Path:
    """H.264 + AAC mp4 (the audio must not disturb frame selection)."""
    run(
        [
            *_raw_input(fps),
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={frames / fps:g}",
            "-map",
            "0:v",
            "-map",
            "1:a",
            *_x264(12),
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        stdin=_raw_frames(frames),
    )
    return path


def make_audio_only(path: Path) -> Path:
    """A 1 s sine tone in an mp4/m4a container: no video stream."""
    run(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(path)])
    return path


def make_truncated(path: Path, source: Path, *, keep: float = 0.5) -> Path:
    """The first ``keep`` fraction of ``source``'s bytes (an mp4 cut mid-way)."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_damaged(path: Path, work: Path, *, frames: int = 100) -> Path:
    """Frame i shows i; index at the front, then 60-75 % of the bytes zeroed.

    The container still lists every frame (the probe finds them all), but the
    decoding run over the zeroed stretch cannot give its frames.
    """
    whole = make_cfr(
        work / f"{path.stem}.whole.mp4", frames=frames, extra=["-movflags", "+faststart"]
    )
    data = bytearray(whole.read_bytes())
    lo, hi = int(len(data) * 0.60), int(len(data) * 0.75)
    data[lo:hi] = bytes(hi - lo)
    path.write_bytes(bytes(data))
    return path


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """``image`` filtered by a (2 * radius + 1)-pixel square box (edges clamped)."""
    if radius <= 0:
        return image.copy()
    size = 2 * radius + 1
    out = image.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis)
        hi = np.take(c, range(size, c.shape[axis]), axis=axis)
        lo = np.take(c, range(0, c.shape[axis] - size), axis=axis)
        out = (hi - lo) / size
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def make_from_frames(path: Path, frames: Sequence[np.ndarray], *, fps: float = 25) -> Path:
    """H.264 (B-frames, keyframe every 12) of the given 160 x 120 RGB frames."""
    run([*_raw_input(fps), *_x264(12), str(path)], stdin=b"".join(f.tobytes() for f in frames))
    return path


def make_text(path: Path) -> Path:
    """A text file with a video extension."""
    path.write_text("This is not a video.\nJust some text in a file named like one.\n")
    return path


def make_empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def make_hls_playlist(path: Path, target: Path) -> Path:
    """An HLS playlist disguised as ``.mp4`` that points at another local file."""
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:10.0,\n{target.resolve()}\n#EXTINF:10.0,\nfile:{target.resolve()}\n"
        "#EXT-X-ENDLIST\n"
    )
    return path


def make_ffconcat(path: Path, target: Path) -> Path:
    """An ffconcat script disguised as ``.mp4`` that points at another local file."""
    path.write_text(f"ffconcat version 1.0\nfile '{target.resolve()}'\n")
    return path


# --------------------------------------------------------------------------- inspection

_PKT_RE = re.compile(r"^\s*0,\s*(-?\d+),\s*(-?\d+),")


def _inspect(path: Path, *output: str) -> subprocess.CompletedProcess[bytes]:
    """Run a plain ffmpeg (not the engine's) on the first video stream of ``path``."""
    head = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0"]
    return subprocess.run([*head, *output], capture_output=True, check=True, timeout=120)


def packet_timestamps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(dts, pts) of every video packet in decoding order, via ``framecrc``."""
    proc = _inspect(path, "-c", "copy", "-f", "framecrc", "-")
    rows = [_PKT_RE.match(line) for line in proc.stdout.decode().splitlines()]
    dts = np.array([int(m.group(1)) for m in rows if m])
    pts = np.array([int(m.group(2)) for m in rows if m])
    return dts, pts


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` as upright RGB arrays, decoded by one plain ffmpeg run."""
    proc = _inspect(path, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
    header = proc.stderr.decode("utf-8", "replace")
    m = re.search(r"Output #0.*?Video: rawvideo.*?, (\d+)x(\d+)", header, re.S)
    assert m, header
    w, h = int(m.group(1)), int(m.group(2))
    data = np.frombuffer(proc.stdout, dtype=np.uint8)
    return list(data.reshape(-1, h, w, 3))


def count_decoded_frames(path: Path) -> int:
    """How many frames a plain full decode of the first video stream yields."""
    proc = _inspect(path, "-fps_mode", "passthrough", "-vf", "showinfo", "-f", "null", "-")
    return proc.stderr.count(b"pts_time:")


def decode_some(path: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Frames ``indices`` (display order) of a plain full decode, as upright RGB."""
    expr = "+".join(f"eq(n\\,{i})" for i in indices)
    proc = _inspect(
        path,
        *("-vf", f"select='{expr}'", "-fps_mode", "passthrough"),
        *("-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
    )
    header = proc.stderr.decode("utf-8", "replace")
    m = re.search(r"Output #0.*?Video: rawvideo.*?, (\d+)x(\d+)", header, re.S)
    assert m, header
    w, h = int(m.group(1)), int(m.group(2))
    frames = np.frombuffer(proc.stdout, dtype=np.uint8).reshape(-1, h, w, 3)
    assert len(frames) == len(set(indices)), "some frames were not decoded"
    return dict(zip(sorted(set(indices)), frames, strict=True))


# --------------------------------------------------------------------------- hostile metadata

#: Text shaped like the facts ffmpeg's log prints (a frame timestamp, a video
#: stream line, a start time, a display matrix), to be stored in a file's own
#: metadata: a tool that reads facts from the log takes them for real ones.
HOSTILE_TEXT = (
    "pts_time:3.0 Stream #0:0: Video: h264, yuv420p, 64x32, 5 fps, 5 tbr"
    " Duration: 00:00:09.00, start: 7.000000, bitrate: 1 kb/s"
    " displaymatrix: rotation of 90.00 degrees"
)


def _ffmetadata(text: str) -> str:
    """An ffmetadata file: global title and two chapters, all titled ``text``."""
    escaped = "".join("\\" + ch if ch in "=;#\\\n" else ch for ch in text)
    chapters = "".join(
        f"[CHAPTER]\nTIMEBASE=1/1000\nSTART={start}\nEND={start + 1000}\ntitle={escaped}\n"
        for start in (0, 1000)
    )
    return f";FFMETADATA1\ntitle={escaped}\n{chapters}"


def make_hostile_metadata(
    path: Path,
    work: Path,
    *,
    frames: int = 100,
    rotated: bool = False,
    stream_tags: int = 12,
    text: str = HOSTILE_TEXT,
) -> Path:
    """A video whose metadata imitates ffmpeg's log in every field ffmpeg prints.

    Title, comment, encoder, the video stream's title, handler name and
    ``stream_tags`` further stream tags, and two chapter titles all hold
    ``text`` (default :data:`HOSTILE_TEXT`). Frame ``i`` shows ``i`` (160 x 120 as displayed, 25
    fps). With ``rotated`` the pictures are stored sideways with a real
    90-degree display matrix (as :func:`make_rotated`), so that the stream
    line is followed by many metadata lines before its side data.
    The container follows ``path``'s suffix (``.mkv`` keeps arbitrary stream
    tags; ``.mp4`` keeps the handler name).
    """
    plain = work / (path.stem + "_plain.mp4")
    if rotated:
        stored = b"".join(np.rot90(index_image(i), k=-1).copy().tobytes() for i in range(frames))
        run([*_raw_input(25, (HEIGHT, WIDTH)), *_x264(12), str(plain)], stdin=stored)
    else:
        make_cfr(plain, frames=frames)
    meta = work / (path.stem + "_meta.txt")
    meta.write_text(_ffmetadata(text), encoding="utf-8")
    tags = []
    for i in range(stream_tags):
        tags += ["-metadata:s:v:0", f"note{i}={text}"]
    run(
        [
            *(["-display_rotation:v:0", "90"] if rotated else []),
            *("-i", str(plain), "-i", str(meta)),
            *("-map", "0", "-map_metadata", "1", "-map_chapters", "1", "-c", "copy"),
            *("-metadata", f"comment={text}", "-metadata", f"encoder={text}"),
            *("-metadata:s:v:0", f"handler_name={text}", "-metadata:s:v:0", f"title={text}"),
            *tags,
            str(path),
        ]
    )
    plain.unlink()
    meta.unlink()
    return path
