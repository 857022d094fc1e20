"""Command-line interface: argument parsing -> core calls -> exit code.

Exit codes: 0 everything succeeded, 1 some input failed, 2 usage error.
Errors always go to stderr as one line per problem, even with ``--quiet``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from napari_video_extract import __version__

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

PROG = "napari-video-extract"


class UsageError(Exception):
    """A bad combination of arguments detected after parsing (exit code 2)."""


def whole_number_arg(minimum: int):
    """An argparse ``type`` for a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def report_error(message: str) -> None:
    """Print one error line to stderr (never silenced by ``--quiet``)."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def report_warning(message: str, *, quiet: bool = False) -> None:
    """Print one warning line to stderr unless ``quiet``."""
    if not quiet:
        print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


class _NoProgress:
    """Stands in for a progress bar under ``--quiet`` (no tqdm import at all)."""

    total: int | None = None
    n = 0

    def refresh(self) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(*, total: int | None, desc: str, unit: str, quiet: bool):
    """A tqdm progress bar on stderr; a silent stand-in under ``--quiet``."""
    if quiet:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    from napari_video_extract.cli import dedup as dedup_cli
    from napari_video_extract.cli import extract as extract_cli
    from napari_video_extract.cli import sheet as sheet_cli

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Turn videos into clean sets of still images: one still every N seconds, "
            "stills from the opening and closing seconds, and near-duplicate removal."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    extract_cli.add_parsers(sub)
    dedup_cli.add_parsers(sub)
    sheet_cli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.error(str(exc))  # exits with 2
    except KeyboardInterrupt:
        report_error("interrupted; outputs written so far are complete, re-run to resume")
        return 130
    except OSError as exc:  # last resort: one line, never a traceback
        from napari_video_extract.core.errors import os_error_reason

        report_error(os_error_reason(exc))
        return EXIT_FAILED
    return EXIT_OK  # pragma: no cover


def console_main() -> int:
    """Entry point of the ``napari-video-extract`` command (a process of its own).

    Only here, not in :func:`main`, does the CLI change the process's
    environment: ``main`` is also called in-process (tests, scripts), where
    it must leave the caller's environment as it found it.
    """
    # Set before numpy is imported. OpenBLAS would start a thread per core at
    # numpy's import (~30 ms of CPU, a tenth of a short extraction's
    # start-up). Extraction does no matrix products; dedup's verification
    # does (thumbnail filters, placement), on thumbnail-sized matrices: one
    # BLAS thread was not slower there (1,545 stills, --dry-run, 5 runs each
    # on a loaded 2-core machine: median wall 7.8 s vs 8.5 s, CPU 9.3 s vs
    # 10.0 s). A user's own setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
