"""Journalled file moves and copies that never overwrite and can be undone.

The one way the tool moves or copies a user's image (``dedup`` and the napari
review's Write and Apply in place):

* nothing is overwritten: a name taken at the destination gets a ``-1``,
  ``-2``... suffix (the no-overwrite move is a hard link then an unlink, or an
  exclusive-create copy across file systems);
* every move or copy is appended to the source folder's ``.nve-moves.jsonl``
  and fsynced **before** the file moves, with the file's size, SHA-256 and
  identity, so a run killed half-way can be finished or undone
  (:mod:`~napari_video_extract.core.undo`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from napari_video_extract.core.atomic_text import write_text_atomic
from napari_video_extract.core.errors import InputError, OutputError, os_error_reason

__all__ = [
    "JOURNAL_NAME",
    "Journal",
    "check_writable",
    "ensure_dir",
    "finish_interrupted_moves",
    "free_name",
    "is_the_moved_file",
    "link_or_copy",
    "matches_entry",
    "read_journal",
    "rewrite_journal",
    "sha256_file",
    "transfer",
]

JOURNAL_NAME = ".nve-moves.jsonl"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _candidate_names(name: str) -> Iterable[str]:
    yield name
    stem, suffix = os.path.splitext(name)
    for k in itertools.count(1):
        yield f"{stem}-{k}{suffix}"


def free_name(directory: Path, name: str, reserved: set[Path]) -> Path:
    for candidate in _candidate_names(name):
        target = directory / candidate
        if target not in reserved and not os.path.lexists(target):
            return target
    raise AssertionError("unreachable")  # pragma: no cover


class Journal:
    """Append-only, fsynced log of the moves and copies made from one folder."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.path = folder / JOURNAL_NAME
        self.folder = folder
        self.run_id = run_id
        self._handle = None
        self._next_id = 0

    def append(self, record: dict) -> int:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._next_id += 1
        record = {"run": self.run_id, "id": self._next_id, **record}
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return self._next_id

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def link_or_copy(src: Path, dst: Path) -> None:
    """Create ``dst`` with the content of ``src``; never overwrite (FileExistsError)."""
    try:
        os.link(src, dst, follow_symlinks=False)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # other file system, or no hard links: copy
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)


def transfer(src: Path, dst: Path, journal: Journal, *, op: str, reserved: set[Path]) -> Path:
    """Move (``op="move"``) or copy ``src`` to ``dst`` or a free variant of it."""
    st = src.stat()
    digest = sha256_file(src)
    while True:
        record = {
            "op": op,
            "src": src.name,
            "dst": str(dst),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": digest,
            # Which file this is, not only what it holds: a copy the user puts
            # back by hand has the same bytes but another identity.
            "dev": st.st_dev,
            "ino": st.st_ino,
        }
        entry_id = journal.append(record)  # before touching anything
        try:
            link_or_copy(src, dst)
        except FileExistsError:
            journal.append({"op": "cancel", "ref": entry_id})
            dst = free_name(dst.parent, src.name, reserved)
            reserved.add(dst)
            continue
        if op == "move":
            os.unlink(src)
        return dst


def is_the_moved_file(src: Path, dst: Path, entry: dict) -> bool:
    """Whether ``src`` is the very file the journalled move took (not a copy of it).

    A move killed between link and unlink leaves one file under two names
    (same inode), or, across file systems, the untouched source whose
    identity and modification time the journal recorded.
    """
    try:
        if os.path.samefile(src, dst):
            return True
        st = src.stat()
    except OSError:
        return False
    return (
        "ino" in entry
        and (st.st_dev, st.st_ino) == (entry.get("dev"), entry.get("ino"))
        and st.st_mtime_ns == entry.get("mtime_ns")
    )


def finish_interrupted_moves(folder: Path) -> list[str]:
    """Complete moves a killed run left half done (linked, source not yet unlinked).

    Without this, a re-run sees the source again and moves a second copy of it
    to the duplicates folder under a free name. The source is removed only if
    it is proven to be the file that was moved (:func:`is_the_moved_file`)
    and the destination still holds its journalled bytes; a file of the same
    content put back by hand is left alone.

    Returns
    -------
    list of str
        One line per source left alone although it matches a finished move.
    """
    entries = read_journal(folder / JOURNAL_NAME)
    cancelled = {(e.get("run"), e.get("ref")) for e in entries if e["op"] == "cancel"}
    left_alone: list[str] = []
    for entry in entries:
        if entry["op"] != "move" or (entry.get("run"), entry.get("id")) in cancelled:
            continue
        src, dst = folder / entry["src"], Path(entry["dst"])
        if not (os.path.lexists(src) and matches_entry(src, entry) and matches_entry(dst, entry)):
            continue
        if is_the_moved_file(src, dst, entry):
            with contextlib.suppress(OSError):
                os.unlink(src)
        else:
            left_alone.append(
                f"{src}: left in place: same bytes as {dst}, which an earlier run moved "
                "there, but not that file (put back by hand?)"
            )
    return left_alone


def check_writable(folder: Path) -> None:
    """Raise OutputError unless a file can really be created in ``folder``."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(folder, "folder is not writable (nothing was moved)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nve-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(folder, f"folder is not writable: {reason} (nothing was moved)") from exc


def ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(
            directory, f"cannot create folder: {reason} (nothing was moved)"
        ) from exc
    if not directory.is_dir():
        raise OutputError(directory, "exists and is not a folder (nothing was moved)")
    check_writable(directory)


def matches_entry(path: Path, entry: dict) -> bool:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
        return sha256_file(path) == entry.get("sha256")
    except OSError:
        return False


def read_journal(path: Path) -> list[dict]:
    """The journal's entries; raises InputError if it exists but cannot be read."""
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        reason = os_error_reason(exc) if isinstance(exc, OSError) else "not text"
        raise InputError(path, f"cannot read the move journal: {reason}") from exc
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash: its move had not started
        if isinstance(entry, dict) and "op" in entry:
            entries.append(entry)
    return entries


def rewrite_journal(journal_path: Path, entries: list[dict]) -> None:
    """Keep only ``entries`` in the journal (atomic); remove it when empty."""
    if not entries:
        journal_path.unlink()
        return
    payload = "".join(json.dumps(e) + "\n" for e in entries)
    # Translated newlines, as the journal's appends write them.
    write_text_atomic(journal_path, payload, newline=None)
