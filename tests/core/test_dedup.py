"""Tests of core.dedup: clustering rules and folder operations."""

from __future__ import annotations

import csv
import os
import random

import numpy as np
import pytest
from PIL import Image, ImageFilter

import napari_video_extract.core.clustering as clustering_module
import napari_video_extract.core.nearest_representative as nearest_module
from napari_video_extract.core.dedup import (
    JOURNAL_NAME,
    cluster_hashes,
    dedup_folders,
    ordered_images,
)
from napari_video_extract.core.errors import OutputError
from napari_video_extract.core.hashing import hamming_bits, pack_bits


def photo(seed: int, size=(120, 160)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size[::-1], Image.Resampling.BICUBIC)


def words(*ints: int) -> np.ndarray:
    return np.array(ints, dtype=np.uint64)[:, None]


def read_csv(folder):
    with open(folder / "dedup.csv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def test_global_no_chaining_and_nearest():
    a, b, c = 0, 0b1111, 0b11111111  # A~B (4 bits), B~C (4), A-C 8 bits
    res = cluster_hashes(words(a, b, c), threshold=5)
    assert res.cluster.tolist() == [0, 0, 1]  # C does not chain onto A through B
    assert res.kept.tolist() == [True, False, True]
    assert res.distance.tolist() == [0, 4, 0]
    # Nearest representative wins, not the first one found.
    res = cluster_hashes(words(0, 0xFF00, 0b1), threshold=2)
    assert res.cluster.tolist() == [0, 1, 0]


def test_sequential_compares_with_last_kept_only():
    res = cluster_hashes(words(0, 0, 0xFFFF, 0), threshold=3, mode="sequential")
    assert res.cluster.tolist() == [0, 0, 1, 2]  # the scene seen again is a new cluster
    res = cluster_hashes(words(0, 0, 0xFFFF, 0), threshold=3, mode="global")
    assert res.cluster.tolist() == [0, 0, 1, 0]


def test_keep_policies_and_reference():
    h = words(0, 1, 3)
    res = cluster_hashes(h, threshold=4, keep="sharpest", quality=np.array([1.0, 5.0, 2.0]))
    assert res.kept.tolist() == [False, True, False]
    assert res.distance.tolist() == [1, 0, 1]
    q = np.array([[10, 5], [10, 9], [3, 100]])
    assert cluster_hashes(h, threshold=4, keep="largest", quality=q).kept.tolist() == [
        False,
        True,
        False,
    ]
    ref = cluster_hashes(h, threshold=4, reference_mask=np.array([False, False, True]))
    assert ref.kept.tolist() == [False, False, True]  # the reference stays
    with pytest.raises(ValueError):
        cluster_hashes(h, threshold=4, keep="sharpest")


def test_random_large_is_consistent_with_brute_force():
    rng = np.random.default_rng(0)
    centers = rng.integers(0, 2**63, size=40, dtype=np.int64).astype(np.uint64)
    items = centers[rng.integers(0, 40, 3000)]
    flips = rng.integers(0, 64, size=(3000, 3)).astype(np.uint64)
    for k in range(3):
        items ^= np.uint64(1) << flips[:, k]
    res = cluster_hashes(items[:, None], threshold=10)
    # Reference implementation: plain loop over representatives.
    reps, expect = [], []
    for x in items.tolist():
        d = [(bin(x ^ items[r].item()).count("1"), c) for c, r in enumerate(reps)]
        best = min((dc for dc in d if dc[0] <= 10), default=None)
        if best is None:
            reps.append(len(expect))
            expect.append(len(reps) - 1)
        else:
            expect.append(best[1])
    assert res.cluster.tolist() == expect


def reference_global_clusters(hashes, threshold, reference_mask):
    """The global rule, written plainly: nearest older representative (ties: the
    oldest) within the threshold, else a new cluster; references first."""
    as_int = [int.from_bytes(row.astype(">u8").tobytes(), "big") for row in hashes]
    order = [i for i in range(len(hashes)) if reference_mask[i]]
    order += [i for i in range(len(hashes)) if not reference_mask[i]]
    reps, cluster = [], [-1] * len(hashes)
    for i in order:
        best = None
        if not reference_mask[i]:
            for cid, r in enumerate(reps):
                d = (as_int[i] ^ as_int[r]).bit_count()
                if d <= threshold and (best is None or d < best[0]):
                    best = (d, cid)
        if best is None:
            cluster[i] = len(reps)
            reps.append(i)
        else:
            cluster[i] = best[1]
    return cluster


def sample_hashes(rng, kind, n, hash_size):
    n_bits = hash_size * hash_size
    if kind == "random":
        bits = rng.random((n, n_bits)) < 0.5
    elif kind == "clustered":  # a few centres, a few flipped bits each
        centres = rng.random((max(2, n // 25), n_bits)) < 0.5
        bits = centres[rng.integers(0, len(centres), n)]
        bits ^= rng.random((n, n_bits)) < 4 / n_bits
    else:  # "low": all but 10 bits zero, so distances tie and repeat a lot
        bits = np.zeros((n, n_bits), dtype=bool)
        bits[:, -10:] = rng.random((n, 10)) < 0.5
    return pack_bits(bits)


@pytest.mark.parametrize("small_blocks", [False, True])
def test_global_fast_path_equals_reference(monkeypatch, small_blocks):
    if small_blocks:  # many tiles, blocks and the thread split, on small inputs
        monkeypatch.setattr(nearest_module, "_TILE_PAIRS", 64)
        monkeypatch.setattr(nearest_module, "_MIN_ITEM_BLOCK", 4)
        monkeypatch.setattr(nearest_module, "_MAX_ITEM_BLOCK", 16)
        monkeypatch.setattr(nearest_module, "_PARALLEL_MIN_PAIRS", 0)
        monkeypatch.setattr(clustering_module, "_PARALLEL_MIN_ITEMS", 0)
        monkeypatch.setattr(clustering_module, "_cluster_threads", lambda: 2)
    rng = np.random.default_rng(7)
    for hash_size in (8, 12, 16):
        n_bits = hash_size * hash_size
        for kind in ("random", "clustered", "low"):
            hashes = sample_hashes(rng, kind, 300, hash_size)
            for fraction in (0.0, 0.1):
                reference_mask = rng.random(len(hashes)) < fraction
                for threshold in (0, 2, n_bits // 8, n_bits // 5, n_bits // 2):
                    res = cluster_hashes(
                        hashes, threshold=threshold, reference_mask=reference_mask, n_bits=n_bits
                    )
                    expect = reference_global_clusters(hashes, threshold, reference_mask)
                    case = (hash_size, kind, fraction, threshold)
                    assert res.cluster.tolist() == expect, case
                    assert res.n_clusters == max(expect) + 1, case
                    kept = res.kept_index
                    assert (res.distance == hamming_bits(hashes, hashes[kept])).all(), case
                    assert (res.distance <= threshold).all(), case
                    assert res.kept[reference_mask].all(), case


def make_folder(folder, names_and_seeds, order=None):
    folder.mkdir(parents=True, exist_ok=True)
    items = list(names_and_seeds)
    if order is not None:
        random.Random(order).shuffle(items)
    for name, seed in items:
        photo(seed).save(folder / name, quality=92)


def test_dedup_folder_moves_and_writes_csv(tmp_path):
    folder = tmp_path / "stills"
    make_folder(folder, [("a1.jpg", 1), ("a2.jpg", 1), ("b1.jpg", 2), ("a10.jpg", 1)])
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n trunc")
    report = dedup_folders([folder])
    assert (report.n_images, report.n_clusters, report.n_kept, report.n_moved) == (4, 2, 2, 2)
    assert report.skipped_non_images == 1
    assert [p.name for p, _ in report.unreadable] == ["broken.png"]
    assert sorted(os.listdir(folder / "duplicates")) == [
        "a10.jpg",
        "a2.jpg",
    ]  # a1 kept (natural order)
    assert (folder / "broken.png").exists()
    rows = read_csv(folder)
    assert rows["a1.jpg"]["kept"] == "1" and rows["a2.jpg"]["moved_to"] == "duplicates/a2.jpg"
    assert rows["a10.jpg"]["cluster"] == rows["a1.jpg"]["cluster"] != rows["b1.jpg"]["cluster"]
    assert rows["broken.png"]["status"].startswith("unreadable")
    assert set(rows["a1.jpg"]) >= {"file", "hash", "cluster", "kept", "distance", "moved_to"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_result_independent_of_creation_order(tmp_path, seed):
    spec = [(f"f{i}.jpg", i // 3) for i in range(12)]
    make_folder(tmp_path / "x", spec, order=seed)
    make_folder(tmp_path / "y", spec, order=seed + 10)
    rx = dedup_folders([tmp_path / "x"], dry_run=True)
    ry = dedup_folders([tmp_path / "y"], dry_run=True)
    kx = sorted(i.path.name for i in rx.items if i.kept)
    ky = sorted(i.path.name for i in ry.items if i.kept)
    assert kx == ky == ["f0.jpg", "f3.jpg", "f6.jpg", "f9.jpg"]


def test_frames_csv_time_order(tmp_path):
    folder = tmp_path / "v"
    make_folder(folder, [("z.jpg", 1), ("a.jpg", 1)])
    (folder / "frames.csv").write_text(
        "file,video,time,frame\nz.jpg,v.mp4,1.0,25\na.jpg,v.mp4,2.0,50\n"
    )
    images, times = ordered_images(folder)
    assert [p.name for p in images] == ["z.jpg", "a.jpg"] and times == [1.0, 2.0]
    dedup_folders([folder])
    assert (folder / "z.jpg").exists() and (folder / "duplicates" / "a.jpg").exists()


def test_keep_sharpest_picks_unblurred(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    sharp = photo(5, size=(240, 320))
    sharp = Image.fromarray(
        np.asarray(sharp) ^ (np.indices((240, 320, 3)).sum(0) % 2 * 60).astype(np.uint8)
    )
    sharp.filter(ImageFilter.GaussianBlur(4)).save(folder / "1.png")
    sharp.save(folder / "2.png")
    sharp.filter(ImageFilter.GaussianBlur(2)).save(folder / "3.png")
    report = dedup_folders([folder], keep="sharpest", threshold=20)
    assert report.n_clusters == 1
    assert [i.path.name for i in report.items if i.kept] == ["2.png"]


def test_reference_dir_never_moved(tmp_path):
    ref, new = tmp_path / "ref", tmp_path / "new"
    make_folder(ref, [("r.jpg", 1), ("r2.jpg", 1)])
    make_folder(new, [("n1.jpg", 1), ("n2.jpg", 7)])
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in ref.iterdir()}
    report = dedup_folders([new], reference=ref)
    # Every entry, hidden ones too: no cache, csv or journal is written there.
    assert sorted(os.listdir(ref)) == ["r.jpg", "r2.jpg"]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in ref.iterdir()} == before
    assert (new / "duplicates" / "n1.jpg").exists() and (new / "n2.jpg").exists()
    assert not (ref / "dedup.csv").exists()
    assert report.n_images == 2 and report.n_moved == 1


def test_never_overwrite_and_same_names_in_two_folders(tmp_path):
    a, b, dups = tmp_path / "a", tmp_path / "b", tmp_path / "dups"
    make_folder(a, [("x.jpg", 1), ("y.jpg", 1)])
    make_folder(b, [("x.jpg", 1), ("y.jpg", 1)])
    dups.mkdir()
    (dups / "y.jpg").write_bytes(b"precious")
    report = dedup_folders([a, b], duplicates_dir=dups)
    assert report.n_kept == 1 and report.n_moved == 3
    assert (dups / "y.jpg").read_bytes() == b"precious"
    assert sorted(os.listdir(dups)) == ["x.jpg", "y-1.jpg", "y-2.jpg", "y.jpg"]
    assert (a / "x.jpg").exists() and not (b / "x.jpg").exists()


def test_dry_run_changes_nothing(tmp_path):
    folder = tmp_path / "d"
    make_folder(folder, [("1.jpg", 1), ("2.jpg", 1)])
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    report = dedup_folders([folder], dry_run=True, kept_dir=tmp_path / "kept")
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert before == after
    assert report.n_moved == 1 and report.items[1].moved_to == folder / "duplicates" / "2.jpg"


def test_kept_dir_copies(tmp_path):
    folder, kept = tmp_path / "k", tmp_path / "kept"
    make_folder(folder, [("1.jpg", 1), ("2.jpg", 1), ("3.jpg", 4)])
    report = dedup_folders([folder], kept_dir=kept)
    assert sorted(os.listdir(kept)) == ["1.jpg", "3.jpg"] and report.n_copied == 2
    assert (folder / "1.jpg").read_bytes() == (kept / "1.jpg").read_bytes()


def test_bad_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    report = dedup_folders([empty])
    assert report.n_images == 0 and report.n_clusters == 0 and report.ok
    single = tmp_path / "single"
    make_folder(single, [("only.jpg", 1)])
    assert dedup_folders([single]).n_kept == 1
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    photo(3, size=(40, 50)).save(sizes / "small.png")
    photo(3, size=(800, 1000)).save(sizes / "big.png")
    assert dedup_folders([sizes], keep="largest").n_clusters == 1
    assert (sizes / "big.png").exists() and (sizes / "duplicates" / "small.png").exists()
    with pytest.raises(ValueError):
        dedup_folders([single, single])
    with pytest.raises(ValueError):
        dedup_folders([single], threshold=65)


def test_symlinks_skipped_and_targets_untouched(tmp_path):
    other, folder = tmp_path / "other", tmp_path / "f"
    make_folder(other, [("target.jpg", 1)])
    make_folder(folder, [("a.jpg", 1)])
    (folder / "link.jpg").symlink_to(other / "target.jpg")
    report = dedup_folders([folder])
    assert report.skipped_symlinks == 1 and report.n_moved == 0
    assert (other / "target.jpg").is_file() and (folder / "link.jpg").is_symlink()


def test_blocked_destination_moves_nothing(tmp_path):
    folder = tmp_path / "f"
    make_folder(folder, [("a.jpg", 1), ("b.jpg", 1)])
    (folder / "duplicates").write_text("a file where the folder should go")
    with pytest.raises(OutputError):
        dedup_folders([folder])
    assert sorted(n for n in os.listdir(folder) if not n.startswith(".")) == [
        "a.jpg",
        "b.jpg",
        "duplicates",
    ]
    assert not (folder / JOURNAL_NAME).exists()


def _as_nobody(func):
    """Run func in a child process without root privileges; return its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = func()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_read_only_folder_clear_error_nothing_moved(tmp_path):
    import tempfile

    base = tempfile.mkdtemp(dir="/tmp")
    os.chmod(base, 0o755)
    folder = os.path.join(base, "ro")
    os.mkdir(folder)
    photo(1).save(os.path.join(folder, "a.jpg"))
    photo(1).save(os.path.join(folder, "b.jpg"))
    os.chmod(folder, 0o555)

    def attempt() -> int:
        try:
            dedup_folders([folder])
        except OutputError as exc:
            return 0 if "not writable" in str(exc) else 4
        return 5

    try:
        code = _as_nobody(attempt) if os.geteuid() == 0 else attempt()
        assert code == 0
        assert sorted(os.listdir(folder)) == ["a.jpg", "b.jpg"]
    finally:
        os.chmod(folder, 0o755)
        import shutil

        shutil.rmtree(base)


def test_second_run_uses_cache(tmp_path):
    folder = tmp_path / "c"
    make_folder(folder, [("1.jpg", 1), ("2.jpg", 2), ("3.jpg", 3)])
    first = dedup_folders([folder])
    second = dedup_folders([folder])
    assert (first.hashed, first.cache_hits) == (3, 0)
    assert (second.hashed, second.cache_hits) == (0, 3)
