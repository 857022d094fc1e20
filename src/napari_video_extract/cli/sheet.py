"""The ``sheet`` sub-command (and the ``--contact-sheet`` step of extraction)."""

from __future__ import annotations

import argparse
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

__all__ = ["add_parsers", "add_sheet_options", "check_sheet_options", "write_sheets"]


_count_arg = whole_number_arg(0)


def add_sheet_options(p: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """Options shaping a sheet; ``prefix`` ('sheet-') on the extraction commands."""
    p.add_argument(
        f"--{prefix}columns",
        dest="sheet_columns",
        type=_count_arg,
        default=5,
        metavar="N",
        help="thumbnails per row (default: %(default)s)",
    )
    p.add_argument(
        f"--{prefix}width",
        dest="sheet_width",
        type=_count_arg,
        default=1600,
        metavar="PX",
        help="sheet width in pixels (default: %(default)s)",
    )
    p.add_argument(
        f"--{prefix}format",
        dest="sheet_format",
        choices=["jpg", "png"],
        default="jpg",
        help="sheet format (default: %(default)s)",
    )
    p.add_argument(
        f"--{prefix}max-stills",
        dest="sheet_max_stills",
        type=_count_arg,
        default=300,
        metavar="N",
        help="at most N thumbnails, evenly spaced in time beyond that; 0 = all "
        "(default: %(default)s)",
    )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``sheet`` sub-command."""
    p = sub.add_parser(
        "sheet",
        help="one contact sheet image per folder of stills",
        description="Write a contact sheet for each folder: a grid of its stills in time order "
        "(frames.csv, else natural name order), each with its timestamp, under a header with "
        "the video's name, duration, size and codec. The sheet goes beside the folder as "
        "<folder>_contact_sheet.jpg; a file this tool did not write is never replaced (the "
        "next free name is used). Stills moved to duplicates/ are not shown.",
    )
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="folders of stills")
    p.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        metavar="PATH",
        help="sheet file (one FOLDER only), or an existing folder to put the sheets in",
    )
    p.add_argument(
        "--videos",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="where to find the videos frames.csv names, for the header (repeatable; "
        "default: the current folder)",
    )
    add_sheet_options(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run_sheet)


def check_sheet_options(args: argparse.Namespace, *, prefix: str = "") -> None:
    """Usage errors (exit 2) for sheet options the core would refuse."""
    if args.sheet_columns < 1:
        raise UsageError(f"--{prefix}columns must be >= 1")
    if args.sheet_width < 64 * args.sheet_columns:
        raise UsageError(
            f"--{prefix}width must be at least 64 pixels per column "
            f"({64 * args.sheet_columns} for {args.sheet_columns} columns)"
        )


def run_sheet(args: argparse.Namespace) -> int:
    """Run ``sheet``: one sheet per folder; a bad folder is reported, the others go on."""
    check_sheet_options(args)
    folders = [Path(f) for f in args.folders]
    out = args.output
    if out is not None and len(folders) > 1 and not out.is_dir():
        raise UsageError("--output must be an existing folder when several FOLDERs are given")
    search = args.videos or [Path.cwd()]
    failed = write_sheets(folders, args, output=out, video_search=search)
    return EXIT_FAILED if failed else EXIT_OK


def write_sheets(
    folders: list[Path],
    args: argparse.Namespace,
    *,
    output: Path | None = None,
    infos: dict[Path, object] | None = None,
    video_search: list[Path] | None = None,
) -> int:
    """Write one sheet per folder with the options in ``args``; return the failures."""
    from napari_video_extract.core.contact_sheet import default_sheet_path, write_contact_sheet
    from napari_video_extract.core.errors import InputError

    failed = 0
    for folder in folders:
        target = output
        if output is not None and output.is_dir():
            target = output / default_sheet_path(folder, fmt=args.sheet_format).name
        bar = progress_bar(total=0, desc=f"sheet {folder.name}", unit="still", quiet=args.quiet)

        def progress(done: int, total: int, bar=bar) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            sheet = write_contact_sheet(
                folder,
                output=target,
                columns=args.sheet_columns,
                width=args.sheet_width,
                fmt=args.sheet_format,
                max_stills=args.sheet_max_stills,
                info=(infos or {}).get(folder),
                video_search=video_search,
                progress=progress,
            )
        except (InputError, ValueError) as exc:
            bar.close()
            report_error(str(exc) if isinstance(exc, InputError) else f"{folder}: {exc}")
            failed += 1
            continue
        bar.close()
        for path, reason in sheet.unreadable.items():
            report_warning(f"{path}: unreadable, drawn grey on the sheet ({reason})")
        if not args.quiet:
            shown = len(sheet.files)
            of = "" if shown == sheet.total else f" of {sheet.total}"
            print(f"{folder}: contact sheet of {shown}{of} still(s): {sheet.path}", flush=True)
    return failed
