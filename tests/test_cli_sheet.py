"""The ``sheet`` command and ``--contact-sheet`` on extraction, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import synthetic
from cli_inprocess import run_cli
from napari_video_extract.core.contact_sheet import is_our_sheet


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s, 25 fps, frame i shows i."""
    return synthetic.make_cfr(tmp_path_factory.mktemp("sheet_videos") / "clip.mp4", frames=50)


def test_interval_with_contact_sheet(clip, tmp_path, capsys):
    code, out, err = run_cli(
        ["interval", clip, "--every", "0.5", "--out", tmp_path, "--contact-sheet",
         "--sheet-format", "png", "--sheet-columns", "2", "--sheet-width", "400"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    sheet = tmp_path / "clip_contact_sheet.png"
    assert is_our_sheet(sheet)
    assert f"contact sheet of 4 still(s): {sheet}" in out
    with Image.open(sheet) as im:
        assert im.width == 400


def test_sheet_batch_goes_on_past_a_bad_folder(clip, tmp_path, capsys):
    code, _, err = run_cli(["interval", clip, "--every", "1", "--out", tmp_path, "-q"], capsys)
    assert code == 0, err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(
        ["sheet", empty, tmp_path / "missing", tmp_path / "clip", "--videos", clip.parent],
        capsys,
    )
    assert code == 1
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 2
    assert f"{empty}: no stills" in errors[0] and "not a folder" in errors[1]
    assert is_our_sheet(tmp_path / "clip_contact_sheet.jpg")
    assert "clip_contact_sheet.jpg" in out


def test_sheet_quiet_and_output_options(clip, tmp_path, capsys):
    run_cli(["interval", clip, "--every", "1", "--out", tmp_path, "-q"], capsys)
    target = tmp_path / "mine.png"
    code, out, err = run_cli(
        ["sheet", tmp_path / "clip", "-o", target, "--format", "png", "-q"], capsys
    )
    assert code == 0, err
    assert out == "" and err == ""
    assert is_our_sheet(target)
    # A user's file at the explicit output is refused, untouched.
    user = tmp_path / "user.png"
    Image.new("RGB", (4, 4)).save(user)
    before = user.read_bytes()
    code, _, err = run_cli(["sheet", tmp_path / "clip", "-o", user, "-q"], capsys)
    assert code == 1 and "not a contact sheet" in err
    assert user.read_bytes() == before
    # Several folders need an existing folder as --output.
    code, _, err = run_cli(["sheet", tmp_path / "clip", tmp_path, "-o", target], capsys)
    assert code == 2
    code, _, err = run_cli(["sheet", tmp_path / "clip", "--columns", "0"], capsys)
    assert code == 2 and "--columns" in err
