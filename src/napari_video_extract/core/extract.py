"""Extract stills from videos: the one-call facade used by the CLI and widgets.

``extract_video`` probes a video, turns a sampling spec (:class:`Interval` or
:class:`HeadTail`) into frame indices, decodes exactly those frames with the
cheapest plan (:mod:`~napari_video_extract.core.decode`) and writes each as an
image, atomically, recording it in ``frames.csv``. A re-run resumes: frames
already recorded are skipped (``overwrite=True`` redoes them). A user's file is
never overwritten: not an image at one of our names, nor a ``frames.csv`` that
this tool did not write (see :mod:`~napari_video_extract.core.ownership`).

``extract_batch`` runs it over many videos (one output folder per video,
named after the video's stem), goes on past bad files and reports them.

The parts have modules of their own, and their public names are importable
from here too: the sampling specs (:mod:`.sampling_specs`), the still names
(:mod:`.still_names`), encoding and writing images (:mod:`.image_files`),
and a batch's videos and output folders (:mod:`.batch_paths`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_video_extract.core.batch_paths import collect_videos, output_folders
from napari_video_extract.core.decode import decode_frames
from napari_video_extract.core.errors import (
    InputError,
    OutputError,
    SettingError,
    os_error_reason,
)
from napari_video_extract.core.folder_lock import folder_lock, remove_stale_temporaries
from napari_video_extract.core.image_files import IMAGE_FORMATS, encode_image, write_image
from napari_video_extract.core.manifest import (
    MANIFEST_HEADERS,
    MANIFEST_NAME,
    STATUS_BLANK,
    FrameRecord,
    ManifestWriter,
    read_manifest,
)
from napari_video_extract.core.ownership import NOT_OURS, csv_is_ours
from napari_video_extract.core.pick import Chosen, Pick, pick_frames, recorded_samples
from napari_video_extract.core.probe import VideoInfo, probe
from napari_video_extract.core.sampling import samples_for
from napari_video_extract.core.sampling_specs import HeadTail, Interval, SamplingSpec
from napari_video_extract.core.still_names import (
    DEFAULT_NAME_TEMPLATE,
    render_name,
    validate_template,
)

__all__ = [
    "DEFAULT_NAME_TEMPLATE",
    "IMAGE_FORMATS",
    "BatchResult",
    "ExtractResult",
    "HeadTail",
    "Interval",
    "collect_videos",
    "encode_image",
    "extract_batch",
    "extract_video",
    "output_folders",
    "render_name",
    "validate_template",
]


@dataclass
class ExtractResult:
    """What one video's extraction did.

    Attributes
    ----------
    planned, written, resumed : int
        Stills the sampling asks for; written by this run; already recorded.
    missing : list of int
        Frame indices of planned stills that could not be decoded (a damaged
        video); such a result is failed (``error`` says which stills).
    records : list of FrameRecord
        Every still now recorded in ``frames.csv``, by time.
    error : str or None
        One line saying why the video failed; ``None`` when it succeeded.
    blank : int
        Instants skipped by this run because their frame is blank
        (``skip_blank``), recorded in ``frames.csv`` without an image.
    """

    video: Path
    out_dir: Path
    planned: int = 0
    written: int = 0
    resumed: int = 0
    missing: list[int] = field(default_factory=list)
    records: list[FrameRecord] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    info: VideoInfo | None = None
    blank: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchResult:
    """What a batch did: per-video results, skipped non-videos, failures."""

    results: list[ExtractResult] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[ExtractResult]:
        return [r for r in self.results if not r.ok]

    @property
    def written(self) -> int:
        return sum(r.written for r in self.results)


# --------------------------------------------------------------------------- one video


def extract_video(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    spec: SamplingSpec,
    *,
    fmt: str = "jpg",
    quality: int = 95,
    name_template: str = DEFAULT_NAME_TEMPLATE,
    overwrite: bool = False,
    workers: int | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_frame: Callable[[FrameRecord, np.ndarray], None] | None = None,
    info: VideoInfo | None = None,
    pick: Pick | None = None,
) -> ExtractResult:
    """Extract the stills of one video into ``out_dir``.

    Parameters
    ----------
    video : path
        The video file.
    out_dir : path
        Folder for this video's images and ``frames.csv`` (created).
    spec : Interval or HeadTail
        What to sample.
    fmt : {'jpg', 'png', 'webp'}
        Image format; png is lossless (pixels equal the decoded frame).
    quality : int
        JPEG/WebP quality, 1-100.
    name_template : str
        See :func:`validate_template`.
    overwrite : bool
        Redo frames already recorded in ``frames.csv`` (files this tool wrote).
    workers : int, optional
        Parallel decoders for this video.
    cancel : threading.Event, optional
        Set to stop; images written so far are complete and recorded, and the
        stills not reached are not reported as missing.
    progress : callable(done, total), optional
        Called after each image.
    on_frame : callable(record, image), optional
        Called with each new still (e.g. to show it in napari).
    info : VideoInfo, optional
        A probe result to reuse.
    pick : Pick, optional
        Which frame to keep for each instant (:mod:`.pick`): default the exact
        frame; ``Pick("sharpest", window=...)`` the sharpest nearby, and
        ``skip_blank`` to write no image for blank frames.

    Returns
    -------
    ExtractResult
        Failed (``error`` set, ``missing`` listed) when some planned stills
        could not be decoded; the others are written and recorded.

    Raises
    ------
    InputError
        The video cannot be opened or no frame of it decoded; the output
        cannot be written; ``frames.csv`` or an image at one of our names is
        a file this tool did not write (left as it is).
    ValueError
        Bad parameters (``every <= 0``, start after end, bad template...).
    """
    t0 = time.perf_counter()
    fmt = fmt.lower()
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r} (use jpg, png or webp)")
    if not 1 <= int(quality) <= 100:
        raise SettingError(
            "{quality} must be between 1 and 100, got {value}",
            settings=["quality"],
            value=str(quality),
        )
    validate_template(name_template)
    video = Path(video)
    out_dir = Path(out_dir)
    info = info or probe(video)
    samples = samples_for(info.frame_times, spec.times(info))
    result = ExtractResult(video=info.path, out_dir=out_dir, planned=len(samples), info=info)
    ext = "jpg" if fmt == "jpeg" else fmt
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise PermissionError("permission denied")
    except OSError as exc:
        raise OutputError(out_dir, f"cannot write output folder ({exc.strerror or exc})") from None

    with folder_lock(out_dir):
        remove_stale_temporaries(out_dir)
        if not any(csv_is_ours(out_dir / MANIFEST_NAME, c) for c in MANIFEST_HEADERS):
            raise OutputError(out_dir / MANIFEST_NAME, f"{NOT_OURS}; choose another --out")
        existing = read_manifest(out_dir)
        others = {r.video for r in existing} - {info.path.name}
        if others:
            raise OutputError(
                out_dir,
                f"holds frames of another video ({sorted(others)[0]}); choose another --out",
            )
        pick = pick or Pick()
        done_frames = recorded_samples(existing, samples, pick)  # by the sample's exact frame
        todo = []
        for k, s in enumerate(samples):
            if s.frame in done_frames and not overwrite:
                result.resumed += 1
                continue
            name = render_name(
                name_template,
                stem=info.path.stem,
                time=float(info.frame_times[s.frame]),
                frame=s.frame,
                index=k,
            )
            todo.append((s, f"{name}.{ext}"))
        by_frame = {s.frame: (s, name) for s, name in todo}
        if len(set(n for _, n in todo)) != len(todo):
            raise SettingError(
                "{name_template} gives the same name to two stills; add {f}",
                settings=["name_template"],
                f="{frame}",
            )
        manifest = ManifestWriter(out_dir, existing, picking=not pick.plain)
        index_of = {s.frame: k for k, s in enumerate(samples)}
        total = len(samples)
        done = result.resumed
        if progress:
            progress(done, total)
        lock = threading.Lock()
        conflicts: list[str] = []
        recorded = set(done_frames) if overwrite else set()

        def save(frame_index: int, image: np.ndarray, chosen: Chosen | None = None) -> None:
            nonlocal done
            sample, name = by_frame[frame_index]
            kept = frame_index if chosen is None else chosen.frame
            if kept != frame_index:  # --pick sharpest: named after the frame kept
                stem = render_name(
                    name_template,
                    stem=info.path.stem,
                    time=float(info.frame_times[kept]),
                    frame=kept,
                    index=index_of[frame_index],
                )
                name = f"{stem}.{ext}"
            skip = chosen is not None and pick.skip_blank and chosen.blank
            if skip:
                outcome = "skipped"
            else:
                data = encode_image(image, fmt, quality)
                replace = frame_index in recorded and done_frames[frame_index].file == name
                outcome = write_image(out_dir, name, data, replace=replace)
            with lock:
                handled.add(frame_index)
                if outcome == "exists":
                    conflicts.append(name)
                    return
                record = FrameRecord(
                    file=name,
                    video=info.path.name,
                    time=float(info.frame_times[kept]),
                    frame=kept,
                    requested_time=sample.time,
                    width=int(image.shape[1]),
                    height=int(image.shape[0]),
                    sharpness=None if chosen is None else chosen.sharpness,
                    status=STATUS_BLANK if skip else "",
                )
                manifest.add(record)
                if skip:
                    result.blank += 1
                else:
                    result.written += 1
                done += 1
                if progress:
                    progress(done, total)
            if on_frame and not skip:
                on_frame(record, image)

        handled: set[int] = set()  # frames written, or refused because of a user's file
        reasons: list[str] = []  # why frames went missing, from the decoders
        n_workers = workers or min(os.cpu_count() or 1, 4)
        try:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                pending = []
                if pick.plain:
                    frames = decode_frames(
                        info, list(by_frame), workers=n_workers, cancel=cancel, reasons=reasons
                    )
                    stream = ((f.index, f.image, None) for f in frames)
                else:
                    chosen = pick_frames(
                        info, samples, pick, todo=list(by_frame), workers=n_workers, cancel=cancel
                    )
                    stream = ((c.key, c.image, c) for c in chosen)
                for key, image, choice in stream:
                    # The decoder reuses nothing, but bound the queue of images
                    # waiting to be encoded so memory stays flat.
                    pending.append(pool.submit(save, key, image, choice))
                    if len(pending) >= 4 * n_workers:
                        pending.pop(0).result()
                for fut in pending:
                    fut.result()
        except OSError as exc:
            raise OutputError(out_dir, f"cannot write image ({exc.strerror or exc})") from None
        finally:
            manifest.close()
        result.records = sorted(manifest.records.values(), key=lambda r: r.time)
        if conflicts:
            raise OutputError(
                out_dir / conflicts[0],
                f"exists and was not written by this tool; not overwritten "
                f"({len(conflicts)} such file(s))",
            )
        if not (cancel and cancel.is_set()):
            # Counted here, not taken from the decoder: whatever made a still
            # go missing (a failed run, a damaged stretch), it is reported.
            result.missing = sorted(set(by_frame) - handled)
        if result.missing:
            result.error = (
                f"{len(result.missing)} of {result.planned} planned still(s) could not be "
                f"decoded ({reasons[0] if reasons else 'damaged video?'}) and were not written: "
                f"frame{'s' if len(result.missing) > 1 else ''} "
                f"{_runs(result.missing, [s.frame for s in samples])}; a re-run retries them"
            )
    result.seconds = time.perf_counter() - t0
    return result


def _runs(frames: Sequence[int], planned: Sequence[int]) -> str:
    """``"40..62, 80"``: runs of consecutive planned stills (``a..b`` = every
    planned still from frame a to frame b), so each missing still is named."""
    position = {f: k for k, f in enumerate(sorted(set(planned)))}
    parts: list[str] = []
    start = prev = None
    for f in sorted(frames):
        if prev is not None and position[f] == position[prev] + 1:
            prev = f
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}..{prev}")
        start = prev = f
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}..{prev}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- batches


def extract_batch(
    videos: Sequence[str | os.PathLike],
    out_root: str | os.PathLike,
    spec: SamplingSpec,
    *,
    jobs: int = 1,
    on_result: Callable[[ExtractResult], None] | None = None,
    progress: Callable[[Path, int, int], None] | None = None,
    cancel: threading.Event | None = None,
    **options,
) -> BatchResult:
    """Extract many videos; a failing video never stops the others.

    Parameters
    ----------
    videos : sequence of path
        Video files (see :func:`collect_videos`).
    out_root : path
        Root output folder; each video gets ``out_root/<stem>``.
    spec : Interval or HeadTail
    jobs : int
        Videos processed at the same time.
    on_result : callable(ExtractResult), optional
        Called as each video finishes (from a worker thread).
    progress : callable(video, done, total), optional
        Per-image progress of each video.
    **options
        Passed to :func:`extract_video` (fmt, quality, name_template, overwrite).

    Returns
    -------
    BatchResult
    """
    t0 = time.perf_counter()
    paths = [Path(v) for v in videos]
    folders = output_folders(paths, Path(out_root))
    jobs = max(1, int(jobs))
    cpus = os.cpu_count() or 1
    workers = options.pop("workers", None) or max(1, min(4, cpus // jobs) or 1)
    batch = BatchResult()

    def one(v: Path) -> ExtractResult:
        try:
            res = extract_video(
                v,
                folders[v],
                spec,
                workers=workers,
                cancel=cancel,
                progress=(lambda d, t, v=v: progress(v, d, t)) if progress else None,
                **options,
            )
        except InputError as exc:
            about_this_video = exc.path in (v, Path(os.path.abspath(v)))
            res = ExtractResult(
                video=v, out_dir=folders[v], error=exc.reason if about_this_video else str(exc)
            )
        except ValueError as exc:
            res = ExtractResult(video=v, out_dir=folders[v], error=str(exc))
        except OSError as exc:  # e.g. an output name taken by a folder
            res = ExtractResult(video=v, out_dir=folders[v], error=os_error_reason(exc))
        except Exception as exc:  # a bug must not kill the batch either
            res = ExtractResult(video=v, out_dir=folders[v], error=f"{type(exc).__name__}: {exc}")
        if on_result:
            on_result(res)
        return res

    if jobs == 1:
        batch.results = [one(v) for v in paths]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            batch.results = list(pool.map(one, paths))
    batch.seconds = time.perf_counter() - t0
    return batch
