"""What a dedup run decided: per-image items, the run's report, ``dedup.csv``."""

from __future__ import annotations

import csv
import errno
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_video_extract.core.atomic_text import write_text_atomic
from napari_video_extract.core.ownership import NOT_OURS, csv_is_ours

__all__ = [
    "CSV_COLUMNS",
    "CSV_NAME",
    "DedupItem",
    "DedupReport",
    "csv_rows",
    "display_path",
    "write_csv_atomic",
]

CSV_NAME = "dedup.csv"
CSV_COLUMNS = (
    "file", "hash", "cluster", "kept", "distance", "moved_to", "copied_to",
    "kept_file", "time", "status", "similarity",
)  # fmt: skip


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
    """Outcome of :func:`~napari_video_extract.core.dedup.dedup_folders`.

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
    verified_while_hashing : int
        Images given to the verified clustering while the others were still
        being hashed (:mod:`~napari_video_extract.core.verify_while_hashing`);
        0 when it had to start again after hashing (a still fed early was
        decoded again with its video's crop).
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
    verified_while_hashing: int = 0
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


def write_csv_atomic(path: Path, rows: list[dict]) -> None:
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
    write_text_atomic(path, buffer.getvalue())


def display_path(path: Path | None, folder: Path) -> str:
    if path is None:
        return ""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def csv_rows(items: Iterable[DedupItem], folder: Path) -> list[dict]:
    """The ``dedup.csv`` rows of the items of ``folder``, in processing order."""
    return [
        {
            "file": it.path.name,
            "hash": it.hash,
            "cluster": it.cluster,
            "kept": "" if it.cluster < 0 else int(it.kept),
            "distance": "" if it.cluster < 0 else it.distance,
            "moved_to": display_path(it.moved_to, folder),
            "copied_to": display_path(it.copied_to, folder),
            "kept_file": display_path(it.kept_path, folder),
            "time": "" if it.time is None else repr(it.time),
            "status": it.status if not it.error else f"{it.status}: {it.error}",
            "similarity": "" if it.similarity is None else f"{it.similarity:.4f}",
        }
        for it in items
        if it.folder == folder
    ]
