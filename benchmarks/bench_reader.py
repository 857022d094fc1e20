"""Side-by-side benchmark of the napari video reader against its peers.

Builds (once, cached in ``benchmarks/_work/``) a 1280x720 H.264 video of
about 2.5 minutes from the real clips in ``../shared/media``, with keyframes
forced at irregular times 1.3 to 8.3 s apart (and scene-cut keyframes off), and
measures in one run:

* **open**: time to get the lazy layer data (ours: ``get_reader(path)(path)``;
  napari-video: its ``VideoReaderNP``; napari's built-in reader: imageio
  ``imread``, which decodes the whole file, measured on the 30 s 720p webm
  only). Each open runs in a fresh subprocess, which also gives its peak RSS;
* **random access**: median time for ``data[i]`` over the same random
  indices, each reader opened fresh, our cache disabled. The readers read
  each index in turn (who goes first rotates), so on a shared machine they
  share its load and the ratio is fair; the median CPU time per read (this
  process, all threads) is printed too, and the frames each decoder really
  decoded per read against a full decode from the keyframe. napari-video's
  frames are also compared with ours (mean absolute difference): OpenCV's
  seek is not always frame-exact;
* **stepping**: frames per second reading ``data[i]`` for consecutive ``i``,
  and CPU milliseconds per frame;
* random access and stepping are measured for each of our decoders
  (``VideoReader(backend="pyav")`` and ``backend="ffmpeg"``); the napari layer
  uses ``backend="auto"`` (PyAV when installed);
* **stepping** is measured with the reader's prefetch on (the default) and
  off (``prefetch=0``), reading in a tight loop;
* **the machine's floor for stepping**: FFmpeg's own CLI (imageio-ffmpeg's
  binary, ``-threads 2``) decoding the same frames to ``-f null``, converted
  to rgb24 (as our frames are) and decoded only, alternated with our judged
  stepping (PyAV, prefetch 8) in 3 rounds; the JUDGED stepping line gives
  ours against that floor and against the 600 frames/s target;
* **2-hour videos**: the 10-minute 720p H.264 benchmark video
  (``_work/looped_600s_720p_h264.mp4``) looped to 2 hours and copied (no
  re-encoding) into MP4, MKV and AVI (built once, ``_work/reader/``). Each is
  opened in a fresh process with an empty frame-index cache ("first") and
  again with the sidecar it left ("sidecar"): seconds (wall and CPU, the
  first probe's ffmpeg child apart, the engine's imports apart) to the layer
  data with its shape, then to frame 0, and peak RSS; with the share of the
  file in the page cache just before the first open (a first MKV open of a
  file not cached reads all 675 MB from the disk) and the load average.
  ``--page-cache cold`` drops each file from the page cache before its first
  open (and again before timing a plain read of the whole file, the disk's
  floor: "raw cold read"), ``--page-cache warm`` reads it once before;
* **import**: ``python -X importtime`` cost of our reader module on top of
  numpy (what napari pays at start-up to register the plugin).

Run: ``python benchmarks/bench_reader.py`` (needs ``pip install napari-video``
for the peer columns; they are reported as missing otherwise). On a loaded
machine the wall-clock figures are noisy; the CPU seconds less so. The load
average at the start and the end is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from jump_breakdown import describe as describe_jump
from jump_breakdown import jump_breakdown
from page_cache import cached_pages

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MEDIA = REPO.parent / "shared" / "media"
WORK = HERE / "_work"
WEBM = MEDIA / "bbb_720p_vp8_30s.webm"
#: Clips joined (in this order) into the benchmark video.
CLIPS = (
    "bbb_720p_vp8_30s.webm",
    "bbb_720p_h264_5s.mp4",
    "city_cc0_mpeg2.mpg",
    "vtest_surveillance_msmpeg4.avi",
    "bbb_720p_vp8_30s.webm",
)
FPS = 25
#: The 10-minute 720p H.264 benchmark video (built by bench_extract.py / the lead).
TEN_MINUTES = WORK / "looped_600s_720p_h264.mp4"
#: Containers the 2-hour copy is made in.
LONG_FORMATS = ("mp4", "mkv", "avi")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def keyframe_times(duration: float, *, seed: int = 7) -> list[float]:
    """Keyframe times from 0, with gaps drawn uniformly in [1.3, 8.3] s."""
    rng = random.Random(seed)
    times, t = [0.0], 0.0
    while True:
        t += rng.uniform(1.3, 8.3)
        if t >= duration:
            return times
        times.append(round(t, 3))


def build_video() -> Path:
    """The 720p H.264 benchmark video with irregular keyframes (cached)."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "reader_bench_720p_h264_irregular_gop.mp4"
    if out.is_file() and out.stat().st_size > 1_000_000:
        return out
    inputs: list[str] = []
    chains = []
    for n, name in enumerate(CLIPS):
        inputs += ["-i", str(MEDIA / name)]
        chains.append(
            f"[{n}:v:0]scale=1280:720:force_original_aspect_ratio=decrease,"
            f"pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS},format=yuv420p[v{n}]"
        )
    graph = ";".join(chains) + ";" + "".join(f"[v{n}]" for n in range(len(CLIPS)))
    graph += f"concat=n={len(CLIPS)}:v=1:a=0[v]"
    forced = ",".join(f"{t:.3f}" for t in keyframe_times(400.0))
    tmp = out.with_suffix(".tmp.mp4")
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *inputs]
    args += ["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast"]
    args += ["-crf", "23", "-bf", "3", "-g", "100000", "-keyint_min", "1", "-sc_threshold", "0"]
    args += ["-force_key_frames", forced, "-movflags", "+faststart", str(tmp)]
    subprocess.run(args, check=True)
    os.replace(tmp, out)
    return out


def build_two_hour(fmt: str) -> Path | None:
    """The 10-minute video looped 12 times (2 hours), copied into ``fmt`` (cached)."""
    if not TEN_MINUTES.is_file():
        return None
    folder = WORK / "reader"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"two_hour_720p_h264.{fmt}"
    if out.is_file() and out.stat().st_size > 100_000_000:
        return out
    source = TEN_MINUTES if fmt == "mp4" else build_two_hour("mp4")
    tmp = out.with_name(f"tmp_{out.name}")
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if fmt == "mp4":
        args += ["-stream_loop", "11"]
    args += ["-i", str(source), "-map", "0:v:0", "-c", "copy"]
    if fmt == "avi":
        # One chunk per frame at the stream's real rate (else ffmpeg picks a
        # fine time base and writes an empty chunk per unused tick).
        args += ["-r", str(FPS)]
    elif fmt == "mp4":
        args += ["-movflags", "+faststart"]
    subprocess.run([*args, str(tmp)], check=True)
    os.replace(tmp, out)
    return out


def _child_env(cache: Path | None = None) -> dict[str, str]:
    """A user's environment: bytecode caches on (as in any install), and the
    frame-index cache in ``cache`` (default: the user's own)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if cache is not None:
        env["NAPARI_VIDEO_EXTRACT_CACHE_DIR"] = str(cache)
    return env


def warm_imports() -> None:
    """Import the engine once in a child, so the timed children find its bytecode."""
    code = "import napari_video_extract._reader, napari_video_extract.core.video_reader"
    subprocess.run([sys.executable, "-c", code], check=True, env=_child_env(WORK / "reader"))


def measure_long_open(path: Path, cache: Path) -> dict:
    """Open ``path`` in a fresh process with the frame-index cache in ``cache``."""
    code = textwrap.dedent(
        f"""
        import json, os, resource, time
        from napari_video_extract._reader import get_reader
        PATH = {str(path)!r}
        t0, c0 = time.perf_counter(), time.process_time()
        # What get_reader imports first (timed apart: the engine's imports).
        import napari_video_extract.core.probe, napari_video_extract.core.video_reader
        ti = time.perf_counter()
        [(data, kw, _)] = get_reader(PATH)(PATH)
        shape = data.shape
        t1, c1 = time.perf_counter(), time.process_time()
        # The ffmpeg run of the first probe (frame 0's timestamp), ended and waited for.
        child = os.times().children_user + os.times().children_system
        frame = data[0]
        t2 = time.perf_counter()
        # VmHWM: ru_maxrss keeps the high-water mark of the pre-exec fork of
        # this benchmark process, whatever the child itself uses.
        rss = kids = int(next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')).split()[1])
        print(json.dumps({{"seconds": t1 - t0, "cpu": c1 - c0, "imports": ti - t0,
                          "child_cpu": child, "frame0": t2 - t1,
                          "peak_rss_mb": max(rss, kids) / 1024, "frames": shape[0]}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_child_env(cache)
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------- child process

_OPENERS = {
    "ours": (
        "from napari_video_extract._reader import get_reader\n"
        "[(data, kw, _)] = get_reader(PATH)(PATH)\n"
        "frame = data[0]\n"
    ),
    "napari-video": (
        "from napari_video.napari_video import video_file_reader\n"
        "[(data, kw, _)] = video_file_reader(PATH)\n"
        "frame = data[0]\n"
    ),
    "napari builtin": (
        "from napari_builtins.io import napari_get_reader\n"
        "[(data, *_)] = napari_get_reader(PATH)(PATH)\n"
        "frame = np.asarray(data[0])\n"
    ),
}


def measure_open(kind: str, path: Path) -> dict:
    """Open ``path`` with one reader in a fresh process: seconds and peak RSS.

    The clock starts after the reader's modules are imported; the open
    includes reading frame 0 (what napari shows first). ``with_imports``
    starts it before them: our reader imports its decoder (PyAV) when it
    opens a file, napari-video imports OpenCV with its module, so only that
    figure compares like with like.
    """
    opener = _OPENERS[kind]
    imports = "\n".join(ln for ln in opener.splitlines() if ln.startswith("from "))
    body = "\n".join(ln for ln in opener.splitlines() if not ln.startswith("from "))
    code = textwrap.dedent(
        f"""
        import json, resource, time
        import numpy as np
        ti = time.perf_counter()
        {imports}
        PATH = {str(path)!r}
        rss0 = int(next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')).split()[1])
        t0 = time.perf_counter()
        """
    )
    code += body + textwrap.dedent(
        """
        t1 = time.perf_counter()
        seconds, with_imports = t1 - t0, t1 - ti
        # VmHWM: ru_maxrss keeps the high-water mark of the pre-exec fork of
        # this benchmark process, whatever the child itself uses.
        rss = kids = int(next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')).split()[1])
        print(json.dumps({"seconds": seconds, "with_imports": with_imports,
                          "peak_rss_mb": max(rss, kids) / 1024,
                          "rss_before_mb": rss0 / 1024, "shape": list(data.shape)}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_child_env()
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_reads_rss(path: Path, indices: list[int], start: int, steps: int) -> dict:
    """Peak RSS of a fresh process that opens ``path`` as napari does (default
    cache and prefetch), reads ``indices`` and steps ``steps`` frames."""
    code = textwrap.dedent(
        f"""
        import json, resource
        import numpy as np
        from napari_video_extract._reader import get_reader
        PATH = {str(path)!r}
        [(data, kw, _)] = get_reader(PATH)(PATH)
        for i in {indices!r}:
            np.asarray(data[i])
        for i in range({start}, {start + steps}):
            np.asarray(data[i])
        data.reader.close()
        # VmHWM: ru_maxrss keeps the high-water mark of the pre-exec fork of
        # this benchmark process, whatever the child itself uses.
        rss = kids = int(next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')).split()[1])
        print(json.dumps({{"peak_rss_mb": max(rss, kids) / 1024}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_child_env()
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------- in process


def open_ours(path: Path, backend: str, *, cache: bool = False, prefetch: int = 0):
    from napari_video_extract._reader import get_reader
    from napari_video_extract.core.video_reader import DEFAULT_CACHE_BYTES, VideoReader

    [(data, _, _)] = get_reader(path)(path)
    # Random access without the cache: every read decodes. Stepping with the
    # cache, so that the prefetch (which fills it) can be measured.
    uncached = VideoReader(
        path,
        info=data.reader.info,
        cache_bytes=DEFAULT_CACHE_BYTES if cache else 0,
        backend=backend,
        prefetch=prefetch,
    )
    data.reader.close()
    data._reader = uncached
    return data


def open_napari_video(path: Path):
    from napari_video.napari_video import video_file_reader

    [(data, _, _)] = video_file_reader(str(path))
    return data


def time_random_side_by_side(readers: dict[str, object], indices: list[int]) -> dict[str, dict]:
    """Every index read by each reader in turn, so that they share the machine's load.

    Who reads first rotates from one index to the next. Returns, per reader,
    ``median`` (wall seconds per ``data[i]``), ``cpu`` (median CPU seconds
    per read of this process, all its threads; a decoder in a child process
    is not in it) and ``frames`` (the frames read).
    """
    names = list(readers)
    out = {name: {"wall": [], "cpu": [], "frames": []} for name in names}
    for n, i in enumerate(indices):
        k = n % len(names)
        for name in names[k:] + names[:k]:
            t0, c0 = time.perf_counter(), time.process_time()
            frame = np.asarray(readers[name][i])
            out[name]["wall"].append(time.perf_counter() - t0)
            out[name]["cpu"].append(time.process_time() - c0)
            out[name]["frames"].append(frame.reshape(frame.shape[-3:]))
    return {
        name: {
            "median": statistics.median(r["wall"]),
            "cpu": statistics.median(r["cpu"]),
            "frames": r["frames"],
        }
        for name, r in out.items()
    }


def time_stepping(data, start: int, count: int) -> tuple[float, float]:
    """Frames per second reading ``data[start]``, ``data[start + 1]``..., and
    the CPU milliseconds of this process (all its threads) per frame."""
    np.asarray(data[start])  # position the reader first (a seek, not timed)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(start + 1, start + 1 + count):
        np.asarray(data[i])
    return count / (time.perf_counter() - t0), 1000 * (time.process_time() - c0) / count


def _ffmpeg_decode(video: Path, seconds: float, frames: int, rgb: bool) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys of the child) of FFmpeg's CLI decoding
    ``frames`` frames from ``seconds`` on, with two decoder threads, to nothing."""
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "2"]
    args += ["-ss", f"{seconds:.6f}", "-i", str(video), "-map", "0:v:0", "-an"]
    args += ["-frames:v", str(frames), *(["-pix_fmt", "rgb24"] if rgb else []), "-f", "null", "-"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(args, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def ffmpeg_stepping_floor(video: Path, seconds: float, count: int) -> dict[str, tuple]:
    """The machine's floor for stepping: FFmpeg's own CLI (imageio-ffmpeg's binary,
    ``-threads 2``) decoding the ``count`` frames after the one at ``seconds``.

    Each run seeks to that frame (``-ss`` before ``-i``: from the keyframe
    before, decoding up to it) and decodes ``count + 1`` frames; a run that
    decodes only the first one is subtracted, so the process start, the seek
    and the frames before are not counted, as the stepping benchmark does
    not count its first (seeking) read. Returns, for ``"rgb24"`` (converted
    to RGB like our frames) and ``"decode"`` (decoded only): frames per
    second and CPU milliseconds per frame.
    """
    out = {}
    for name, rgb in (("rgb24", True), ("decode", False)):
        wall, cpu = (
            a - b
            for a, b in zip(
                _ffmpeg_decode(video, seconds, count + 1, rgb),
                _ffmpeg_decode(video, seconds, 1, rgb),
                strict=True,
            )
        )
        out[name] = (count / max(wall, 1e-9), 1000 * cpu / count)
    return out


def load_average() -> str:
    """The 1-minute load average, for the record (the machine may be shared)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def import_cost_ms(module: str) -> float | None:
    """Import time of ``module`` on top of numpy (``-X importtime``), best of 3, ms.

    Sums the cumulative times of the top-level imports that follow numpy's.
    """
    best = None
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import numpy; import {module}"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            return None
        total, after_numpy = 0, False
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
            if not m:
                continue  # header, or a nested import (indented name)
            if m.group(2) == "numpy":
                after_numpy = True
            elif after_numpy:
                total += int(m.group(1))
        best = total / 1000 if best is None else min(best, total / 1000)
    return best


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}x"


def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def fmt_s(value: float | None) -> str:
    return fmt(value, ".3f")


def page_cache_share(path: Path) -> float | None:
    """Share of ``path``'s pages in the page cache now (Linux ``mincore``), else None."""
    pages = cached_pages(path)
    return None if pages is None or not len(pages) else float(pages.mean())


def set_page_cache(path: Path, state: str) -> None:
    """Put ``path`` in the page cache ("warm": read it once) or out of it ("cold":
    ``POSIX_FADV_DONTNEED`` drops this file's clean cached pages); "as-is": leave it."""
    if state == "warm":
        with open(path, "rb", buffering=0) as fh:
            while fh.read(8 << 20):
                pass
    elif state == "cold" and hasattr(os, "posix_fadvise"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def raw_read_seconds(path: Path) -> float:
    """Seconds to read ``path`` front to back in 4 MB reads (``dd bs=4M``), as it is cached."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.read(4 << 20):
            pass
    return time.perf_counter() - t0


def measure_long_opens(page_cache: str = "as-is") -> dict[str, dict]:
    """First and sidecar opens of the 2-hour MP4, MKV and AVI (built if missing).

    ``page_cache`` ("as-is", "cold" or "warm", see :func:`set_page_cache`) is
    applied to each file just before its first open; the share of the file
    then in the page cache and the load average are recorded with it. With
    "cold", the file is then dropped again and read whole (the disk's floor
    for a first open that reads all of it, as the MKV one does).
    """
    warm_imports()
    long_opens: dict[str, dict] = {}
    for fmt in LONG_FORMATS:
        path = build_two_hour(fmt)
        if path is None:
            continue
        set_page_cache(path, page_cache)
        cached, load = page_cache_share(path), os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as cache:
            first = measure_long_open(path, Path(cache))
            again = measure_long_open(path, Path(cache))
        first["page_cache"], first["load"] = cached, load
        if page_cache == "cold":
            set_page_cache(path, "cold")
            if (page_cache_share(path) or 0.0) == 0.0:
                first["raw_read"] = raw_read_seconds(path)
        long_opens[fmt] = {"first": first, "sidecar": again}
        print(f"2-hour {fmt} opened", flush=True)
    return long_opens


def print_long_opens(long_opens: dict[str, dict]) -> None:
    """The 2-hour opens as a table."""
    if not long_opens:
        return
    print()
    print("2-hour 720p H.264 (180,000 frames), each open in a fresh process:")
    print()
    print(
        "| container | open, first (s) | CPU (s) | ffmpeg child CPU (s) | in page cache before "
        "| load | raw cold read (s) | open, sidecar (s) | CPU (s) | imports, sidecar (s) "
        "| frame 0 after the sidecar open (s) | peak RSS (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fmt, r in long_opens.items():
        f, c = r["first"], r["sidecar"]
        if "error" in f or "error" in c:
            print(f"| {fmt} | {f.get('error') or c.get('error')} |")
            continue
        rss_mb = max(f["peak_rss_mb"], c["peak_rss_mb"])
        cached = "–" if f.get("page_cache") is None else f"{100 * f['page_cache']:.0f} %"
        print(
            f"| {fmt} | {f['seconds']:.3f} | {f['cpu']:.3f} | {f['child_cpu']:.3f} "
            f"| {cached} | {f.get('load', float('nan')):.1f} | {fmt_s(f.get('raw_read'))} "
            f"| {c['seconds']:.3f} | {c['cpu']:.3f} | {c['imports']:.3f} | {c['frame0']:.3f} "
            f"| {rss_mb:.0f} |"
        )
    print()
    print(
        "open = the engine's imports + the probe (first: PyAV header, the container's "
        "index, one ffmpeg run for frame 0's timestamp; sidecar: the record) + the reader; "
        "CPU = this process's (the ffmpeg child's apart); frame 0 = PyAV's import and "
        "its first decode; in page cache = share of the file's pages cached just before "
        "the first open (mincore): a first open of a file not cached reads all of it from "
        "the disk (MKV: every block header; --page-cache cold/warm sets it); raw cold read "
        "(--page-cache cold) = the whole file read in 4 MB reads after it was dropped from "
        "the page cache again, the disk's floor for an open that reads all of it."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=30, help="random reads (default 30)")
    parser.add_argument("--steps", type=int, default=300, help="frames stepped (default 300)")
    parser.add_argument(
        "--skip-long", action="store_true", help="skip the 2-hour MP4/MKV/AVI opens"
    )
    parser.add_argument(
        "--video",
        type=Path,
        help="measure this video instead of the built one (e.g. _work/looped_600s_720p_h264.mp4)",
    )
    parser.add_argument(
        "--only-long", action="store_true", help="only the 2-hour MP4/MKV/AVI opens"
    )
    parser.add_argument(
        "--page-cache",
        choices=("as-is", "cold", "warm"),
        default="as-is",
        help="each 2-hour file out of the page cache or in it before its first open",
    )
    args = parser.parse_args(argv)
    if args.only_long:
        long_opens = measure_long_opens(args.page_cache)
        print_long_opens(long_opens)
        ok = {
            fmt: (r["first"].get("seconds", 99) < 1.0, r["sidecar"].get("seconds", 99) < 0.1)
            for fmt, r in long_opens.items()
        }
        print()
        print(
            "targets: "
            + ", ".join(
                f"{fmt} first < 1 s: {'yes' if a else 'NO'}, sidecar < 0.1 s: {'yes' if b else 'NO'}"
                for fmt, (a, b) in ok.items()
            )
        )
        return 0
    if not (MEDIA / CLIPS[0]).is_file():
        print(f"the real clips are missing: {MEDIA}", file=sys.stderr)
        return 2
    has_peer = have("napari_video")
    video = args.video or build_video()

    from napari_video_extract.core.probe import probe

    info = probe(video)
    gaps = np.diff(info.frame_times[info.keyframes])
    print(
        f"video: {video.name}, {info.width}x{info.height}, {info.frame_count} frames, "
        f"{info.duration:.1f} s, {len(info.keyframes)} keyframes "
        f"{gaps.min():.2f}-{gaps.max():.2f} s apart; cpus: {os.cpu_count()}",
        flush=True,
    )

    load_at_start = load_average()
    results: dict[str, dict] = {"ours": {}, "napari-video": {}, "napari builtin": {}}
    warm_imports()
    results["ours"]["open"] = measure_open("ours", video)
    results["ours"]["open_webm"] = measure_open("ours", WEBM)
    if has_peer:
        results["napari-video"]["open"] = measure_open("napari-video", video)
        results["napari-video"]["open_webm"] = measure_open("napari-video", WEBM)
    results["napari builtin"]["open_webm"] = measure_open("napari builtin", WEBM)
    print("opens measured", flush=True)

    rng = random.Random(11)
    indices = [rng.randrange(info.frame_count) for _ in range(args.random)]
    start = rng.randrange(info.frame_count - args.steps - 1)
    from napari_video_extract.core.video_reader import pyav_available

    backends = ["pyav", "ffmpeg"] if pyav_available() else ["ffmpeg"]
    auto = "pyav" if "pyav" in backends else "ffmpeg"
    # Random access: all readers read each index in turn (same load for all).
    random_readers = {backend: open_ours(video, backend) for backend in backends}
    if has_peer:
        random_readers["napari-video"] = open_napari_video(video)
    timed = time_random_side_by_side(random_readers, indices)
    o = results["ours"]
    for backend in backends:
        o[f"random_{backend}"] = timed[backend]["median"]
        o[f"random_cpu_{backend}"] = timed[backend]["cpu"] if backend == "pyav" else None
        o[f"decoded_per_jump_{backend}"] = random_readers[
            backend
        ].reader.stats.decoder_frames / len(indices)
        random_readers[backend].reader.close()
    o["full_decode_per_jump"] = statistics.mean(i - info.keyframe_before(i) + 1 for i in indices)
    if "pyav" in backends:
        o["jump_breakdown"] = describe_jump(jump_breakdown(video, indices))
    for backend in backends:
        ours = open_ours(video, backend, cache=True)
        o[f"step_{backend}"], o[f"step_cpu_{backend}"] = time_stepping(ours, start, args.steps)
        ours.reader.close()
        if backend != auto:
            ours = open_ours(video, backend, cache=True, prefetch=8)
            step = time_stepping(ours, start, args.steps)
            o[f"step_prefetch_{backend}"], o[f"step_cpu_prefetch_{backend}"] = step
            ours.reader.close()
            continue
        # The judged stepping (the napari layer's reader: prefetch 8), alternated
        # with the machine's floor (FFmpeg's CLI on the same frames), 3 rounds.
        rounds: dict[str, list] = {"ours": [], "rgb24": [], "decode": []}
        for _ in range(3):
            ours = open_ours(video, backend, cache=True, prefetch=8)
            rounds["ours"].append(time_stepping(ours, start, args.steps))
            ours.reader.close()
            for name, value in ffmpeg_stepping_floor(
                video, float(info.frame_times[start]), args.steps
            ).items():
                rounds[name].append(value)
        medians = {
            name: tuple(statistics.median(v[k] for v in values) for k in (0, 1))
            for name, values in rounds.items()
        }
        o[f"step_prefetch_{backend}"], o[f"step_cpu_prefetch_{backend}"] = medians["ours"]
        o["floor_rgb24"], o["floor_decode"] = medians["rgb24"], medians["decode"]
    our_frames = timed["ffmpeg"]["frames"]
    if "pyav" in backends:
        o["backends_differ"] = sum(
            not np.array_equal(a, b)
            for a, b in zip(timed["pyav"]["frames"], our_frames, strict=True)
        )
    o["random"] = o[f"random_{auto}"]
    o["step"] = o[f"step_prefetch_{auto}"]
    if has_peer:
        p = results["napari-video"]
        p["random"], p["random_cpu"] = (
            timed["napari-video"]["median"],
            timed["napari-video"]["cpu"],
        )
        mads = [
            float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
            for a, b in zip(our_frames, timed["napari-video"]["frames"], strict=True)
        ]
        p["wrong_frames"] = sum(m > 3.0 for m in mads)
        peer = open_napari_video(video)
        p["step"], p["step_cpu"] = time_stepping(peer, start, args.steps)
    del timed, random_readers, our_frames
    reads_rss = measure_reads_rss(video, indices, start, args.steps)
    print("reads measured", flush=True)
    long_opens = {} if args.skip_long else measure_long_opens(args.page_cache)
    main_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["ours"]["import_ms"] = import_cost_ms("napari_video_extract._reader")
    if has_peer:
        results["napari-video"]["import_ms"] = import_cost_ms("napari_video.napari_video")

    o, p, b = results["ours"], results["napari-video"], results["napari builtin"]

    def sec(r: dict, key: str) -> float | None:
        return r.get(key, {}).get("seconds")

    def sec_all(r: dict, key: str) -> float | None:
        return r.get(key, {}).get("with_imports")

    def rss(r: dict, key: str) -> float | None:
        return r.get(key, {}).get("peak_rss_mb")

    rows = [
        ("open, 720p H.264 benchmark video (s)", sec(o, "open"), sec(p, "open"), None, "s"),
        (
            "open, 720p H.264 benchmark video, with the reader's imports (s)",
            sec_all(o, "open"),
            sec_all(p, "open"),
            None,
            "s",
        ),
        (
            "open, 30 s 720p webm (s)",
            sec(o, "open_webm"),
            sec(p, "open_webm"),
            sec(b, "open_webm"),
            "s",
        ),
        (
            "peak RSS after open, webm (MB)",
            rss(o, "open_webm"),
            rss(p, "open_webm"),
            rss(b, "open_webm"),
            "mb",
        ),
        *[
            (
                f"random frame access, median (ms), ours = {backend}",
                1000 * o[f"random_{backend}"],
                1000 * p["random"] if "random" in p else None,
                None,
                "ms",
            )
            for backend in backends
        ],
        *(
            [
                (
                    "random frame access, CPU per read, median (ms), ours = pyav",
                    1000 * o["random_cpu_pyav"],
                    1000 * p["random_cpu"] if "random_cpu" in p else None,
                    None,
                    "ms",
                )
            ]
            if "pyav" in backends
            else []
        ),
        *[
            (
                f"stepping forward (frames/s), ours = {backend}{label}",
                o[f"step{key}_{backend}"],
                p.get("step"),
                None,
                "fps",
            )
            for backend in backends
            for key, label in (("", ", no prefetch"), ("_prefetch", ", prefetch 8"))
        ],
        *[
            (
                f"stepping, CPU per frame (ms), ours = pyav{label}",
                o[f"step_cpu{key}_pyav"],
                p.get("step_cpu"),
                None,
                "ms2",
            )
            for key, label in (("", ", no prefetch"), ("_prefetch", ", prefetch 8"))
            if "pyav" in backends
        ],
        (
            "import of the reader module after numpy (ms)",
            o["import_ms"],
            p.get("import_ms"),
            None,
            "ms",
        ),
    ]
    print()
    print(
        f"Random access over {args.random} indices, stepping over {args.steps} frames; "
        f"lower is better except frames/s."
    )
    print()
    print(
        "| measure | ours | napari-video | napari builtin | ours / napari-video | ours / builtin |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, ov, pv, bv, unit in rows:
        spec = {"mb": ".0f", "fps": ".0f", "ms": ".1f", "ms2": ".2f"}.get(unit, ".3f")
        print(
            f"| {label} | {fmt(ov, spec)} | {fmt(pv, spec)} | {fmt(bv, spec)} "
            f"| {ratio(ov, pv)} | {ratio(ov, bv)} |"
        )
    print()
    print(
        "frames decoded per random read (the decoders' own counts): "
        + ", ".join(f"{backend} {o[f'decoded_per_jump_{backend}']:.1f}" for backend in backends)
        + f"; a full decode from the keyframe before: {o['full_decode_per_jump']:.1f}"
    )
    if "jump_breakdown" in o:
        print(o["jump_breakdown"] + " (benchmarks/jump_breakdown.py)")
    if "random" in p:
        print(
            f"JUDGED random access (issue 11, target <= 0.60x): median {1000 * o['random']:.1f} ms "
            f"({auto}) vs napari-video {1000 * p['random']:.1f} ms = {ratio(o['random'], p['random'])}"
            f" wall; CPU per read {ratio(o.get('random_cpu_pyav'), p['random_cpu'])}; "
            f"{o[f'decoded_per_jump_{auto}']:.1f} frames decoded per jump "
            f"(full decode {o['full_decode_per_jump']:.1f}); load {load_at_start} -> {load_average()}"
        )
    if "floor_rgb24" in o:
        (f_rgb, c_rgb), (f_dec, c_dec) = o["floor_rgb24"], o["floor_decode"]
        print(
            f"JUDGED stepping (issue 11, target >= 600 frames/s): {o['step']:.0f} frames/s "
            f"({auto}, prefetch 8; CPU {o[f'step_cpu_prefetch_{auto}']:.2f} ms/frame) = "
            f"{o['step'] / 600:.2f}x the target; the machine's floor, FFmpeg's CLI "
            f"(-threads 2) on the same {args.steps} frames: to rgb24 {f_rgb:.0f} frames/s "
            f"(CPU {c_rgb:.2f} ms/frame), ours = {o['step'] / f_rgb:.2f}x; decode only "
            f"{f_dec:.0f} frames/s (CPU {c_dec:.2f} ms/frame), ours = {o['step'] / f_dec:.2f}x "
            f"(medians of 3 rounds, ours and FFmpeg alternated); load {load_average()}"
        )
    print(
        f"load average (1 min, {os.cpu_count()} cpus): {load_at_start} at the start, "
        f"{load_average()} at the end"
    )
    if "backends_differ" in o:
        print()
        print(
            f"our two decoders returned different pixels for {o['backends_differ']} of "
            f"{args.random} random indices."
        )
    if "wrong_frames" in p:
        print()
        print(
            f"napari-video returned a different frame than ours (sequential-exact) for "
            f"{p['wrong_frames']} of {args.random} random indices."
        )
    print_long_opens(long_opens)
    print()
    print(
        f"peak RSS of a process reading as napari does ({args.random} random reads, then "
        f"{args.steps} steps, default cache and prefetch): "
        f"{reads_rss.get('peak_rss_mb', float('nan')):.0f} MB; of this benchmark process "
        f"(both readers, napari-video, several caches): {main_rss:.0f} MB"
    )
    print()
    print(f"targets for backend='auto' ({auto}):")
    peer_random = p.get("random")
    long_ok = [r for r in long_opens.values() if "error" not in r["first"]]
    targets = [
        ("open < 1 s", (sec(o, "open") or 99) < 1.0),
        (
            "random median <= 0.6x napari-video",
            peer_random is None or o["random"] <= 0.6 * peer_random,
        ),
        ("stepping >= 600 frames/s", o["step"] >= 600),
        *[
            (f"2-hour {fmt} first open < 1 s", r["first"].get("seconds", 99) < 1.0)
            for fmt, r in long_opens.items()
        ],
        *[
            (f"2-hour {fmt} sidecar open < 0.1 s", r["sidecar"].get("seconds", 99) < 0.1)
            for fmt, r in long_opens.items()
        ],
        (
            "peak RSS < 300 MB",
            reads_rss.get("peak_rss_mb", 999) < 300
            and all(
                max(r["first"]["peak_rss_mb"], r["sidecar"]["peak_rss_mb"]) < 300 for r in long_ok
            ),
        ),
        ("import < 100 ms", (o["import_ms"] or 999) < 100),
    ]
    print()
    print("targets: " + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
