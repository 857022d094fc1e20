"""Near-duplicate detection and separation, deterministic and undoable.

Two layers:

* :func:`cluster_hashes` (from :mod:`~napari_video_extract.core.clustering`)
  works on packed hashes in memory; the two-stage matching that verifies hash
  candidates on thumbnails is
  :func:`~napari_video_extract.core.matching.cluster_verified` (the napari
  widget uses it with
  :func:`~napari_video_extract.core.hashing.hash_frames_and_thumbnails`);
* :func:`dedup_folders` scans folders, hashes (with a cache), clusters, moves
  duplicates aside and writes ``dedup.csv``; :func:`undo_folder` puts every
  moved file back.

Order never comes from the file system: within a folder, images are ordered
by the ``time`` column of ``frames.csv`` (columns ``file,video,time,frame``)
when there is one, else by natural name order (``img2`` before ``img10``);
folders are taken in the order given, reference folders first.

Safety rules of :func:`dedup_folders`:

* nothing is deleted and nothing is overwritten: a name taken at the
  destination gets a ``-1``, ``-2``... suffix (the no-overwrite move is a hard
  link then an unlink, or an exclusive-create copy across file systems);
* every move is appended to ``.nve-moves.jsonl`` in the source folder and
  fsynced **before** the file moves, with the file's size and SHA-256, so a run
  killed half-way can be undone;
* every folder that will be written is checked first: a read-only folder
  raises :class:`~napari_video_extract.core.errors.OutputError` before
  anything moves;
* symbolic links in an input folder are skipped (counted, never hashed, never
  moved), so a link's target can never be pulled out of another folder and a
  relative link can never be left dangling.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import itertools
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract.core.clustering import ClusterResult, cluster_hashes
from napari_video_extract.core.dedup_settings import (
    KEEP_POLICIES,
    MODES,
    check_changes,
    default_min_similarity,
)
from napari_video_extract.core.errors import InputError, OutputError, os_error_reason
from napari_video_extract.core.hashing import (
    METHODS,
    default_threshold,
    hash_bits,
    hash_files,
)
from napari_video_extract.core.image_folder import natural_key, ordered_images
from napari_video_extract.core.image_folder import scan_folder as _scan
from napari_video_extract.core.ownership import NOT_OURS, csv_is_ours

__all__ = [
    "CSV_NAME",
    "DUPLICATES_DIRNAME",
    "JOURNAL_NAME",
    "KEEP_POLICIES",
    "MODES",
    "ClusterResult",
    "DedupItem",
    "DedupReport",
    "UndoReport",
    "cluster_hashes",
    "dedup_folders",
    "natural_key",
    "ordered_images",
    "undo_folder",
]

CSV_NAME = "dedup.csv"
JOURNAL_NAME = ".nve-moves.jsonl"
DUPLICATES_DIRNAME = "duplicates"
CSV_COLUMNS = (
    "file", "hash", "cluster", "kept", "distance", "moved_to", "copied_to",
    "kept_file", "time", "status", "similarity",
)  # fmt: skip


# ------------------------------------------------------------ folders: scanning
# The listing and its order live in core.image_folder (stdlib only, so the
# napari reader lists a folder without importing this module).


# ---------------------------------------------------------------- folders: report


@dataclass
class DedupItem:
    """One image of a dedup run.

    Attributes
    ----------
    path : Path
        Where the image was before the run.
    folder : Path
        The input (or reference) folder it belongs to.
    hash : str
        Hex hash, ``""`` when unreadable.
    cluster : int
        Cluster id, -1 when unreadable.
    kept : bool
        Kept (stays in place, or is copied to ``kept_dir``).
    distance : int
        Bits from the kept image of its cluster.
    similarity : float or None
        Verified similarity to the kept image (``None`` without verification).
    kept_path : Path or None
        The kept image of its cluster.
    reference : bool
        From a reference folder: never moved.
    time : float or None
        Capture time from ``frames.csv``.
    moved_to : Path or None
        Where the duplicate was (or, in a dry run, would be) moved.
    copied_to : Path or None
        Where the kept image was (would be) copied.
    error : str or None
        Why it is unreadable or could not be moved.
    """

    path: Path
    folder: Path
    hash: str = ""
    cluster: int = -1
    kept: bool = False
    distance: int = 0
    similarity: float | None = None
    kept_path: Path | None = None
    reference: bool = False
    time: float | None = None
    moved_to: Path | None = None
    copied_to: Path | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """``kept``, ``duplicate``, ``reference``, ``unreadable`` or ``error``."""
        if self.cluster < 0:
            return "unreadable"
        if self.error:
            return "error"
        if self.reference:
            return "reference"
        return "kept" if self.kept else "duplicate"


@dataclass
class DedupReport:
    """Outcome of :func:`dedup_folders`.

    Attributes
    ----------
    items : list of DedupItem
        Every image, references first, in processing order.
    n_images : int
        Readable images of the input folders (references not counted).
    n_clusters : int
        Clusters holding at least one input image.
    n_kept, n_moved, n_copied, n_duplicates : int
        Kept input images; duplicates moved (planned, in a dry run); kept
        images copied; duplicates found.
    unreadable : list of (Path, str)
        Corrupt/truncated images, left in place.
    errors : list of str
        Moves or copies that failed (one line each).
    skipped_non_images, skipped_symlinks : int
        Files not considered.
    cache_hits, hashed : int
        Hashes read from the cache / computed in this run.
    threshold : int
        Threshold used, in bits (the candidate bound when verifying).
    min_similarity : float or None
        Smallest verified similarity of a duplicate; ``None``: hash only.
    changes : str
        Verification mode, ``"global"`` or ``"local"``.
    verification : VerifiedClusterResult or None
        Clusters and every verified pair, indexed like ``verified_paths``.
    verified_paths : list of Path
        The readable images, in the index order of ``verification``.
    n_bits : int
        Bits per hash.
    dry_run : bool
        Nothing was changed.
    csv_paths : list of Path
        ``dedup.csv`` files written.
    elapsed : float
        Wall time in seconds.
    notes : list of str
        Files deliberately left alone (one line each); not failures.
    """

    items: list[DedupItem] = field(default_factory=list)
    n_images: int = 0
    n_clusters: int = 0
    n_kept: int = 0
    n_moved: int = 0
    n_copied: int = 0
    n_duplicates: int = 0
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped_non_images: int = 0
    skipped_symlinks: int = 0
    cache_hits: int = 0
    hashed: int = 0
    threshold: int = 0
    min_similarity: float | None = None
    changes: str = "global"
    verification: Any = None
    verified_paths: list[Path] = field(default_factory=list)
    n_bits: int = 64
    dry_run: bool = False
    csv_paths: list[Path] = field(default_factory=list)
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No unreadable image and no failed move."""
        return not self.unreadable and not self.errors

    def summary(self) -> str:
        """One line: images, clusters, kept, moved, unreadable, threshold, time."""
        verb = "would move" if self.dry_run else "moved"
        return (
            f"{self.n_images} images, {self.n_clusters} clusters, {self.n_kept} kept, "
            f"{self.n_moved} {verb}, {len(self.unreadable)} unreadable "
            f"(threshold {self.threshold} of {self.n_bits} bits, "
            + ("" if self.min_similarity is None else self._verify_text())
            + f"{self.cache_hits} from cache, {self.elapsed:.1f} s)"
        )

    def _verify_text(self) -> str:
        local = ", local changes" if self.changes == "local" else ""
        return f"verified at similarity >= {self.min_similarity:.2f}{local}, "

    def problems(self) -> list[str]:
        """One line per unreadable image and per failed move."""
        return [
            f"{path}: unreadable image, left in place: {reason}"
            for path, reason in self.unreadable
        ] + list(self.errors)


# ----------------------------------------------------------- folders: file moves


def _sha256(path: Path) -> str:
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


def _free_name(directory: Path, name: str, reserved: set[Path]) -> Path:
    for candidate in _candidate_names(name):
        target = directory / candidate
        if target not in reserved and not os.path.lexists(target):
            return target
    raise AssertionError("unreachable")  # pragma: no cover


class _Journal:
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


def _link_or_copy(src: Path, dst: Path) -> None:
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


def _transfer(src: Path, dst: Path, journal: _Journal, *, op: str, reserved: set[Path]) -> Path:
    """Move (``op="move"``) or copy ``src`` to ``dst`` or a free variant of it."""
    st = src.stat()
    digest = _sha256(src)
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
            _link_or_copy(src, dst)
        except FileExistsError:
            journal.append({"op": "cancel", "ref": entry_id})
            dst = _free_name(dst.parent, src.name, reserved)
            reserved.add(dst)
            continue
        if op == "move":
            os.unlink(src)
        return dst


def _is_the_moved_file(src: Path, dst: Path, entry: dict) -> bool:
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


def _finish_interrupted_moves(folder: Path) -> list[str]:
    """Complete moves a killed run left half done (linked, source not yet unlinked).

    Without this, a re-run sees the source again and moves a second copy of it
    to the duplicates folder under a free name. The source is removed only if
    it is proven to be the file that was moved (:func:`_is_the_moved_file`)
    and the destination still holds its journalled bytes; a file of the same
    content put back by hand is left alone.

    Returns
    -------
    list of str
        One line per source left alone although it matches a finished move.
    """
    entries = _read_journal(folder / JOURNAL_NAME)
    cancelled = {(e.get("run"), e.get("ref")) for e in entries if e["op"] == "cancel"}
    left_alone: list[str] = []
    for entry in entries:
        if entry["op"] != "move" or (entry.get("run"), entry.get("id")) in cancelled:
            continue
        src, dst = folder / entry["src"], Path(entry["dst"])
        if not (os.path.lexists(src) and _matches(src, entry) and _matches(dst, entry)):
            continue
        if _is_the_moved_file(src, dst, entry):
            with contextlib.suppress(OSError):
                os.unlink(src)
        else:
            left_alone.append(
                f"{src}: left in place: same bytes as {dst}, which an earlier run moved "
                "there, but not that file (put back by hand?)"
            )
    return left_alone


def _check_writable(folder: Path) -> None:
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


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(
            directory, f"cannot create folder: {reason} (nothing was moved)"
        ) from exc
    if not directory.is_dir():
        raise OutputError(directory, "exists and is not a folder (nothing was moved)")
    _check_writable(directory)


def _write_csv_atomic(path: Path, rows: list[dict]) -> None:
    """Write ``dedup.csv`` atomically; a file of that name not ours is kept.

    Raises
    ------
    FileExistsError
        ``path`` exists and was not written by this tool (it is left as it is).
    """
    if not csv_is_ours(path, CSV_COLUMNS):
        raise FileExistsError(errno.EEXIST, NOT_OURS, str(path))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    fd, tmp = tempfile.mkstemp(prefix=CSV_NAME + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _display_path(path: Path | None, folder: Path) -> str:
    if path is None:
        return ""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- dedup_folders


def dedup_folders(
    folders: Sequence[str | os.PathLike[str]],
    *,
    method: str = "phash",
    hash_size: int = 8,
    threshold: int | None = None,
    mode: str = "global",
    keep: str = "first",
    reference: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    duplicates_dir: str | os.PathLike[str] | None = None,
    kept_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    crop_borders: bool = True,
    progress: Callable[[int, int], None] | None = None,
    map_jobs: Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]] | None = None,
    verify: bool = True,
    min_similarity: float | None = None,
    changes: str = "global",
) -> DedupReport:
    """Find near-duplicate images in folders and move the duplicates aside.

    All images of all folders are clustered together (see
    :func:`cluster_hashes`); in each cluster one image is kept in place and the
    others are moved to ``duplicates_dir``. Each input folder gets a
    ``dedup.csv`` (columns ``file,hash,cluster,kept,distance,moved_to,
    copied_to,kept_file,time,status,similarity``) and a move journal for
    :func:`undo_folder`. With ``verify`` (the default) the hash only proposes
    candidates and an aligned comparison of thumbnails decides
    (:func:`~napari_video_extract.core.matching.cluster_verified`); stills
    with ``frames.csv`` times are also compared with their neighbour in time.

    Parameters
    ----------
    folders : sequence of path
        Input folders, taken in this order (their files in capture order).
    method : {"phash", "dhash", "ahash", "whash", "colorhash"}, optional
        Hash function.
    hash_size : int, optional
        8 gives 64-bit hashes.
    threshold : int, optional
        Largest distance in bits for duplicates (with ``verify``: for
        candidates); default
        :func:`~napari_video_extract.core.hashing.default_threshold`
        (``verify=verify``).
    mode : {"global", "sequential"}, optional
        Clustering mode.
    keep : {"first", "sharpest", "largest"}, optional
        Which image of a cluster stays: first in order, highest variance of
        the Laplacian, or most pixels then most bytes.
    reference : path or sequence of path, optional
        Folders of images that duplicates are looked for against but that are
        never moved (nor get a ``dedup.csv``).
    duplicates_dir : path, optional
        Where duplicates go; default ``<input folder>/duplicates``.
    kept_dir : path, optional
        Also copy the kept images there.
    dry_run : bool, optional
        Plan only: the report says what would move; no file, folder, csv or
        cache is written.
    crop_borders : bool, optional
        Crop uniform borders before hashing.
    progress : callable(done, total), optional
        Hashing progress.
    map_jobs : callable(func, jobs) -> iterable, optional
        Where to hash the uncached images (see
        :func:`~napari_video_extract.core.hashing.hash_files`); default here,
        in local processes. Clustering and moves always run here.
    verify : bool, optional
        Verify hash candidates by aligned comparison (``False``: the hash
        alone decides, as before).
    min_similarity : float, optional
        Smallest verified similarity of a duplicate; default
        :func:`~napari_video_extract.core.dedup_settings.default_min_similarity`.
    changes : {"global", "local"}, optional
        ``local``: stricter, every block of the aligned pair must agree, so
        stills where something moved in a static scene are kept.

    Returns
    -------
    DedupReport

    Raises
    ------
    ValueError
        Bad settings (method, hash size, threshold, mode, keep), no folder, or
        a folder given twice.
    InputError
        A folder does not exist or cannot be listed.
    OutputError
        A folder that must be written is read-only or cannot be created;
        raised before anything is moved.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"unknown hash method {method!r}; choose one of {', '.join(METHODS)}")
    n_bits = hash_bits(method, hash_size)
    if threshold is None:
        threshold = default_threshold(method, hash_size, verify=verify)
    check_changes(changes)
    if verify and min_similarity is None:
        min_similarity = default_min_similarity(changes)
    if verify and not -1 <= min_similarity <= 1:
        raise ValueError(f"min_similarity must be from -1 to 1, got {min_similarity!r}")
    if int(threshold) != threshold or not 0 <= threshold <= n_bits:
        raise ValueError(f"threshold must be 0 to {n_bits} bits for this hash, got {threshold!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if keep not in KEEP_POLICIES:
        raise ValueError(f"unknown keep policy {keep!r}; choose one of {', '.join(KEEP_POLICIES)}")
    inputs = [Path(f) for f in folders]
    if not inputs:
        raise ValueError("no folder given")
    if reference is None:
        refs: list[Path] = []
    elif isinstance(reference, str | os.PathLike):
        refs = [Path(reference)]
    else:
        refs = [Path(r) for r in reference]
    seen: set[Path] = set()
    for folder in refs + inputs:
        if not folder.is_dir():
            raise InputError(folder, "no such folder")
        resolved = folder.resolve()
        if resolved in seen:
            raise ValueError(f"{folder}: folder given twice (as input or reference)")
        seen.add(resolved)
    dup_dir = Path(duplicates_dir) if duplicates_dir is not None else None
    keep_dir = Path(kept_dir) if kept_dir is not None else None
    for special in (dup_dir, keep_dir):
        if special is not None and special.resolve() in seen:
            raise ValueError(f"{special}: cannot be one of the input or reference folders")

    left_alone: list[str] = []
    if not dry_run:
        for folder in inputs:
            # Before anything is written (cache, moves): the csv would be replaced.
            if not csv_is_ours(folder / CSV_NAME, CSV_COLUMNS):
                raise OutputError(folder / CSV_NAME, f"{NOT_OURS} (rename it; nothing was moved)")
        for folder in inputs:
            try:
                left_alone += _finish_interrupted_moves(folder)
            except OSError as exc:
                raise OutputError(
                    folder, f"cannot finish an interrupted move: {os_error_reason(exc)}"
                ) from exc

    report = DedupReport(
        threshold=int(threshold),
        n_bits=n_bits,
        dry_run=dry_run,
        min_similarity=min_similarity if verify else None,
        changes=changes,
    )
    report.notes += left_alone
    items: list[DedupItem] = []
    for folder, is_ref in [(f, True) for f in refs] + [(f, False) for f in inputs]:
        try:
            scan = _scan(folder)
        except OSError as exc:
            raise InputError(folder, f"cannot list folder: {exc.strerror or exc}") from exc
        report.skipped_non_images += scan.non_images
        report.skipped_symlinks += scan.symlinks
        for path, t in zip(scan.images, scan.times, strict=True):
            items.append(DedupItem(path=path, folder=folder, reference=is_ref, time=t))

    # Stills with a frames.csv time come from the folder's one video: they
    # share one crop box, and each neighbours the previous one in time.
    folder_ids = {folder: k for k, folder in enumerate(refs + inputs)}
    videos = [folder_ids[it.folder] if it.time is not None else -1 for it in items]
    hashed = hash_files(
        [item.path for item in items],
        method=method,
        hash_size=hash_size,
        crop_borders=crop_borders,
        with_sharpness=keep == "sharpest",
        write_cache=not dry_run,
        read_only_folders=refs,  # reference folders stay untouched
        progress=progress,
        map_jobs=map_jobs,
        with_thumbnails=verify,
        crop_groups=videos,
    )
    report.cache_hits, report.hashed = hashed.cache_hits, hashed.hashed
    readable: list[int] = []
    for i, (item, record) in enumerate(zip(items, hashed.files, strict=True)):
        if record.hash is None:
            item.error = record.error
            if not item.reference:
                report.unreadable.append((item.path, record.error or "unreadable"))
        else:
            item.hash = record.hash.to_hex()
            readable.append(i)

    words = hashed.hash_array()
    quality = None
    if keep == "sharpest":
        quality = np.array([hashed.files[i].sharpness or 0.0 for i in readable])
    elif keep == "largest":
        quality = np.array(
            [
                (hashed.files[i].width * hashed.files[i].height, hashed.files[i].size_bytes)
                for i in readable
            ],
            dtype=np.float64,
        ).reshape(len(readable), 2)
    ref_mask = np.array([items[i].reference for i in readable], dtype=bool)
    if verify:
        from napari_video_extract.core.matching import cluster_verified

        result = cluster_verified(
            words,
            hashed.thumbnail_array(),
            threshold=int(threshold),
            min_similarity=min_similarity,
            changes=changes,
            mode=mode,
            keep=keep,
            quality=quality,
            reference_mask=ref_mask,
            sequence=np.array([videos[i] for i in readable], dtype=np.int64),
        )
        report.verification = result
        report.verified_paths = [items[i].path for i in readable]
    else:
        result = cluster_hashes(
            words,
            threshold=int(threshold),
            mode=mode,
            quality=quality,
            keep=keep,
            reference_mask=ref_mask,
            n_bits=n_bits,
        )
    for k, i in enumerate(readable):
        item = items[i]
        item.cluster = int(result.cluster[k])
        item.kept = bool(result.kept[k])
        item.distance = int(result.distance[k])
        if verify:
            item.similarity = float(result.similarity[k])
        item.kept_path = items[readable[int(result.kept_index[k])]].path

    inputs_readable = [items[i] for i in readable if not items[i].reference]
    report.n_images = len(inputs_readable)
    report.n_clusters = len({it.cluster for it in inputs_readable})
    report.n_kept = sum(it.kept for it in inputs_readable)
    report.n_duplicates = report.n_images - report.n_kept
    report.items = items

    _plan_and_apply(report, items, inputs, dup_dir, keep_dir, dry_run=dry_run)
    report.elapsed = time.perf_counter() - started
    return report


def _plan_and_apply(report, items, inputs, dup_dir, keep_dir, *, dry_run):
    to_move = [it for it in items if not it.reference and it.cluster >= 0 and not it.kept]
    to_copy = [it for it in items if not it.reference and it.kept] if keep_dir else []

    # Plan destinations first (also what a dry run reports).
    reserved: set[Path] = set()
    for it in to_move:
        target_dir = dup_dir if dup_dir is not None else it.folder / DUPLICATES_DIRNAME
        it.moved_to = _free_name(target_dir, it.path.name, reserved)
        reserved.add(it.moved_to)
    for it in to_copy:
        it.copied_to = _free_name(keep_dir, it.path.name, reserved)
        reserved.add(it.copied_to)
    if dry_run:
        report.n_moved, report.n_copied = len(to_move), len(to_copy)
        return

    # Check every folder we will write before the first move.
    for folder in inputs:
        _check_writable(folder)
    directories = {it.moved_to.parent for it in to_move}
    if to_copy:
        directories.add(keep_dir)
    for directory in sorted(directories):
        _ensure_dir(directory)

    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    journals = {folder: _Journal(folder, run_id) for folder in inputs}
    try:
        for op, group in (("copy", to_copy), ("move", to_move)):
            for it in group:
                planned = it.copied_to if op == "copy" else it.moved_to
                try:
                    done = _transfer(
                        it.path, planned, journals[it.folder], op=op, reserved=reserved
                    )
                except OSError as exc:
                    it.error = f"cannot {op} to {planned}: {exc.strerror or exc}"
                    report.errors.append(f"{it.path}: {it.error}")
                    if op == "copy":
                        it.copied_to = None
                    else:
                        it.moved_to = None
                    continue
                if op == "copy":
                    it.copied_to = done
                    report.n_copied += 1
                else:
                    it.moved_to = done
                    report.n_moved += 1
    finally:
        for journal in journals.values():
            journal.close()

    for folder in inputs:
        rows = []
        for it in items:
            if it.folder != folder:
                continue
            rows.append(
                {
                    "file": it.path.name,
                    "hash": it.hash,
                    "cluster": it.cluster,
                    "kept": "" if it.cluster < 0 else int(it.kept),
                    "distance": "" if it.cluster < 0 else it.distance,
                    "moved_to": _display_path(it.moved_to, folder),
                    "copied_to": _display_path(it.copied_to, folder),
                    "kept_file": _display_path(it.kept_path, folder),
                    "time": "" if it.time is None else repr(it.time),
                    "status": it.status if not it.error else f"{it.status}: {it.error}",
                    "similarity": "" if it.similarity is None else f"{it.similarity:.4f}",
                }
            )
        csv_path = folder / CSV_NAME
        try:
            _write_csv_atomic(csv_path, rows)
            report.csv_paths.append(csv_path)
        except OSError as exc:
            report.errors.append(f"{csv_path}: cannot write: {exc.strerror or exc}")


# ------------------------------------------------------------------------- undo


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


def _matches(path: Path, entry: dict) -> bool:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
        return _sha256(path) == entry.get("sha256")
    except OSError:
        return False


def _read_journal(path: Path) -> list[dict]:
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
        An input folder of an earlier :func:`dedup_folders` run.

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
    entries = _read_journal(journal_path)
    if not entries:
        return report
    _check_writable(folder)
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
        _rewrite_journal(journal_path, list(reversed(remaining)))
    except OSError as exc:
        # The files are back where they were; only the record is stale, and a
        # later undo finds them in place (already_in_place).
        report.failed.append((journal_path, f"cannot update the journal: {os_error_reason(exc)}"))
    for directory in sorted(touched_dirs, reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only succeeds when empty
    return report


def _rewrite_journal(journal_path: Path, entries: list[dict]) -> None:
    """Keep only ``entries`` in the journal (atomic); remove it when empty."""
    if not entries:
        journal_path.unlink()
        return
    payload = "".join(json.dumps(e) + "\n" for e in entries)
    fd, tmp = tempfile.mkstemp(prefix=JOURNAL_NAME + ".", suffix=".tmp", dir=journal_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, journal_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _undo_copy(dst: Path, entry: dict, report: UndoReport) -> str | None:
    if not os.path.lexists(dst):
        return None
    if _matches(dst, entry):
        dst.unlink()
        report.removed_copies += 1
        return None
    return "copy changed since it was made; left alone"


def _undo_move(src: Path, dst: Path, entry: dict, report: UndoReport) -> str | None:
    src_exists, dst_exists = os.path.lexists(src), os.path.lexists(dst)
    if src_exists and _matches(src, entry):
        # The move never finished (or was undone already). A leftover
        # identical copy/link at the destination is ours: drop it.
        if dst_exists and _matches(dst, entry):
            dst.unlink()
        report.already_in_place += 1
        return None
    if not dst_exists:
        return (
            f"not found at {dst}" if not src_exists else "original name is taken by another file"
        )
    if not _matches(dst, entry):
        return f"{dst} changed after it was moved; not restored"
    if src_exists:
        return f"original name is taken by another file; the moved file is still at {dst}"
    try:
        _link_or_copy(dst, src)
        os.unlink(dst)
    except OSError as exc:
        return f"cannot move back from {dst}: {exc.strerror or exc}"
    report.restored.append((src, dst))
    return None
