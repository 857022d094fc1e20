"""``frames.csv``: the record of the stills written for one video.

One row per image: ``file,video,time,frame,requested_time,width,height``.
``file`` is the image's name inside the folder, ``time`` the frame's
presentation time in seconds relative to the first frame, ``frame`` its
0-based index in display order, ``requested_time`` the sampling instant it
answers.

Runs that choose frames (``--pick sharpest``, ``--skip-blank``, see
:mod:`~napari_video_extract.core.pick`) add two columns, ``sharpness`` (of
the kept frame) and ``status``: empty for a written still, ``blank`` for an
instant skipped because its frame is blank (no image; ``file`` is the name it
would have had). Other runs write the seven columns above, as always, and
both forms are read.

While a run goes on, rows are appended (and flushed) right after each image
is renamed into place, so a killed run knows what it finished; at the end the
file is rewritten sorted by time, atomically. A torn last line from a killed
run is ignored when read back. The header line is the tool's mark: a
``frames.csv`` with another first line is the user's and is never replaced
(:mod:`~napari_video_extract.core.ownership`).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = [
    "COLUMNS",
    "MANIFEST_HEADERS",
    "MANIFEST_NAME",
    "PICK_COLUMNS",
    "STATUS_BLANK",
    "FrameRecord",
    "ManifestWriter",
    "read_manifest",
    "write_atomic",
]

MANIFEST_NAME = "frames.csv"
#: ``status`` of an instant skipped because its frame is blank.
STATUS_BLANK = "blank"


@dataclass(frozen=True)
class FrameRecord:
    """One written still (or, with ``status``, one skipped instant)."""

    file: str
    video: str
    time: float
    frame: int
    requested_time: float
    width: int
    height: int
    sharpness: float | None = None
    status: str = ""

    @property
    def skipped(self) -> bool:
        """True for an instant recorded as skipped (no image)."""
        return bool(self.status)

    def row(self) -> dict[str, str]:
        d = asdict(self)
        d["time"] = f"{self.time:.6f}"
        d["requested_time"] = f"{self.requested_time:.6f}"
        d["sharpness"] = "" if self.sharpness is None else f"{self.sharpness:.3f}"
        return {k: str(v) for k, v in d.items()}


#: The columns every run writes; runs that choose frames add ``sharpness,status``.
COLUMNS = [f.name for f in fields(FrameRecord)][:7]
PICK_COLUMNS = [*COLUMNS, "sharpness", "status"]
#: Every header this tool writes (its mark on a ``frames.csv``).
MANIFEST_HEADERS = (COLUMNS, PICK_COLUMNS)


def read_manifest(folder: str | os.PathLike) -> list[FrameRecord]:
    """Rows of ``folder/frames.csv`` (empty if absent); malformed rows skipped."""
    path = Path(folder) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            records.append(
                FrameRecord(
                    file=row["file"],
                    video=row["video"],
                    time=float(row["time"]),
                    frame=int(row["frame"]),
                    requested_time=float(row.get("requested_time") or row["time"]),
                    width=int(row.get("width") or 0),
                    height=int(row.get("height") or 0),
                    sharpness=float(row["sharpness"]) if row.get("sharpness") else None,
                    status=row.get("status") or "",
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # torn line from an interrupted run
    return records


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _render(records: list[FrameRecord], columns: list[str] | None = None) -> bytes:
    columns = columns or COLUMNS
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for rec in records:
        writer.writerow(rec.row())
    return buf.getvalue().encode("utf-8")


class ManifestWriter:
    """Append rows as images land; rewrite sorted and atomically on close.

    Parameters
    ----------
    folder : Path
        The video's output folder.
    existing : list of FrameRecord
        Rows already recorded (kept unless replaced by a row for the same file).
    picking : bool
        Write the ``sharpness,status`` columns too (always kept once there).
    """

    def __init__(
        self, folder: Path, existing: list[FrameRecord], *, picking: bool = False
    ) -> None:
        self.path = Path(folder) / MANIFEST_NAME
        self.records: dict[str, FrameRecord] = {r.file: r for r in existing}
        extended = picking or any(r.sharpness is not None or r.status for r in existing)
        self.columns = PICK_COLUMNS if extended else COLUMNS
        # Start from a clean, complete file so appends follow a whole line.
        write_atomic(self.path, _render(self._sorted(), self.columns))
        self._fh = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.DictWriter(
            self._fh, fieldnames=self.columns, lineterminator="\n", extrasaction="ignore"
        )

    def _sorted(self) -> list[FrameRecord]:
        return sorted(self.records.values(), key=lambda r: (r.time, r.frame, r.file))

    def add(self, record: FrameRecord) -> None:
        """Record one image that is already in place."""
        self.records[record.file] = record
        self._writer.writerow(record.row())
        self._fh.flush()

    def close(self) -> None:
        """Rewrite the manifest sorted by time (atomic)."""
        if self._fh.closed:
            return
        self._fh.close()
        write_atomic(self.path, _render(self._sorted(), self.columns))
