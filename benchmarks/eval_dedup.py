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

Run: ``.venv/bin/python benchmarks/eval_dedup.py`` (one to two minutes).
``--set second`` uses a disjoint set (other scikit-image pictures and stills
of the real clips in ``../shared/media``) to check that a default is not tuned
to the first; ``--seed N`` changes order, pans, zoom speed and noise;
``--candidates`` adds the sweeps of other hash settings the default was chosen
from. Needs scikit-image (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
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
from napari_video_extract.core.hashing import (
    DEFAULT_THRESHOLDS_64,
    METHODS,
    default_threshold,
    hamming_bits,
    hash_bits,
    hash_files,
)

WORK = Path(__file__).parent / "_work" / "eval"
MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
PHOTOS = ["astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "hubble_deep_field",
          "immunohistochemistry", "moon", "page", "text", "brick", "grass", "gravel",
          "colorwheel", "retina", "motorcycle"]  # fmt: skip
#: A second, disjoint set to check that a default is not tuned to the first:
#: other scikit-image pictures (drawings, microscopy, synthetic) and stills of
#: the real clips in ../shared/media ("clip:NAME@SECONDS").
PHOTOS_SECOND = ["clock", "cell", "logo", "horse", "microaneurysms", "binary_blobs",
                 "shepp_logan_phantom", "checkerboard", "clip:bbb_720p_h264_5s.mp4@2",
                 "clip:city_cc0_mpeg2.mpg@3", "clip:tree_cinepak.avi@12",
                 "clip:vtest_surveillance_msmpeg4.avi@30", "clip:bbb_720p_vp8_30s.webm@20"]  # fmt: skip
SECONDS_EACH = 4
FPS = 25


def _clip_still(spec: str) -> np.ndarray | None:
    clip, _, seconds = spec.removeprefix("clip:").partition("@")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-ss", seconds,
           "-i", str(MEDIA / clip), "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode or not proc.stdout:
        return None
    import io

    return np.asarray(Image.open(io.BytesIO(proc.stdout)).convert("RGB"))


def _photo(name: str) -> np.ndarray | None:
    import skimage.data

    if name.startswith("clip:"):
        return _clip_still(name)
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
    if image.ndim == 3 and image.shape[2] == 4:  # logo: flatten onto white
        alpha = image[..., 3:].astype(np.float64) / 255
        image = (image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        image = (255 * (image - image.min()) / max(1e-9, np.ptp(image))).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def build_video(ffmpeg: str, photos: list[str], seed: int) -> tuple[Path, list[str]]:
    """Video of the photographs; returns its path and the photo shown each second.

    ``seed`` 0 is the original layout; other seeds shuffle the order, pick the
    photograph shown twice, the pan directions, zoom speed and noise pattern.
    """
    WORK.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = [n for n in photos if _photo(n) is not None]
    if seed:
        rng.shuffle(names)
    sequence = [*names, names[0]]  # the first photograph again, far apart
    zoom = 0.0005 if not seed else rng.choice([0.0003, 0.0005, 0.0007])
    parts = []
    for i, name in enumerate(sequence):
        safe = name.replace(":", "_").replace("@", "_")
        still = WORK / f"src_{safe}.png"
        if not still.exists():
            Image.fromarray(_photo(name)).resize((1280, 720), Image.Resampling.LANCZOS).save(still)
        clip = WORK / f"clip_s{seed}_{i:02d}_{safe}.mp4"
        right = (i % 2 == 1) if not seed else rng.random() < 0.5
        if clip.exists():
            parts.append(clip)
            continue
        n = SECONDS_EACH * FPS
        x = "iw/2-(iw/zoom/2)" + ("+on" if right else "-on") + "*0.2"
        vf = (  # slight: 5 % zoom and a 20-pixel pan over the shot
            f"zoompan=z='1+{zoom}*on':x='{x}':y='ih/2-(ih/zoom/2)':d={n}:s=1280x720:fps={FPS},"
            "noise=alls=12:allf=t+u"
            + (f":all_seed={seed * 1000 + i}" if seed else "")
            + ",format=yuv420p"
        )
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-loop", "1", "-i", str(still), "-vf", vf,
               "-frames:v", str(n), "-c:v", "libx264", "-preset", "veryfast", "-crf", "26",
               str(clip)]  # fmt: skip
        subprocess.run(cmd, check=True)
        parts.append(clip)
    listing = WORK / f"parts_s{seed}.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    video = WORK / f"truth_s{seed}.mp4"
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
           "-c", "copy", str(video)]  # fmt: skip
    subprocess.run(cmd, check=True)
    labels = [name for name in sequence for _ in range(SECONDS_EACH)]
    return video, labels


def extract_stills(ffmpeg: str, video: Path, n: int) -> Path:
    out = WORK / f"stills_{video.stem}"
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


def _ours(files, method, hash_size, crop_borders=True):
    return hash_files(
        files,
        method=method,
        hash_size=hash_size,
        crop_borders=crop_borders,
        use_cache=False,
        write_cache=False,
    ).hash_array()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("first", "second"), default="first",
                        help="photographs: the original set or a disjoint second one")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0,
                        help="0: original layout; else shuffle order, pans, zoom, noise")  # fmt: skip
    parser.add_argument("--candidates", action="store_true",
                        help="also sweep other hash settings (what the default was chosen from)")  # fmt: skip
    args = parser.parse_args()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    t0 = time.perf_counter()
    photos = PHOTOS if args.set == "first" else PHOTOS_SECOND
    video, labels = build_video(ffmpeg, photos, args.seed)
    video = video.rename(video.with_name(f"truth_{args.set}_s{args.seed}.mp4"))
    stills_dir = extract_stills(ffmpeg, video, len(labels))
    files = sorted(stills_dir.glob("*.jpg"))
    labels = labels[: len(files)]
    print(f"set {args.set}, seed {args.seed}: {len(files)} stills of {len(set(labels))} "
          f"photographs ({labels[0]} shown twice), built in {time.perf_counter() - t0:.0f} s\n")  # fmt: skip

    listing = list(files)
    random.Random(args.seed).shuffle(listing)  # what os.listdir may give

    def run(words, t, mode="global"):
        res = cluster_hashes(words, threshold=t, mode=mode)
        return score(labels, res.cluster.tolist(), res.kept.tolist())

    rows = []
    method, hash_size = METHODS[0], 8
    default = default_threshold(method, hash_size)
    words = _ours(files, method, hash_size)
    rows.append((f"**ours, defaults ({method}, {hash_size}, t={default})**", run(words, default)))
    rows.append((f"ours {method} sequential t={default}", run(words, default, "sequential")))
    for t in range(6, 23, 2):
        rows.append((f"ours {method} global t={t}", run(words, t)))
    others = [("dhash", 8), ("ahash", 8), ("whash", 8)]
    if args.candidates:
        others += [("phash", 16), ("dhash", 16)]
        rows.append(("ours phash, no border crop, t=12", run(_ours(files, "phash", 8, False), 12)))
    for m, hs in others:
        w = _ours(files, m, hs)
        scale = hash_bits(m, hs) / 64
        sweep = range(6, 23, 2) if args.candidates else [DEFAULT_THRESHOLDS_64[m]]
        for t64 in sweep:
            t = max(1, round(t64 * scale))
            rows.append((f"ours {m} hash_size {hs} global t={t} ({t64}/64)", run(w, t)))

    def in_listing_order(fn, *fn_args):
        cluster, kept = fn(listing, *fn_args)
        back = [0] * len(files)
        back_k = [False] * len(files)
        for f, c, k in zip(listing, cluster, kept, strict=True):
            back[files.index(f)], back_k[files.index(f)] = c, k
        return back, back_k

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

    # Distance distribution behind the default (in bits of the default hash).
    d = hamming_bits(words[:, None, :], words[None, :, :])
    same = np.array([[a == b for b in labels] for a in labels])
    off = ~np.eye(len(labels), dtype=bool)
    print(f"\n{method} distances: same photograph max {d[same & off].max()}, "
          f"99th pct {np.percentile(d[same & off], 99):.0f}; "
          f"different photographs min {d[~same].min()}, 1st pct {np.percentile(d[~same], 1):.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
