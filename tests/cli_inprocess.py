"""Run the CLI in this process, as the CLI tests do."""

from __future__ import annotations

from napari_video_extract.cli import main


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
