"""Tests of undo_folder and the move journal."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from PIL import Image

from napari_video_extract.core.dedup import JOURNAL_NAME, dedup_folders, undo_folder


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.suffix == ".jpg"}


def make(folder, n=4):
    folder.mkdir()
    for i in range(n):
        photo(i // 2).save(folder / f"{i}.jpg", quality=90 - i)  # pairs of near-duplicates


def test_undo_restores_byte_identical(tmp_path):
    folder = tmp_path / "f"
    make(folder)
    before = snapshot(folder)
    mtimes = {n: (folder / n).stat().st_mtime_ns for n in before}
    report = dedup_folders([folder], kept_dir=tmp_path / "kept")
    assert report.n_moved == 2
    undo = undo_folder(folder)
    assert undo.ok and len(undo.restored) == 2 and undo.removed_copies == 2
    assert snapshot(folder) == before
    assert {n: (folder / n).stat().st_mtime_ns for n in before} == mtimes
    assert not (folder / "duplicates").exists() and not (folder / JOURNAL_NAME).exists()
    assert os.listdir(tmp_path / "kept") == [] if (tmp_path / "kept").exists() else True
    assert undo_folder(folder).restored == []  # nothing left to undo


def test_undo_reports_file_changed_after_move(tmp_path):
    folder = tmp_path / "f"
    make(folder)
    dedup_folders([folder])
    moved = folder / "duplicates" / "1.jpg"
    moved.write_bytes(b"edited by the user")
    undo = undo_folder(folder)
    assert [p.name for p, _ in undo.failed] == ["1.jpg"]
    assert "changed" in undo.failed[0][1]
    assert moved.read_bytes() == b"edited by the user"  # left alone
    assert (folder / "3.jpg").exists()  # the other one came back
    assert (folder / JOURNAL_NAME).exists()  # kept for a later retry


def test_undo_after_crash_between_journal_and_move(tmp_path):
    folder = tmp_path / "f"
    make(folder)
    before = snapshot(folder)
    dedup_folders([folder])
    # Simulate a crash: a journal entry whose move never happened, then a
    # half-finished one (hard link made, source not yet unlinked).
    data = (folder / "0.jpg").read_bytes()
    entry = {"run": "crash", "id": 1, "op": "move", "src": "0.jpg",
             "dst": str(folder / "duplicates" / "0.jpg"), "size": len(data),
             "mtime_ns": 0, "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    os.link(folder / "2.jpg", folder / "duplicates" / "2-copy.jpg")
    data2 = (folder / "2.jpg").read_bytes()
    entry2 = {"run": "crash", "id": 2, "op": "move", "src": "2.jpg",
              "dst": str(folder / "duplicates" / "2-copy.jpg"), "size": len(data2),
              "mtime_ns": 0, "sha256": hashlib.sha256(data2).hexdigest()}  # fmt: skip
    with open(folder / JOURNAL_NAME, "a") as f:
        f.write(
            json.dumps(entry)
            + "\n"
            + json.dumps(entry2)
            + "\n"
            + '{"run": "crash", "id": 3, "op": "mo'
        )
    undo = undo_folder(folder)
    assert undo.ok, undo.failed
    assert undo.already_in_place == 2
    assert snapshot(folder) == before
    assert not (folder / "duplicates").exists()


def test_undo_name_taken(tmp_path):
    folder = tmp_path / "f"
    make(folder)
    dedup_folders([folder])
    (folder / "1.jpg").write_bytes(b"new file with the old name")
    undo = undo_folder(folder)
    assert [p.name for p, _ in undo.failed] == ["1.jpg"]
    assert (folder / "1.jpg").read_bytes() == b"new file with the old name"
    assert (folder / "duplicates" / "1.jpg").exists()
