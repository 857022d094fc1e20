"""CLI sub-commands ``interval``, ``credits``, ``info`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

from napari_video_extract.cli import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    progress_bar,
    report_error,
    report_warning,
    whole_number_arg,
)

__all__ = ["add_parsers"]


def _time_arg(text: str) -> float:
    from napari_video_extract.core.sampling import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_time_arg(text: str) -> float:
    value = _time_arg(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text!r}")
    return value


_jobs_arg = whole_number_arg(1)


def _quality_arg(text: str) -> int:
    value = _jobs_arg(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files and/or folders of videos (extensions matched case-insensitively)",
    )
    p.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("extracted_images"),
        metavar="DIR",
        help="output root; each video gets DIR/<video name without extension> "
        "(default: %(default)s)",
    )
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["jpg", "png", "webp"],
        default="jpg",
        help="image format; png is lossless (default: %(default)s)",
    )
    p.add_argument(
        "--quality",
        type=_quality_arg,
        default=95,
        metavar="Q",
        help="JPEG/WebP quality 1-100 (default: %(default)s)",
    )
    p.add_argument(
        "--name-template",
        default=None,
        metavar="TEMPLATE",
        help="image file name without extension; fields {stem} {timestamp} (HH-MM-SS.mmm) "
        "{time} {time_ms} {frame} {index} (default: '{stem}_{timestamp}_f{frame:06d}')",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="redo stills already recorded in frames.csv (default: resume, skip them); "
        "files not written by this tool are never overwritten",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=_jobs_arg,
        default=1,
        metavar="N",
        help="videos processed in parallel (default: %(default)s; each video already "
        "uses several decoder processes)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on a running Dask distributed cluster (e.g. tcp://host:8786); "
        "needs the [distributed] extra",
    )
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar or summary (errors still shown)",
    )
    p.add_argument(
        "--pick",
        choices=["exact", "sharpest"],
        default="exact",
        help="exact: the frame on screen at each instant (default); sharpest: the sharpest "
        "frame (variance of the Laplacian) on screen within +-WINDOW/2 of it, never crossing "
        "into the next instant's window; frames.csv records the frame taken and its sharpness",
    )
    p.add_argument(
        "--window",
        type=_positive_time_arg,
        default=None,
        metavar="T",
        help="seconds searched around each instant by --pick sharpest (default: 0.5)",
    )
    p.add_argument(
        "--skip-blank",
        action="store_true",
        help="write no still for a blank frame (every colour channel's standard deviation "
        "below 4 of 255: black, white, one flat colour); recorded in frames.csv as skipped, "
        "so a re-run does not retry it",
    )
    p.add_argument(
        "--contact-sheet",
        action="store_true",
        help="then write a contact sheet per output folder (see the sheet command; "
        "shaped by --sheet-columns, --sheet-width, --sheet-format, --sheet-max-stills)",
    )
    from napari_video_extract.cli.sheet import add_sheet_options

    add_sheet_options(p, prefix="sheet-")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``interval``, ``credits``, ``info`` and ``demo`` to ``sub``."""
    p = sub.add_parser(
        "interval",
        help="one still every N seconds",
        description="Write one still every N seconds of each video. The still for time t is "
        "the frame on screen at t (the last frame whose presentation time is <= t); times are "
        "relative to the first frame. Times accept seconds (12.5) or HH:MM:SS.mmm.",
    )
    _add_common(p)
    p.add_argument(
        "--every",
        type=_positive_time_arg,
        required=True,
        metavar="T",
        help="seconds between stills",
    )
    p.add_argument(
        "--start", type=_time_arg, default=0.0, metavar="T", help="first instant (default 0)"
    )
    p.add_argument(
        "--end",
        type=_time_arg,
        default=None,
        metavar="T",
        help="stop before this instant (default: end)",
    )
    p.add_argument(
        "--dedup",
        action="store_true",
        help="then move near-duplicate stills of each video to its duplicates/ folder "
        "(default dedup settings; see the dedup command)",
    )
    p.set_defaults(func=_run_interval)

    p = sub.add_parser(
        "credits",
        help="stills from the first and/or last seconds only (openings, end credits)",
        description="Write stills every --every seconds in the first --head and the last --tail "
        "seconds of each video, without decoding the middle. Overlapping windows give their "
        "union; no frame is written twice.",
    )
    _add_common(p)
    p.add_argument(
        "--head", type=_time_arg, default=0.0, metavar="T", help="seconds from the start"
    )
    p.add_argument(
        "--tail", type=_time_arg, default=0.0, metavar="T", help="seconds before the end"
    )
    p.add_argument(
        "--every",
        type=_positive_time_arg,
        default=1.0,
        metavar="T",
        help="seconds between stills (default: %(default)s)",
    )
    p.set_defaults(func=_run_credits)

    p = sub.add_parser(
        "info",
        help="probe videos: duration, frame rate, real frame count, size, codec",
        description="Probe videos without decoding them. The frame count is counted from the "
        "stream's packets, never trusted from the header.",
    )
    p.add_argument("inputs", nargs="+", metavar="VIDEO")
    p.add_argument("--json", action="store_true", help="print one JSON object per video")
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    p.set_defaults(func=_run_info)

    p = sub.add_parser(
        "demo",
        help="run the main job on the bundled sample video and say where the results are",
    )
    p.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("extracted_images"),
        metavar="DIR",
        help="output root (default: %(default)s)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_run_demo)


# --------------------------------------------------------------------------- runners


def _run_interval(args: argparse.Namespace) -> int:
    from napari_video_extract.core.extract import Interval

    return _run_extraction(args, _spec(Interval, every=args.every, start=args.start, end=args.end))


def _run_credits(args: argparse.Namespace) -> int:
    from napari_video_extract.core.extract import HeadTail

    return _run_extraction(args, _spec(HeadTail, head=args.head, tail=args.tail, every=args.every))


#: What the CLI calls the engine's settings (core.errors.SettingError names them neutrally).
SETTING_FLAGS = {
    "every": "--every",
    "start": "--start",
    "end": "--end",
    "head": "--head",
    "tail": "--tail",
    "quality": "--quality",
    "name_template": "--name-template",
    "pick": "--pick",
    "window": "--window",
}


def _worded(exc: ValueError) -> str:
    from napari_video_extract.core.errors import SettingError

    return exc.worded(SETTING_FLAGS) if isinstance(exc, SettingError) else str(exc)


def _spec(kind, **values):
    """Build a sampling spec; its own checks are usage errors (exit 2)."""
    try:
        return kind(**values)
    except ValueError as exc:
        raise UsageError(_worded(exc)) from None


def _pick(args: argparse.Namespace):
    """The frame choice of ``--pick/--window/--skip-blank`` (usage errors exit 2)."""
    from napari_video_extract.core.pick import DEFAULT_WINDOW, Pick

    mode = getattr(args, "pick", "exact")
    window = getattr(args, "window", None)
    if window is not None and mode != "sharpest":
        raise UsageError("--window needs --pick sharpest")
    try:
        return Pick(
            mode,
            window=DEFAULT_WINDOW if window is None else window,
            skip_blank=getattr(args, "skip_blank", False),
        )
    except ValueError as exc:
        raise UsageError(_worded(exc)) from None


def _run_extraction(args: argparse.Namespace, spec) -> int:
    from napari_video_extract.core.extract import (
        DEFAULT_NAME_TEMPLATE,
        collect_videos,
        extract_batch,
        validate_template,
    )

    template = args.name_template or DEFAULT_NAME_TEMPLATE
    if getattr(args, "contact_sheet", False):
        from napari_video_extract.cli.sheet import check_sheet_options

        check_sheet_options(args, prefix="sheet-")
    try:
        validate_template(template)
    except ValueError as exc:
        raise UsageError(_worded(exc)) from None
    videos, skipped, missing = collect_videos(args.inputs, recursive=args.recursive)
    for path in skipped:
        report_warning(f"skipped (not a video file): {path}", quiet=args.quiet)
    if not videos and not missing:
        report_error("no video files found in " + ", ".join(map(str, args.inputs)))
        return EXIT_FAILED

    options = dict(
        fmt=args.fmt, quality=args.quality, name_template=template, overwrite=args.overwrite
    )
    pick = _pick(args)
    if not pick.plain:
        options["pick"] = pick
    bar = progress_bar(total=0, desc="extracting", unit="still", quiet=args.quiet)
    totals: dict[Path, tuple[int, int]] = {}
    lock = threading.Lock()

    def progress(video: Path, done: int, total: int) -> None:
        with lock:
            totals[video] = (done, total)
            bar.total = sum(t for _, t in totals.values())
            bar.n = sum(d for d, _ in totals.values())
            bar.refresh()

    try:
        if getattr(args, "scheduler", None):
            from napari_video_extract.core import distributed

            try:
                batch = distributed.extract_batch_distributed(
                    videos, args.out, spec, scheduler=args.scheduler, **options
                )
            except (
                distributed.DistributedUnavailableError,
                distributed.SchedulerConnectionError,
            ) as exc:
                bar.close()
                report_error(str(exc))
                return EXIT_FAILED
        else:
            batch = extract_batch(
                videos, args.out, spec, jobs=args.jobs, progress=progress, **options
            )
    finally:
        bar.close()

    failed = [(str(e.path), e.reason) for e in missing]
    failed += [(str(r.video), r.error) for r in batch.failures]

    if not args.quiet:
        ok = [r for r in batch.results if r.ok]
        resumed = sum(r.resumed for r in ok)
        blank = sum(r.blank for r in batch.results)
        print(
            f"{len(ok)} of {len(videos) + len(missing)} video(s) done, "
            f"{batch.written} still(s) written"
            + (f", {blank} blank skipped" if blank else "")
            + (f", {resumed} already there" if resumed else "")
            + f", {len(failed)} failed, {batch.seconds:.1f} s; output in {args.out}"
        )
    dedup_failed = 0
    if getattr(args, "dedup", False):
        dedup_failed = _dedup_outputs(
            [r.out_dir for r in batch.results if r.ok],
            args.quiet,
            scheduler=getattr(args, "scheduler", None),
        )
    sheet_failed = 0
    if getattr(args, "contact_sheet", False):
        from napari_video_extract.cli.sheet import write_sheets

        done = [r for r in batch.results if r.ok]
        sheet_failed = write_sheets(
            [r.out_dir for r in done], args, infos={r.out_dir: r.info for r in done}
        )
    for path, reason in failed:
        report_error(f"{path}: {reason}")
    return EXIT_FAILED if failed or dedup_failed or sheet_failed else EXIT_OK


def _dedup_outputs(folders: list[Path], quiet: bool, *, scheduler: str | None = None) -> int:
    """Run dedup with default settings on each extracted folder (on the
    Dask cluster too when ``scheduler`` is given)."""
    if scheduler:
        from functools import partial

        from napari_video_extract.core.distributed import dedup_folders_distributed

        dedup_folders = partial(dedup_folders_distributed, scheduler=scheduler)
    else:
        from napari_video_extract.core.dedup import dedup_folders
    from napari_video_extract.core.errors import InputError, os_error_reason

    failed = 0
    for folder in folders:
        try:
            report = dedup_folders([folder])
        except Exception as exc:  # one folder's problem must not hide the others
            if isinstance(exc, InputError):
                reason = exc.reason if exc.path == folder else str(exc)
            elif isinstance(exc, OSError):
                reason = os_error_reason(exc)
            else:
                reason = f"{type(exc).__name__}: {exc}"
            report_error(f"{folder}: dedup failed: {reason}")
            failed += 1
            continue
        for message in report.problems():
            report_error(message)
        failed += not report.ok
        if not quiet:
            print(f"{folder}: {report.summary()}")
    return failed


def _run_info(args: argparse.Namespace) -> int:
    from napari_video_extract.core.errors import InputError
    from napari_video_extract.core.extract import collect_videos
    from napari_video_extract.core.probe import probe

    videos, _, missing = collect_videos(args.inputs, recursive=args.recursive)
    failed = [(str(e.path), e.reason) for e in missing]
    for video in videos:
        try:
            info = probe(video)
        except InputError as exc:
            failed.append((str(video), exc.reason))
            continue
        d = info.as_dict()
        if args.json:
            print(json.dumps(d), flush=True)
        else:
            fps = f"{d['nominal_fps']:g}" if d["nominal_fps"] else "?"
            print(
                f"{video}: {d['codec']} {d['width']}x{d['height']}"
                + (f" (rotated {d['rotation']}°)" if d["rotation"] else "")
                + f", {d['duration']:.3f} s, {d['frame_count']} frames, "
                f"{d['avg_fps']:.3f} fps average ({fps} nominal"
                + (", variable" if d["variable_frame_rate"] else "")
                + f"), {d['keyframe_count']} keyframes, start {d['start_time']:g} s",
                flush=True,
            )
    for path, reason in failed:
        report_error(f"{path}: {reason}")
    return EXIT_FAILED if failed else EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from napari_video_extract.core.sample import sample_video_path

    if not args.quiet:
        print("generating the sample video (once) ...", flush=True)
    video = sample_video_path()
    if not args.quiet:
        print(f"sample video: {video}")
    ns = argparse.Namespace(
        inputs=[str(video)],
        out=args.out,
        recursive=False,
        fmt="jpg",
        quality=95,
        name_template=None,
        overwrite=False,
        jobs=1,
        scheduler=None,
        quiet=args.quiet,
        every=1.0,
        start=0.0,
        end=None,
        dedup=True,
    )
    code = _run_interval(ns)
    if not args.quiet:
        folder = args.out / video.stem
        print(
            f"stills kept: {folder}/   near-duplicates moved to: {folder}/duplicates/   "
            f"manifest: {folder}/frames.csv   undo the moves: napari-video-extract undo {folder}"
        )
    return code
