"""Side-by-side extraction benchmark: our CLI against the tools people use today.

Builds (once, cached in ``benchmarks/_work/``) a 10-minute 1280x720 H.264
video by looping the real clips in ``../shared/media`` and a 1-minute cut of
it, then extracts the *same* JPEG stills at the *same* instants with:

``ours``
    ``napari-video-extract interval|credits`` run as a subprocess (its whole
    process tree, ffmpeg decoders included, counts for memory).
``opencv loop``
    The naive script: ``cv2.VideoCapture`` reads every frame, ``cv2.imwrite``
    writes every N-th (N from the header fps); for head+tail it reads on
    until the tail.
``ffmpeg fps``
    One ``ffmpeg -i V -vf fps=1/N:round=up:start_time=0`` run (``round=up``
    makes it take the frame on screen at 0, N, 2N... s; the default samples
    mid-interval). Head+tail: ``-t 10`` and ``-sseof -10`` runs.
``ffmpeg -ss``
    One ``ffmpeg -ss T -i V -frames:v 1`` process per still, sequentially.
``PyAV seek``
    The usual PyAV script: for each instant, ``container.seek`` to it (the
    keyframe before), decode forward to the first frame at or after it, save
    it with Pillow (quality 95).

Next to the times, the table gives the frames each method decoded against a
full decode: ours measured (``decode_frames(stats=)``, the same plan run once
more in process, untimed), the peers computed from the frame table (OpenCV
and ``fps`` decode every frame up to the last still, ``-ss`` and the PyAV
script decode from the keyframe before each still to it).

Our package is byte-compiled first, as an installed copy is (see
:func:`compile_package`). Every method is a subprocess; wall time is measured
around it and peak memory is the largest sum of RSS over its process tree
(sampled every 5 ms, and never less than the largest single process as
reported by ``wait4``). Each
measurement is repeated and the median kept. Our stills are checked against
the ``-ss`` stills (mean absolute pixel difference) and their counts compared.

Run: ``python benchmarks/bench_extract.py`` (full, ~10 min) or ``--quick``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MEDIA = REPO.parent / "shared" / "media"
WORK = HERE / "_work"
PAGE = os.sysconf("SC_PAGE_SIZE")

#: Clips looped into the long video (megamind_xvid_cuts.avi is excluded).
CLIPS = (
    "bbb_720p_vp8_30s.webm",
    "bbb_720p_h264_5s.mp4",
    "city_cc0_mpeg2.mpg",
    "vtest_surveillance_msmpeg4.avi",
)
FPS = 25
WIDTH, HEIGHT = 1280, 720
#: Mean absolute difference (0-255) above which two stills are different frames.
#: Same frame through two JPEG encoders differs by ~0.5-1.5; neighbours by more.
SAME_FRAME_MAD = 3.0


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_quiet(args: Sequence[str]) -> None:
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise RuntimeError(
            f"command failed: {' '.join(map(str, args[:6]))}...\n" + "\n".join(tail)
        )


# --------------------------------------------------------------------------- inputs


def build_videos(minutes: float) -> tuple[Path, Path]:
    """The long looped video and its 1-minute cut (cached)."""
    WORK.mkdir(parents=True, exist_ok=True)
    ff = ffmpeg_exe()
    unit = WORK / "unit_720p.mkv"
    if not unit.exists():
        # One pass through every clip, normalised to 1280x720 @ 25 fps, near-lossless.
        args = [ff, "-hide_banner", "-nostdin", "-y"]
        for clip in CLIPS:
            args += ["-i", str(MEDIA / clip)]
        chains = [
            f"[{i}:v:0]scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=decrease,"
            f"pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS},format=yuv420p[v{i}]"
            for i in range(len(CLIPS))
        ]
        concat = "".join(f"[v{i}]" for i in range(len(CLIPS)))
        graph = ";".join(chains) + f";{concat}concat=n={len(CLIPS)}:v=1:a=0[out]"
        tmp = unit.with_suffix(".tmp.mkv")
        args += ["-filter_complex", graph, "-map", "[out]", "-c:v", "libx264"]
        args += ["-preset", "ultrafast", "-crf", "12", str(tmp)]
        print(f"building {unit.name} ...", file=sys.stderr, flush=True)
        run_quiet(args)
        tmp.rename(unit)
    seconds = round(minutes * 60)
    long_video = WORK / f"looped_{seconds}s_720p_h264.mp4"
    if not long_video.exists():
        tmp = long_video.with_suffix(".tmp.mp4")
        print(f"building {long_video.name} (libx264 veryfast) ...", file=sys.stderr, flush=True)
        run_quiet(
            [ff, "-hide_banner", "-nostdin", "-y", "-stream_loop", "-1", "-i", str(unit),
             "-t", str(seconds), "-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast",
             "-pix_fmt", "yuv420p", "-r", str(FPS), "-movflags", "+faststart", str(tmp)]
        )  # fmt: skip
        tmp.rename(long_video)
    short_video = WORK / "looped_60s_720p_h264.mp4"
    if not short_video.exists():
        tmp = short_video.with_suffix(".tmp.mp4")
        print(f"building {short_video.name} ...", file=sys.stderr, flush=True)
        run_quiet(
            [ff, "-hide_banner", "-nostdin", "-y", "-i", str(long_video), "-t", "60",
             "-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
             "-movflags", "+faststart", str(tmp)]
        )  # fmt: skip
        tmp.rename(short_video)
    return long_video, short_video


def describe(video: Path):
    from napari_video_extract.core.probe import probe

    info = probe(video)
    kf_times = info.frame_times[info.keyframes]
    gaps = np.diff(kf_times) if len(kf_times) > 1 else np.array([0.0])
    text = (
        f"{video.name}: {info.duration:.1f} s, {info.frame_count} frames, "
        f"{info.width}x{info.height} {info.codec}, {len(info.keyframes)} keyframes "
        f"(spacing min {gaps.min():.2f} s, median {np.median(gaps):.2f} s, "
        f"max {gaps.max():.2f} s), {video.stat().st_size / 1e6:.0f} MB"
    )
    return info, text


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    every: float
    head: float | None = None  # head+tail case when set
    tail: float | None = None

    def times(self, duration: float) -> list[float]:
        """The instants (seconds from the first frame), as the issue defines them."""
        eps = 1e-6
        if self.head is None:
            n = int(np.ceil(duration / self.every - eps))
            return [k * self.every for k in range(n) if k * self.every < duration - eps]
        head = [k * self.every for k in range(int(np.ceil(self.head / self.every - eps)))]
        t0 = duration - self.tail
        tail = [t0 + k * self.every for k in range(int(np.ceil(self.tail / self.every - eps)))]
        return sorted({round(t, 6) for t in head + tail})


CASES = {
    "2s": Case("every 2 s", 2.0),
    "10s": Case("every 10 s", 10.0),
    "60s": Case("every 60 s", 60.0),
    "headtail": Case("head 10 s + tail 10 s", 1.0, head=10.0, tail=10.0),
}


# --------------------------------------------------------------------------- methods

PYAV_SCRIPT = textwrap.dedent(
    """
    import sys, av
    video, out = sys.argv[1], sys.argv[2]
    times = [float(t) for t in sys.argv[3].split(",")]
    with av.open(video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        for k, t in enumerate(times):
            container.seek(int((start + t) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time >= start + t - 1e-6:
                    frame.to_image().save(f"{out}/p_{k:06d}.jpg", quality=95)
                    break
    """
)

OPENCV_SCRIPT = textwrap.dedent(
    """
    import sys, cv2
    video, out, every = sys.argv[1], sys.argv[2], float(sys.argv[3])
    head = float(sys.argv[4]) if len(sys.argv) > 4 else None
    tail = float(sys.argv[5]) if len(sys.argv) > 5 else None
    cap = cv2.VideoCapture(video)
    fps = cap.get(cv2.CAP_PROP_FPS)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    step = int(round(every * fps))
    head_end = int(round(head * fps)) if head is not None else None
    tail_start = total - int(round(tail * fps)) if tail is not None else None
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if head is None:
            take = i % step == 0
        else:
            take = (i < head_end and i % step == 0) or (
                i >= tail_start and (i - tail_start) % step == 0)
        if take:
            cv2.imwrite(f"{out}/frame_{i:07d}.jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        i += 1
    """
)

Commands = list[list[str]]


def ours_commands(video: Path, out: Path, case: Case, cli: list[str]) -> Commands:
    common = ["--out", str(out), "--quiet", "--format", "jpg", "--quality", "95"]
    if case.head is None:
        return [[*cli, "interval", str(video), "--every", f"{case.every:g}", *common]]
    return [
        [*cli, "credits", str(video), "--head", f"{case.head:g}", "--tail", f"{case.tail:g}",
         "--every", f"{case.every:g}", *common]
    ]  # fmt: skip


def opencv_commands(video: Path, out: Path, case: Case) -> Commands:
    args = [sys.executable, "-c", OPENCV_SCRIPT, str(video), str(out), f"{case.every:g}"]
    if case.head is not None:
        args += [f"{case.head:g}", f"{case.tail:g}"]
    return [args]


def ffmpeg_fps_commands(video: Path, out: Path, case: Case) -> Commands:
    ff = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    vf = f"fps=1/{case.every:g}:round=up:start_time=0"
    enc = ["-q:v", "2", "-fps_mode", "passthrough"]
    if case.head is None:
        return [[*ff, "-i", str(video), "-map", "0:v:0", "-vf", vf, *enc, f"{out}/f_%06d.jpg"]]
    return [
        [*ff, "-i", str(video), "-t", f"{case.head:g}", "-map", "0:v:0", "-vf", vf, *enc,
         f"{out}/a_%06d.jpg"],
        [*ff, "-sseof", f"-{case.tail:g}", "-i", str(video), "-map", "0:v:0", "-vf", vf, *enc,
         f"{out}/b_%06d.jpg"],
    ]  # fmt: skip


def pyav_commands(video: Path, out: Path, times: list[float]) -> Commands:
    return [[sys.executable, "-c", PYAV_SCRIPT, str(video), str(out), ",".join(map(str, times))]]


def frames_decoded(info, method: str, times: list[float], case: Case) -> int:
    """Frames ``method`` decodes for these instants (ours: measured; peers: computed)."""
    indices = sorted({int(i) for i in np.searchsorted(info.frame_times, np.asarray(times) - 1e-6)})
    indices = [min(i, info.frame_count - 1) for i in indices]
    if method == "ours":
        from napari_video_extract.core.decode import DecodeStats, decode_frames

        stats = DecodeStats()
        for _ in decode_frames(info, indices, stats=stats):
            pass
        return stats.frames_decoded
    if method in ("ss", "pyav"):
        return sum(i - info.keyframe_before(i) + 1 for i in indices)
    if method == "fps" and case.head is not None:  # -t head, then -sseof from a keyframe
        tail = indices[len(indices) // 2 :]
        return (
            indices[len(indices) // 2 - 1] + 1 + info.frame_count - info.keyframe_before(tail[0])
        )
    return info.frame_count if method == "fps" else indices[-1] + 1


def ffmpeg_ss_commands(video: Path, out: Path, times: list[float], offset: float) -> Commands:
    ff = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    return [
        [*ff, "-ss", f"{t + offset:.6f}", "-i", str(video), "-map", "0:v:0", "-frames:v", "1",
         "-q:v", "2", f"{out}/s_{k:06d}.jpg"]
        for k, t in enumerate(times)
    ]  # fmt: skip


# --------------------------------------------------------------------------- measuring


def _tree_rss(root: int) -> int:
    """Sum of RSS (bytes) of ``root`` and all its descendants."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def run_measured(commands: Commands) -> tuple[float, int, float]:
    """Run commands one after another; wall seconds, peak tree RSS (bytes) and CPU seconds.

    CPU time (user + system of each process and the children it waited for)
    is the measure that holds on a loaded machine: wall time there depends on
    how many threads a method runs against the other load.
    """
    peak = 0
    cpu = 0.0
    t0 = time.perf_counter()
    for args in commands:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        done = threading.Event()
        sampled = [0]

        def sample(pid: int = proc.pid, done: threading.Event = done, box=sampled) -> None:
            while not done.is_set():
                box[0] = max(box[0], _tree_rss(pid))
                done.wait(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        err = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:4])}... exited {proc.returncode}: "
                + err.decode("utf-8", "replace").strip()[-500:]
            )
        peak = max(peak, sampled[0], usage.ru_maxrss * 1024)
        cpu += usage.ru_utime + usage.ru_stime
    return time.perf_counter() - t0, peak, cpu


def load_gray(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.int16)


def jpgs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.jpg"))


def compare(ours: list[Path], reference: list[Path]) -> tuple[bool, float]:
    """Counts equal and every pair the same frame: (ok, worst mean abs diff)."""
    if len(ours) != len(reference) or not ours:
        return False, float("nan")
    worst = 0.0
    for a, b in zip(ours, reference, strict=True):
        worst = max(worst, float(np.abs(load_gray(a) - load_gray(b)).mean()))
    return worst <= SAME_FRAME_MAD, worst


# --------------------------------------------------------------------------- main


@dataclass
class Row:
    case: str
    method: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    stills: int = 0
    check: str = ""
    decoded: int | None = None  # frames the method decoded
    full: int = 0  # frames of a full decode

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)

    @property
    def peak_mb(self) -> float:
        return max(self.peaks) / 2**20


def compile_package() -> None:
    """Byte-compile our package, as ``pip install`` does for every installed package.

    An editable install imports the source tree; with ``PYTHONDONTWRITEBYTECODE``
    set (as here), every run of our CLI would otherwise compile each module
    again (~0.1-0.2 s), a cost no installed copy has and the peers' installed
    packages (numpy, PyAV, OpenCV) do not pay either.
    """
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("napari_video_extract")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def our_cli() -> list[str]:
    """The installed CLI; a library call in a subprocess while it cannot import."""
    exe = Path(sys.executable).with_name("napari-video-extract")
    probe_run = subprocess.run([str(exe), "--help"], capture_output=True)
    if probe_run.returncode == 0:
        return [str(exe)]
    print(
        "note: napari-video-extract CLI does not import yet; running the same "
        "core.extract.extract_batch in a subprocess instead",
        file=sys.stderr,
    )
    return [sys.executable, str(Path(__file__).resolve()), "--_engine"]


def _engine_main(argv: list[str]) -> int:
    """Stand-in for the CLI (same extract_batch call) while the CLI cannot import."""
    from napari_video_extract.core.extract import HeadTail, Interval, extract_batch

    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.add_argument("video")
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--head", type=float, default=0.0)
    p.add_argument("--tail", type=float, default=0.0)
    p.add_argument("--out")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--format", default="jpg")
    p.add_argument("--quality", type=int, default=95)
    a = p.parse_args(argv)
    if a.command == "interval":
        spec = Interval(every=a.every)
    else:
        spec = HeadTail(head=a.head, tail=a.tail, every=a.every)
    batch = extract_batch([a.video], a.out, spec, fmt=a.format, quality=a.quality)
    for r in batch.failures:
        print(f"error: {r.video}: {r.error}", file=sys.stderr)
    return 1 if batch.failures else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_engine"]:
        return _engine_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2-minute video, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement")
    parser.add_argument(
        "--budget",
        type=float,
        default=40.0,
        help="stop repeating a measurement once its runs took this many seconds "
        "(slow peers run once; default %(default)s)",
    )
    parser.add_argument(
        "--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["ours", "opencv", "fps", "ss", "pyav"],
        default=["ours", "opencv", "fps", "ss", "pyav"],
    )
    parser.add_argument(
        "--no-counts", action="store_true", help="skip counting the frames ours decoded"
    )
    args = parser.parse_args(argv)
    minutes = 2.0 if args.quick else 10.0
    repeats = args.repeats or (1 if args.quick else 3)

    long_video, short_video = build_videos(minutes)
    info, text = describe(long_video)
    short_info, short_text = describe(short_video)
    print(text)
    print(short_text)
    offset = info.first_pts - info.container_start  # -ss is relative to the container start
    compile_package()
    cli = our_cli()
    out_root = WORK / "out"
    labels = {
        "ours": "ours (CLI)",
        "opencv": "OpenCV loop",
        "fps": "ffmpeg -vf fps",
        "ss": "ffmpeg -ss per still",
        "pyav": "PyAV seek-then-decode",
    }

    def plans(case: Case, video: Path, vinfo) -> dict[str, Callable[[Path], Commands]]:
        times = case.times(vinfo.duration)
        return {
            "ours": lambda o: ours_commands(video, o, case, cli),
            "opencv": lambda o: opencv_commands(video, o, case),
            "fps": lambda o: ffmpeg_fps_commands(video, o, case),
            "ss": lambda o: ffmpeg_ss_commands(video, o, times, offset),
            "pyav": lambda o: pyav_commands(video, o, times),
        }

    rows: dict[tuple[str, str], Row] = {}
    runs = [(key, CASES[key], long_video, info) for key in args.cases]
    if "headtail" in args.cases:
        runs.append(("headtail-1min", CASES["headtail"], short_video, short_info))
    t_start = time.perf_counter()
    for rep in range(repeats):
        for key, case, video, vinfo in runs:
            methods = ["ours"] if key == "headtail-1min" else args.methods
            for method in methods:
                done = rows.get((key, method))
                if done and sum(done.walls) >= args.budget:
                    continue
                out = out_root / key / method
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                commands = plans(case, video, vinfo)[method](out)
                wall, peak, cpu = run_measured(commands)
                name = case.name if key != "headtail-1min" else f"{case.name}, 1-min video"
                row = rows.setdefault((key, method), Row(name, labels[method]))
                row.walls.append(wall)
                row.cpus.append(cpu)
                row.peaks.append(peak)
                row.stills = len(jpgs(out))
                print(
                    f"  [{rep + 1}/{repeats}] {name:<32} {labels[method]:<22} "
                    f"{wall:7.2f} s {cpu:7.2f} s CPU {peak / 2**20:7.0f} MB  {row.stills} stills",
                    file=sys.stderr,
                    flush=True,
                )
    elapsed = time.perf_counter() - t_start
    for (key, method), row in rows.items():
        case, vinfo = next((c, i) for k, c, _v, i in runs if k == key)
        if method != "ours" or not args.no_counts:
            row.decoded = frames_decoded(vinfo, method, case.times(vinfo.duration), case)
        row.full = vinfo.frame_count

    # Correctness: same number of stills, and the same frames, as ffmpeg -ss.
    problems = []
    for key, case, _video, vinfo in runs:
        expected = len(case.times(vinfo.duration))
        ours = jpgs(out_root / key / "ours")
        methods = ["ours", "opencv", "fps", "ss", "pyav"] if key != "headtail-1min" else ["ours"]
        for method in methods:
            row = rows.get((key, method))
            if row is None:
                continue
            got = jpgs(out_root / key / method)
            if method == "ours":
                ref = jpgs(out_root / key / "ss") if (key, "ss") in rows else []
                if ref:
                    ok, mad = compare(got, ref)
                    row.check = f"{len(got)}/{expected} stills, vs -ss MAD {mad:.2f}"
                else:
                    ok = len(got) == expected
                    row.check = f"{len(got)}/{expected} stills"
            else:
                ok, mad = compare(ours, got)
                row.check = f"{len(got)}/{expected} stills, vs ours MAD {mad:.2f}"
            ok = ok and len(got) == expected
            if not ok:
                row.check += " MISMATCH"
                problems.append(f"{row.case} / {row.method}: {row.check}")

    # The table.
    print()
    print(
        "| case | method | wall time (s) | CPU time (s) | runs | time / ours | CPU / ours "
        "| peak RSS (MB) "
        "| frames decoded / full decode | stills check |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for key, _case, _video, _vinfo in runs:
        ours_row = rows.get((key, "ours"))
        for method in ["ours", "opencv", "fps", "ss", "pyav"]:
            row = rows.get((key, method))
            if row is None:
                continue
            ratio = row.wall / ours_row.wall if ours_row else float("nan")
            cpu_ratio = row.cpu / ours_row.cpu if ours_row and ours_row.cpu else float("nan")
            decoded = "-" if row.decoded is None else f"{row.decoded} / {row.full}"
            if row.decoded is not None:
                decoded += f" ({row.decoded / row.full:.0%})"
            print(
                f"| {row.case} | {row.method} | {row.wall:.2f} | {row.cpu:.2f} | {len(row.walls)} "
                f"| {ratio:.2f}x | {cpu_ratio:.2f}x | {row.peak_mb:.0f} | {decoded} | {row.check} |"
            )

    # Targets from the issue.
    print()
    print("| target | measured | goal | met |")
    print("|---|---|---|---|")

    def target(label: str, ratio: float, goal: str, met: bool, cpu: float | None = None) -> None:
        cpu_text = "" if cpu is None else f" (CPU {cpu:.2f}x)"
        print(f"| {label} | {ratio:.2f}x{cpu_text} | {goal} | {'yes' if met else 'NO'} |")

    def cpu_ratio(a: Row, b: Row) -> float:
        return a.cpu / b.cpu if b.cpu else float("nan")

    def row_of(key: str, method: str) -> Row | None:
        return rows.get((key, method))

    def best_cli(key: str) -> Row | None:
        peers = [r for r in (row_of(key, "fps"), row_of(key, "ss")) if r]
        return min(peers, key=lambda r: r.wall) if peers else None

    ours10, cv10, best10 = row_of("10s", "ours"), row_of("10s", "opencv"), best_cli("10s")
    if ours10 and cv10:
        r = cv10.wall / ours10.wall
        target(
            "every 10 s: OpenCV loop / ours (faster by)",
            r,
            ">= 5x",
            r >= 5,
            cpu_ratio(cv10, ours10),
        )
    if ours10 and best10:
        r = ours10.wall / best10.wall
        target(
            f"every 10 s: ours / best ffmpeg CLI ({best10.method})",
            *(r, "<= 0.5x", r <= 0.5, cpu_ratio(ours10, best10)),
        )
    ours2, fps2 = row_of("2s", "ours"), row_of("2s", "fps")
    if ours2 and fps2:
        r = ours2.wall / fps2.wall
        target("every 2 s: ours / ffmpeg -vf fps", r, "<= 0.6x", r <= 0.6, cpu_ratio(ours2, fps2))
    ours60, ss60 = row_of("60s", "ours"), row_of("60s", "ss")
    if ours60 and ss60:
        r = ours60.wall / ss60.wall
        target(
            "every 60 s: ours / ffmpeg -ss per still",
            *(r, "<= 0.7x", r <= 0.7, cpu_ratio(ours60, ss60)),
        )
    ours_ht, best_ht = row_of("headtail", "ours"), best_cli("headtail")
    if ours_ht and best_ht:
        r = ours_ht.wall / best_ht.wall
        target(
            f"head+tail: ours / best ffmpeg CLI ({best_ht.method})",
            *(r, "<= 0.9x", r <= 0.9, cpu_ratio(ours_ht, best_ht)),
        )
    for key in args.cases:
        ours_row, pyav_row = row_of(key, "ours"), row_of(key, "pyav")
        if ours_row and pyav_row:
            r = ours_row.wall / pyav_row.wall
            target(
                f"{CASES[key].name}: ours / PyAV seek-then-decode",
                *(r, "(peer)", r <= 1.0, cpu_ratio(ours_row, pyav_row)),
            )
    ht_long, ht_short = rows.get(("headtail", "ours")), rows.get(("headtail-1min", "ours"))
    if ht_long and ht_short:
        r = ht_long.wall / ht_short.wall
        target(f"head+tail: {minutes:g}-min / 1-min video", r, "<= 1.2x", r <= 1.2)
    our_peak = max((r.peak_mb for (k, m), r in rows.items() if m == "ours"), default=0)
    print(
        f"| ours: peak RSS, any case | {our_peak:.0f} MB | < 300 MB "
        f"| {'yes' if our_peak < 300 else 'NO'} |"
    )
    print()
    print(
        f"median wall time of up to {repeats} run(s) (fewer for runs over {args.budget:g} s); {os.cpu_count()} CPUs; "
        f"measuring took {elapsed:.0f} s; ours run as: {' '.join(Path(c).name for c in cli)}"
    )
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
