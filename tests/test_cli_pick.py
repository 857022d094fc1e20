"""``--pick``, ``--window`` and ``--skip-blank`` on ``interval`` and ``credits``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import synthetic
from cli_inprocess import run_cli


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """50 frames at 25 fps, frame i shows i; frames 0-9 and 20-24 black, the
    others blurred (box radius 4) except 3 (black anyway), 26 and 47."""
    black = set(range(10)) | set(range(20, 25))
    frames = []
    for i in range(50):
        if i in black:
            frames.append(np.zeros((synthetic.HEIGHT, synthetic.WIDTH, 3), np.uint8))
        elif i in (26, 47):
            frames.append(synthetic.index_image(i))
        else:
            frames.append(synthetic.box_blur(synthetic.index_image(i), 4))
    return synthetic.make_from_frames(tmp_path_factory.mktemp("cli_pick") / "clip.mp4", frames)


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "frames.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_interval_sharpest_and_skip_blank(clip, tmp_path, capsys):
    # Instants 0 (frames 0-4 in the window, all black), 0.9 (exact frame 22 black,
    # frames 17-27 in the window, 26 sharp) and 1.8 (exact 45, 47 sharp).
    code, out, err = run_cli(
        ["interval", clip, "--every", "0.9", "--out", tmp_path, "--format", "png",
         "--pick", "sharpest", "--window", "0.4", "--skip-blank"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    got = {r["requested_time"]: r for r in rows(tmp_path / "clip")}
    assert list(got) == ["0.000000", "0.900000", "1.800000"]
    assert got["0.000000"]["status"] == "blank"
    assert got["0.900000"]["frame"] == "26" and got["0.900000"]["time"] == "1.040000"
    assert got["1.800000"]["frame"] == "47" and got["1.800000"]["status"] == ""
    assert float(got["1.800000"]["sharpness"]) > 500
    assert "2 still(s) written, 1 blank skipped" in out


def test_credits_takes_the_options_too(clip, tmp_path, capsys):
    code, _, err = run_cli(
        ["credits", clip, "--tail", "0.3", "--every", "0.3", "--out", tmp_path,
         "--pick", "sharpest", "--window", "0.6", "-q"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    (row,) = rows(tmp_path / "clip")
    assert row["frame"] == "47" and float(row["requested_time"]) == pytest.approx(1.7)


def test_window_without_sharpest_is_a_usage_error(clip, tmp_path, capsys):
    code, _, err = run_cli(["interval", clip, "--every", "1", "--window", "0.2"], capsys)
    assert code == 2 and "--window needs --pick sharpest" in err
    code, _, err = run_cli(["interval", clip, "--every", "1", "--pick", "best"], capsys)
    assert code == 2
