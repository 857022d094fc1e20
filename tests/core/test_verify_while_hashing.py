"""Verified clustering while hashing: the same decisions as clustering after it."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest
from PIL import Image
from test_matching import _same_result, scene, variant

from napari_video_extract.core.arriving_items import (
    ArrivalAborted,
    ArrivingItems,
    cluster_arriving,
)
from napari_video_extract.core.dedup import dedup_folders
from napari_video_extract.core.dedup_settings import default_min_similarity, default_threshold
from napari_video_extract.core.hashing import hash_files
from napari_video_extract.core.matching import cluster_verified

THRESHOLD = default_threshold(verify=True)


def _stills(folder, n_scenes=45, per_scene=7, *, bar=0):
    """``n_scenes`` pictures, each as ``per_scene`` shifted, zoomed, noised JPEG stills."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n_scenes):
        picture = scene(s).resize((192, 108 - 2 * bar))
        for v in range(per_scene):
            pixels = variant(picture, zoom=1 + 0.02 * v, dx=0.5 * v, noise=3, seed=s * 100 + v)
            frame = np.zeros((108, 192, 3), np.uint8)
            frame[bar : 108 - bar] = pixels
            path = folder / f"still_{s * per_scene + v:04d}.jpg"
            Image.fromarray(frame).save(path, quality=90)
            paths.append(path)
    return paths


def _batch(paths, references=(), **settings):
    """The clustering after hashing, as dedup_folders did it before (its reference)."""
    everything = [*references, *paths]
    hashed = hash_files(everything, use_cache=False, write_cache=False, with_thumbnails=True,
                        crop_groups=settings.pop("groups", None))  # fmt: skip
    readable = [r for r in hashed.files if r.hash is not None]
    refs = {str(p) for p in references}
    ref_mask = np.array([str(r.path) in refs for r in readable])
    return cluster_verified(
        hashed.hash_array(), hashed.thumbnail_array(), threshold=THRESHOLD,
        reference_mask=ref_mask, **settings,
    )  # fmt: skip


@pytest.mark.parametrize("changes", ["global", "local"])
def test_dedup_clusters_while_hashing_with_the_same_decisions(tmp_path, changes):
    paths = _stills(tmp_path / "stills")
    (tmp_path / "stills" / "broken.jpg").write_bytes(b"not an image")  # dropped in between
    refs = _stills(tmp_path / "refs", n_scenes=3, per_scene=2)
    report = dedup_folders([tmp_path / "stills"], reference=tmp_path / "refs", dry_run=True,
                           changes=changes)  # fmt: skip
    assert report.verified_while_hashing > 0  # fed while the pool hashed the rest
    assert len(report.unreadable) == 1
    expected = _batch(paths, refs, changes=changes, min_similarity=default_min_similarity(changes))
    assert len(report.verified_paths) == len(paths) + len(refs) > 2 * 128  # several blocks
    _same_result(report.verification, expected)
    assert report.verification.n_clusters < len(paths) // 2  # the variants were matched


def test_a_still_recropped_after_it_was_fed_sends_the_clustering_to_the_fallback(tmp_path):
    folder = tmp_path / "stills"
    paths = _stills(folder, n_scenes=25, per_scene=6, bar=16)
    # The last still has thinner bars: the video's box narrows, every still fed
    # so far is decoded again with it.
    last = np.asarray(Image.open(paths[-1]).convert("RGB")).copy()
    last[8:16] = last[16:24]
    last[92:100] = last[84:92]
    Image.fromarray(last).save(paths[-1], quality=90)
    with open(folder / "frames.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "video", "time", "frame"])
        for k, path in enumerate(paths):
            writer.writerow([path.name, "clip.mp4", f"{k * 0.5:.3f}", k * 15])
    report = dedup_folders([folder], dry_run=True)
    assert report.verified_while_hashing == 0
    expected = _batch(paths, groups=[0] * len(paths), sequence=np.zeros(len(paths), np.int64))
    _same_result(report.verification, expected)
    assert report.verification.n_clusters < len(paths) // 2


def _arrays(n=300):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, size=(40, 72, 128)).astype(np.uint8)
    which = rng.integers(0, 40, n)
    noise = rng.normal(0, 4, (n, 72, 128))
    thumbs = np.clip(base[which] + noise, 0, 255).astype(np.uint8)
    words = rng.integers(0, 2**63, size=40, dtype=np.uint64)[which][:, None]
    words ^= np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64)[:, None]
    return words, thumbs


@pytest.mark.parametrize(("mode", "keep"), [("global", "sharpest"), ("sequential", "first")])
def test_cluster_arriving_equals_cluster_verified(mode, keep):
    words, thumbs = _arrays()
    n = len(words)
    quality = np.random.default_rng(2).random(n)
    sequence = np.repeat(np.arange(3), n // 3)
    arriving = ArrivingItems(n + 50, 1)  # room to spare: only what arrives counts
    out = {}

    def run():
        out["result"] = cluster_arriving(arriving, threshold=THRESHOLD, mode=mode, keep=keep)

    thread = threading.Thread(target=run)
    thread.start()
    for i in range(n):  # one at a time, the clustering waiting for each block
        arriving.add(words[i], thumbs[i], sequence=int(sequence[i]), reference=i < 5)
    arriving.finish(quality=quality)
    thread.join()
    ref_mask = np.arange(n) < 5
    expected = cluster_verified(
        words, thumbs, threshold=THRESHOLD, mode=mode, keep=keep, quality=quality,
        reference_mask=ref_mask, sequence=sequence,
    )  # fmt: skip
    _same_result(out["result"], expected)


def test_abort_stops_a_waiting_clustering():
    words, thumbs = _arrays(10)
    arriving = ArrivingItems(10, 1)
    errors = []

    def run():
        try:
            cluster_arriving(arriving, threshold=THRESHOLD)
        except ArrivalAborted as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    arriving.add(words[0], thumbs[0])
    arriving.abort()
    thread.join(timeout=30)
    assert not thread.is_alive() and len(errors) == 1
    arriving.add(words[1], thumbs[1])  # the producer may go on: nothing waits
    with pytest.raises(ValueError, match="references must arrive before"):
        other = ArrivingItems(2, 1)
        other.add(words[0], thumbs[0])
        other.add(words[1], thumbs[1], reference=True)


def test_hashing_cancelled_stops_the_clustering_thread(tmp_path):
    _stills(tmp_path / "stills", n_scenes=12, per_scene=6)

    def progress(done, total):
        if done > 40:
            raise KeyboardInterrupt  # what a cancelled widget's callback does (any exception)

    with pytest.raises(KeyboardInterrupt):
        dedup_folders([tmp_path / "stills"], dry_run=True, progress=progress)
    assert not [t for t in threading.enumerate() if t.name == "nve-cluster"]
