"""Setting errors name the setting neutrally; the CLI words them with its flags."""

from __future__ import annotations

import pytest

from napari_video_extract.cli import main
from napari_video_extract.core.errors import SettingError
from napari_video_extract.core.extract import HeadTail, Interval, validate_template


def test_core_names_settings_neutrally() -> None:
    with pytest.raises(SettingError) as info:
        Interval(every=1, start=5, end=2)
    assert info.value.settings == ("start", "end")
    assert str(info.value) == "start (5 s) must be before end (2 s)"
    assert info.value.worded({"start": "START", "end": "END"}) == (
        "START (5 s) must be before END (2 s)"
    )
    with pytest.raises(SettingError, match=r"^every must be a positive") as info:
        HeadTail(head=1, every=0)
    # User text with braces is a value, never part of the template.
    with pytest.raises(SettingError) as info:
        validate_template("{bogus}")
    assert "{bogus}" in info.value.worded({"name_template": "name template"})
    assert info.value.worded({"name_template": "name template"}).startswith("bad name template")


def test_cli_words_them_with_its_flags(tmp_path, capsys) -> None:
    video = tmp_path / "missing.mp4"
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        main(["interval", str(video), "--every", "1", "--start", "5", "--end", "2"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "--start (5 s) must be before --end (2 s)" in err
