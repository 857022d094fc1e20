"""core.image_folder: which files are images, in capture order, by one light scan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_video_extract.core.image_folder import natural_key, ordered_images, scan_folder


def test_natural_order_case_folded_then_exact() -> None:
    names = ["img10.png", "IMG2.png", "img2.png", "img1.png", "a9b10.png", "a9b9.png", "10.png"]
    assert sorted(names, key=natural_key) == [
        "10.png", "a9b9.png", "a9b10.png", "img1.png", "IMG2.png", "img2.png", "img10.png",
    ]  # fmt: skip
    # A digit-like character that is not a decimal digit is text, not a crash.
    assert sorted(["x1\u00b2", "x1"], key=natural_key) == ["x1", "x1\u00b2"]


def test_scan_orders_by_frames_csv_then_name_and_counts_what_it_leaves_out(
    tmp_path: Path,
) -> None:
    for name in ("b10.jpg", "b2.JPG", "a.png", "late.png", "notes.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub.jpg").symlink_to(tmp_path / "a.png")
    (tmp_path / "dedup.csv").write_text("file\n")
    (tmp_path / "frames.csv").write_text(
        "file,video,time,frame\nlate.png,v.mp4,0.5,12\na.png,v.mp4,2.0,50\n"
    )
    scan = scan_folder(tmp_path)
    assert [p.name for p in scan.images] == ["late.png", "a.png", "b2.JPG", "b10.jpg"]
    assert scan.times == [0.5, 2.0, None, None]
    assert all(p.parent == tmp_path for p in scan.images)
    assert (scan.non_images, scan.symlinks) == (1, 1)
    assert ordered_images(tmp_path) == (scan.images, scan.times)


@pytest.mark.parametrize(
    "names",
    [
        [f"still_{k:05d}.jpg" for k in (10, 2, 1, 999, 100)],  # one digit mask: plain order
        ["IMG_0002.jpg", "img_0001.jpg", "img_0003.JPG"],  # case differs: natural order
        ["s_2000.jpg", "s_\u0661000.jpg", "s_0001.jpg"],  # a non-ASCII digit run (1000)
        ["a_01_10.png", "a_01_09.png", "a_02_01.png", "a_1_1.png"],  # masks differ
        ["x9.png", "x10.png", "x08.png"],
    ],
)
@pytest.mark.parametrize("listed", [False, True])
def test_scan_order_is_the_natural_order(tmp_path: Path, names: list[str], listed: bool) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    if listed:  # a frames.csv listing two of them, at the same time (ties: the names)
        rows = "".join(f"{name},v.mp4,1.0,30\n" for name in names[-2:])
        (tmp_path / "frames.csv").write_text("file,video,time,frame\n" + rows)
    unlisted = sorted(names[:-2] if listed else names, key=natural_key)
    expected = (sorted(names[-2:], key=natural_key) if listed else []) + unlisted
    assert scan_folder(tmp_path).names == expected


def test_listing_imports_only_the_standard_library(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    code = (
        "import sys; before = set(sys.modules); "
        "from napari_video_extract.core.image_folder import ordered_images; "
        f"assert len(ordered_images({str(tmp_path)!r})[0]) == 1; "
        "print(sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] in ('numpy', 'PIL', 'imagehash') or 'hashing' in m))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("where", ["absolute", "relative", "dot"])
def test_image_strings_are_the_images_as_str(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    folder = tmp_path / "stills"
    folder.mkdir()
    for name in ("img2.jpg", "img10.jpg", "noext", "trailing.", "x.JPEG"):
        (folder / name).write_bytes(b"x")
    monkeypatch.chdir(tmp_path if where == "relative" else folder)
    given = {"absolute": folder, "relative": Path("stills"), "dot": Path(".")}[where]
    scan = scan_folder(given)
    assert scan.names == ["img2.jpg", "img10.jpg", "x.JPEG"] and scan.non_images == 2
    assert scan.image_strings() == [str(p) for p in scan.images]
    assert scan.images == [given / name for name in scan.names]
