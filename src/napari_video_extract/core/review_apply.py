"""Apply a review's decisions to disk through the engine's journalled moves and copies.

Two ways, both undoable by :func:`undo_review` and by ``napari-video-extract
undo FOLDER``:

* :func:`write_review` -- kept items to one folder, duplicates to another.
  Every file is placed by :func:`~napari_video_extract.core.moves.transfer`
  (``op="copy"``, journalled and fsynced in the destination folder's
  ``.nve-moves.jsonl`` before the file appears, never overwriting). Image
  files are copied byte for byte; frames of a video are encoded with
  :func:`~napari_video_extract.core.image_files.encode_image`. The journals say
  which files are ours, so writing again is incremental and idempotent: an
  item already in the right folder is left alone, an item whose decision
  changed leaves the other folder (only our own, unchanged copy is removed)
  and is written where it now belongs; nothing ever ends up in both folders
  or gets a ``-1`` twin.
* :func:`apply_in_place` -- like the CLI ``dedup``: duplicates move to
  ``<folder>/duplicates`` (journalled in the folder), ``dedup.csv`` records
  the review's decisions. Applying again first undoes the folder's earlier
  moves (a CLI run's too), then moves what the review now calls duplicates.

The source folder is never written by :func:`write_review`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_video_extract.core.dedup import DUPLICATES_DIRNAME
from napari_video_extract.core.dedup_report import CSV_NAME, display_path, write_csv_atomic
from napari_video_extract.core.errors import InputError, OutputError
from napari_video_extract.core.image_files import IMAGE_FORMATS, encode_image
from napari_video_extract.core.moves import (
    JOURNAL_NAME,
    Journal,
    check_writable,
    ensure_dir,
    finish_interrupted_moves,
    free_name,
    link_or_copy,
    matches_entry,
    read_journal,
    transfer,
)
from napari_video_extract.core.review import Cancelled, Review
from napari_video_extract.core.still_names import DEFAULT_NAME_TEMPLATE, render_name
from napari_video_extract.core.undo import UndoReport, undo_folder

__all__ = [
    "ApplyReport",
    "Cancelled",
    "apply_in_place",
    "item_names",
    "undo_review",
    "write_review",
]

_TMP_SUFFIX = ".nve-review-tmp"


@dataclass
class ApplyReport:
    """What :func:`write_review` or :func:`apply_in_place` did.

    Attributes
    ----------
    written : int
        Files placed (copied or encoded) in this call.
    moved : int
        Items that left the other folder because their decision changed
        (write), or duplicates moved aside (in place).
    unchanged : int
        Items already where they belong.
    folders : list of Path
        Folders whose journal records this call (undo them newest first).
    errors : list of str
        One line per item that could not be placed.
    cancelled : bool
        Stopped by the cancel event; what was placed is journalled.
    """

    written: int = 0
    moved: int = 0
    unchanged: int = 0
    folders: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cancelled: bool = False

    def summary(self) -> str:
        """One line for a status bar."""
        word = "cancelled" if self.cancelled else "done"
        text = f"{word}: {self.written} written, {self.moved} moved, {self.unchanged} unchanged"
        return text + (f", {len(self.errors)} failed" if self.errors else "")


def _run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _ours(folder: Path) -> dict[str, tuple[Path, dict]]:
    """Files a review wrote to ``folder`` and that are still unchanged: name -> (path, entry)."""
    entries = read_journal(folder / JOURNAL_NAME)
    cancelled = {(e.get("run"), e.get("ref")) for e in entries if e["op"] == "cancel"}
    found: dict[str, tuple[Path, dict]] = {}
    for entry in entries:
        src = str(entry.get("src", ""))
        if (
            entry["op"] != "copy"
            or (entry.get("run"), entry.get("id")) in cancelled
            or not src.endswith(_TMP_SUFFIX)
        ):
            continue
        dst = Path(entry["dst"])
        if dst.parent == folder and matches_entry(dst, entry):
            found[src[1 : -len(_TMP_SUFFIX)]] = (dst, entry)
    return found


def item_names(review: Review, *, fmt: str = "png") -> list[str]:
    """The file name each item gets in the output folders.

    Image files keep their name; frames are named like extracted stills
    (``{stem}_{timestamp}_f{frame:06d}.{ext}``).
    """
    if review.original_paths is not None:
        return [p.name for p in review.original_paths]
    ext = "jpg" if fmt.lower() == "jpeg" else fmt.lower()
    names = []
    for i in range(review.n):
        t = float(review.time[i])
        stem = Path(review.video[i]).stem or "frame"
        names.append(
            render_name(
                DEFAULT_NAME_TEMPLATE,
                stem=stem,
                time=0.0 if np.isnan(t) else t,
                frame=int(review.frame[i]),
                index=i,
            )
            + f".{ext}"
        )
    return names


def write_review(
    review: Review,
    kept_dir: str | os.PathLike[str],
    duplicates_dir: str | os.PathLike[str],
    *,
    fmt: str = "png",
    quality: int = 95,
    read_frame: Callable[[int], np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> ApplyReport:
    """Kept items to ``kept_dir``, duplicates to ``duplicates_dir``; journalled, idempotent.

    Parameters
    ----------
    review : Review
        The decisions.
    kept_dir, duplicates_dir : path
        Different folders (created if needed).
    fmt : {"png", "jpg", "webp"}, optional
        Format of frames that are not image files.
    quality : int, optional
        JPEG/WebP quality.
    read_frame : callable(index) -> ndarray, optional
        The RGB (or grey) uint8 frame of item ``index``; needed for frame reviews.
    progress : callable(done, total), optional
        Items done.
    cancel : threading.Event, optional
        Stops between items; the report says ``cancelled``.

    Returns
    -------
    ApplyReport

    Raises
    ------
    ValueError
        Same folder twice, unknown format, or frames without ``read_frame``.
    OutputError
        A folder cannot be created or written (raised before anything is written).
    """
    # Absolute: the journal records where each file went, for an undo run anywhere.
    kept_dir, dup_dir = Path(kept_dir).absolute(), Path(duplicates_dir).absolute()
    if kept_dir.resolve() == dup_dir.resolve():
        raise ValueError(f"{kept_dir}: kept frames and duplicates need different folders")
    if fmt.lower() not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}")
    if review.paths is None and read_frame is None:
        raise ValueError("a review of frames needs read_frame to write them")
    for folder in (kept_dir, dup_dir):
        if review.folder is not None and folder.resolve() == review.folder.resolve():
            raise ValueError(f"{folder}: cannot write into the reviewed folder")
        ensure_dir(folder)
    for folder in (kept_dir, dup_dir):
        finish_interrupted_moves(folder)
    report = ApplyReport()
    ours = {kept_dir: _ours(kept_dir), dup_dir: _ours(dup_dir)}
    names = item_names(review, fmt=fmt)
    run = _run_id()
    journals = {kept_dir: Journal(kept_dir, run), dup_dir: Journal(dup_dir, run)}
    reserved: set[Path] = set()
    try:
        for i in range(review.n):
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                break
            target = kept_dir if review.kept[i] else dup_dir
            other = dup_dir if target is kept_dir else kept_dir
            name = names[i]
            if name in ours[target]:
                report.unchanged += 1
            else:
                try:
                    _place(review, i, name, target, journals[target], reserved, fmt, quality,
                           read_frame)  # fmt: skip
                except (OSError, InputError) as exc:
                    report.errors.append(
                        f"{target / name}: {getattr(exc, 'strerror', None) or exc}"
                    )
                    continue
                report.written += 1
                if target not in report.folders:
                    report.folders.append(target)
                if name in ours[other]:
                    path, entry = ours[other].pop(name)
                    if matches_entry(path, entry):  # still our unchanged copy
                        path.unlink()
                        report.moved += 1
            if progress is not None:
                progress(i + 1, review.n)
    finally:
        for journal in journals.values():
            journal.close()
    return report


def _place(review, i, name, target, journal, reserved, fmt, quality, read_frame) -> Path:
    """Put item ``i`` in ``target`` through a hidden temporary and a journalled copy."""
    tmp = target / f".{name}{_TMP_SUFFIX}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # ours by its name: left by a killed write
    try:
        if review.paths is not None:
            link_or_copy(review.paths[i], tmp)
        else:
            data = encode_image(np.asarray(read_frame(i)), fmt, quality)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        dst = free_name(target, name, reserved)
        reserved.add(dst)
        return transfer(tmp, dst, journal, op="copy", reserved=reserved)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def apply_in_place(
    review: Review,
    *,
    duplicates_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> ApplyReport:
    """Move the review's duplicates aside like ``dedup``, and write ``dedup.csv``.

    Earlier moves recorded in the folder's journal (a CLI run, an earlier
    apply) are undone first, so the folder ends up exactly as the review says.

    Parameters
    ----------
    review : Review
        A folder review.
    duplicates_dir : path, optional
        Default ``<folder>/duplicates``.
    progress : callable(done, total), optional
        Duplicates moved.
    cancel : threading.Event, optional
        Stops between moves; what moved is journalled.

    Returns
    -------
    ApplyReport

    Raises
    ------
    ValueError
        Not a folder review.
    OutputError
        A folder is not writable, or earlier moves cannot be undone.
    """
    folder = review.folder
    if folder is None or review.paths is None:
        raise ValueError("apply in place needs a review of a folder")
    finish_interrupted_moves(folder)
    check_writable(folder)
    dup_dir = Path(duplicates_dir) if duplicates_dir is not None else folder / DUPLICATES_DIRNAME
    original = list(review.original_paths)
    moved_now = [p for p, o in zip(review.paths, original, strict=True) if p != o]
    if moved_now or read_journal(folder / JOURNAL_NAME):
        undone = undo_folder(folder)
        if not undone.ok:
            path, why = undone.failed[0]
            raise OutputError(path, f"earlier moves cannot be undone: {why} (nothing was moved)")
    review.paths = original
    report = ApplyReport(folders=[folder])
    dups = [i for i in range(review.n) if not review.kept[i]]
    if dups:
        ensure_dir(dup_dir)
    reserved: set[Path] = set()
    journal = Journal(folder, _run_id())
    moved_to: dict[int, Path] = {}
    try:
        for k, i in enumerate(dups):
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                break
            src = review.paths[i]
            planned = free_name(dup_dir, src.name, reserved)
            reserved.add(planned)
            try:
                moved_to[i] = transfer(src, planned, journal, op="move", reserved=reserved)
            except OSError as exc:
                report.errors.append(f"{src}: cannot move to {planned}: {exc.strerror or exc}")
                continue
            report.moved += 1
            if progress is not None:
                progress(k + 1, len(dups))
    finally:
        journal.close()
    report.unchanged = review.n - report.moved
    hexes = review.hex_hashes()
    rows = []
    for i in range(review.n):
        keeper = int(review.keeper[i])
        status = "kept" if review.kept[i] else "duplicate"
        rows.append(
            {
                "file": original[i].name,
                "hash": hexes[i],
                "cluster": int(review.cluster[i]),
                "kept": int(review.kept[i]),
                "distance": int(review.distance[i]),
                "moved_to": display_path(moved_to.get(i), folder),
                "copied_to": "",
                "kept_file": original[keeper].name,
                "time": "" if np.isnan(review.time[i]) else repr(float(review.time[i])),
                "status": status,
            }
        )
    write_csv_atomic(folder / CSV_NAME, rows)
    review.paths = [moved_to.get(i, p) for i, p in enumerate(original)]
    return report


def undo_review(folders: list[Path]) -> list[UndoReport]:
    """Undo what a review wrote or moved in ``folders`` (newest folder first).

    Uses :func:`~napari_video_extract.core.undo.undo_folder`: a file is
    removed or moved back only if it is unchanged since we placed it.
    """
    reports = []
    for folder in reversed(folders):
        if Path(folder).is_dir():
            reports.append(undo_folder(folder))
    return reports
