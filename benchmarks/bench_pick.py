"""``--pick exact`` against ``--pick sharpest``: how much sharper, at what cost.

On real clips with camera motion (Big Buck Bunny VP8, the city MPEG-2 pan
from ``../shared/media``), extracts one still every ``--every`` seconds with
``exact`` and with ``sharpest`` at each ``--window``, as PNG (lossless, so the
stills' pixels are the decoded frames'), and prints per run:

* mean and median sharpness of the written stills (variance of the
  Laplacian, :func:`napari_video_extract.core.pick.frame_sharpness`,
  measured on the image files the run wrote, the same way for every run),
* the share of instants where ``sharpest`` kept another frame than ``exact``
  and how far it moved (mean and largest shift, seconds),
* frames decoded (``exact``: one per still; ``sharpest``: every frame of the
  windows, :func:`napari_video_extract.core.pick.sample_windows`),
* wall time (median of ``--repeat`` runs, each into a fresh folder) and the
  extra time relative to ``exact``.

Run: ``python benchmarks/bench_pick.py`` (both clips), or give clip paths.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from napari_video_extract.core.extract import Interval, extract_video  # noqa: E402
from napari_video_extract.core.pick import Pick, frame_sharpness, sample_windows  # noqa: E402
from napari_video_extract.core.probe import probe  # noqa: E402
from napari_video_extract.core.sampling import samples_for  # noqa: E402

CLIPS = ("bbb_720p_vp8_30s.webm", "city_cc0_mpeg2.mpg")
MEDIA_DIRS = (REPO.parent / "shared" / "media", Path("/work/shared/media"))


def _default_clips() -> list[Path]:
    for media in MEDIA_DIRS:
        found = [media / c for c in CLIPS if (media / c).is_file()]
        if found:
            return found
    return []


def _run(video: Path, spec: Interval, pick: Pick, repeat: int, workers: int):
    """(median seconds, records, sharpness of each written still) of one setting."""
    times = []
    records, sharp = [], []
    for _ in range(repeat):
        out = Path(tempfile.mkdtemp(prefix="bench_pick_"))
        try:
            t0 = time.perf_counter()
            result = extract_video(video, out, spec, fmt="png", pick=pick, workers=workers)
            times.append(time.perf_counter() - t0)
            if not result.ok:
                raise SystemExit(f"{video}: {result.error}")
            records = sorted(result.records, key=lambda r: r.requested_time)
            sharp = []
            for r in records:
                with Image.open(out / r.file) as im:
                    sharp.append(frame_sharpness(np.asarray(im.convert("RGB"))))
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return statistics.median(times), records, sharp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path, help="videos (default: bbb and city)")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between stills")
    parser.add_argument(
        "--window", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="sharpest windows"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--workers", type=int, default=2, help="decoder processes per video")
    args = parser.parse_args(argv)
    clips = args.clips or _default_clips()
    if not clips:
        print("no clips: give video paths (the real clips live in ../shared/media)")
        return 1

    for video in clips:
        info = probe(video)
        spec = Interval(every=args.every)
        samples = samples_for(info.frame_times, spec.times(info))
        print(
            f"\n{video.name}: {info.codec} {info.width}x{info.height}, {info.duration:.1f} s, "
            f"{info.frame_count} frames; {len(samples)} stills every {args.every:g} s, "
            f"median of {args.repeat} run(s), {args.workers} decoder(s)"
        )
        print(
            f"{'pick':<17}{'mean sharp':>11}{'median':>9}{'changed':>9}{'mean shift':>11}"
            f"{'max shift':>10}{'decoded':>9}{'seconds':>9}{'extra':>8}"
        )
        base_s, base_recs, base_sharp = _run(video, spec, Pick(), args.repeat, args.workers)
        rows = [("exact", base_s, base_recs, base_sharp, len(samples))]
        for window in args.window:
            pick = Pick("sharpest", window=window)
            decoded = sum(len(r) for r in sample_windows(info.frame_times, samples, window))
            s, recs, sharp = _run(video, spec, pick, args.repeat, args.workers)
            rows.append((f"sharpest {window:g} s", s, recs, sharp, decoded))
        for name, s, recs, sharp, decoded in rows:
            shifts = [abs(r.time - b.time) for r, b in zip(recs, base_recs, strict=True)]
            changed = sum(r.frame != b.frame for r, b in zip(recs, base_recs, strict=True))
            extra = "" if name == "exact" else f"{s / base_s:7.2f}x"
            print(
                f"{name:<17}{statistics.fmean(sharp):11.1f}{statistics.median(sharp):9.1f}"
                f"{changed / len(recs):8.0%} {statistics.fmean(shifts):10.3f}"
                f"{max(shifts):10.3f}{decoded:9d}{s:9.2f}{extra:>8}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
