"""dedup never replaces or deletes a file it cannot prove is its own."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from napari_video_extract.core.dedup import JOURNAL_NAME, dedup_folders, undo_folder
from napari_video_extract.core.errors import OutputError
from napari_video_extract.core.hashing import CACHE_NAME


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC)


def make_folder(folder, names_and_seeds):
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed in names_and_seeds:
        photo(seed).save(folder / name, quality=92)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_users_own_dedup_csv_is_never_replaced(tmp_path):
    folder = tmp_path / "f"
    make_folder(folder, [("a.jpg", 1), ("b.jpg", 1)])
    users = b"my,own\nnotes,here\n"
    (folder / "dedup.csv").write_bytes(users)
    with pytest.raises(OutputError, match="not written by this tool") as excinfo:
        dedup_folders([folder])
    assert str(folder / "dedup.csv") in str(excinfo.value)
    assert (folder / "dedup.csv").read_bytes() == users
    assert sorted(os.listdir(folder)) == ["a.jpg", "b.jpg", "dedup.csv"]  # nothing written


def test_our_dedup_csv_is_replaced_on_a_rerun(tmp_path):
    folder = tmp_path / "f"
    make_folder(folder, [("a.jpg", 1), ("b.jpg", 1), ("c.jpg", 5)])
    first = dedup_folders([folder])
    assert first.ok and first.n_moved == 1
    (folder / "duplicates" / "b.jpg").rename(folder / "b.jpg")  # undone by hand
    second = dedup_folders([folder])
    assert second.ok and second.n_moved == 1 and second.csv_paths == [folder / "dedup.csv"]


def test_reference_folder_hash_cache_is_not_written_there(tmp_path):
    ref, new = tmp_path / "ref", tmp_path / "new"
    make_folder(ref, [("r.jpg", 1)])
    make_folder(new, [("n.jpg", 1)])
    dedup_folders([new], reference=ref)
    assert not (ref / CACHE_NAME).exists()
    assert (new / CACHE_NAME).exists()


def test_a_foreign_file_at_the_cache_name_is_kept(tmp_path):
    folder = tmp_path / "f"
    make_folder(folder, [("a.jpg", 1), ("b.jpg", 2)])
    (folder / CACHE_NAME).write_text("not our cache")
    report = dedup_folders([folder])
    assert report.ok
    assert (folder / CACHE_NAME).read_text() == "not our cache"


def test_a_copy_put_back_by_hand_is_not_deleted(tmp_path):
    folder = tmp_path / "f"
    make_folder(folder, [("a.jpg", 1), ("b.jpg", 1)])
    dedup_folders([folder])
    moved = folder / "duplicates" / "b.jpg"
    assert moved.exists() and not (folder / "b.jpg").exists()
    shutil.copy(moved, folder / "b.jpg")  # the user wants it back (no journal entry)
    content = sha(moved)
    report = dedup_folders([folder])
    assert any("b.jpg" in note and "left in place" in note for note in report.notes)
    copies = [p for p in folder.rglob("b*.jpg") if sha(p) == content]
    # Both files still exist: the moved one, and the user's copy (which this
    # run may move aside as a duplicate again, journalled, never deletes).
    assert len(copies) == 2, copies
    assert undo_folder(folder).ok
    assert sorted(p.name for p in folder.glob("*.jpg")) == ["a.jpg", "b.jpg"]


def test_interrupted_copy_move_across_file_systems_is_finished(tmp_path):
    """A cross-device move is copy-then-unlink: a kill in between leaves the
    original source (its identity is journalled) and a complete copy."""
    folder = tmp_path / "f"
    make_folder(folder, [("a.jpg", 1), ("b.jpg", 1)])
    src = folder / "b.jpg"
    dst = folder / "duplicates" / "b.jpg"
    dst.parent.mkdir()
    st = src.stat()
    entry = {
        "run": "r1", "id": 1, "op": "move", "src": "b.jpg", "dst": str(dst),
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha(src),
        "dev": st.st_dev, "ino": st.st_ino,
    }  # fmt: skip
    (folder / JOURNAL_NAME).write_text(json.dumps(entry) + "\n")
    shutil.copyfile(src, dst)  # the copy was made; the kill came before unlink
    report = dedup_folders([folder])
    assert report.ok and not report.notes
    assert not src.exists() and dst.exists()
    assert report.n_moved == 0  # nothing moved twice
