"""A damaged stretch of video: every planned still is written or named, and the run fails."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import synthetic
from napari_video_extract.core.extract import Interval, extract_batch, extract_video
from napari_video_extract.core.manifest import read_manifest


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("damaged")
    return synthetic.make_damaged(work / "damaged.mp4", work)


def _named_frames(error: str, planned: list[int]) -> set[int]:
    """Frames the error line names (``a..b`` = every planned still from a to b)."""
    listed = error.split("frames ", 1)[1].split(";", 1)[0]
    named: set[int] = set()
    for part in listed.split(", "):
        a, _, b = part.partition("..")
        lo, hi = int(a), int(b or a)
        named |= {f for f in planned if lo <= f <= hi}
    return named


@pytest.mark.parametrize("workers", [1, 2])
def test_every_planned_still_is_written_or_named_and_the_run_fails(damaged, tmp_path, workers):
    out = tmp_path / "out"
    result = extract_video(damaged, out, Interval(every=0.04), fmt="png", workers=workers)
    planned = list(range(100))
    assert result.planned == 100
    written = {r.frame for r in read_manifest(out)}
    for rec in read_manifest(out):
        assert (out / rec.file).is_file()
    assert 0 < len(written) < 100, "the damage must cost some stills, not all"
    assert not result.ok, "a run with missing stills must be reported as failed"
    assert result.missing == sorted(set(planned) - written)
    assert "\n" not in result.error
    assert _named_frames(result.error, planned) == set(result.missing)
    # The stills before the damage are the right frames.
    first_ok = sorted(written)[:10]
    for rec in read_manifest(out):
        if rec.frame in first_ok:
            with Image.open(out / rec.file) as im:
                assert synthetic.decode_index(np.asarray(im.convert("RGB"))) == rec.frame


def test_batch_counts_the_damaged_video_as_failed(damaged, cfr_video, tmp_path):
    batch = extract_batch([damaged, cfr_video], tmp_path / "out", Interval(every=1.0))
    by_name = {r.video.name: r for r in batch.results}
    assert by_name[cfr_video.name].ok
    failed = by_name[damaged.name]
    assert [r.video.name for r in batch.failures] == [damaged.name]
    assert re.search(r"\d+ of 4 planned still\(s\) could not be decoded", failed.error)
