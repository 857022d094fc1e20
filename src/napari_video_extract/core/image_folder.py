"""Which files of a folder are images, and their capture order.

Order never comes from the file system: images are ordered by the ``time``
column of the folder's ``frames.csv`` when it lists them, then by natural
name order (``img2`` before ``img10``). The dedup engine, the napari reader
and the contact sheet all list folders through :func:`ordered_images`, so
they agree on the order.

This module imports only the standard library: the napari reader lists a
folder of stills through it without importing the hashing engine (that
import was the largest part of opening 2,000 stills).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "FolderScan",
    "file_name",
    "natural_key",
    "ordered_images",
    "scan_folder",
]

#: File name suffixes (lower case) treated as images when scanning a folder.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
     ".pgm", ".pbm", ".pnm", ".tga", ".jp2"}
)  # fmt: skip
#: The tool's own csv files in a folder of stills (``dedup.csv``, ``frames.csv``).
OWN_CSV_NAMES = ("dedup.csv", "frames.csv")
_FRAMES_CSV_NAME = "frames.csv"
_DIGITS = re.compile(r"(\d+)")
#: ``bytes.translate`` table writing every ASCII digit as ``0`` (a name's digit mask).
_DIGIT_MASK = bytes.maketrans(b"123456789", b"000000000")


def natural_key(name: str) -> tuple:
    """Sort key putting ``img2`` before ``img10`` (case-insensitive, then exact).

    Runs of digits compare as numbers, the text between them case-folded;
    names equal that way compare by their exact text.
    """
    # re.split with one group alternates text (even places) and digit runs (odd).
    key = []
    for place, part in enumerate(_DIGITS.split(name)):
        if part:
            key.append((0, int(part), "") if place & 1 else (1, 0, part.casefold()))
    return (tuple(key), name)


def _plain_order_is_natural(names: list[str]) -> bool:
    """Whether sorting ``names`` as plain strings gives their :func:`natural_key` order.

    True when every name is ASCII and all have the same digit mask (the same
    text at the same places, digit runs of the same lengths: ``still_00001.jpg``
    to ``still_02000.jpg``). Then the first difference between two names is a
    digit of one run, every earlier run being equal, and equal-length digit
    runs compare as strings as they do as numbers. Checked on all the names at
    once in C (``/`` is in no file name), instead of a Python-level key per
    name (that key was most of the cost of listing 2,000 stills).
    """
    joined = "/".join(names)
    if not joined.isascii():
        return False
    return len(set(joined.encode("ascii").translate(_DIGIT_MASK).split(b"/"))) <= 1


def file_name(entry: str) -> str:
    """``Path(entry).name``, without building a Path for a plain name (``frames.csv`` rows)."""
    if "/" in entry or entry in ("", "."):
        return Path(entry).name
    return entry


def _frame_times(folder: Path) -> dict[str, float]:
    """``file -> time`` from the folder's frames.csv, or ``{}`` if absent/invalid."""
    path = folder / _FRAMES_CSV_NAME
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    times: dict[str, float] = {}
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"file", "time"} <= set(reader.fieldnames):
        return {}
    for row in reader:
        try:
            value = float(row["time"])
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and row.get("file"):
            times[file_name(row["file"])] = value
    return times


@dataclass
class FolderScan:
    """One listing of a folder: its images in capture order, and what was left out."""

    #: The folder listed.
    folder: Path = field(default_factory=Path)
    #: The file names of the images, in capture order.
    names: list[str] = field(default_factory=list)
    #: The ``frames.csv`` time of each image, ``None`` when it is not listed.
    times: list[float | None] = field(default_factory=list)
    #: Files left out because their suffix is not an image's.
    non_images: int = 0
    #: Symbolic links left out.
    symlinks: int = 0

    @property
    def images(self) -> list[Path]:
        """The images, in capture order (built on each call: the names are the listing)."""
        return [self.folder / name for name in self.names]

    def image_strings(self) -> list[str]:
        """``str(image)`` of each of :attr:`images`, without building the Paths."""
        # A file name holds no separator, so str(folder / name) is this prefix + name.
        prefix = str(self.folder / "_")[:-1]
        return [prefix + name for name in self.names]


def scan_folder(folder: str | os.PathLike[str]) -> FolderScan:
    """List the images of ``folder`` in capture order (one directory scan).

    Hidden files, our csv/cache/journal files, sub-folders, symbolic links
    and non-image files are left out; nothing is opened but ``frames.csv``.

    Parameters
    ----------
    folder : path
        The folder (not recursed into).

    Returns
    -------
    FolderScan

    Raises
    ------
    OSError
        The folder cannot be listed.
    """
    folder = Path(folder)
    scan = FolderScan(folder=folder)
    times = _frame_times(folder)
    found: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in OWN_CSV_NAMES:
                continue  # hidden files and our own csv/cache/journal
            if entry.is_symlink():
                scan.symlinks += 1
                continue
            if entry.is_dir():
                continue  # never recurse, so duplicates/ is not scanned
            # Hidden names are left out above, so the last dot starts the suffix
            # (os.path.splitext, without its cost for 2,000 names).
            dot = name.rfind(".")
            if dot > 0 and name[dot:].lower() in IMAGE_SUFFIXES:
                found.append(name)
            else:
                scan.non_images += 1
    # The name itself is the natural key when that order is the same.
    key = None if _plain_order_is_natural(found) else natural_key
    if not times:
        scan.names = sorted(found, key=key)
        scan.times = [None] * len(found)
        return scan
    keyed: list[tuple] = []
    for name in found:
        k = name if key is None else key(name)  # unique in a folder: no tie past it
        t = times.get(name)  # listed images first, by time
        keyed.append((0, t, k, name) if t is not None else (1, 0.0, k, name))
    keyed.sort()
    scan.names = [item[3] for item in keyed]
    scan.times = [item[1] if item[0] == 0 else None for item in keyed]
    return scan


def ordered_images(folder: str | os.PathLike[str]) -> tuple[list[Path], list[float | None]]:
    """Image files of a folder in capture order, independent of listing order.

    Parameters
    ----------
    folder : path
        The folder (not recursed into).

    Returns
    -------
    images : list of Path
        Images listed in ``frames.csv`` by their ``time``, then the others in
        natural name order. Hidden files, our csv/cache/journal files,
        sub-folders, symbolic links and non-image files are left out.
    times : list of float or None
        The ``frames.csv`` time of each image, ``None`` when not listed.

    Raises
    ------
    OSError
        The folder cannot be listed.
    """
    scan = scan_folder(folder)
    return scan.images, scan.times
