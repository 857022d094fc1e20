"""CLI: failures are one line naming the file and the reason; a batch goes on, exits 1."""

from __future__ import annotations

from pathlib import Path

import pytest

import synthetic
from napari_video_extract.cli import main


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return synthetic.make_cfr(tmp_path_factory.mktemp("cli_safety") / "clip.mp4")


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ": error: " in ln]


def test_damaged_video_with_missing_stills_exits_1_naming_them(clip, tmp_path, capsys):
    damaged = synthetic.make_damaged(tmp_path / "damaged.mp4", tmp_path)
    code, _, err = run_cli(
        ["interval", "--every", "0.04", damaged, clip, "-o", tmp_path / "o"], capsys
    )
    assert code == 1, err
    [line] = error_lines(err)
    assert line.startswith(f"napari-video-extract: error: {damaged}: ")
    assert "could not be decoded" in line and "frames " in line
    assert "Traceback" not in err
    assert len(list((tmp_path / "o" / "clip").glob("*.jpg"))) == 100  # the batch went on
