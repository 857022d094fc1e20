"""Which frame to keep for each sampled instant: the exact one, or the sharpest nearby.

``exact`` (the default) keeps the frame on screen at the instant
(:mod:`~napari_video_extract.core.sampling`). ``sharpest`` looks at every
frame on screen within ``+-window/2`` of the instant and keeps the one with
the highest :func:`frame_sharpness`. Windows never overlap: where two
instants are closer than ``window``, each window stops at the midpoint
between them, and a frame is a candidate of one window only (the window its
presentation time falls in; the exact frame of an instant always belongs to
that instant's window). So no frame is ever kept twice, and only the frames
inside windows are decoded.

Measures (on reduced frames, so sizes compare and the cost stays small):

* **sharpness**: variance of the 4-neighbour Laplacian of the grey frame
  reduced to at most :data:`MEASURE_SIDE` pixels on its long side
  (:func:`~napari_video_extract.core.hashing.sharpness`, the same measure as
  the dedup's ``--keep sharpest``). Blur and motion blur lower it.
* **blank**: a frame is blank when the standard deviation of every colour
  channel (on the frame reduced to about 128 pixels) is below
  :data:`BLANK_STD` (of 255): black, white or one flat
  colour, with a little noise. A dark scene with any visible content, or a
  black screen with a line of text, is well above it.

With ``sharpest``, a blank frame is never kept when a frame that is not blank
is in the window. With ``skip_blank``, an instant whose kept frame is blank
writes no image and is recorded as skipped.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from napari_video_extract.core.sampling import EPS, Sample, frames_at

__all__ = [
    "BLANK_STD",
    "DEFAULT_WINDOW",
    "MEASURE_SIDE",
    "PICK_MODES",
    "Chosen",
    "Pick",
    "best_candidate",
    "frame_sharpness",
    "is_blank",
    "measure",
    "pick_frames",
    "recorded_samples",
    "sample_windows",
]

PICK_MODES = ("exact", "sharpest")
#: Default window of ``sharpest``, in seconds (the instant +-0.25 s).
DEFAULT_WINDOW = 0.5
#: Long side (pixels) of the reduced image the measures are taken on.
MEASURE_SIDE = 512
#: A frame whose every channel has a standard deviation below this is blank.
BLANK_STD = 4.0


@dataclass(frozen=True)
class Pick:
    """How to choose each still's frame.

    Parameters
    ----------
    mode : {'exact', 'sharpest'}
        The frame on screen at the instant, or the sharpest within the window.
    window : float
        Seconds around each instant searched by ``sharpest`` (``+-window/2``).
    skip_blank : bool
        Write no image for an instant whose frame is blank (recorded as
        skipped in ``frames.csv``, so a re-run does not retry it).

    Raises
    ------
    SettingError
        An unknown mode, or a window that is not a positive number.
    """

    mode: str = "exact"
    window: float = DEFAULT_WINDOW
    skip_blank: bool = False

    def __post_init__(self) -> None:
        from napari_video_extract.core.errors import SettingError

        if self.mode not in PICK_MODES:
            raise SettingError(
                "{pick} must be one of {modes}, got {got}",
                settings=["pick"],
                modes=", ".join(PICK_MODES),
                got=repr(self.mode),
            )
        if not (math.isfinite(self.window) and self.window > 0):
            raise SettingError(
                "{window} must be a positive number of seconds, got {got}",
                settings=["window"],
                got=repr(self.window),
            )

    @property
    def plain(self) -> bool:
        """True for the default (exact frames, nothing measured)."""
        return self.mode == "exact" and not self.skip_blank


@dataclass
class Chosen:
    """The frame kept for one sample.

    Attributes
    ----------
    key : int
        The sample's exact frame (identifies the sample).
    frame : int
        The frame kept (``== key`` with ``exact``).
    image : numpy.ndarray
        Its RGB pixels.
    sharpness : float
        Its :func:`frame_sharpness`.
    blank : bool
        Whether it is blank (:func:`is_blank`).
    candidates : int
        Frames of the window that were decoded and measured.
    """

    key: int
    frame: int
    image: np.ndarray
    sharpness: float
    blank: bool
    candidates: int = 1


# --------------------------------------------------------------------------- measures


def measure(image: np.ndarray) -> tuple[float, bool]:
    """``(sharpness, blank)`` of an RGB (or grey) uint8 frame.

    Sharpness on the grey frame reduced to :data:`MEASURE_SIDE`; the blank
    test on the colour frame reduced to about 128 pixels (a standard
    deviation barely changes with the scale, and this keeps it cheap).
    """
    from PIL import Image

    from napari_video_extract.core.hashing import sharpness

    pil = Image.fromarray(np.ascontiguousarray(image))
    grey = pil.convert("L")
    scale = MEASURE_SIDE / max(grey.size)
    if scale < 1:
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.BOX)
    small = pil.reduce(max(1, max(pil.size) // 128))
    rgb = np.asarray(small)
    channels = rgb.reshape(-1, rgb.shape[2]) if rgb.ndim == 3 else rgb.reshape(-1, 1)
    blank = bool((channels.std(axis=0) < BLANK_STD).all())
    return sharpness(np.asarray(grey)), blank


def frame_sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the reduced grey frame (higher is sharper)."""
    return measure(image)[0]


def is_blank(image: np.ndarray) -> bool:
    """Whether every colour channel's standard deviation is below :data:`BLANK_STD`."""
    return measure(image)[1]


def best_candidate(candidates: Sequence[tuple[int, float, bool]]) -> int:
    """Position of the best ``(frame, sharpness, blank)`` candidate.

    The sharpest frame that is not blank; only when every candidate is blank,
    the sharpest blank one. Ties go to the earlier frame.
    """
    if not candidates:
        raise ValueError("no candidates")
    pool = [k for k, c in enumerate(candidates) if not c[2]] or list(range(len(candidates)))
    return max(pool, key=lambda k: (candidates[k][1], -candidates[k][0]))


# --------------------------------------------------------------------------- windows


def sample_windows(
    frame_times: np.ndarray, samples: Sequence[Sample], window: float
) -> list[range]:
    """The frames each sample's ``sharpest`` search looks at, as index ranges.

    Range ``k`` holds the frames on screen within ``+-window/2`` of sample
    ``k``'s instant, cut at the midpoints between neighbouring instants. The
    ranges are disjoint, in order, and range ``k`` always holds sample ``k``'s
    exact frame. ``samples`` must be in time order with distinct frames (as
    :func:`~napari_video_extract.core.sampling.samples_for` gives them).
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    n = len(samples)
    times = np.array([s.time for s in samples], dtype=np.float64)
    exact = np.array([s.frame for s in samples], dtype=np.int64)
    lo = times - window / 2
    hi = times + window / 2
    if n > 1:
        mid = (times[:-1] + times[1:]) / 2
        lo[1:] = np.maximum(lo[1:], mid)
        hi[:-1] = np.minimum(hi[:-1], mid)
    # From the frame on screen at lo to the last frame shown before hi.
    first = np.minimum(frames_at(frame_times, lo), exact)
    last = np.maximum(np.searchsorted(frame_times, hi - EPS, side="left") - 1, exact)
    if n > 1:
        # A frame on screen across a midpoint started in the earlier window and
        # stays there; the next instant's exact frame is never taken.
        last[:-1] = np.minimum(last[:-1], exact[1:] - 1)
        first[1:] = np.maximum(first[1:], last[:-1] + 1)
    return [range(int(a), int(b) + 1) for a, b in zip(first, last, strict=True)]


# --------------------------------------------------------------------------- choosing


def pick_frames(
    info,
    samples: Sequence[Sample],
    pick: Pick,
    *,
    todo: Sequence[int] | None = None,
    workers: int | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[Chosen]:
    """Decode what ``pick`` needs and yield the frame kept for each sample.

    ``samples`` are all the instants of the run (windows depend on the
    neighbours); ``todo`` the exact frames of those to do now (default all).

    With ``exact`` only the samples' own frames are decoded (and measured);
    with ``sharpest`` every frame of :func:`sample_windows`, once, through
    :func:`~napari_video_extract.core.decode.decode_frames`. A sample is
    yielded as soon as its whole window is decoded, so at most a few windows'
    best frames are held in memory. A sample none of whose frames could be
    decoded (a damaged video) is not yielded; one whose window is only partly
    decoded gets the best of what was.

    Yields
    ------
    Chosen
        In no particular order when ``workers > 1``.
    """
    from napari_video_extract.core.decode import decode_frames

    wanted = {s.frame for s in samples} if todo is None else set(todo)
    if pick.mode == "exact":
        for frame in decode_frames(info, sorted(wanted), workers=workers, cancel=cancel):
            sharp, blank = measure(frame.image)
            yield Chosen(frame.index, frame.index, frame.image, sharp, blank)
        return

    ranges = sample_windows(info.frame_times, samples, pick.window)
    owner: dict[int, int] = {}
    for k, r in enumerate(ranges):
        if samples[k].frame in wanted:
            for i in r:
                owner[i] = k
    left = [len(r) for r in ranges]
    best: dict[int, tuple[int, float, bool, np.ndarray]] = {}
    seen = [0] * len(ranges)

    def better(k: int, cand: tuple[int, float, bool, np.ndarray]) -> None:
        old = best.get(k)
        if old is None or best_candidate([old[:3], cand[:3]]) == 1:
            best[k] = cand

    def chosen(k: int) -> Chosen:
        frame, sharp, blank, image = best.pop(k)
        return Chosen(samples[k].frame, frame, image, sharp, blank, seen[k])

    for frame in decode_frames(info, list(owner), workers=workers, cancel=cancel):
        k = owner[frame.index]
        sharp, blank = measure(frame.image)
        better(k, (frame.index, sharp, blank, frame.image))
        seen[k] += 1
        left[k] -= 1
        if left[k] == 0:
            yield chosen(k)
    if cancel is not None and cancel.is_set():
        return
    for k in sorted(best):  # windows the decoder could not finish
        yield chosen(k)


def recorded_samples(
    existing: Sequence, samples: Sequence[Sample], pick: Pick
) -> dict[int, object]:
    """The samples a re-run need not redo: ``sample's exact frame -> record``.

    ``exact`` matches a record by its frame, as it always has; ``sharpest``
    by its requested instant (the kept frame may be another). An instant
    recorded as skipped counts only while ``skip_blank`` is on: without it,
    the re-run writes that still.
    """
    usable = [r for r in existing if pick.skip_blank or not r.skipped]
    if pick.mode == "exact":
        by_frame = {r.frame: r for r in usable}
        return {s.frame: by_frame[s.frame] for s in samples if s.frame in by_frame}
    by_time = {round(r.requested_time, 6): r for r in usable}
    out = {}
    for s in samples:
        rec = by_time.get(round(s.time, 6))
        if rec is not None:
            out[s.frame] = rec
    return out
