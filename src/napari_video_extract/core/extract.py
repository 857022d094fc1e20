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
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import string
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_video_extract.core.decode import decode_frames
from napari_video_extract.core.errors import (
    InputError,
    OutputError,
    SettingError,
    VideoOpenError,
    os_error_reason,
)
from napari_video_extract.core.folder_lock import folder_lock, remove_stale_temporaries
from napari_video_extract.core.formats import is_video_name
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
from napari_video_extract.core.sampling import (
    head_tail_times,
    interval_times,
    samples_for,
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
]

IMAGE_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}

#: Default image name: sorts in time order and shows the timestamp.
DEFAULT_NAME_TEMPLATE = "{stem}_{timestamp}_f{frame:06d}"


def _check_every(every: float) -> None:
    if not (every > 0 and math.isfinite(every)):
        raise SettingError(
            "{every} must be a positive number of seconds, got {value}",
            settings=["every"],
            value=repr(every),
        )


@dataclass(frozen=True)
class Interval:
    """One still every ``every`` seconds in ``[start, end)``."""

    every: float
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        # One place for these checks: the CLI and the widgets only build a spec.
        _check_every(self.every)
        if self.start < 0:
            raise SettingError(
                "{start} must be >= 0, got {value}", settings=["start"], value=f"{self.start:g}"
            )
        if self.end is not None and self.start >= self.end:
            raise SettingError(
                "{start} ({a} s) must be before {end} ({b} s)",
                settings=["start", "end"],
                a=f"{self.start:g}",
                b=f"{self.end:g}",
            )

    def times(self, info: VideoInfo) -> np.ndarray:
        if self.start >= info.duration:
            raise SettingError(
                "{start} ({a} s) is past the end of the video ({b} s)",
                settings=["start"],
                a=f"{self.start:g}",
                b=f"{info.duration:.3f}",
            )
        return interval_times(info.duration, every=self.every, start=self.start, end=self.end)


@dataclass(frozen=True)
class HeadTail:
    """Stills every ``every`` seconds in the first ``head`` and last ``tail`` seconds."""

    head: float = 0.0
    tail: float = 0.0
    every: float = 1.0

    def __post_init__(self) -> None:
        _check_every(self.every)
        if self.head < 0 or self.tail < 0:
            raise SettingError("{head} and {tail} must be >= 0", settings=["head", "tail"])
        if self.head <= 0 and self.tail <= 0:
            raise SettingError(
                "give {head} and/or {tail} (seconds), at least one > 0", settings=["head", "tail"]
            )

    def times(self, info: VideoInfo) -> np.ndarray:
        return head_tail_times(info.duration, head=self.head, tail=self.tail, every=self.every)


SamplingSpec = Interval | HeadTail


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


# --------------------------------------------------------------------------- names


def _timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}-{m:02d}-{s:02d}.{ms:03d}"


_TEMPLATE_FIELDS = {"stem", "timestamp", "time", "time_ms", "frame", "index"}


def validate_template(template: str) -> None:
    """Raise ValueError unless ``template`` makes plain file names.

    Fields: ``{stem}`` video name without extension, ``{timestamp}``
    ``HH-MM-SS.mmm``, ``{time}`` seconds, ``{time_ms}`` milliseconds,
    ``{frame}`` frame index, ``{index}`` sample number. The extension is added.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise SettingError(
            "bad {name_template} {t}: {why}",
            settings=["name_template"],
            t=repr(template),
            why=str(exc),
        ) from None
    for _, name, _, _ in parsed:
        if name is not None and name.split(".")[0].split("[")[0] not in _TEMPLATE_FIELDS:
            raise SettingError(
                "bad {name_template} {t}: unknown field {field} (known: {known})",
                settings=["name_template"],
                t=repr(template),
                field="{" + name + "}",
                known=", ".join(sorted(_TEMPLATE_FIELDS)),
            )
    literal = "".join(p[0] for p in parsed)
    if "/" in literal or "\\" in literal or "\0" in literal or template.startswith("."):
        raise SettingError(
            "bad {name_template} {t}: must be a plain file name "
            "(no '/', '\\', leading '.', or '..')",
            settings=["name_template"],
            t=repr(template),
        )
    render_name(template, stem="x", time=1.0, frame=1, index=1)


def render_name(template: str, *, stem: str, time: float, frame: int, index: int) -> str:
    """The file name (without extension) for one still; never a path."""
    name = template.format(
        stem=stem,
        timestamp=_timestamp(time),
        time=round(time, 6),
        time_ms=round(time * 1000),
        frame=frame,
        index=index,
    )
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name.startswith(".")
        or os.path.isabs(name)
    ):
        raise SettingError(
            "{name_template} gives {n}, which is not a plain file name",
            settings=["name_template"],
            n=repr(name),
        )
    return name


# --------------------------------------------------------------------------- images


def encode_image(image: np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode an RGB uint8 array as JPEG, PNG (lossless) or WebP bytes."""
    from PIL import Image

    pil = Image.fromarray(image, mode="RGB") if image.ndim == 3 else Image.fromarray(image)
    buf = io.BytesIO()
    kind = IMAGE_FORMATS[fmt.lower()]
    if kind == "JPEG":
        pil.save(buf, "JPEG", quality=int(quality), optimize=False)
    elif kind == "PNG":
        pil.save(buf, "PNG", compress_level=3)
    else:
        pil.save(buf, "WEBP", quality=int(quality), method=4)
    return buf.getvalue()


def _place_new(tmp: Path, final: Path) -> bool:
    """Move ``tmp`` to ``final`` only if ``final`` does not exist (atomic)."""
    try:
        os.link(tmp, final)  # fails if final exists: never overwrites
    except FileExistsError:
        return False
    except OSError:
        # File systems without hard links: best effort check-then-rename.
        if final.exists():
            return False
        os.replace(tmp, final)
        return True
    tmp.unlink()
    return True


def _write_image(folder: Path, name: str, data: bytes, *, replace: bool) -> str:
    """Write one image atomically; return 'written', 'same' or 'exists'."""
    final = folder / name
    tmp = folder / f".{name}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        if replace:
            os.replace(tmp, final)
            return "written"
        if _place_new(tmp, final):
            return "written"
        # A file of that name is there but not recorded: ours from a run killed
        # between rename and record (identical bytes), or the user's (never touched).
        try:
            same = final.read_bytes() == data
        except OSError:
            same = False
        return "same" if same else "exists"
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


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
                outcome = _write_image(out_dir, name, data, replace=replace)
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
        n_workers = workers or min(os.cpu_count() or 1, 4)
        try:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                pending = []
                if pick.plain:
                    frames = decode_frames(info, list(by_frame), workers=n_workers, cancel=cancel)
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
                f"decoded (damaged video?) and were not written: "
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


def collect_videos(
    inputs: Iterable[str | os.PathLike], *, recursive: bool = False
) -> tuple[list[Path], list[Path], list[InputError]]:
    """Expand files and folders into a sorted list of video files.

    Returns
    -------
    videos : list of Path
        Files to process: every file given explicitly, and files with a video
        extension (case-insensitive) found in given folders.
    skipped : list of Path
        Files in given folders that are not videos.
    errors : list of InputError
        Inputs that do not exist.
    """
    videos: list[Path] = []
    skipped: list[Path] = []
    errors: list[InputError] = []
    seen: set[Path] = set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.iterdir()
            try:
                children = sorted(walker)
            except OSError as exc:
                errors.append(VideoOpenError(path, f"cannot list folder: {os_error_reason(exc)}"))
                continue
            for child in children:
                if child.name.startswith(".") or not child.is_file():
                    continue
                if recursive and any(p.startswith(".") for p in child.relative_to(path).parts):
                    continue
                if is_video_name(child.name):
                    key = child.resolve()
                    if key not in seen:
                        seen.add(key)
                        videos.append(child)
                elif child.name != MANIFEST_NAME:
                    skipped.append(child)
        elif path.exists():
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                videos.append(path)
        else:
            errors.append(VideoOpenError(path, "no such file or folder"))
    return videos, skipped, errors


def output_folders(videos: Sequence[Path], out_root: Path) -> dict[Path, Path]:
    """One output folder per video, named after its stem, never shared.

    Two videos with the same stem (``a.mp4`` and ``a.avi``, or ``x/a.mp4`` and
    ``y/a.mp4``) get distinct names: the extension is appended, then the parent
    folder names, so the mapping is deterministic for a given input list.
    """
    by_stem: dict[str, list[Path]] = {}
    for v in videos:
        by_stem.setdefault(v.stem, []).append(v)
    names: dict[Path, str] = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        for v in group:
            names[v] = f"{stem}_{v.suffix.lstrip('.').lower()}" if v.suffix else stem
        # Still clashing (same name in different folders): add parent names.
        if len({names[v] for v in group}) < len(group):
            for v in group:
                parents = [p for p in v.resolve().parent.parts[-2:] if p not in ("/", "")]
                names[v] = "__".join([*parents, names[v]])
    # A stem of "." or ".." (videos named "..mp4", "...mp4") would put the
    # stills in --out itself or in its parent; a leading dot would hide them.
    names = {v: f"_{n}" if n.startswith(".") else n for v, n in names.items()}
    # Final guard: never let two videos share a folder.
    used: dict[str, Path] = {}
    for v in videos:
        name = names[v]
        n = 2
        while name in used and used[name] != v:
            name = f"{names[v]}-{n}"
            n += 1
        used[name] = v
        names[v] = name
    return {v: out_root / names[v] for v in videos}


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
