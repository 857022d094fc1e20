"""Cost of the verification stage of ``dedup`` (hash candidates checked on thumbnails).

Three measurements, each in its own subprocess (wall time, CPU time and peak
resident memory of that process; the load average is printed: other work on
the machine changes wall times a lot, CPU times less):

* ``stills``: the 720p stills of ``benchmarks/_work/dedup_stills`` (made by
  ``bench_dedup.py``) hashed once with thumbnails, then
  :func:`cluster_verified` at the defaults vs :func:`cluster_hashes`: ms per
  verified pair, pairs per still, verification ms per still;
* ``recluster``: a review of ``--n-review`` (default 10,000) stills
  (thumbnails made from the real ones, each shifted and noised, hashes
  perturbed by a few bits): the first verified clustering, then
  ``Review.precompute`` of every slider threshold 0-32 (with the review's
  shared pair memo: only new pairs are verified), then ``Review.recluster``
  to each threshold (now lookups), then ``Review.recluster`` to each again
  with the clusterings forgotten but the pairs kept (a threshold the warm-up
  has not reached, its pairs known: the numpy placement of
  :func:`cluster_verified`). The target is under 100 ms per threshold change.
  ``--n-review 0``: the real stills themselves. Every threshold's result of
  that last pass (clusters, keepers, similarities, checked pairs) is kept in
  the work folder and, with ``--reference``, compared;
* ``global``: :func:`cluster_verified` on ``--n-global`` (default 100,000)
  stills of one video (shots of near-identical stills, see
  ``_video_stills``) whose thumbnails are memory-mapped from a file in
  ``benchmarks/_work/verifyspeed`` (920 MB at 100,000), with peak RSS;
* ``global-floor`` (after ``global``): the same clustering with every
  similarity looked up instead of verified (benchmark-only stub): the cost of
  the per-item loop and of the hash-candidate search alone; then with the
  pairs in a memo (the numpy placement).

``stills`` and ``global`` keep their result (clusters, every checked pair and
its similarity) in the work folder; with ``--reference DIR`` (the work folder
of a run of other code on the same inputs) each also says whether its
decisions are those of the reference (same clusters, same pairs checked in
the same order, same accepted ones) and the largest difference of a
similarity.

Run: ``.venv/bin/python benchmarks/bench_verify.py [stills recluster global global-floor]
[--review-thresholds 20-28] [--n-global 20000] [--work DIR] [--reference DIR]``
(``--work``: where the inputs are made once and the results kept, default
``benchmarks/_work/verifyspeed``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
STILLS = WORK / "dedup_stills"
OUT = WORK / "verifyspeed"
REFERENCE: Path | None = None  # --reference


def _clock():
    t = os.times()
    return time.perf_counter(), t.user + t.system


def _since(start) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _count_templates() -> list[int]:
    """Count the kept images' templates made (benchmark-only wrapper)."""
    from napari_video_extract.core import comparison_sides

    made = [0]
    init = comparison_sides.Templates.__init__

    def counted(self, *args, **kwargs):
        made[0] += 1
        init(self, *args, **kwargs)

    comparison_sides.Templates.__init__ = counted
    return made


def _time_parts() -> dict[str, float]:
    """CPU seconds of the verification's parts (benchmark-only wrappers).

    Each part is timed with ``time.thread_time`` in the thread that runs it
    (the search sides are made in a helper thread, ahead of the loop), so the
    parts add up to the verification's CPU without counting a thread twice.
    Call after :func:`_count_templates` (it wraps the same constructor).
    """
    from napari_video_extract.core import comparison_sides, verify

    spent = {"search sides": 0.0, "templates": 0.0, "pairs": 0.0}

    def timed(name, func):
        def wrapper(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - t0

        return wrapper

    verify._searched = timed("search sides", verify._searched)
    verify._score = timed("pairs", verify._score)
    comparison_sides.Templates.__init__ = timed("templates", comparison_sides.Templates.__init__)
    return spent


def _parts_report(spent: dict[str, float], n: int, pairs: int, made: int, cpu: float) -> dict:
    """Where the verified clustering's CPU went: per still, per template, per pair."""
    rest = cpu - sum(spent.values())
    return {
        "CPU s: search sides / templates / pairs / the rest (loop, hash candidates)": (
            f"{spent['search sides']:.1f} / {spent['templates']:.1f} / {spent['pairs']:.1f} "
            f"/ {rest:.1f}"
        ),
        "CPU us per still (search side)": round(1e6 * spent["search sides"] / max(n, 1)),
        "CPU ms per template made": round(1e3 * spent["templates"] / max(made, 1), 2),
        "CPU us per pair (placement and directional check)": round(
            1e6 * spent["pairs"] / max(pairs, 1)
        ),
    }


def _keep_result(name: str, res, min_similarity: float) -> dict:
    """Save ``res`` as ``name`` in OUT; compare with the reference's, if any."""
    import numpy as np

    c = res.checked
    mine = {"cluster": res.cluster, "item": c.item, "kept": c.kept, "similarity": c.similarity}
    np.savez(OUT / name, **mine)
    if REFERENCE is None:
        return {}
    ref = np.load(REFERENCE / name)
    same_pairs = np.array_equal(ref["item"], mine["item"]) and np.array_equal(
        ref["kept"], mine["kept"]
    )
    out = {
        "same clusters as the reference": bool(np.array_equal(ref["cluster"], mine["cluster"])),
        "same pairs checked, in the same order": bool(same_pairs),
    }
    if same_pairs:
        gap = np.abs(ref["similarity"] - mine["similarity"])
        accepted = ref["similarity"] >= min_similarity
        out["same pairs accepted"] = bool(
            np.array_equal(accepted, mine["similarity"] >= min_similarity)
        )
        out["largest similarity difference"] = float(gap.max()) if len(gap) else 0.0
    return out


def _real_stills():
    """Hashes and thumbnails of the real stills (hashed once, kept in OUT)."""
    import numpy as np

    cached = OUT / "stills_ht.npz"
    if not cached.exists():
        from napari_video_extract.core.hashing import hash_files

        files = sorted(STILLS.glob("*.jpg"))
        if not files:
            sys.exit(f"no stills in {STILLS}: run benchmarks/bench_dedup.py first")
        res = hash_files(files, use_cache=False, write_cache=False, with_thumbnails=True)
        OUT.mkdir(parents=True, exist_ok=True)
        np.savez(cached, hashes=res.hash_array(), thumbs=res.thumbnail_array())
    data = np.load(cached)
    return data["hashes"], data["thumbs"]


def _synthetic(n: int, seed: int, out=None):
    """``n`` stills made from the real ones: shifted, noised, hashes perturbed."""
    import numpy as np

    hashes, thumbs = _real_stills()
    rng = np.random.default_rng(seed)
    words = np.empty((n, hashes.shape[1]), dtype=np.uint64)
    images = np.empty((n, *thumbs.shape[1:]), dtype=np.uint8) if out is None else out
    step = 4096
    for lo in range(0, n, step):
        src = rng.integers(0, len(hashes), size=min(step, n - lo))
        flips = rng.integers(0, 64, size=(len(src), 3))
        w = hashes[src].copy()
        for k in range(3):
            w[:, 0] ^= np.left_shift(np.uint64(1), flips[:, k].astype(np.uint64))
        words[lo : lo + len(src)] = w
        block = thumbs[src].astype(np.int16)
        shift = rng.integers(-3, 4, size=2)
        block = np.roll(block, tuple(int(s) for s in shift), axis=(1, 2))
        block += rng.integers(-6, 7, size=block.shape, dtype=np.int16)
        images[lo : lo + len(src)] = np.clip(block, 0, 255).astype(np.uint8)
    return words, images


def run_stills() -> dict:
    import numpy as np

    from napari_video_extract.core.dedup import cluster_hashes
    from napari_video_extract.core.dedup_settings import default_threshold
    from napari_video_extract.core.matching import cluster_verified

    hashes, thumbs = _real_stills()
    n = len(hashes)
    threshold = default_threshold(verify=True)
    made = _count_templates()
    spent = _time_parts()
    start = _clock()
    res = cluster_verified(hashes, thumbs, threshold=threshold, sequence=np.full(n, -1))
    wall, cpu = _since(start)
    check = _keep_result("stills_result.npz", res, res.min_similarity)
    start = _clock()
    cluster_hashes(hashes, threshold=default_threshold())
    hwall, hcpu = _since(start)
    pairs = len(res.checked)
    return {
        "stills": n,
        "clusters": res.n_clusters,
        "verified pairs": pairs,
        "pairs per still": round(pairs / n, 2),
        "verified clustering wall s": round(wall, 2),
        "verified clustering CPU s": round(cpu, 2),
        "ms per verified pair (wall)": round(1e3 * wall / max(pairs, 1), 3),
        "CPU ms per verified pair (search sides, templates and pairs)": round(
            1e3 * cpu / max(pairs, 1), 3
        ),
        "verification CPU ms per still": round(1e3 * cpu / n, 3),
        "verification ms per still (wall)": round(1e3 * wall / n, 3),
        "hash-only clustering wall s": round(hwall, 3),
        "hash-only clustering CPU s": round(hcpu, 3),
        "templates made": made[0],
        **_parts_report(spent, n, pairs, made[0], cpu),
        **check,
    }


def _keep_reclusterings(name: str, results: dict) -> dict:
    """Save every threshold's clustering as ``name`` in OUT; compare with the reference's.

    Per threshold: cluster ids, kept items, recorded similarities and every
    checked pair (items, kept image, hash distance, similarity, accepted).
    """
    import numpy as np

    fields = ("item", "kept", "distance", "similarity", "accepted")
    mine = {}
    for t, res in results.items():
        mine[f"{t}_cluster"] = res.cluster
        mine[f"{t}_kept_index"] = res.kept_index
        mine[f"{t}_similarity"] = res.similarity
        for f in fields:
            mine[f"{t}_checked_{f}"] = getattr(res.checked, f)
    np.savez(OUT / name, **mine)
    if REFERENCE is None:
        return {}
    ref = np.load(REFERENCE / name)
    differ = sorted(
        {int(k.split("_")[0]) for k in mine if k not in ref or not np.array_equal(ref[k], mine[k])}
    )
    return {
        "thresholds compared with the reference": len(results),
        "thresholds whose clusters, keepers, similarities or checked pairs differ": differ,
    }


def run_recluster(n: int, thresholds: list[int]) -> dict:
    """``n`` synthetic stills (``n`` = 0: the real stills of ``dedup_stills``)."""
    from napari_video_extract.core.review import Review, ReviewSettings

    hashes, thumbs = _real_stills() if n == 0 else _synthetic(n, seed=1)
    n = len(hashes)
    start = _clock()
    review = Review(hashes, ReviewSettings(), thumbnails=thumbs)
    first_wall, first_cpu = _since(start)
    first_pairs = review._pairs.n_computed
    # What the dock does after the first clustering: every slider threshold
    # in the background, sharing the verified pairs.
    before = review._pairs.n_computed
    start = _clock()
    review.precompute(thresholds)
    pre_wall, pre_cpu = _since(start)
    times = []
    for t in thresholds:
        start = _clock()
        review.recluster(threshold=t)
        times.append(_since(start)[0])
    # A threshold whose clustering is not kept but whose pairs are all in the
    # memo (the slider ahead of the warm-up): the numpy placement.
    # Timed with process_time (os.times ticks are 10 ms): every thread.
    memo = []
    warm = review._pairs.n_computed
    load = os.getloadavg()
    results = {}
    for t in thresholds:
        review._clusterings.clear()
        start = time.perf_counter(), time.process_time()
        review.recluster(threshold=t)
        memo.append((time.perf_counter() - start[0], time.process_time() - start[1]))
        results[t] = review._result
    check = _keep_reclusterings(f"recluster_result_{n}.npz", results)
    walls, cpus = sorted(w for w, _ in memo), sorted(c for _, c in memo)
    mid = len(thresholds) // 2
    return {
        "stills": n,
        "thresholds": f"{min(thresholds)}-{max(thresholds)}",
        "first clustering (cold memo) wall s": round(first_wall, 2),
        "first clustering (cold memo) CPU s": round(first_cpu, 2),
        "pairs verified by it": first_pairs,
        "precompute wall s": round(pre_wall, 2),
        "precompute CPU s": round(pre_cpu, 2),
        "new pairs verified by the precompute": review._pairs.n_computed - before,
        "recluster after precompute (lookup), max ms": round(1e3 * max(times), 2),
        "recluster after precompute (lookup), median ms": round(1e3 * sorted(times)[mid], 2),
        "recluster, clustering not kept, warm memo: max wall ms": round(1e3 * walls[-1], 1),
        "recluster, warm memo: median wall ms": round(1e3 * walls[mid], 1),
        "recluster, warm memo: max CPU ms": round(1e3 * cpus[-1], 1),
        "recluster, warm memo: median CPU ms": round(1e3 * cpus[mid], 1),
        "pairs verified by those re-clusterings": review._pairs.n_computed - warm,
        "CPU ms per threshold (warm memo)": {
            t: round(1e3 * c, 1) for t, (_, c) in zip(thresholds, memo, strict=True)
        },
        "load average during those re-clusterings": [round(v, 2) for v in load],
        **check,
        "TARGET re-clustering < 100 ms (warm memo, clustering not kept): worst CPU ms / wall ms": (
            f"{1e3 * cpus[-1]:.1f} / {1e3 * walls[-1]:.1f}"
        ),
    }


def _video_stills(n: int, seed: int, out):
    """``n`` stills of one video: runs of near-identical stills (a shot each), ``out`` filled.

    Shots of 1-60 stills (geometric, mean 12) each show one of the real
    stills, drifting up to 6 px (a slow pan) with fresh noise per still; a
    still's hash is its shot's with 2 random bits flipped. Shots repeat
    (1,545 pictures for ~8,000 shots at 100,000 stills), as in an edited video.
    """
    import numpy as np

    hashes, thumbs = _real_stills()
    rng = np.random.default_rng(seed)
    words = np.empty((n, hashes.shape[1]), dtype=np.uint64)
    lo = 0
    while lo < n:
        length = min(int(min(rng.geometric(1 / 12), 60)), n - lo)
        src = int(rng.integers(0, len(hashes)))
        drift = rng.uniform(-0.5, 0.5, size=2)
        w = np.repeat(hashes[src][None], length, axis=0)
        for _ in range(2):
            w[:, 0] ^= np.left_shift(np.uint64(1), rng.integers(0, 64, length).astype(np.uint64))
        words[lo : lo + length] = w
        noise = rng.integers(-6, 7, size=(length, *thumbs.shape[1:]), dtype=np.int16)
        base = thumbs[src].astype(np.int16)
        for k in range(length):
            dy, dx = np.clip(np.rint(drift * k), -6, 6).astype(int)
            shifted = np.roll(base, (int(dy), int(dx)), axis=(0, 1))
            out[lo + k] = np.clip(shifted + noise[k], 0, 255).astype(np.uint8)
        lo += length
    return words


def _global_inputs(n: int):
    """Hashes, memory-mapped thumbnails and sequence ids of ``n`` video stills (made once)."""
    import numpy as np

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"video_thumbs_{n}.npy"
    words_path = OUT / f"video_hashes_{n}.npy"
    if not (path.exists() and words_path.exists()):
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 72, 128))
        words = _video_stills(n, seed=2, out=out)
        out.flush()
        del out
        np.save(words_path, words)
    return np.load(words_path), np.load(path, mmap_mode="r"), np.zeros(n, dtype=np.int64)


def run_global(n: int) -> dict:
    from napari_video_extract.core.dedup_settings import default_threshold
    from napari_video_extract.core.matching import cluster_verified

    words, thumbs, sequence = _global_inputs(n)
    made = _count_templates()
    spent = _time_parts()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = _clock()
    res = cluster_verified(
        words, thumbs, threshold=default_threshold(verify=True), sequence=sequence
    )
    wall, cpu = _since(start)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # What the floor and warm measurements replay (and must reproduce).
    check = _keep_result(f"video_result_{n}.npz", res, res.min_similarity)
    pairs = len(res.checked)
    return {
        "stills": n,
        "clusters": res.n_clusters,
        "verified pairs": pairs,
        "pairs per still": round(pairs / n, 2),
        "wall s": round(wall, 1),
        "CPU s": round(cpu, 1),
        "CPU ms per still": round(1e3 * cpu / n, 3),
        "CPU us per verified pair (search sides, templates and pairs)": round(
            1e6 * cpu / max(pairs, 1), 1
        ),
        "peak RSS MB (whole process)": round(rss1 / 1024),
        "RSS MB before clustering": round(rss0 / 1024),
        "templates made": made[0],
        **_parts_report(spent, n, pairs, made[0], cpu),
        f"TARGET 100,000 stills in < 10 s and < 1 GB; {n:,} stills here: "
        "wall s / CPU s / peak RSS MB": f"{wall:.1f} / {cpu:.1f} / {rss1 / 1024:.0f}",
        "load average after": [round(v, 2) for v in os.getloadavg()],
        **check,
    }


def run_global_floor(n: int) -> dict:
    """The loop's own cost: ``global`` again with each pair's similarity looked up.

    ``Verifier.score`` is replaced (here only) by a lookup of the similarity
    the ``global`` run verified, and the batched search sides by nothing, so
    the decisions, the pairs and the clusters are those of that run; what is
    left is the per-item loop and the hash-candidate search (timed apart).
    Then the same clustering with those pairs in a ``PairSimilarities`` memo:
    the numpy path the napari review takes when the pairs are known.
    """
    import numpy as np

    from napari_video_extract.core import matching, verify
    from napari_video_extract.core.dedup_settings import default_threshold
    from napari_video_extract.core.matching import PairSimilarities, cluster_verified

    words, thumbs, sequence = _global_inputs(n)
    saved = np.load(OUT / f"video_result_{n}.npz")
    values = dict(
        zip(
            zip(saved["kept"].tolist(), saved["item"].tolist(), strict=True),
            saved["similarity"].tolist(),
            strict=True,
        )
    )
    spent = {"distances": 0.0, "hash_candidates": 0.0}
    calls = {"distances": 0, "hash_candidates": 0}

    def timed(name, func):
        def wrapper(*args, **kwargs):
            t0 = time.process_time()
            calls[name] += 1
            try:
                return func(*args, **kwargs)
            finally:
                spent[name] += time.process_time() - t0

        return wrapper

    verify.Verifier.score = lambda self, kept, other: values[(kept, other)]
    verify.Verifier.searched = lambda self, items: [None] * len(items)
    verify.Verifier.add_searched = lambda self, items, found: None
    matching.distances = timed("distances", matching.distances)
    matching.hash_candidates = timed("hash_candidates", matching.hash_candidates)
    threshold = default_threshold(verify=True)
    start = _clock()
    res = cluster_verified(words, thumbs, threshold=threshold, sequence=sequence)
    wall, cpu = _since(start)
    same = bool(np.array_equal(res.cluster, saved["cluster"])) and len(res.checked) == len(values)
    search_cpu, cands_cpu = spent["distances"], spent["hash_candidates"]
    memo = PairSimilarities(n)
    memo.values.update(values)
    spent.update(distances=0.0, hash_candidates=0.0)
    add_block = matching.PairRecorder.add_block
    settled = [0]

    def counted(self, start, positions, rows, at):
        settled[0] += len(np.unique(at))  # a settled item has a checked pair
        return add_block(self, start, positions, rows, at)

    matching.PairRecorder.add_block = counted
    start = _clock()
    warm = cluster_verified(words, thumbs, threshold=threshold, sequence=sequence, pairs=memo)
    warm_wall, warm_cpu = _since(start)
    same_warm = bool(np.array_equal(warm.cluster, saved["cluster"])) and memo.n_computed == 0
    return {
        "stills": n,
        "verified pairs replayed": len(values),
        "same clusters as the global run": same,
        "loop floor wall s (similarities looked up)": round(wall, 2),
        "loop floor CPU s": round(cpu, 2),
        "loop floor CPU us per still": round(1e6 * cpu / n, 1),
        "of which hash distances to known representatives CPU s": round(search_cpu, 2),
        "of which per-item candidate lists CPU s": round(cands_cpu, 2),
        "pair memo path wall s": round(warm_wall, 2),
        "pair memo path CPU s": round(warm_cpu, 2),
        "pair memo path: same clusters, nothing verified": same_warm,
        "pair memo path: items placed one by one (the rest in numpy)": n - settled[0],
    }


def main() -> int:
    global OUT, REFERENCE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "parts", nargs="*", default=["stills", "recluster", "global", "global-floor"]
    )
    parser.add_argument(
        "--n-review", type=int, default=10_000, help="recluster stills (0: the real stills)"
    )
    parser.add_argument("--n-global", type=int, default=100_000)
    parser.add_argument(
        "--review-thresholds", default="0-32", help="slider thresholds of recluster (lo-hi)"
    )
    parser.add_argument(
        "--work", type=Path, default=OUT, help=f"inputs and results (default: {OUT})"
    )
    parser.add_argument(
        "--reference", type=Path, help="work folder of a reference run: compare decisions"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    OUT, REFERENCE = args.work, args.reference
    lo, _, hi = args.review_thresholds.partition("-")
    thresholds = list(range(int(lo), int(hi or lo) + 1))
    if args.child:
        funcs = {
            "stills": run_stills,
            "recluster": lambda: run_recluster(args.n_review, thresholds),
            "global": lambda: run_global(args.n_global),
            "global-floor": lambda: run_global_floor(args.n_global),
        }
        print(json.dumps(funcs[args.child]()))
        return 0
    print(f"load average before: {os.getloadavg()}")
    for part in args.parts:
        cmd = [sys.executable, __file__, "--child", part,
               "--n-review", str(args.n_review), "--n-global", str(args.n_global),
               "--review-thresholds", args.review_thresholds, "--work", str(OUT)]  # fmt: skip
        if REFERENCE is not None:
            cmd += ["--reference", str(REFERENCE)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            print(f"{part}: failed\n{out.stderr}")
            continue
        print(f"\n## {part} (load average now {os.getloadavg()})")
        for key, value in json.loads(out.stdout.strip().splitlines()[-1]).items():
            print(f"- {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
