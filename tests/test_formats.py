"""One list of video extensions: the folder scan, the reader and napari.yaml agree."""

from __future__ import annotations

from pathlib import Path

import pytest

import napari_video_extract
import synthetic
from napari_video_extract._reader import get_reader
from napari_video_extract.core.extract import collect_videos
from napari_video_extract.core.formats import (
    VIDEO_EXTENSIONS,
    dialog_filter,
    is_video_name,
)


def test_extensions_are_lower_case_dotted_and_unique() -> None:
    assert isinstance(VIDEO_EXTENSIONS, tuple)
    assert len(set(VIDEO_EXTENSIONS)) == len(VIDEO_EXTENSIONS)
    for ext in VIDEO_EXTENSIONS:
        assert ext.startswith(".") and ext == ext.lower() and " " not in ext
    assert {".mts", ".m2ts", ".3gp", ".vob", ".mp4", ".mkv"} <= set(VIDEO_EXTENSIONS)


def test_napari_yaml_filename_patterns_are_the_core_list() -> None:
    # Read the manifest shipped in *this* source tree (not an installed copy).
    from npe2 import PluginManifest

    path = Path(napari_video_extract.__file__).parent / "napari.yaml"
    [reader] = PluginManifest.from_file(path).contributions.readers
    # Besides the videos, the reader claims a folder's frames.csv (its stills).
    assert reader.filename_patterns == ["*frames.csv", *(f"*{ext}" for ext in VIDEO_EXTENSIONS)]


def test_is_video_name_ignores_case() -> None:
    assert is_video_name("a.MTS") and is_video_name(Path("x/b.Vob")) and is_video_name("c.3GP")
    assert not is_video_name("notes.txt") and not is_video_name("mp4") and not is_video_name("")


def test_dialog_filter_lists_every_extension_in_both_cases() -> None:
    text = dialog_filter()
    assert text.endswith(";;All files (*)")
    for ext in VIDEO_EXTENSIONS:
        assert f"*{ext} " in text or f"*{ext})" in text
        assert f"*{ext.upper()} " in text or f"*{ext.upper()})" in text


@pytest.mark.parametrize("suffix", [".mts", ".3GP", ".vob", ".m2ts"])
def test_what_the_folder_scan_extracts_the_reader_opens(
    tmp_path: Path, indexed_video: Path, suffix: str
) -> None:
    # An MPEG-TS copy of the indexed video, named with each extension: ffmpeg
    # opens it by its content, so the name decides only what is tried.
    folder = tmp_path / "in"
    folder.mkdir()
    clip = folder / f"clip{suffix}"
    synthetic.run(["-i", str(indexed_video), "-c", "copy", "-f", "mpegts", str(clip)])
    videos, skipped, errors = collect_videos([folder])
    assert videos == [clip] and not skipped and not errors
    reader = get_reader(str(clip))
    assert reader is not None, f"the reader does not claim {suffix}"
    [(data, _, _)] = reader(str(clip))
    try:
        assert synthetic.decode_index(data[5]) == 5
    finally:
        data.reader.close()
