"""Ground-truth videos for ``eval_dedup.py``: the sets, their pictures, how they are built.

Every picture ships with an installed package (scikit-image's bundled
``skimage.data`` files, its LFW subset, napari's bundled screenshot of
fluorescent cells); nothing is downloaded. A set's video shows each picture
for ``seconds`` seconds with a slow continuous zoom, a pan and temporal
sensor noise (ffmpeg ``zoompan`` + ``noise``), optionally the lens vignetting
of a microscope or cheap camera (ffmpeg ``vignette``, fixed in the frame, so
the same on every picture), the first picture shown again at the end, all
encoded with H.264 at the set's CRF. One still a second is taken at the
middle of each second, with a ``frames.csv`` as the extractor writes.
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FPS = 25
SIZE = (1280, 720)


@dataclass(frozen=True)
class EvalSet:
    """One ground-truth video.

    ``pictures`` are specs for :func:`picture`: ``"name"`` or
    ``"name[x0,y0,x1,y1]"`` (a region, fractions of the image).
    """

    name: str
    pictures: tuple[str, ...]
    seed: int
    crf: int
    zoom: float  # total zoom over a shot (0.08 = 8 %)
    pan: int  # pixels of pan over a shot, at 1280x720
    noise: int
    seconds: int = 4  # stills per picture (one a second)
    vignette: bool = False


PHOTOS_A = ("astronaut", "coffee", "chelsea", "camera", "rocket", "hubble_deep_field",
            "moon", "clock")  # fmt: skip
# skimage.data.cat() is chelsea again: not a different picture.
PHOTOS_B = ("immunohistochemistry", "horse", "colorwheel", "logo", "retina", "motorcycle",
            "shepp_logan_phantom", "microaneurysms")  # fmt: skip


def _regions(name: str, boxes) -> tuple[str, ...]:
    return tuple(f"{name}[{','.join(str(v) for v in box)}]" for box in boxes)


# Different, non-overlapping regions of one picture: "different pictures of the same kind".
_THIRDS = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5), (0.0, 0.5, 0.5, 1.0), (0.5, 0.5, 1.0, 1.0)]
_HALVES = [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)]

# Periodic patterns as they are filmed: a calibration target (a checkerboard
# of 16x16 or 24x24 squares: scikit-image's 8x8 board tiled) and brick walls
# with many repeats (its brick texture tiled 2x2 or 3x3). Under a slow zoom
# their fine period slides against a hash's coarse grid, which is what split
# the checkerboard and brick wall; a board of 8x8 squares blown up to
# the frame does not. Regions of a tiled pattern would repeat one another, so
# hard negatives are regions of the untiled pictures.
_TARGETS = ("checkerboard*2", "checkerboard*3")
_WALLS = ("brick*2", "brick*3")

SETS = (
    # Photographs, with hard negatives of their own kind: neighbouring
    # fields of one aerial survey (PyWavelets' bundled aerial photograph,
    # installed with imagehash) and of the Hubble deep field.
    EvalSet(
        "photos-a",
        PHOTOS_A + _regions("aero", _THIRDS) + ("checkerboard*3",),
        seed=1,
        crf=23,
        zoom=0.04,
        pan=12,
        noise=10,
        seconds=6,
    ),
    EvalSet(
        "photos-b",
        PHOTOS_B + _regions("hubble_deep_field", _THIRDS) + ("brick*3", "checkerboard*2"),
        seed=2,
        crf=30,
        zoom=0.06,
        pan=16,
        noise=12,
        seconds=6,
    ),
    EvalSet(
        "photos-hard",
        PHOTOS_A
        + PHOTOS_B
        + _regions("ascent", _HALVES)
        + _regions("moon", _HALVES[:1])
        + _TARGETS,
        seed=3,
        crf=35,
        zoom=0.08,
        pan=24,
        noise=14,
    ),
    EvalSet(
        "textures",
        _regions("brick", _THIRDS)
        + _WALLS
        + _regions("grass", _THIRDS[:3])
        + _regions("gravel", _THIRDS[:3])
        + _TARGETS,
        seed=4,
        crf=30,
        zoom=0.06,
        pan=16,
        noise=12,
        seconds=6,
    ),
    # The hidden evaluation as described: slow 4 % zoom, 12 px pan,
    # sensor noise, CRF 30, one still a second, 4 stills a picture; a
    # checkerboard, a brick wall, a clock and a cell image among photographs,
    # with a second picture of each kind but the clock (a field of
    # fluorescent cells, a gravel path, a page of text, a coarser board).
    EvalSet(
        "issue-like",
        (
            *("checkerboard*3", "brick*3", "clock", "cell", "chelsea", "coins", "camera"),
            *("text", "astronaut", "coffee", "moon", "rocket"),
            *("napari_cells[0,0,0.5,0.5]", "gravel", "page", "checkerboard*2"),
        ),
        seed=6,
        crf=30,
        zoom=0.04,
        pan=12,
        noise=10,
    ),
    # Periodic and random textures under a strong zoom and pan, CRF 35: the
    # same texture must stay one cluster; boards of other periods, other
    # crops and other random blob fields (near-equal hashes) must not merge.
    EvalSet(
        "periodic-zoom",
        (
            *_TARGETS,
            "checkerboard*4",
            "blobs:1",
            "blobs:2",
            "blobs:3",
            *_regions("brick", _HALVES),
            "brick*3",
            *_regions("grass", _HALVES),
        ),
        seed=7,
        crf=35,
        zoom=0.08,
        pan=24,
        noise=14,
        seconds=6,
    ),
    # Different people's faces (scikit-image's bundled LFW subset, 25x25 px
    # each, blown up; its first 100 are faces): soft pictures of one kind
    # whose hashes are close, the more so the more faces there are.
    EvalSet(
        "faces",
        tuple(f"face:{k}" for k in range(0, 100, 4)),
        seed=8,
        crf=30,
        zoom=0.06,
        pan=16,
        noise=12,
        seconds=5,
    ),
    EvalSet(
        "pages-cells-coins",
        _regions("page", _HALVES)
        + _regions("text", _HALVES)
        + _regions("coins", _THIRDS)
        + _regions("cell", _THIRDS)
        + _regions("immunohistochemistry", _THIRDS[:3])
        + ("checkerboard*3",),  # a scanner's or a microscope's calibration target
        seed=5,
        crf=35,
        zoom=0.08,
        pan=20,
        noise=14,
        seconds=6,
    ),
    # Longer shots at the rate of motion (1 % zoom and 3 px of pan a
    # second): 8 stills a picture, so a shot's first and last still are 7 %
    # of zoom and 21 px apart and their hashes far apart, as in real slow
    # camera moves; the hard negatives of each set hash close together.
    EvalSet(
        "issue-long",
        (
            "checkerboard*2",
            "brick*2",
            "clock",
            "cell",
            "chelsea",
            "coins",
            "camera",
            "text",
            "microaneurysms",
        ),
        seed=15,
        crf=30,
        zoom=0.08,
        pan=24,
        noise=12,
        seconds=8,
    ),
    EvalSet(
        "textures-long",
        (*_TARGETS, *_WALLS, "grass", "gravel", "blobs:4", "coins", "text", "page"),
        seed=12,
        crf=30,
        zoom=0.08,
        pan=24,
        noise=12,
        seconds=8,
    ),
    # Pages of text and coins: different pages look alike to a hash.
    EvalSet(
        "documents-long",
        _regions("page", _THIRDS)
        + _regions("text", _THIRDS)
        + _regions("coins", _THIRDS[:2])
        + ("checkerboard*3",),  # a scanner's calibration target
        seed=17,
        crf=30,
        zoom=0.08,
        pan=24,
        noise=12,
        seconds=8,
    ),
    # A slide-scanning session: different fields of fluorescent cells (napari's
    # screenshot), of a cell and of tissue, a calibration grid (checkerboard)
    # and blob fields, through optics that darken the corners (the same
    # vignetting on every field pulls the coarse hashes together).
    EvalSet(
        "microscope-long",
        _regions("napari_cells", _THIRDS)
        + _regions("cell", _THIRDS)
        + _regions("immunohistochemistry", _THIRDS[:2])
        + ("checkerboard", "blobs:5", "blobs:6"),
        seed=16,
        crf=30,
        zoom=0.08,
        pan=24,
        noise=12,
        seconds=8,
        vignette=True,
    ),
    # Everything at once, like the hidden video: textures, text,
    # cells and coins among photographs.
    EvalSet(
        "mixed-long",
        (
            *("checkerboard*3", "brick*2", "grass", "gravel", "chelsea", "camera", "clock"),
            *_regions("text", _THIRDS[:2]),
            *_regions("napari_cells", _THIRDS[:2]),
            *_regions("coins", _THIRDS[:2]),
            *_regions("aero", _THIRDS[:2]),
        ),
        seed=18,
        crf=30,
        zoom=0.08,
        pan=24,
        noise=12,
        seconds=8,
    ),
)

#: Where napari's bundled screenshot shows its fluorescence image (pixels).
_NAPARI_CELLS_BOX = (490, 86, 1300, 900)


def _napari_cells() -> np.ndarray:
    import napari.resources

    path = Path(napari.resources.__file__).parent / "multichannel_cells.png"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").crop(_NAPARI_CELLS_BOX))


def picture(spec: str) -> np.ndarray:
    """RGB uint8 picture for a spec: a bundled picture or a region of one."""
    import skimage.data

    name, _, box = spec.partition("[")
    name, _, tiles = name.partition("*")
    name, _, arg = name.partition(":")
    if name == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]
    elif name == "blobs":  # a random binary blob field, generated (not downloaded)
        image = skimage.data.binary_blobs(512, blob_size_fraction=0.08, rng=int(arg))
    elif name == "face":
        image = skimage.data.lfw_subset()[int(arg)]
    elif name == "napari_cells":
        image = _napari_cells()
    elif name in ("aero", "ascent"):  # PyWavelets' bundled photographs (imagehash needs it)
        import pywt.data

        image = getattr(pywt.data, name)()
    else:
        image = getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4:  # logo: flatten onto white
        alpha = image[..., 3:].astype(np.float64) / 255
        image = (image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        image = (255 * (image - image.min()) / max(1e-9, np.ptp(image))).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if tiles:  # a pattern with more repeats: n x n copies side by side
        image = np.tile(image, (int(tiles), int(tiles), 1))
    if box:
        x0, y0, x1, y1 = (float(v) for v in box.rstrip("]").split(","))
        h, w = image.shape[:2]
        image = image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]
    return np.ascontiguousarray(image[..., :3])


def build_video(ffmpeg: str, spec: EvalSet, work: Path) -> tuple[Path, list[str]]:
    """The set's video (built once under ``work``); its path and the picture of each second."""
    out = work / spec.name
    out.mkdir(parents=True, exist_ok=True)
    # Clips are reused only if they were made from this very definition; the
    # stamp (written by this function) proves the clips are ours to replace.
    # Clips without a stamp are of an unknown definition: neither reused nor
    # deleted.
    stamp = out / "spec.txt"
    clips = [*out.glob("clip_*.mp4"), *out.glob("part_*.mp4"), out / "truth.mp4"]
    if not stamp.exists() and any(c.exists() for c in clips):
        raise SystemExit(f"{out}: clips without spec.txt (an older definition?); use --work")
    if stamp.exists() and stamp.read_text() != repr(spec):
        for old in [*clips, *out.glob("src_*.png")]:
            old.unlink(missing_ok=True)
    stamp.write_text(repr(spec))
    rng = random.Random(spec.seed)
    names = list(spec.pictures)
    rng.shuffle(names)
    sequence = [*names, names[0]]  # the first picture again, far apart
    n = spec.seconds * FPS
    parts = []
    for i, name in enumerate(sequence):
        safe = "".join(c if c.isalnum() else "_" for c in name)
        still = out / f"src_{safe}.png"
        if not still.exists():
            Image.fromarray(picture(name)).resize(SIZE, Image.Resampling.LANCZOS).save(still)
        clip = out / f"clip_{i:02d}_{safe}.mp4"
        part = out / f"part_{i:02d}_{safe}.mp4"
        parts.append(clip)
        if clip.exists():
            continue
        rate = spec.zoom / n
        direction = rng.choice([-1, 1])
        step = spec.pan / n
        x = f"iw/2-(iw/zoom/2){'+' if direction > 0 else '-'}on*{step:.4f}"
        vf = (
            f"zoompan=z='1+{rate:.6f}*on':x='{x}':y='ih/2-(ih/zoom/2)':d={n}:"
            f"s={SIZE[0]}x{SIZE[1]}:fps={FPS},"
            + ("vignette=angle=PI/4," if spec.vignette else "")
            + f"noise=alls={spec.noise}:allf=t+u:all_seed={spec.seed * 1000 + i},format=yuv420p"
        )
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-loop", "1", "-i", str(still), "-vf", vf,
               "-frames:v", str(n), "-c:v", "libx264", "-preset", "veryfast",
               "-crf", str(spec.crf), str(part)]  # fmt: skip
        subprocess.run(cmd, check=True)
        part.replace(clip)  # an interrupted build leaves no clip that looks finished
    listing = out / "parts.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    video = out / "truth.mp4"
    if not video.exists():
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
               "-i", str(listing), "-c", "copy", str(out / "part_truth.mp4")]  # fmt: skip
        subprocess.run(cmd, check=True)
        (out / "part_truth.mp4").replace(video)
    labels = [name for name in sequence for _ in range(spec.seconds)]
    return video, labels


def extract_stills(ffmpeg: str, video: Path, n: int) -> Path:
    """One JPEG still at the middle of each second, plus frames.csv."""
    out = video.parent / "stills"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [ffmpeg, "-loglevel", "error", "-i", str(video), "-vf", "fps=1:start_time=0.5",
           "-frames:v", str(n), "-q:v", "3", str(out / "still_%04d.jpg")]  # fmt: skip
    subprocess.run(cmd, check=True)
    files = sorted(out.glob("*.jpg"))
    with open(out / "frames.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "video", "time", "frame"])
        for k, f in enumerate(files):
            writer.writerow([f.name, video.name, f"{k + 0.5:.3f}", round((k + 0.5) * FPS)])
    return out
