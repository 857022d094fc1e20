"""The verification's working memory: bounded caches, batch-free results, freed after a run."""

from __future__ import annotations

import gc
import platform

import numpy as np
from PIL import Image

from napari_video_extract.core import comparison_sides, verify
from napari_video_extract.core.hashing import hash_frames_and_thumbnails
from napari_video_extract.core.memory_release import give_back, release_pages
from napari_video_extract.core.review import Review, ReviewSettings
from napari_video_extract.core.stack_review import frames_review
from napari_video_extract.core.verify import THUMB_SHAPE, Verifier, make_thumbnail


def thumbnails(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` thumbnails of a few scenes, each seen again shifted and noised."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, *THUMB_SHAPE), dtype=np.uint8)
    scenes = [rng.integers(0, 256, size=(9, 16), dtype=np.uint8) for _ in range(max(1, n // 4))]
    for i in range(n):
        base = Image.fromarray(scenes[i % len(scenes)])
        base = base.resize((400, 225), Image.Resampling.BICUBIC)
        shift = int(rng.integers(0, 12))
        view = np.asarray(base.crop((shift, shift, 384 + shift, 216 + shift)), dtype=float)
        view = np.clip(view + rng.normal(0, 4, view.shape), 0, 255).astype(np.uint8)
        out[i] = make_thumbnail(Image.fromarray(view))
    return out


def search_arrays(values):
    return [
        np.concatenate([v.image.ravel(), v.grad_y.ravel(), v.grad_x.ravel(), v.norm.ravel()])
        for v in values
    ], [v.low.ravel() for v in values]


def test_a_stills_search_side_does_not_depend_on_its_batch():
    thumbs = thumbnails(37)
    together = comparison_sides.searched_batch(thumbs)  # one batch of 37 (FFTs, filters at once)
    alone = [comparison_sides.searched_batch(thumbs[i : i + 1])[0] for i in range(len(thumbs))]
    batched = verify._searched(thumbs)  # _SEARCH_BATCH at a time
    reference = search_arrays(alone)
    for other in (together, batched):
        got = search_arrays(other)
        for a, b in zip(reference[0] + reference[1], got[0] + got[1], strict=True):
            assert np.array_equal(a, b)
        assert [v.high for v in other] == [v.high for v in alone]
        assert [v.mean for v in other] == [v.mean for v in alone]


def test_cache_entries_own_their_arrays():
    values = verify._searched(thumbnails(20))
    for v in values:  # a view would keep its whole batch alive in the cache
        for name in ("image", "grad_y", "grad_x", "norm", "low"):
            assert getattr(v, name).base is None


def test_scores_equal_whatever_the_cache_sizes():
    thumbs = thumbnails(24, seed=3)
    pairs = [(i, j) for i in range(0, 24, 3) for j in range(24)]
    roomy = Verifier(thumbs)
    tiny = Verifier(thumbs, cache_bytes=1, search_cache_bytes=1)  # rebuilds nearly every entry
    assert [roomy.score(i, j) for i, j in pairs] == [tiny.score(i, j) for i, j in pairs]
    assert len(tiny._templates) == 1 and len(tiny._search) == 1


def test_caches_are_bounded_in_bytes():
    thumbs = thumbnails(60, seed=5)
    budget = 2 << 20
    v = Verifier(thumbs, cache_bytes=budget, search_cache_bytes=budget)
    for i in range(0, 60, 10):
        v.prepare(list(range(i, i + 10)))
        for j in range(i, i + 10):
            v.score(j, (j + 1) % 60)
        assert v._search_bytes <= budget and v._template_bytes <= budget
    assert len(v._templates) < 60  # ~0.45 MB each: most were dropped
    assert v._search_bytes == sum(verify._nbytes(s) for s in v._search.values())
    v.clear()
    assert v.cached_bytes == 0 and not v._search and not v._templates


def live_verifiers():
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, Verifier)]


def test_a_finished_review_keeps_no_verification_cache(tmp_path):
    folder = tmp_path / "stills"
    folder.mkdir()
    for k, thumb in enumerate(thumbnails(40, seed=7), start=1):
        Image.fromarray(thumb).resize((256, 144)).save(folder / f"img{k}.png")
    before = live_verifiers()
    review = Review.from_folder(folder, ReviewSettings(threshold=16))
    assert review.n == 40 and review.n_clusters < 40  # the verifier did compare pairs
    assert live_verifiers() == before  # nothing kept it (or its caches) alive
    memo = review._pairs
    assert len(memo) > 0  # what re-clustering reuses: pair scores, no image data
    assert all(isinstance(v, float) for v in memo.values.values())
    review.recluster(threshold=24)  # re-clustering makes what it needs again
    assert live_verifiers() == before


def test_released_pages_of_a_memory_map_keep_their_data(tmp_path):
    data = thumbnails(8, seed=9)
    mapped = np.memmap(tmp_path / "t.bin", dtype=np.uint8, mode="w+", shape=data.shape)
    mapped[:] = data  # dirty pages of a shared map: dropped from the process, kept in the file
    assert release_pages(mapped)
    assert np.array_equal(mapped, data)
    assert not release_pages(np.array(data))  # in memory: nothing to release


def test_give_back_trims_the_heap_on_glibc():
    assert give_back() == (platform.libc_ver()[0] == "glibc")


def test_frames_review_thumbnails_survive_releases_while_hashing():
    frames = np.repeat(thumbnails(24, seed=11)[..., None], 3, axis=-1)
    frames = np.stack([np.asarray(Image.fromarray(f).resize((256, 144))) for f in frames])
    # chunk=2: the map's pages are released after every 8 chunks (16 frames).
    review = frames_review(frames, ReviewSettings(threshold=16), chunk=2)
    words, thumbs = hash_frames_and_thumbnails(frames)
    assert np.array_equal(review.thumbnails, thumbs)
    assert np.array_equal(review.hashes, words)


def test_give_back_collects_no_garbage_off_the_main_thread():
    import threading

    collections = []
    # Full collections only: an automatic young-generation one may happen anywhere.
    gc.callbacks.append(
        lambda phase, info: collections.append(phase) if info["generation"] == 2 else None
    )
    try:
        worker = threading.Thread(target=give_back)
        worker.start()
        worker.join()
        assert collections == []  # a full collection could finalise Qt objects there
        give_back()
        assert "start" in collections
    finally:
        gc.callbacks.pop()
