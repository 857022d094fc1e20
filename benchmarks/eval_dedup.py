"""Quality of near-duplicate detection on a ground-truth video.

Builds an H.264 video from scikit-image's bundled photographs, each shown for a
few seconds with a slow zoom/pan and noise (ffmpeg zoompan + noise), with one
photograph shown twice far apart; extracts one still per second with ffmpeg;
then scores, pairwise over the stills ("same photograph" = duplicate):

* ours (phash, default threshold, global mode) and a threshold sweep;
* the naive script: dHash hex strings, distance = differing hex *characters*,
  each image compared with every earlier one (including already moved ones),
  directory listing order;
* plain imagehash loops (``h1 - h2 <= t``, first match wins, listing order).

Run: ``/work/venv/bin/python benchmarks/eval_dedup.py`` (about a minute).
Needs scikit-image (``pip install -e .[bench]``).
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import imagehash
import imageio_ffmpeg
import numpy as np
from PIL import Image

from napari_video_extract.core.dedup import cluster_hashes
from napari_video_extract.core.hashing import default_threshold, hash_files

WORK = Path(__file__).parent / "_work" / "eval"
PHOTOS = ["astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "hubble_deep_field",
          "immunohistochemistry", "moon", "page", "text", "brick", "grass", "gravel",
          "colorwheel", "retina", "motorcycle"]  # fmt: skip
SECONDS_EACH = 4
FPS = 25


def _photo(name: str) -> np.ndarray | None:
    import skimage.data

    if name == "motorcycle":
        loader = lambda: skimage.data.stereo_motorcycle()[0]  # noqa: E731
    else:
        loader = getattr(skimage.data, name, None)
    if loader is None:
        return None
    try:
        image = np.asarray(loader())
    except Exception:  # some images need pooch downloads: skip them
        return None
    if image.dtype != np.uint8:
        image = (255 * (image - image.min()) / max(1e-9, np.ptp(image))).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def build_video(ffmpeg: str) -> tuple[Path, list[str]]:
    """Video of the photographs; returns its path and the photo shown each second."""
    WORK.mkdir(parents=True, exist_ok=True)
    names = [n for n in PHOTOS if _photo(n) is not None]
    sequence = [*names, names[0]]  # the first photograph again, far apart
    parts = []
    for i, name in enumerate(sequence):
        still = WORK / f"src_{name}.png"
        if not still.exists():
            Image.fromarray(_photo(name)).resize((1280, 720), Image.Resampling.LANCZOS).save(still)
        clip = WORK / f"clip_{i:02d}_{name}.mp4"
        if clip.exists():
            parts.append(clip)
            continue
        n = SECONDS_EACH * FPS
        x = "iw/2-(iw/zoom/2)" + ("+on" if i % 2 else "-on") + "*0.2"
        vf = (  # slight: 5 % zoom and a 20-pixel pan over the shot
            f"zoompan=z='1+0.0005*on':x='{x}':y='ih/2-(ih/zoom/2)':d={n}:s=1280x720:fps={FPS},"
            "noise=alls=12:allf=t+u,format=yuv420p"
        )
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-loop", "1", "-i", str(still), "-vf", vf,
               "-frames:v", str(n), "-c:v", "libx264", "-preset", "veryfast", "-crf", "26",
               str(clip)]  # fmt: skip
        subprocess.run(cmd, check=True)
        parts.append(clip)
    listing = WORK / "parts.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    video = WORK / "truth.mp4"
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
           "-c", "copy", str(video)]  # fmt: skip
    subprocess.run(cmd, check=True)
    labels = [name for name in sequence for _ in range(SECONDS_EACH)]
    return video, labels


def extract_stills(ffmpeg: str, video: Path, n: int) -> Path:
    out = WORK / "stills"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    # One still at the middle of each second.
    cmd = [ffmpeg, "-loglevel", "error", "-i", str(video), "-vf", "fps=1:start_time=0.5",
           "-frames:v", str(n), "-q:v", "3", str(out / "still_%04d.jpg")]  # fmt: skip
    subprocess.run(cmd, check=True)
    return out


def score(labels: list[str], cluster: list[int], kept: list[bool]) -> dict:
    """Pairwise precision/recall/F1 of 'same cluster' vs 'same photograph'."""
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        same_truth, same_pred = labels[i] == labels[j], cluster[i] == cluster[j]
        tp += same_truth and same_pred
        fp += same_pred and not same_truth
        fn += same_truth and not same_pred
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    kept_photos = [labels[i] for i in range(len(labels)) if kept[i]]
    lost = len(set(labels) - set(kept_photos))
    redundant = len(kept_photos) - len(set(kept_photos))
    return {"P": precision, "R": recall, "F1": f1, "lost": lost, "redundant": redundant}


def naive_hexchar_dhash(files: list[Path], threshold: int) -> tuple[list[int], list[bool]]:
    """The user's script: hex-character distance, compare with every earlier image."""
    hexes = [str(imagehash.dhash(Image.open(f))) for f in files]
    moved = [False] * len(files)
    cluster = list(range(len(files)))
    for i in range(len(files)):
        for j in range(i):  # including images already moved
            if sum(c1 != c2 for c1, c2 in zip(hexes[i], hexes[j], strict=True)) <= threshold:
                moved[i] = True
                cluster[i] = cluster[j]
                break
    return cluster, [not m for m in moved]


def plain_imagehash(files: list[Path], func, threshold: int) -> tuple[list[int], list[bool]]:
    """Plain loop: ``h1 - h2 <= t`` against every earlier kept image, first match wins."""
    hashes = [func(Image.open(f)) for f in files]
    kept_idx: list[int] = []
    cluster = [0] * len(files)
    for i, h in enumerate(hashes):
        for j in kept_idx:
            if h - hashes[j] <= threshold:
                cluster[i] = cluster[j]
                break
        else:
            kept_idx.append(i)
            cluster[i] = i
    return cluster, [i in set(kept_idx) for i in range(len(files))]


def main() -> int:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    t0 = time.perf_counter()
    video, labels = build_video(ffmpeg)
    stills_dir = extract_stills(ffmpeg, video, len(labels))
    files = sorted(stills_dir.glob("*.jpg"))
    labels = labels[: len(files)]
    print(f"{len(files)} stills of {len(set(labels))} photographs "
          f"({labels[0]} shown twice), built in {time.perf_counter() - t0:.0f} s\n")  # fmt: skip

    listing = list(files)
    random.Random(0).shuffle(listing)  # what os.listdir may give
    pos = {f: k for k, f in enumerate(listing)}

    rows = []
    hashes = hash_files(files, method="phash", hash_size=8, use_cache=False, write_cache=False)
    words = hashes.hash_array()
    default = default_threshold("phash", 8)
    for t in range(4, 25, 2):
        res = cluster_hashes(words, threshold=t)
        s = score(labels, res.cluster.tolist(), res.kept.tolist())
        rows.append((f"ours phash global t={t}" + (" (default)" if t == default else ""), s))
    res = cluster_hashes(words, threshold=default, mode="sequential")
    rows.append(
        (
            f"ours phash sequential t={default}",
            score(labels, res.cluster.tolist(), res.kept.tolist()),
        )
    )
    for method in ("dhash", "whash", "ahash"):
        t = default_threshold(method, 8)
        w = hash_files(files, method=method, use_cache=False, write_cache=False).hash_array()
        res = cluster_hashes(w, threshold=t)
        rows.append(
            (f"ours {method} global t={t}", score(labels, res.cluster.tolist(), res.kept.tolist()))
        )

    def in_listing_order(fn, *args):
        cluster, kept = fn(listing, *args)
        back = [0] * len(files)
        back_k = [False] * len(files)
        for f, c, k in zip(listing, cluster, kept, strict=True):
            back[files.index(f)], back_k[files.index(f)] = c, k
        return back, back_k

    del pos
    for t in (2, 4, 6):
        c, k = in_listing_order(naive_hexchar_dhash, t)
        rows.append((f"naive hex-char dHash t={t} (listing order)", score(labels, c, k)))
    for name, func, t in [("phash", imagehash.phash, 10), ("phash", imagehash.phash, 12),
                          ("dhash", imagehash.dhash, 10), ("average_hash", imagehash.average_hash, 8)]:  # fmt: skip
        c, k = in_listing_order(plain_imagehash, func, t)
        rows.append((f"plain imagehash {name} t={t}", score(labels, c, k)))

    print("| method | precision | recall | F1 | lost | redundant kept |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in rows:
        print(
            f"| {name} | {s['P']:.3f} | {s['R']:.3f} | {s['F1']:.3f} | {s['lost']} | {s['redundant']} |"
        )

    # Distance distribution behind the default.
    d = (np.bitwise_count(words[:, None, 0] ^ words[None, :, 0])).astype(int)
    same = np.array([[a == b for b in labels] for a in labels])
    off = ~np.eye(len(labels), dtype=bool)
    print(f"\nphash-64 distances: same photograph max {d[same & off].max()}, "
          f"99th pct {np.percentile(d[same & off], 99):.0f}; "
          f"different photographs min {d[~same].min()}, 1st pct {np.percentile(d[~same], 1):.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
