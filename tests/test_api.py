"""The public Python API: ``import napari_video_extract as nve``, lazily."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import napari_video_extract as nve
from napari_video_extract.core import dedup, errors, extract, hashing, probe, stills, video_reader

PROMISED = {
    "probe": probe.probe,
    "VideoReader": video_reader.VideoReader,
    "Interval": extract.Interval,
    "HeadTail": extract.HeadTail,
    "extract_video": extract.extract_video,
    "extract_batch": extract.extract_batch,
    "hash_files": hashing.hash_files,
    "cluster_hashes": dedup.cluster_hashes,
    "dedup_folders": dedup.dedup_folders,
    "undo": dedup.undo_folder,
    "StillStack": stills.StillStack,
    "open_stills": stills.open_stills,
    "InputError": errors.InputError,
    "VideoOpenError": errors.VideoOpenError,
    "NotAVideoError": errors.NotAVideoError,
    "DecodeError": errors.DecodeError,
    "OutputError": errors.OutputError,
    "SettingError": errors.SettingError,
}


def test_every_promised_name_is_the_core_object() -> None:
    for name, obj in PROMISED.items():
        assert getattr(nve, name) is obj, name
        assert name in nve.__all__ and name in dir(nve)
    for name in nve.__all__:
        getattr(nve, name)  # nothing listed is missing
    with pytest.raises(AttributeError, match="no_such_thing"):
        nve.no_such_thing  # noqa: B018


def _fresh_import(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )


def test_import_is_light_and_fast() -> None:
    code = (
        "import sys, json\n"
        "import napari_video_extract as nve\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'numpy', 'PIL', 'imagehash', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'napari', "
        "'magicgui', 'vispy', 'torch', 'pandas'} or m.startswith('napari_video_extract.'))))\n"
    )
    proc = _fresh_import(code)
    assert json.loads(proc.stdout) == []
    # -X importtime: "import time: self | cumulative | name", in microseconds.
    # Best of three fresh processes: a loaded machine can stall any single one.
    best = min(_import_us(_fresh_import(code).stderr) for _ in range(3))
    assert best < 100_000, f"import napari_video_extract took {best / 1000:.0f} ms"


def _import_us(stderr: str) -> int:
    line = next(ln for ln in stderr.splitlines() if re.search(r"\|\s*napari_video_extract$", ln))
    return int(line.split("|")[1])


def test_a_name_imports_only_its_module() -> None:
    code = (
        "import sys, json\n"
        "import napari_video_extract as nve\n"
        "nve.Interval\n"
        "print(json.dumps([m for m in ('PIL', 'imagehash', 'napari_video_extract.core.dedup') "
        "if m in sys.modules]))\n"
    )
    assert json.loads(_fresh_import(code).stdout) == []
