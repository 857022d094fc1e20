"""The review model and its apply step, without a display."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest
from PIL import Image

from napari_video_extract.core.dedup import JOURNAL_NAME, dedup_folders, undo_folder
from napari_video_extract.core.errors import OutputError
from napari_video_extract.core.review import Cancelled, Review, ReviewSettings, format_time
from napari_video_extract.core.review_apply import apply_in_place, undo_review, write_review


def photo(seed: int, size=(90, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size[::-1], Image.Resampling.BICUBIC)


def make_folder(folder, seeds):
    """One png per seed, named img1..imgN; equal seeds are exact duplicates."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, seed in enumerate(seeds, start=1):
        photo(seed).save(folder / f"img{k}.png")
    return folder


def snapshot(*folders):
    """{relative path: bytes} of every file below the folders (hidden ones included)."""
    out = {}
    for folder in folders:
        if folder.exists():
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    out[str(p.relative_to(folder.parent))] = p.read_bytes()
    return out


def read_dedup_csv(folder):
    with open(folder / "dedup.csv", newline="") as fh:
        return list(csv.DictReader(fh))


SEEDS = [1, 1, 2, 3, 3, 3, 4]  # clusters {1,2} {3} {4,5,6} {7}


def test_folder_review_equals_cli_dedup_csv(tmp_path):
    a = make_folder(tmp_path / "a", SEEDS)
    b = make_folder(tmp_path / "b", SEEDS)
    review = Review.from_folder(a, ReviewSettings(threshold=10))
    dedup_folders([b], threshold=10)
    rows = read_dedup_csv(b)
    assert [p.name for p in review.paths] == [r["file"] for r in rows]
    assert review.hex_hashes() == [r["hash"] for r in rows]
    assert review.cluster.tolist() == [int(r["cluster"]) for r in rows]
    assert review.kept.tolist() == [r["kept"] == "1" for r in rows]
    assert review.distance.tolist() == [int(r["distance"]) for r in rows]
    assert review.n_clusters == 4 and int(review.kept.sum()) == 4


def test_overrides_survive_reclustering_and_keeper_distances(tmp_path):
    folder = make_folder(tmp_path / "a", SEEDS)
    review = Review.from_folder(folder, ReviewSettings(threshold=10))
    review.set_kept(1, True)  # an exact duplicate kept by hand
    review.make_keeper(5)  # last of the triple becomes its keeper
    assert review.kept.tolist() == [True, True, True, False, False, True, True]
    assert int(review.keeper[3]) == 5 and review.distance[3] == 0
    review.recluster(threshold=0)
    review.recluster(threshold=10)
    assert review.kept.tolist() == [True, True, True, False, False, True, True]
    assert review.n_overrides == 3
    review.clear_overrides()
    assert review.kept.tolist() == [True, False, True, True, False, False, True]


def test_threshold_zero_splits_and_histogram(tmp_path):
    review = Review.from_folder(make_folder(tmp_path / "a", SEEDS), ReviewSettings(threshold=10))
    hist = review.histogram()
    assert hist.sum() == review.n and hist[0] == 5  # five items have an exact twin
    review.recluster(threshold=64)
    assert review.n_clusters == 4  # every pair is a candidate; the verification splits them
    hash_only = Review.from_folder(
        tmp_path / "a", ReviewSettings(threshold=10, verify=False)
    )  # fmt: skip
    hash_only.recluster(threshold=64)
    assert hash_only.n_clusters == 1


def test_write_twice_then_undo_restores_exactly(tmp_path):
    folder = make_folder(tmp_path / "src", SEEDS)
    review = Review.from_folder(folder, ReviewSettings(threshold=10))
    kept_dir, dup_dir = tmp_path / "out" / "kept", tmp_path / "out" / "dups"
    before = snapshot(folder, tmp_path / "out")
    report = write_review(review, kept_dir, dup_dir)
    assert report.written == 7 and not report.errors
    kept_names = sorted(p.name for p in kept_dir.glob("*.png"))
    assert kept_names == ["img1.png", "img3.png", "img4.png", "img7.png"]
    assert (kept_dir / "img1.png").read_bytes() == (folder / "img1.png").read_bytes()
    assert sorted(p.name for p in dup_dir.glob("*.png")) == ["img2.png", "img5.png", "img6.png"]
    after_first = snapshot(kept_dir, dup_dir)
    again = write_review(review, kept_dir, dup_dir)
    assert (again.written, again.moved, again.unchanged) == (0, 0, 7)
    assert snapshot(kept_dir, dup_dir) == after_first
    # A decision changed: the file moves folders, never in both, never a -1 twin.
    review.set_kept(1, True)
    third = write_review(review, kept_dir, dup_dir)
    assert (third.written, third.moved) == (1, 1)
    assert (kept_dir / "img2.png").is_file() and not (dup_dir / "img2.png").exists()
    assert not list(kept_dir.glob("*-1.png"))
    undo_review([kept_dir, dup_dir])
    assert snapshot(folder, tmp_path / "out") == before
    assert not kept_dir.exists() and not dup_dir.exists()


def test_write_never_touches_user_files(tmp_path):
    folder = make_folder(tmp_path / "src", [1, 2])
    kept_dir = tmp_path / "kept"
    kept_dir.mkdir()
    (kept_dir / "img1.png").write_bytes(b"user's own file")
    review = Review.from_folder(folder, ReviewSettings(threshold=10))
    write_review(review, kept_dir, tmp_path / "dups")
    assert (kept_dir / "img1.png").read_bytes() == b"user's own file"
    assert (kept_dir / "img1-1.png").read_bytes() == (folder / "img1.png").read_bytes()
    undo_review([kept_dir, tmp_path / "dups"])
    assert sorted(p.name for p in kept_dir.iterdir()) == ["img1.png"]


def test_apply_in_place_is_the_cli_undo_and_rereview_of_cli_run(tmp_path):
    folder = make_folder(tmp_path / "a", SEEDS)
    original = snapshot(folder)
    dedup_folders([folder], threshold=10)  # the CLI moved 3 duplicates
    review = Review.from_dedup_csv(folder)
    assert review.n == 7 and review.n_clusters == 4
    assert review.paths[1] == folder / "duplicates" / "img2.png"
    review.set_kept(1, True)  # correct the CLI
    report = apply_in_place(review)
    assert report.moved == 2
    assert (folder / "img2.png").is_file()
    assert sorted(p.name for p in (folder / "duplicates").iterdir()) == ["img5.png", "img6.png"]
    rows = {r["file"]: r for r in read_dedup_csv(folder)}
    assert rows["img2.png"]["kept"] == "1"
    assert rows["img5.png"]["moved_to"] == "duplicates/img5.png"
    assert undo_folder(folder).ok  # the CLI's undo puts everything back
    ours = ("dedup.csv", "hashcache.json", "thumbcache.bin")  # our caches
    restored = {k: v for k, v in snapshot(folder).items() if not k.endswith(ours)}
    assert restored == original


def test_frames_review_writes_encoded_frames_and_undo(tmp_path):
    base = [np.asarray(photo(s)) for s in (1, 2)]
    frames = np.stack([base[0], base[0], base[1]])
    review = Review.from_frames(
        frames, ReviewSettings(threshold=10), time=np.array([0.0, 0.5, 61.25]), video="clip.mp4"
    )
    assert review.kept.tolist() == [True, False, True]
    report = write_review(review, tmp_path / "k", tmp_path / "d", read_frame=lambda i: frames[i])
    assert report.written == 3
    names = sorted(p.name for p in (tmp_path / "k").glob("*.png"))
    assert len(names) == 2 and names[1].endswith("_f000002.png")
    decoded = np.asarray(Image.open(tmp_path / "k" / names[1]))
    assert np.array_equal(decoded, frames[2])
    assert (tmp_path / "k" / JOURNAL_NAME).is_file()
    assert all(r.ok for r in undo_review([tmp_path / "k", tmp_path / "d"]))
    assert not (tmp_path / "k").exists()


def test_frames_streamed_in_chunks_and_cancel():
    class Lazy:
        shape = (40, 32, 32, 3)
        reads: list[int] = []  # noqa: RUF012

        def __getitem__(self, key):
            self.reads.append(key.stop - key.start)
            return np.zeros((key.stop - key.start, 32, 32, 3), np.uint8)

    lazy = Lazy()
    review = Review.from_frames(lazy, chunk=8)
    assert max(lazy.reads) == 8 and review.n == 40 and review.n_clusters == 1
    cancel = threading.Event()

    def progress(done, total):
        if done >= 16:
            cancel.set()

    with pytest.raises(Cancelled):
        Review.from_frames(Lazy(), chunk=8, progress=progress, cancel=cancel)


def test_cancel_folder_hashing(tmp_path):
    folder = make_folder(tmp_path / "a", list(range(80)))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        Review.from_folder(folder, cancel=cancel)


def test_settings_errors_name_the_setting_and_read_only_refused(tmp_path):
    with pytest.raises(ValueError, match="threshold"):
        ReviewSettings(threshold=65)
    with pytest.raises(ValueError, match="mode"):
        ReviewSettings(mode="nope")
    folder = make_folder(tmp_path / "a", [1, 1])
    review = Review.from_folder(folder)
    with pytest.raises(ValueError, match="different folders"):
        write_review(review, tmp_path / "x", tmp_path / "x")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(OutputError):
        write_review(review, blocked, tmp_path / "d")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_format_time():
    assert format_time(61.25) == "01:01.250"
    assert format_time(3723.5) == "1:02:03.500"
    assert format_time(float("nan")) == ""
    assert format_time(None, unknown="--:--") == "--:--"


def test_files_review_keeps_given_order_and_lists_unreadable(tmp_path):
    folder = make_folder(tmp_path / "a", SEEDS)
    (folder / "broken.png").write_bytes(b"not an image")
    order = [folder / "img7.png", folder / "broken.png", folder / "img1.png", folder / "img2.png"]
    review = Review.from_files(
        order, ReviewSettings(threshold=10), frame=[70, 99, 10, 20], time=[7.0, 9.9, 1.0, 2.0]
    )
    assert [p.name for p in review.paths] == ["img7.png", "img1.png", "img2.png"]
    assert review.frame.tolist() == [70, 10, 20] and review.time.tolist() == [7.0, 1.0, 2.0]
    assert review.kept.tolist() == [True, True, False]
    assert [p.name for p, _ in review.unreadable] == ["broken.png"]


def test_precomputed_thresholds_are_reused(tmp_path, monkeypatch):
    import napari_video_extract.core.review as review_module

    review = Review.from_folder(make_folder(tmp_path / "a", SEEDS), ReviewSettings(threshold=10))
    review.precompute(range(0, 13))
    calls = []
    import napari_video_extract.core.matching as matching_module

    real = matching_module.cluster_verified
    monkeypatch.setattr(
        matching_module, "cluster_verified", lambda *a, **k: calls.append(k) or real(*a, **k)
    )
    monkeypatch.setattr(review_module, "cluster_hashes", None)  # verify on: never hash-only
    review.recluster(threshold=0)
    assert review.n_clusters == 4 and not calls  # exact duplicates stay together
    review.recluster(threshold=30)
    assert len(calls) == 1


# Distinct photographs whose 64-bit phashes are 20-40 bits apart (5x6 random
# colour blocks), and noisy copies of some of them: a loose candidate bound
# merges distinct photographs by hash, the verification splits them again.
NOISY = [1, 1, 2, 3, 3, 5, 6, 7, 8, 9, 9, 10, 11, 12]
NOISY_TRUTH = [0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10]


def noisy_photo(seed, k):
    noise = np.random.default_rng(100 + k).integers(-12, 13, size=(90, 120, 3))
    return np.clip(np.asarray(photo(seed)).astype(int) + noise, 0, 255).astype(np.uint8)


def make_noisy_folder(folder):
    folder.mkdir(parents=True)
    for k, seed in enumerate(NOISY, start=1):
        Image.fromarray(noisy_photo(seed, k)).save(folder / f"img{k:02d}.png")
    return folder


def dry_run_clusters(folder, **kwargs):
    report = dedup_folders([folder], dry_run=True, **kwargs)
    return [(it.path.name, it.cluster, it.kept) for it in report.items if it.cluster >= 0]


def review_clusters(review):
    return [
        (p.name, int(c), bool(k))
        for p, c, k in zip(review.paths, review.cluster, review.kept, strict=True)
    ]


def test_folder_review_reclusters_like_the_verified_cli(tmp_path):
    folder = make_noisy_folder(tmp_path / "a")
    review = Review.from_folder(folder)  # the CLI's defaults: verified, bound 24
    assert review.settings.verify and review.settings.threshold == 24
    copy = make_noisy_folder(tmp_path / "b")
    dedup_folders([copy])
    rows = read_dedup_csv(copy)
    assert review.cluster.tolist() == [int(r["cluster"]) for r in rows] == NOISY_TRUTH
    assert review.kept.tolist() == [r["kept"] == "1" for r in rows]
    kept = review.kept
    assert np.all(review.similarity[kept] == 1.0)
    assert np.all(review.similarity[~kept] >= review.settings.min_similarity)
    for bound in (40, 6, 24):
        review.recluster(threshold=bound)
        assert review_clusters(review) == dry_run_clusters(folder, threshold=bound)
    review.recluster(threshold=40)
    assert review.cluster.tolist() == NOISY_TRUTH  # the hash alone would merge many
    hash_only = Review.from_files(review.paths, ReviewSettings(threshold=40, verify=False))
    assert hash_only.n_clusters < len(set(NOISY_TRUTH))
    assert review_clusters(hash_only) == dry_run_clusters(folder, threshold=40, verify=False)


def test_frames_review_clusters_like_cluster_verified():
    from napari_video_extract.core.hashing import hash_frames_and_thumbnails
    from napari_video_extract.core.matching import cluster_verified

    frames = np.stack([noisy_photo(s, k) for k, s in enumerate(NOISY)])
    review = Review.from_frames(frames, ReviewSettings(threshold=40), chunk=5)
    hashes, thumbs = hash_frames_and_thumbnails(frames)
    engine = cluster_verified(
        hashes, thumbs, threshold=40, sequence=np.zeros(len(frames), dtype=np.int64)
    )
    assert np.array_equal(review.thumbnails, thumbs)
    assert review.cluster.tolist() == engine.cluster.tolist() == NOISY_TRUTH
    assert np.allclose(review.similarity, engine.similarity)


def test_dedup_csv_review_reclusters_verified(tmp_path):
    folder = make_noisy_folder(tmp_path / "a")
    dedup_folders([folder], threshold=6)  # moves the noisy copies aside
    review = Review.from_dedup_csv(folder)
    review.recluster(threshold=40)  # thumbnails of moved files too, at their new place
    assert review.cluster.tolist() == NOISY_TRUTH


def test_frames_review_cancel_stops_the_verified_clustering():
    frames = np.stack([noisy_photo(s, k) for k, s in enumerate(NOISY)])
    cancel = threading.Event()

    def progress(done, total):
        if done == total:  # hashing is over: only the clustering can stop now
            cancel.set()

    with pytest.raises(Cancelled):
        Review.from_frames(frames, progress=progress, cancel=cancel)
    review = Review.from_frames(frames, progress=progress, cancel=threading.Event())
    assert isinstance(review.thumbnails, np.memmap) and review.cluster.tolist() == NOISY_TRUTH


def test_folder_review_verified_clustering_reports_progress_and_cancels(tmp_path):
    folder = make_noisy_folder(tmp_path / "a")
    hashing, clustering = [], []
    review = Review.from_folder(
        folder, progress=lambda d, t: hashing.append((d, t)),
        cluster_progress=lambda d, t: clustering.append((d, t)), cancel=threading.Event(),
    )  # fmt: skip
    assert hashing[-1] == (len(NOISY), len(NOISY))
    # Items placed, a block at a time, the last report complete.
    assert clustering and clustering[-1] == (len(NOISY), len(NOISY))
    assert review.cluster.tolist() == NOISY_TRUTH  # the same clusters as the CLI's
    cancel = threading.Event()

    def stop(done, total):
        clustering.append((done, total))
        cancel.set()  # hashing was over: this stops the clustering

    before = len(clustering)
    with pytest.raises(Cancelled):
        Review.from_folder(folder, cluster_progress=stop, cancel=cancel)
    assert len(clustering) == before + 1


def test_hash_only_recluster_equals_cluster_hashes_at_every_threshold():
    """The slider's every threshold (close pairs or, above their bound, the search) and mode."""
    from napari_video_extract.core import close_pairs
    from napari_video_extract.core.dedup import cluster_hashes

    rng = np.random.default_rng(5)
    scenes = rng.integers(0, 2**63, size=60, dtype=np.uint64)
    hashes = np.repeat(scenes, 4)
    for _ in range(4):
        bit = rng.integers(0, 64, size=len(hashes)).astype(np.uint64)
        hashes ^= np.where(rng.random(len(hashes)) < 0.6, np.uint64(1) << bit, 0)
    quality = rng.random(len(hashes))
    review = Review(
        hashes[:, None], ReviewSettings(threshold=8, verify=False, keep="sharpest"),
        quality=quality,
    )  # fmt: skip
    pairs = review.close_pairs()
    assert pairs is review.close_pairs()  # found once
    # A small budget here too, so thresholds above the bound are searched.
    review._close = close_pairs.ClosePairs(review.hashes, n_bits=64, max_pairs=3000)
    assert 0 < review._close.bound < 64
    d = np.array([[bin(int(a ^ b)).count("1") for b in hashes] for a in hashes])
    np.fill_diagonal(d, 65)
    np.testing.assert_array_equal(review.nearest_distances(), np.minimum(d.min(axis=1), 64))
    np.testing.assert_array_equal(review.histogram(), np.bincount(d.min(axis=1), minlength=65))
    for mode in ("global", "sequential"):
        for threshold in range(65):
            review.recluster(threshold=threshold, mode=mode)
            fresh = cluster_hashes(
                hashes, threshold=threshold, mode=mode, keep="sharpest", quality=quality
            )
            assert review.cluster.tolist() == fresh.cluster.tolist(), (mode, threshold)
            assert review.auto_kept.tolist() == fresh.kept.tolist(), (mode, threshold)
            np.testing.assert_array_equal(review.distance, fresh.distance)


def test_the_close_pairs_pass_cancels_and_keeps_nothing():
    rng = np.random.default_rng(8)
    hashes = rng.integers(0, 2**63, size=(1500, 1), dtype=np.int64).astype(np.uint64)
    review = Review(hashes, ReviewSettings(threshold=10, verify=False))
    cancel = threading.Event()
    reports = []

    def progress(done, total):
        reports.append(done)
        if len(reports) == 3:
            cancel.set()  # the user, while the pass runs

    with pytest.raises(Cancelled):
        review.nearest_distances(cancel=cancel, progress=progress)
    assert len(reports) == 3 and review._close is None
    d = review.nearest_distances(progress=lambda done, total: None)
    assert review._close is not None and d.shape == (1500,)
    # The hash-only re-clustering that would need them stops as well.
    review._close = None
    cancel.set()
    with pytest.raises(Cancelled):
        review.cluster_at(12, cancel=cancel)
