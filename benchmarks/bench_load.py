"""Hardening figures: malformed-corpus outcomes, and load at full size.

Run:  python benchmarks/bench_load.py [--videos 200] [--stills 20000]

Prints
* the malformed corpus (tests/hardening/corpus.py): files tried, outcome
  counts (stills / partial / error), slowest file;
* a batch of N tiny videos and a dedup of M tiny stills, each a CLI
  subprocess with ``ulimit -n 256``: wall time, peak RSS, max open fds, max
  live child processes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hardening._media import MEDIA, run_cli
from hardening.corpus import build_corpus
from hardening.load import (
    make_stills,
    make_video_batch,
    memory_is_flat,
    run_watched,
)


def corpus_figures(tmp: Path) -> None:
    files = build_corpus(tmp / "corpus", MEDIA if MEDIA.is_dir() else None)

    def one(item):
        run = run_cli(
            "interval", item.path, "--every", "1", "-q", "-o", tmp / "o" / item.path.name
        )
        if run.returncode == 0:
            return "partial" if "could not be decoded" in run.stderr else "stills", run
        if run.returncode == 1 and len(run.error_lines) == 1 and "Traceback" not in run.stderr:
            return "error", run
        return "WRONG", run

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, files))
    counts = Counter(kind for kind, _ in results)
    slowest = max(r.seconds for _, r in results)
    print(f"malformed corpus: {len(files)} files tried: {dict(counts)}; slowest {slowest:.1f} s")
    by_kind = Counter((f.expect, kind) for f, (kind, _) in zip(files, results, strict=True))
    print("  by expectation:", dict(by_kind))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--stills", type=int, default=20_000)
    parser.add_argument("--no-corpus", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nve-bench-load-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.no_corpus:
            corpus_figures(tmp)
        make_video_batch(tmp / "videos", args.videos)
        run = run_watched(
            "interval", tmp / "videos", "--every", "0.5", "--jobs", "2", "-q", "-o", tmp / "out"
        )
        print(
            f"batch of {args.videos} videos: {run.figures()}; "
            f"memory flat: {memory_is_flat(run.rss_samples_mb)}"
        )
        make_stills(tmp / "stills", args.stills)
        run = run_watched("dedup", tmp / "stills", "-q")
        print(
            f"dedup of {args.stills} stills: {run.figures()}; "
            f"memory flat: {memory_is_flat(run.rss_samples_mb)}"
        )


if __name__ == "__main__":
    main()
