"""Undo: put back every file a dedup run or a napari review moved out of a folder."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from napari_video_extract.core.errors import InputError, os_error_reason
from napari_video_extract.core.moves import (
    JOURNAL_NAME,
    check_writable,
    link_or_copy,
    matches_entry,
    read_journal,
    rewrite_journal,
)

__all__ = ["UndoReport", "undo_folder"]


@dataclass
class UndoReport:
    """Outcome of :func:`undo_folder`.

    Attributes
    ----------
    folder : Path
        The folder.
    restored : list of (Path, Path)
        ``(original place, where it was)`` of files moved back.
    already_in_place : int
        Journal entries whose file never left (e.g. a run killed between the
        journal write and the move) or was already put back.
    removed_copies : int
        Unchanged copies made with ``kept_dir`` that were removed.
    failed : list of (Path, str)
        Files that could not be restored (or copies left alone), with why.
    """

    folder: Path
    restored: list[tuple[Path, Path]] = field(default_factory=list)
    already_in_place: int = 0
    removed_copies: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything was restored."""
        return not self.failed


def undo_folder(folder: str | os.PathLike[str]) -> UndoReport:
    """Put back every file a dedup run moved out of ``folder``.

    Reads the folder's move journal (all runs, newest first). A file is moved
    back only if it is still byte-identical (size and SHA-256) to what was
    moved and its original name is free; anything else is reported in
    ``failed`` and kept in the journal so a later undo can retry. Copies made
    to a ``kept_dir`` are removed if unchanged. The folders the files were
    moved or copied to are removed when that leaves them empty.

    Parameters
    ----------
    folder : path
        An input folder of an earlier
        :func:`~napari_video_extract.core.dedup.dedup_folders` run.

    Returns
    -------
    UndoReport

    Raises
    ------
    InputError
        The folder does not exist.
    OutputError
        The folder is not writable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such folder")
    report = UndoReport(folder)
    journal_path = folder / JOURNAL_NAME
    entries = read_journal(journal_path)
    if not entries:
        return report
    check_writable(folder)
    cancelled = {(e.get("run"), e.get("ref")) for e in entries if e["op"] == "cancel"}
    remaining: list[dict] = []
    touched_dirs: set[Path] = set()
    for entry in reversed(entries):
        if entry["op"] not in ("move", "copy") or (entry.get("run"), entry.get("id")) in cancelled:
            continue
        src, dst = folder / entry["src"], Path(entry["dst"])
        touched_dirs.add(dst.parent)
        try:
            if entry["op"] == "copy":
                problem = _undo_copy(dst, entry, report)
            else:
                problem = _undo_move(src, dst, entry, report)
        except OSError as exc:  # one file's problem must not stop the others
            problem = os_error_reason(exc)
        if problem:
            report.failed.append((dst if entry["op"] == "copy" else src, problem))
            remaining.append(entry)

    try:
        rewrite_journal(journal_path, list(reversed(remaining)))
    except OSError as exc:
        # The files are back where they were; only the record is stale, and a
        # later undo finds them in place (already_in_place).
        report.failed.append((journal_path, f"cannot update the journal: {os_error_reason(exc)}"))
    for directory in sorted(touched_dirs, reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only succeeds when empty
    return report


def _undo_copy(dst: Path, entry: dict, report: UndoReport) -> str | None:
    if not os.path.lexists(dst):
        return None
    if matches_entry(dst, entry):
        dst.unlink()
        report.removed_copies += 1
        return None
    return "copy changed since it was made; left alone"


def _undo_move(src: Path, dst: Path, entry: dict, report: UndoReport) -> str | None:
    src_exists, dst_exists = os.path.lexists(src), os.path.lexists(dst)
    if src_exists and matches_entry(src, entry):
        # The move never finished (or was undone already). A leftover
        # identical copy/link at the destination is ours: drop it.
        if dst_exists and matches_entry(dst, entry):
            dst.unlink()
        report.already_in_place += 1
        return None
    if not dst_exists:
        return (
            f"not found at {dst}" if not src_exists else "original name is taken by another file"
        )
    if not matches_entry(dst, entry):
        return f"{dst} changed after it was moved; not restored"
    if src_exists:
        return f"original name is taken by another file; the moved file is still at {dst}"
    try:
        link_or_copy(dst, src)
        os.unlink(dst)
    except OSError as exc:
        return f"cannot move back from {dst}: {exc.strerror or exc}"
    report.restored.append((src, dst))
    return None
