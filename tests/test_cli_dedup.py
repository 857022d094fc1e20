"""Tests of the dedup / undo sub-commands (exit codes, output, files)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_video_extract.cli import main


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC)


def make(folder):
    folder.mkdir()
    for i in range(4):
        photo(i // 2).save(folder / f"{i}.jpg")


def test_dedup_then_undo(tmp_path, capsys):
    folder = tmp_path / "f"
    make(folder)
    assert main(["dedup", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "4 images, 2 clusters, 2 kept, 2 moved, 0 unreadable" in out
    assert sorted(p.name for p in (folder / "duplicates").iterdir()) == ["1.jpg", "3.jpg"]
    assert main(["undo", str(folder)]) == 0
    assert "2 files restored" in capsys.readouterr().out
    assert sorted(p.name for p in folder.glob("*.jpg")) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]


def test_dry_run_and_quiet(tmp_path, capsys):
    folder = tmp_path / "f"
    make(folder)
    assert main(["dedup", str(folder), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would move" in out and not (folder / "duplicates").exists()
    assert main(["dedup", str(folder), "--quiet", "--hash", "dhash", "--mode", "sequential"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_unreadable_gives_exit_1_and_error_even_quiet(tmp_path, capsys):
    folder = tmp_path / "f"
    make(folder)
    (folder / "bad.jpg").write_bytes(b"nope")
    assert main(["dedup", str(folder), "--quiet"]) == 1
    assert "bad.jpg" in capsys.readouterr().err


def test_usage_errors(tmp_path):
    folder = tmp_path / "f"
    make(folder)
    for argv in (["dedup", str(folder), "--threshold", "99"],
                 ["dedup", str(folder), "--hash", "whash", "--hash-size", "6"],
                 ["dedup", str(folder), "--mode", "nope"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2


def test_missing_folder_exit_1(tmp_path, capsys):
    assert main(["dedup", str(tmp_path / "missing")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["undo", str(tmp_path / "missing")]) == 1
