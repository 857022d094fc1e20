"""One crop box per video: bars a video has are cropped from all its stills, nothing else."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from test_dedup_flat_background import shot

import synthetic
from napari_video_extract.core.borders import BorderBox
from napari_video_extract.core.crop_consensus import consensus_boxes
from napari_video_extract.core.dedup import dedup_folders
from napari_video_extract.core.extract import Interval, extract_video
from napari_video_extract.core.hash_cache import CACHE_NAME
from napari_video_extract.core.hashing import hash_files, hash_frames_and_thumbnails
from napari_video_extract.core.review import Review

BAR = 20  # rows of black above and below the picture, in the 160 x 120 video


def test_consensus_is_the_thinnest_bar_of_each_side_per_video_and_size():
    boxes = [
        BorderBox(160, 120, 0, 20, 0, 22),
        BorderBox(160, 120, 3, 25, 0, 20),
        BorderBox(160, 120, 0, 0, 0, 0, blank=True),  # says nothing
        BorderBox(160, 120, 5, 30, 5, 30),  # no known video: its own
        BorderBox(80, 60, 0, 10, 0, 10),  # another size: another box
        None,  # unreadable
    ]
    shared = consensus_boxes(boxes, [0, 0, 0, -1, 0, 0])
    assert shared[0] == shared[1] == shared[2] == BorderBox(160, 120, 0, 20, 0, 20)
    assert shared[3] == boxes[3]
    assert shared[4] == BorderBox(80, 60, 0, 10, 0, 10)
    assert shared[5] is None


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((160, 120 - 2 * BAR), Image.BICUBIC))


def _letterboxed_stills(tmp_path: Path) -> tuple[Path, Path]:
    """Stills of a letterboxed video (four pictures, then black), and the pictures unboxed."""
    frames = []
    reference = tmp_path / "pictures"
    reference.mkdir()
    for seed in range(4):
        picture = _picture(seed)
        Image.fromarray(picture).save(reference / f"picture{seed}.png")
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[BAR : 120 - BAR] = picture
        frames += [frame] * 25
    frames += [np.zeros((120, 160, 3), np.uint8)] * 25  # a fade to black: a blank still
    video = synthetic.make_from_frames(tmp_path / "boxed.mp4", frames)
    stills = tmp_path / "stills"
    result = extract_video(video, stills, Interval(every=0.5), fmt="png")
    assert result.written == 10
    return stills, reference


def test_letterboxed_video_stills_all_keep_the_crop(tmp_path):
    stills, reference = _letterboxed_stills(tmp_path)
    paths = sorted(stills.glob("*.png"))
    hashed = hash_files(paths, crop_groups=[0] * len(paths), use_cache=False, write_cache=False)
    boxes = {record.crop_box for record in hashed.files}
    assert len(boxes) == 1  # one box for the whole video, the blank still's too
    (box,) = boxes
    assert box.width == 160 and box.height == 120
    assert BAR - 2 <= box.top <= BAR and BAR - 2 <= box.bottom <= BAR
    # With the bars cropped, every still is a duplicate of its unboxed picture.
    report = dedup_folders([stills], reference=reference, dry_run=True)
    kept_by = {it.path.name: it.kept_path for it in report.items if not it.reference}
    with open(stills / "frames.csv", newline="") as handle:
        times = {row["file"]: float(row["time"]) for row in csv.DictReader(handle)}
    for name, kept in kept_by.items():
        seed = int(times[name] // 1.0)
        if seed < 4:
            assert kept == reference / f"picture{seed}.png", name


def test_shared_box_hashes_are_cached_with_their_box(tmp_path):
    frames = shot()
    paths = []
    for k, frame in enumerate(frames):
        paths.append(tmp_path / f"still{k}.png")
        Image.fromarray(frame).save(paths[-1])
    video = [0] * len(paths)
    first = hash_files(paths, crop_groups=video, with_thumbnails=True)
    assert first.recropped > 0  # the flat background was cut differently from still to still
    assert (first.cache_hits, first.hashed, first.failed) == (0, len(paths), 0)
    assert len({record.crop_box for record in first.files}) == 1
    expected, _ = hash_frames_and_thumbnails(
        np.stack([np.asarray(Image.open(p)) for p in paths]), crop_groups=video
    )
    assert np.array_equal(first.hash_array(), expected)
    again = hash_files(paths, crop_groups=video, with_thumbnails=True)
    assert (again.cache_hits, again.hashed, again.recropped) == (len(paths), 0, 0)
    assert np.array_equal(again.hash_array(), expected)
    assert np.array_equal(again.thumbnail_array(), first.thumbnail_array())
    # Asked without a video, the cache never gives a hash made with the shared box.
    own = hash_files(paths, with_thumbnails=True)
    fresh = hash_files(paths, use_cache=False, write_cache=False, with_thumbnails=True)
    assert np.array_equal(own.hash_array(), fresh.hash_array())
    assert np.array_equal(own.thumbnail_array(), fresh.thumbnail_array())
    assert not np.array_equal(own.hash_array(), expected)


def test_frames_of_a_video_layer_share_one_box():
    frames = shot()
    review = Review.from_frames(frames, chunk=3)
    expected, thumbs = hash_frames_and_thumbnails(frames, crop_groups=[0] * len(frames))
    assert np.array_equal(review.hashes, expected)
    assert np.array_equal(np.asarray(review.thumbnails), thumbs)


def test_a_damaged_box_in_the_cache_is_hashed_afresh(tmp_path):
    paths = []
    for k, frame in enumerate(shot()[:3]):
        paths.append(tmp_path / f"still{k}.png")
        Image.fromarray(frame).save(paths[-1])
    first = hash_files(paths, crop_groups=[0, 0, 0])
    cache = tmp_path / CACHE_NAME
    data = json.loads(cache.read_text())
    for entry in data["entries"].values():
        for boxes in entry["boxes"].values():
            boxes[1][2] = 10_000  # a left bar wider than the image
    cache.write_text(json.dumps(data))
    again = hash_files(paths, crop_groups=[0, 0, 0])
    assert (again.cache_hits, again.hashed) == (0, 3)
    assert np.array_equal(again.hash_array(), first.hash_array())
