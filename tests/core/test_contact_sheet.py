"""Contact sheets: the grid holds the right stills in order, headers, never over a user's file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import synthetic
from napari_video_extract.core.contact_sheet import (
    SHEET_MARKER,
    default_sheet_path,
    format_timestamp,
    is_our_sheet,
    write_contact_sheet,
)
from napari_video_extract.core.errors import InputError, OutputError
from napari_video_extract.core.extract import Interval, extract_video
from napari_video_extract.core.manifest import read_manifest


@pytest.fixture(scope="module")
def stills(tmp_path_factory, cfr_video) -> Path:
    """The cfr video's stills every 0.3 s (PNG), with frames.csv."""
    out = tmp_path_factory.mktemp("sheet") / "cfr"
    extract_video(cfr_video, out, Interval(every=0.3), fmt="png")
    return out


def cells_shown(sheet) -> list[int]:
    """The index decoded from each cell of the written sheet, in grid order."""
    with Image.open(sheet.path) as im:
        pixels = np.asarray(im.convert("RGB"))
    out = []
    for left, top, right, bottom in sheet.cells:
        out.append(synthetic.decode_index(pixels[top:bottom, left:right]))
    return out


def test_grid_holds_the_stills_in_time_order(stills, tmp_path):
    records = sorted(read_manifest(stills), key=lambda r: r.time)
    sheet = write_contact_sheet(stills, output=tmp_path / "s.png", fmt="png", columns=4, width=700)
    assert [p.name for p in sheet.files] == [r.file for r in records]
    assert cells_shown(sheet) == [r.frame for r in records]
    # 14 stills in 4 columns: 4 rows, cells left to right then down.
    lefts = sorted({c[0] for c in sheet.cells})
    assert len(lefts) == 4 and len({c[1] for c in sheet.cells}) == 4
    assert sheet.cells[1][0] > sheet.cells[0][0] and sheet.cells[4][1] > sheet.cells[0][1]
    assert is_our_sheet(sheet.path)
    with Image.open(sheet.path) as im:
        assert im.size == sheet.size and im.width == 700


def test_jpeg_sheet_is_marked_and_readable(stills, tmp_path):
    sheet = write_contact_sheet(stills, output=tmp_path / "s.jpg", columns=3, width=600)
    with Image.open(sheet.path) as im:
        assert im.format == "JPEG"
        assert im.info["comment"].decode() == SHEET_MARKER
    assert cells_shown(sheet) == [
        r.frame for r in sorted(read_manifest(stills), key=lambda r: r.time)
    ]


def test_header_from_probe_when_the_video_is_found(stills, cfr_video, tmp_path):
    found = write_contact_sheet(
        stills, output=tmp_path / "a.png", fmt="png", video_search=[cfr_video.parent]
    )
    assert found.header[0] == cfr_video.name
    assert "h264" in found.header[1] and "160x120" in found.header[1]
    assert "duration 00:04.000" in found.header[1]
    lost = write_contact_sheet(stills, output=tmp_path / "b.png", fmt="png", video_search=[])
    assert lost.header[0] == cfr_video.name  # the name frames.csv gives
    assert "160x120" in lost.header[1] and "h264" not in lost.header[1]
    assert "not found" in lost.header[2]


def test_natural_name_order_without_frames_csv(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    indices = [10, 2, 1, 33, 7]
    for i in indices:
        Image.fromarray(synthetic.index_image(i)).save(folder / f"img{i}.png")
    (folder / ".hidden.png").write_bytes(b"not an image")
    sheet = write_contact_sheet(folder, output=tmp_path / "s.png", fmt="png", columns=2)
    assert cells_shown(sheet) == sorted(indices)
    assert sheet.header[0] == "loose"


def test_max_stills_takes_an_even_subset_in_order(stills, tmp_path):
    records = sorted(read_manifest(stills), key=lambda r: r.time)
    sheet = write_contact_sheet(stills, output=tmp_path / "s.png", fmt="png", max_stills=3)
    assert sheet.total == len(records) == 14
    assert cells_shown(sheet) == [records[0].frame, records[7].frame, records[13].frame]
    assert "3 of 14 stills" in sheet.header[1]


def test_default_path_is_beside_the_folder_and_never_over_a_user_file(stills):
    default = default_sheet_path(stills)
    assert default == stills.parent / "cfr_contact_sheet.jpg"
    default.write_bytes(b"the user's own file")
    try:
        first = write_contact_sheet(stills)
        assert first.path == stills.parent / "cfr_contact_sheet_2.jpg"
        assert default.read_bytes() == b"the user's own file"
        again = write_contact_sheet(stills, columns=2)  # ours: replaced in place
        assert again.path == first.path
        assert not (stills.parent / "cfr_contact_sheet_3.jpg").exists()
        assert not any(p.name.startswith(".") for p in stills.parent.iterdir())
        # An explicit path holding a foreign file is refused, untouched.
        with pytest.raises(OutputError, match="not a contact sheet"):
            write_contact_sheet(stills, output=default)
        assert default.read_bytes() == b"the user's own file"
        # The sheet is not one of the stills: the folder is unchanged.
        assert {p.name for p in stills.iterdir()} >= {r.file for r in read_manifest(stills)}
        assert not any("contact_sheet" in p.name for p in stills.iterdir())
    finally:
        for p in stills.parent.glob("cfr_contact_sheet*"):
            p.unlink()


def test_unreadable_still_is_drawn_grey_and_listed(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(synthetic.index_image(5)).save(folder / "a1.png")
    (folder / "a2.png").write_bytes(b"\x89PNG broken")
    sheet = write_contact_sheet(folder, output=tmp_path / "s.png", fmt="png")
    assert list(sheet.unreadable) == [folder / "a2.png"]
    with Image.open(sheet.path) as im:
        pixels = np.asarray(im.convert("RGB"))
    left, top, right, bottom = sheet.cells[1]
    assert (pixels[top:bottom, left:right] == 90).all()


def test_bad_folders_and_options(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no stills"):
        write_contact_sheet(empty)
    with pytest.raises(InputError, match="not a folder"):
        write_contact_sheet(tmp_path / "nope")
    with pytest.raises(ValueError, match="columns"):
        write_contact_sheet(empty, columns=0)
    with pytest.raises(ValueError, match="format"):
        write_contact_sheet(empty, fmt="gif")


def test_a_sheet_too_tall_for_jpeg_is_refused_before_drawing(stills, tmp_path):
    with pytest.raises(ValueError, match="more than JPEG allows"):
        write_contact_sheet(stills, output=tmp_path / "s.jpg", columns=1, width=20000)
    assert not (tmp_path / "s.jpg").exists()


def test_timestamps():
    assert format_timestamp(0) == "00:00.000"
    assert format_timestamp(75.25) == "01:15.250"
    assert format_timestamp(3725.5) == "01:02:05.500"
    assert format_timestamp(5, hours=True) == "00:00:05.000"
