"""CLI: failures are one line naming the file and the reason; a batch goes on, exits 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import synthetic
from cli_inprocess import run_cli


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return synthetic.make_cfr(tmp_path_factory.mktemp("cli_safety") / "clip.mp4")


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


def _images(folder: Path, n: int = 2) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / f"img{i}.png")


def test_output_name_taken_by_a_folder_is_one_line_and_the_batch_goes_on(clip, tmp_path, capsys):
    other = tmp_path / "in" / "other.mp4"
    other.parent.mkdir()
    shutil.copyfile(clip, other)
    out = tmp_path / "o"
    (out / "clip" / ".nve-extract.lock").mkdir(parents=True)  # not a file: cannot be locked
    code, _, err = run_cli(["interval", "--every", "1", clip, other, "-o", out], capsys)
    assert code == 1
    assert "Traceback" not in err and "Errno" not in err, err
    [line] = error_lines(err)
    assert line.startswith(f"napari-video-extract: error: {clip}: ")
    assert ".nve-extract.lock: Is a directory" in line
    assert len(list((out / "other").glob("*.jpg"))) == 4  # the batch went on


@pytest.mark.parametrize("command", ["dedup", "undo"])
def test_unreadable_move_journal_is_one_line(tmp_path, capsys, command):
    folder = tmp_path / "imgs"
    _images(folder)
    (folder / ".nve-moves.jsonl").mkdir()
    code, _, err = run_cli([command, folder], capsys)
    assert code == 1
    assert "Traceback" not in err and "Errno" not in err, err
    [line] = error_lines(err)
    assert str(folder / ".nve-moves.jsonl") in line and "Is a directory" in line
    assert sorted(p.name for p in folder.iterdir()) == [".nve-moves.jsonl", "img0.png", "img1.png"]


def test_users_frames_csv_and_dedup_csv_are_refused_in_one_line(clip, tmp_path, capsys):
    out = tmp_path / "o"
    (out / "clip").mkdir(parents=True)
    (out / "clip" / "frames.csv").write_text("mine\n")
    code, _, err = run_cli(["interval", "--every", "1", clip, "-o", out], capsys)
    assert code == 1
    [line] = error_lines(err)
    assert "frames.csv: exists and was not written by this tool" in line
    assert (out / "clip" / "frames.csv").read_text() == "mine\n"

    folder = tmp_path / "imgs"
    _images(folder)
    (folder / "dedup.csv").write_text("mine\n")
    code, _, err = run_cli(["dedup", folder], capsys)
    assert code == 1
    [line] = error_lines(err)
    assert f"{folder / 'dedup.csv'}: exists and was not written by this tool" in line
    assert (folder / "dedup.csv").read_text() == "mine\n"
    assert not (folder / "duplicates").exists()
