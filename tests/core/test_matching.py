"""Two-stage matching: hash candidates verified by aligned comparison of thumbnails."""

from __future__ import annotations

import csv
import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from napari_video_extract.core.dedup import dedup_folders, natural_key
from napari_video_extract.core.dedup_settings import default_min_similarity, default_threshold
from napari_video_extract.core.hashing import (
    hamming_bits,
    hash_files,
    hash_frames_and_thumbnails,
)
from napari_video_extract.core.matching import (
    PairSimilarities,
    cluster_verified,
    explain,
    histograms,
)
from napari_video_extract.core.review import Review, ReviewSettings
from napari_video_extract.core.thumbcache import THUMB_CACHE_NAME
from napari_video_extract.core.verify import THUMB_SHAPE, similarity

SIZE = (640, 360)
MIN_SIM = default_min_similarity("global")


def scene(seed: int, *, detail: int = 60, coarse: np.ndarray | None = None) -> Image.Image:
    """A picture: a smooth colour layout plus sharp random shapes."""
    rng = np.random.default_rng(seed)
    if coarse is None:
        coarse = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(SIZE, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(detail):
        x, y = int(rng.integers(0, SIZE[0])), int(rng.integers(0, SIZE[1]))
        w, h = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
    return image


def variant(image, *, zoom=1.0, dx=0.0, dy=0.0, noise=0.0, quality=None, seed=0) -> np.ndarray:
    """The same view zoomed in (about the centre), shifted, noised and recompressed."""
    w, h = image.size
    bw, bh = w / zoom, h / zoom
    box = ((w - bw) / 2 + dx, (h - bh) / 2 + dy, (w + bw) / 2 + dx, (h + bh) / 2 + dy)
    out = np.asarray(image.resize(image.size, Image.Resampling.BILINEAR, box=box), dtype=float)
    out += np.random.default_rng(seed).normal(0, noise, out.shape) if noise else 0
    out = np.clip(out, 0, 255).astype(np.uint8)
    if quality is not None:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, "JPEG", quality=quality)
        out = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def test_same_picture_shifted_zoomed_noised_recompressed_is_a_duplicate():
    base = scene(1)
    frames = np.stack(
        [
            variant(base, zoom=1.04),
            variant(base, zoom=1.04, dx=6, dy=-3),  # shifted
            variant(base, zoom=1.09),  # 5 % closer
            variant(base, zoom=1.0),  # 4 % farther
            variant(base, zoom=1.04, noise=12, seed=3),
            variant(base, zoom=1.07, dx=4, noise=8, quality=30, seed=4),
        ]
    )
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    assert thumbs.shape == (6, *THUMB_SHAPE) and thumbs.dtype == np.uint8
    for k in range(1, 6):
        assert similarity(thumbs[0], thumbs[k]) >= 0.85
    result = cluster_verified(hashes, thumbs, threshold=default_threshold(verify=True))
    assert result.n_clusters == 1 and result.kept.tolist() == [True] + [False] * 5
    assert np.all(result.similarity[1:] >= MIN_SIM)
    assert np.array_equal(result.distance, hamming_bits(hashes, hashes[0]))


def layout_with_detail(seed: int, layout: np.ndarray) -> Image.Image:
    """A smooth layout (what a 64-bit hash mostly sees) plus fine random detail."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(layout).resize(SIZE, Image.Resampling.BICUBIC)
    base = np.asarray(image).astype(int)
    draw = ImageDraw.Draw(image)
    for _ in range(600):
        x, y = int(rng.integers(0, SIZE[0])), int(rng.integers(0, SIZE[1]))
        w = int(rng.integers(4, 12))
        colour = np.clip(base[y, x] + int(rng.choice([-30, 30])), 0, 255)
        draw.rectangle((x, y, x + w, y + w), fill=tuple(int(v) for v in colour))
    return image


def test_different_pictures_with_near_equal_hash_are_not_duplicates():
    layout = np.random.default_rng(8).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    frames = np.stack([variant(layout_with_detail(s, layout)) for s in (10, 11, 12)])
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    d = hamming_bits(hashes[:, None], hashes[None, :])
    assert d.max() <= 16  # a quarter of the bits: well inside the candidate bound
    assert d.max() <= default_threshold(verify=True)
    for a in range(3):
        for b in range(3):
            if a != b:
                assert similarity(thumbs[a], thumbs[b]) < MIN_SIM - 0.2
    result = cluster_verified(hashes, thumbs, threshold=default_threshold(verify=True))
    assert result.n_clusters == 3 and result.kept.all()
    rejected = explain(result)["closest_rejected"]
    assert len(rejected) == 3 and np.all(rejected.similarity < MIN_SIM)


def test_two_pages_of_text_are_not_duplicates():
    # Lines of text correlate at many shifts; the words along them do not.
    words = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
    ]
    font = ImageFont.load_default(size=36)
    pages = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        page = Image.new("RGB", SIZE, (245, 245, 240))
        draw = ImageDraw.Draw(page)
        for row in range(7):
            draw.text(
                (30, 20 + 48 * row), " ".join(rng.choice(words, 8)), fill=(20, 20, 20), font=font
            )
        pages.append(page)
    frames = np.stack(
        [variant(pages[0]), variant(pages[0], zoom=1.04, dx=5, noise=8), variant(pages[1])]
    )
    _, thumbs = hash_frames_and_thumbnails(frames)
    assert similarity(thumbs[0], thumbs[1]) >= MIN_SIM
    assert similarity(thumbs[0], thumbs[2]) < MIN_SIM - 0.2


def test_periodic_texture_under_zoom_stays_one_cluster():
    y, x = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    stripes = 128 + 100 * np.sin(2 * np.pi * x / 37.0) * np.sin(2 * np.pi * y / 29.0)
    texture = Image.fromarray(np.stack([stripes.astype(np.uint8)] * 3, axis=-1))
    frames = np.stack(
        [
            variant(texture, zoom=1 + z, noise=6, quality=50, seed=k)
            for k, z in enumerate((0.0, 0.02, 0.04, 0.06, 0.08))
        ]
    )
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    result = cluster_verified(
        hashes, thumbs, threshold=default_threshold(verify=True), sequence=np.zeros(5, np.int64)
    )
    assert result.n_clusters == 1, result.similarity


def test_person_entering_a_static_scene_is_kept_with_local_changes():
    room = scene(20)
    with_person = room.copy()
    draw = ImageDraw.Draw(with_person)
    draw.ellipse((305, 170, 345, 320), fill=(40, 30, 30))  # a body
    draw.ellipse((313, 138, 337, 170), fill=(200, 160, 140))  # a head
    frames = np.stack(
        [
            variant(room, noise=6, seed=1),
            variant(room, noise=6, seed=2),
            variant(with_person, noise=6, seed=3),
            variant(room, noise=6, seed=4),
        ]
    )
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    threshold = default_threshold(verify=True)
    seq = np.zeros(4, dtype=np.int64)
    whole = cluster_verified(hashes, thumbs, threshold=threshold, sequence=seq)
    assert whole.n_clusters == 1  # globally the same view: a person is a small part
    local = cluster_verified(hashes, thumbs, threshold=threshold, sequence=seq, changes="local")
    assert local.kept.tolist() == [True, False, True, False]
    assert local.cluster[3] == local.cluster[0]  # the empty room again: a duplicate


def _cases():
    """Four views, each five times with random zoom, shift and noise."""
    rng = random.Random(5)
    frames, names, times = [], [], []
    for s in range(4):
        base = scene(30 + s)
        for k in range(5):
            frames.append(
                variant(
                    base,
                    zoom=1.08 + rng.uniform(-0.05, 0.05),
                    dx=rng.uniform(-8, 8),
                    noise=rng.uniform(0, 10),
                    seed=10 * s + k,
                )
            )
            names.append(f"s{s}_{k}.png")
            times.append(float(rng.randint(0, 6)))  # ties, so names decide too
    return np.stack(frames), names, np.array(times)


@pytest.mark.parametrize("keep", ["first", "sharpest", "largest"])
@pytest.mark.parametrize("mode", ["global", "sequential"])
def test_verified_clusters_are_chain_free_and_order_independent(keep, mode):
    frames, names, times = _cases()
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    quality = np.random.default_rng(1).integers(0, 3, size=(len(names), 2)).astype(float)
    threshold = default_threshold(verify=True)

    def run(perm):
        order = sorted(perm, key=lambda i: (times[i], natural_key(names[i])))
        q = (
            None
            if keep == "first"
            else quality[order][:, 0]
            if keep == "sharpest"
            else quality[order]
        )
        res = cluster_verified(
            hashes[order], thumbs[order], threshold=threshold, mode=mode, keep=keep, quality=q
        )
        return order, res

    order, result = run(list(range(len(names))))
    assert result.n_clusters == 4 if mode == "global" else result.n_clusters >= 4
    for pos in range(len(order)):
        k = int(result.kept_index[pos])
        # Checked again, independently: every duplicate is verified against
        # its cluster's KEPT image, whichever keep policy chose it.
        s = similarity(thumbs[order[k]], thumbs[order[pos]])
        assert s == pytest.approx(result.similarity[pos]) and (pos == k or s >= MIN_SIM)
        assert names[order[k]][:2] == names[order[pos]][:2]  # same view

    def by_name(order, res):
        return {
            names[item]: (names[order[int(res.kept_index[pos])]], bool(res.kept[pos]))
            for pos, item in enumerate(order)
        }

    perm = list(range(len(names)))
    random.Random(9).shuffle(perm)
    order2, again = run(perm)
    assert by_name(order2, again) == by_name(order, result)


def test_histograms_count_every_checked_pair():
    frames, _, _ = _cases()
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    result = cluster_verified(hashes, thumbs, threshold=default_threshold(verify=True))
    hist = histograms(result, bins=10)
    n = len(result.checked)
    assert n >= 16
    for h in hist.values():
        assert int(h.accepted.sum() + h.rejected.sum()) == n
        assert len(h.edges) == len(h.accepted) + 1
    assert int(hist["similarity"].accepted.sum()) == int(result.checked.accepted.sum())
    assert hist["similarity"].threshold == MIN_SIM


def test_thumbnails_cached_beside_the_hash_cache(tmp_path):
    folder = tmp_path / "stills"
    folder.mkdir()
    for k, s in enumerate((40, 40, 41)):
        Image.fromarray(variant(scene(s), noise=4, seed=k)).save(folder / f"img{k}.png")
    paths = sorted(folder.glob("*.png"))
    first = hash_files(paths, with_thumbnails=True)
    assert first.hashed == 3 and (folder / THUMB_CACHE_NAME).is_file()
    again = hash_files(paths, with_thumbnails=True)
    assert again.cache_hits == 3 and again.hashed == 0
    assert np.array_equal(again.thumbnail_array(), first.thumbnail_array())
    # A folder given as read-only (a reference) gets no thumbnail cache.
    ref = tmp_path / "ref"
    ref.mkdir()
    Image.fromarray(variant(scene(42))).save(ref / "r.png")
    hash_files([ref / "r.png"], with_thumbnails=True, read_only_folders=[ref])
    assert not (ref / THUMB_CACHE_NAME).exists()


def test_dedup_csv_has_similarity_and_distance(tmp_path):
    folder = tmp_path / "stills"
    folder.mkdir()
    base, other = scene(50), scene(51)
    for k, image in enumerate([base, base, other]):
        Image.fromarray(variant(image, zoom=1 + 0.02 * k, noise=5, seed=k)).save(
            folder / f"f{k}.png"
        )
    report = dedup_folders([folder])
    assert report.n_moved == 1 and (folder / "duplicates" / "f1.png").exists()
    with open(folder / "dedup.csv", newline="") as handle:
        rows = {r["file"]: r for r in csv.DictReader(handle)}
    assert float(rows["f1.png"]["similarity"]) >= MIN_SIM
    assert int(rows["f1.png"]["distance"]) <= default_threshold(verify=True)
    assert float(rows["f0.png"]["similarity"]) == 1.0 and rows["f2.png"]["kept"] == "1"


def _same_result(a, b):
    for name in ("cluster", "kept", "kept_index", "distance", "similarity"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("item", "kept", "distance", "similarity", "accepted"):
        assert np.array_equal(getattr(a.checked, name), getattr(b.checked, name)), name


def test_pair_memo_gives_the_fresh_result_at_every_threshold_and_mode():
    frames, _names, _times = _cases()
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    pairs = PairSimilarities(len(hashes))
    seen: set[tuple[int, int]] = set()
    for threshold, mode in [(32, "global"), (6, "global"), (14, "sequential"), (0, "global")]:
        before = pairs.n_computed
        shared = cluster_verified(hashes, thumbs, threshold=threshold, mode=mode, pairs=pairs)
        fresh = cluster_verified(hashes, thumbs, threshold=threshold, mode=mode)
        _same_result(shared, fresh)
        checked = set(zip(fresh.checked.kept.tolist(), fresh.checked.item.tolist(), strict=True))
        # Only the pairs no earlier clustering verified were verified again.
        assert pairs.n_computed - before == len(checked - seen)
        seen |= checked
        assert set(pairs.values) == seen
    again = pairs.n_computed
    cluster_verified(hashes, thumbs, threshold=6, pairs=pairs)
    assert pairs.n_computed == again  # every pair looked up
    with pytest.raises(ValueError, match="changes"):
        cluster_verified(hashes, thumbs, threshold=6, changes="local", pairs=pairs)


def test_review_recluster_reuses_pairs_and_equals_a_fresh_clustering():
    frames, _names, _times = _cases()
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    review = Review(hashes, ReviewSettings(), thumbnails=thumbs)
    first = review._pairs.n_computed
    assert first > 0
    for threshold in (4, 30, 12):
        review.recluster(threshold=threshold)
        fresh = cluster_verified(hashes, thumbs, threshold=threshold)
        assert np.array_equal(review.cluster, fresh.cluster)
        assert np.array_equal(review.kept, fresh.kept)
        assert np.allclose(review.similarity, fresh.similarity)
