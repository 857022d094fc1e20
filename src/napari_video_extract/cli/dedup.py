"""The ``dedup`` and ``undo`` sub-commands: parse, call the core, return an exit code."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from napari_video_extract.cli import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    progress_bar,
    report_error,
    report_warning,
)
from napari_video_extract.core.dedup_settings import (
    CHANGES,
    KEEP_POLICIES,
    METHODS,
    MODES,
    default_min_similarity,
    default_threshold,
    hash_bits,
)
from napari_video_extract.core.errors import InputError, os_error_reason

if TYPE_CHECKING:
    from napari_video_extract.core.dedup import DedupReport

# The engine (numpy, Pillow, imagehash) is imported when a command runs, so
# that building the parser costs nothing for the extraction commands.

__all__ = ["add_parsers", "run_dedup", "run_undo"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``dedup`` and ``undo`` sub-commands.

    Parameters
    ----------
    sub : argparse subparsers action
        From ``ArgumentParser.add_subparsers``.
    """
    p = sub.add_parser(
        "dedup",
        help="move near-duplicate images aside (undo with 'undo')",
        description=(
            "Group near-identical images and move all but one image of each group to a "
            "duplicates folder. A perceptual hash proposes candidates (the nearest kept "
            "images, and the previous still of a video); an aligned comparison of small "
            "grey thumbnails (robust to small shifts, zoom, noise) decides. Files are "
            "ordered by frames.csv time, else by name, so the result never depends on the "
            "file system. Nothing is deleted or overwritten; 'undo FOLDER' puts moved "
            "files back."
        ),
    )
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="folders of images")
    p.add_argument("--hash", dest="method", choices=METHODS, default="phash",
                   help="hash function (default: phash)")  # fmt: skip
    p.add_argument("--hash-size", type=int, default=8, metavar="N",
                   help="hash size; 8 gives 64-bit hashes (default: 8)")  # fmt: skip
    p.add_argument("--threshold", type=int, default=None, metavar="BITS",
                   help="largest Hamming distance in bits between candidates (default: "
                   "24 of 64 bits for phash, 12 with --no-verify; scaled with the hash "
                   "size)")  # fmt: skip
    p.add_argument("--min-similarity", type=float, default=None, metavar="S",
                   help="smallest verified similarity (-1 to 1) of a duplicate; lower merges "
                   f"more (default: {default_min_similarity('global')}, "
                   f"{default_min_similarity('local')} with --changes local)")  # fmt: skip
    p.add_argument("--changes", choices=CHANGES, default="global",
                   help="local: also keep a still where only part of the view changed "
                   "(someone walks into a static scene); for surveillance and lab "
                   "recordings (default: global)")  # fmt: skip
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="the hash alone decides (faster, less accurate)")  # fmt: skip
    p.add_argument("--explain", nargs="?", const=10, type=int, default=None, metavar="N",
                   help="print the N (default 10) closest rejected and loosest accepted "
                   "pairs, and a similarity histogram")  # fmt: skip
    p.add_argument("--mode", choices=MODES, default="global",
                   help="global: nearest kept image anywhere; sequential: the last kept "
                   "image only (default: global)")  # fmt: skip
    p.add_argument("--keep", choices=KEEP_POLICIES, default="first",
                   help="which image of a group stays (default: first)")  # fmt: skip
    p.add_argument("--reference", action="append", metavar="DIR",
                   help="compare with images in DIR, never move them (repeatable)")  # fmt: skip
    p.add_argument("--duplicates-dir", metavar="DIR",
                   help="where duplicates go (default: FOLDER/duplicates)")  # fmt: skip
    p.add_argument("--kept-dir", metavar="DIR", help="also copy the kept images to DIR")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--no-crop-borders", dest="crop_borders", action="store_false",
                   help="do not crop uniform black bars before hashing")  # fmt: skip
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="hash on a running Dask distributed cluster (e.g. tcp://host:8786); "
                   "needs the [distributed] extra")  # fmt: skip
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar or summary (errors are still printed)")  # fmt: skip
    p.set_defaults(func=run_dedup)

    u = sub.add_parser(
        "undo",
        help="put back the files a dedup run moved",
        description="Move every file a dedup run moved out of FOLDER back, if unchanged.",
    )
    u.add_argument("folder", metavar="FOLDER", help="an input folder of an earlier dedup")
    u.add_argument("--quiet", "-q", action="store_true", help="no summary (errors still printed)")
    u.set_defaults(func=run_undo)


def _check_settings(args: argparse.Namespace) -> int:
    try:
        n_bits = hash_bits(args.method, args.hash_size)
    except ValueError as exc:
        raise UsageError(f"--hash-size: {exc}") from exc
    if args.threshold is not None and not 0 <= args.threshold <= n_bits:
        raise UsageError(f"--threshold must be 0 to {n_bits} bits for this hash")
    if args.min_similarity is not None and not -1 <= args.min_similarity <= 1:
        raise UsageError("--min-similarity must be from -1 to 1")
    if not args.verify and (args.min_similarity is not None or args.changes != "global"):
        raise UsageError("--min-similarity and --changes need verification (drop --no-verify)")
    if args.explain is not None and (not args.verify or args.explain < 1):
        raise UsageError("--explain needs verification and N >= 1")
    return (
        args.threshold
        if args.threshold is not None
        else default_threshold(args.method, args.hash_size, verify=args.verify)
    )


def run_dedup(args: argparse.Namespace) -> int:
    """Run ``dedup``; return the exit code (0 ok, 1 some input failed)."""
    threshold = _check_settings(args)
    quiet = args.quiet
    from tqdm import tqdm

    # tqdm's monitor thread (started by the first bar, even a disabled one)
    # would make the hashing pool start workers through a forkserver instead
    # of a plain fork: ~0.3-0.5 s more per run. The bar is driven by hand.
    tqdm.monitor_interval = 0
    bar = progress_bar(total=None, desc="hashing", unit="img", quiet=quiet)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.n = done
            bar.refresh()
        else:
            # update() redraws at most every tqdm mininterval (0.1 s): a
            # redraw per image cost more than hashing it.
            bar.update(done - bar.n)

    from napari_video_extract.core.dedup import dedup_folders

    run, where, cluster_errors = dedup_folders, {}, ()
    if getattr(args, "scheduler", None):
        from napari_video_extract.core import distributed

        run, where = distributed.dedup_folders_distributed, {"scheduler": args.scheduler}
        cluster_errors = (
            distributed.DistributedUnavailableError,
            distributed.SchedulerConnectionError,
            distributed.DistributedTaskError,
        )
    try:
        report = run(
            args.folders,
            method=args.method,
            hash_size=args.hash_size,
            threshold=threshold,
            mode=args.mode,
            keep=args.keep,
            reference=args.reference,
            duplicates_dir=args.duplicates_dir,
            kept_dir=args.kept_dir,
            dry_run=args.dry_run,
            crop_borders=args.crop_borders,
            progress=progress,
            verify=args.verify,
            min_similarity=args.min_similarity,
            changes=args.changes,
            **where,
        )
    except (InputError, *cluster_errors) as exc:
        # InputError includes OutputError; the others are the Dask cluster's
        # (not installed, unreachable, task failed). In all cases nothing was moved.
        bar.close()
        report_error(str(exc))
        return EXIT_FAILED
    except OSError as exc:
        bar.close()
        report_error(os_error_reason(exc))
        return EXIT_FAILED
    except ValueError as exc:
        bar.close()
        raise UsageError(str(exc)) from exc
    bar.close()

    for message in report.problems():
        report_error(message)
    for message in report.notes:
        report_warning(message)
    if not quiet:
        if args.dry_run:
            _print_plan(report)
        _print_summary(report)
    if args.explain is not None:
        _print_explanation(report, args.explain)
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_plan(report: DedupReport) -> None:
    for item in report.items:
        if item.moved_to is not None:
            why = f"{item.distance} bits"
            if item.similarity is not None:
                why += f", similarity {item.similarity:.3f}"
            print(f"would move {item.path} -> {item.moved_to}  ({why})")
        if item.copied_to is not None:
            print(f"would copy {item.path} -> {item.copied_to}")


def _print_summary(report: DedupReport) -> None:
    print(report.summary())
    skipped = []
    if report.skipped_non_images:
        skipped.append(f"{report.skipped_non_images} non-image files")
    if report.skipped_symlinks:
        skipped.append(f"{report.skipped_symlinks} symbolic links")
    if skipped:
        print("skipped " + ", ".join(skipped))
    for path in report.csv_paths:
        print(f"report: {path}")
    sys.stdout.flush()


def _print_explanation(report: DedupReport, n: int) -> None:
    """Where the decision line sits: the most borderline pairs and a histogram."""
    from napari_video_extract.core.pair_diagnostics import explain, histograms

    result, paths = report.verification, report.verified_paths
    if result is None:
        return
    print(f"\nverified {len(result.checked)} pairs (min similarity {result.min_similarity:.2f})")
    for title, pairs in explain(result, n=n).items():
        print(title.replace("_", " ") + ":")
        if not len(pairs):
            print("  (none)")
        for i, k, d, s in zip(
            pairs.item, pairs.kept, pairs.distance, pairs.similarity, strict=True
        ):
            print(f"  {s:6.3f}  {d:3d} bits  {paths[i]}  vs kept {paths[k]}")
    hist = histograms(result, bins=20)["similarity"]
    print("similarity histogram (accepted / rejected pairs):")
    rows = zip(hist.edges[:-1], hist.edges[1:], hist.accepted, hist.rejected, strict=True)
    for lo, hi, acc, rej in rows:
        if acc or rej:
            print(f"  [{lo:5.2f}, {hi:5.2f})  {acc:6d} / {rej:6d}")
    sys.stdout.flush()


def run_undo(args: argparse.Namespace) -> int:
    """Run ``undo``; return the exit code (0 all restored, 1 otherwise)."""
    from napari_video_extract.core.dedup import undo_folder

    try:
        report = undo_folder(args.folder)
    except InputError as exc:
        report_error(str(exc))
        return EXIT_FAILED
    except OSError as exc:
        report_error(f"{args.folder}: {os_error_reason(exc)}")
        return EXIT_FAILED
    for path, reason in report.failed:
        report_error(f"{path}: {reason}")
    if not args.quiet:
        if not report.restored and not report.failed and not report.already_in_place:
            report_warning(f"{args.folder}: nothing to undo")
        print(
            f"{len(report.restored)} files restored, {report.already_in_place} already in place, "
            f"{report.removed_copies} copies removed, {len(report.failed)} not restored"
        )
    return EXIT_OK if report.ok else EXIT_FAILED
