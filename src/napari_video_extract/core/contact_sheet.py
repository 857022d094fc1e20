"""Contact sheets: one image showing every still of a video folder with its time.

A sheet is a header (the video's name, duration, size and codec) above a grid
of thumbnails, in the order the dedup engine and the reader use
(:func:`~napari_video_extract.core.dedup.ordered_images`: ``frames.csv`` time,
then natural name order), each labelled with its timestamp (or its file name
when ``frames.csv`` does not list it). Stills moved to ``duplicates/`` or
skipped as blank are not in the folder, so the sheet shows the kept ones.

Memory stays bounded: each still is opened, reduced to its cell (JPEG draft
mode decodes at 1/2, 1/4 or 1/8 scale) and pasted before the next is read,
and at most ``max_stills`` cells are drawn (an evenly spaced subset beyond
that, said in the header), so the canvas is at most ``width`` x a few
thousand pixels whatever the folder holds.

Sheets are written atomically and never over a file this tool did not write:
every sheet carries :data:`SHEET_MARKER` (a PNG text chunk or the JPEG
comment), and only a file carrying it is replaced. With the default name a
foreign file is left alone and the next free name is taken; an explicit
output path that holds a foreign file is refused.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from napari_video_extract.core.errors import InputError, OutputError

__all__ = [
    "SHEET_FORMATS",
    "SHEET_MARKER",
    "ContactSheet",
    "default_sheet_path",
    "format_timestamp",
    "is_our_sheet",
    "write_contact_sheet",
]

#: Written into every sheet; only a file carrying it is ever replaced.
SHEET_MARKER = "napari-video-extract contact sheet"
SHEET_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG"}
_SUFFIX = "_contact_sheet"
_JPEG_MAX_SIDE = 65500

_BACKGROUND = (24, 24, 24)
_CELL_BACKGROUND = (0, 0, 0)
_TEXT = (235, 235, 235)
_DIM_TEXT = (170, 170, 170)


def format_timestamp(seconds: float, *, hours: bool = False) -> str:
    """``mm:ss.mmm``, or ``hh:mm:ss.mmm`` when ``hours`` (or the time needs it)."""
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    if hours or h:
        return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"
    return f"{m:02d}:{s:02d}.{ms:03d}"


@dataclass
class ContactSheet:
    """What :func:`write_contact_sheet` wrote.

    Attributes
    ----------
    path : Path
        The sheet file.
    folder : Path
        The folder of stills it shows.
    files : list of Path
        The stills drawn, in grid order (left to right, top to bottom).
    cells : list of tuple
        ``(left, top, right, bottom)`` of each still's thumbnail on the
        sheet (centred in its cell; the whole cell for an unreadable still).
    total : int
        Stills in the folder (more than ``len(files)`` when subsampled).
    unreadable : dict
        ``file -> reason`` for stills that could not be read (drawn as grey).
    size : tuple of int
        ``(width, height)`` of the sheet.
    header : list of str
        The header's text: the title (video name), then the facts lines.
    """

    path: Path
    folder: Path
    files: list[Path] = field(default_factory=list)
    cells: list[tuple[int, int, int, int]] = field(default_factory=list)
    total: int = 0
    unreadable: dict[Path, str] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    header: list[str] = field(default_factory=list)


def default_sheet_path(folder: str | os.PathLike, *, fmt: str = "jpg") -> Path:
    """``<parent>/<folder name>_contact_sheet.<fmt>``: beside the folder, not
    in it, so the sheet never becomes one of the stills."""
    folder = Path(os.path.abspath(folder))
    ext = "jpg" if fmt.lower() == "jpeg" else fmt.lower()
    return folder.parent / f"{folder.name}{_SUFFIX}.{ext}"


def is_our_sheet(path: str | os.PathLike) -> bool:
    """True if ``path`` is an image carrying :data:`SHEET_MARKER`."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            marks = [im.info.get("comment"), getattr(im, "text", {}).get("Software")]
    except (OSError, ValueError, SyntaxError):
        return False
    for mark in marks:
        if isinstance(mark, bytes):
            mark = mark.decode("utf-8", "replace")
        if mark == SHEET_MARKER:
            return True
    return False


# ----------------------------------------------------------------------- header


@dataclass(frozen=True)
class _Header:
    title: str
    lines: list[str]
    hours: bool


def _header(folder: Path, info, records, files: list[Path], total: int) -> _Header:
    """The header lines: from a probe when we have one, else from frames.csv."""
    shown = f"{len(files)} stills" if len(files) == total else f"{len(files)} of {total} stills"
    if info is not None:
        hours = info.duration >= 3600
        facts = [
            f"duration {format_timestamp(info.duration, hours=hours)}",
            f"{info.width}x{info.height}",
            info.codec,
        ]
        if info.avg_fps:
            facts.append(f"{info.avg_fps:.3f} fps")
        return _Header(info.path.name, [", ".join([*facts, shown])], hours)
    videos = Counter(r.video for r in records if r.video)
    title = videos.most_common(1)[0][0] if videos else folder.name
    sizes = Counter((r.width, r.height) for r in records if r.width > 0 and r.height > 0)
    last = max((r.time for r in records), default=0.0)
    hours = last >= 3600
    facts = []
    if records:
        facts.append(f"stills up to {format_timestamp(last, hours=hours)}")
    if sizes:
        w, h = sizes.most_common(1)[0][0]
        facts.append(f"{w}x{h}")
    facts.append(shown)
    return _Header(title, [", ".join(facts), "(video not found: facts from frames.csv)"], hours)


def _find_video(records, search: list[Path]) -> Path | None:
    """The video frames.csv names, if a regular file of exactly that name is
    in one of the ``search`` folders (the name is taken as a bare file name)."""
    names = Counter(r.video for r in records if r.video)
    if not names:
        return None
    name = names.most_common(1)[0][0]
    if Path(name).name != name or name in (".", ".."):
        return None  # a path, not a name: frames.csv is not ours or was edited
    for folder in search:
        candidate = folder / name
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


# ----------------------------------------------------------------------- drawing


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _subsample(items: list, limit: int) -> list:
    if limit <= 0 or len(items) <= limit:
        return list(items)
    if limit == 1:
        return [items[0]]
    step = (len(items) - 1) / (limit - 1)
    return [items[int(k * step + 0.5)] for k in range(limit)]


def _thumbnail(path: Path, box: tuple[int, int]):
    """The still scaled to fit ``box`` (aspect kept), decoded at reduced scale
    when possible."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.draft("RGB", box)  # JPEG: decode at 1/2..1/8 scale, never full size
        im = ImageOps.exif_transpose(im).convert("RGB")
        scale = min(box[0] / im.width, box[1] / im.height)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        size = (min(size[0], box[0]), min(size[1], box[1]))
        if scale < 1:
            return im.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
        return im.resize(size, Image.Resampling.BICUBIC)


def _encode(image, fmt: str, quality: int) -> bytes:
    from PIL import PngImagePlugin

    buf = io.BytesIO()
    if SHEET_FORMATS[fmt] == "PNG":
        meta = PngImagePlugin.PngInfo()
        meta.add_text("Software", SHEET_MARKER)
        image.save(buf, "PNG", pnginfo=meta, compress_level=6)
    else:
        image.save(buf, "JPEG", quality=quality, comment=SHEET_MARKER.encode())
    return buf.getvalue()


def _place(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write atomically; without ``replace`` never over an existing file.
    Returns False if a file appeared at ``path`` meanwhile."""
    from napari_video_extract.core.manifest import write_atomic

    if replace:
        write_atomic(path, data)
        return True
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if path exists: never overwrites
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_contact_sheet(
    folder: str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    columns: int = 5,
    width: int = 1600,
    fmt: str = "jpg",
    quality: int = 90,
    max_stills: int = 300,
    info=None,
    video_search: list[str | os.PathLike] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> ContactSheet:
    """Write a contact sheet of the stills in ``folder``.

    Parameters
    ----------
    folder : path
        A folder of stills (usually one video's output folder, with its
        ``frames.csv``).
    output : path, optional
        The sheet file. Default :func:`default_sheet_path`; if a file this
        tool did not write is there, the next free name (``..._2.jpg``) is
        used. An explicit ``output`` holding such a file is refused.
    columns : int
        Thumbnails per row (>= 1).
    width : int
        Sheet width in pixels (at least 64 per column).
    fmt : {'jpg', 'png'}
        Sheet format.
    quality : int
        JPEG quality, 1-100.
    max_stills : int
        At most this many thumbnails; beyond it an evenly spaced subset in
        time order is drawn (the header says how many of how many). 0 for no
        limit (memory then grows with the folder).
    info : VideoInfo, optional
        A probe of the video, for the header. Without it, the video that
        ``frames.csv`` names is looked for (by bare file name) in
        ``video_search`` and probed; if not found, the header gives what
        ``frames.csv`` knows.
    video_search : list of path, optional
        Folders where the video may be found.
    progress : callable(done, total), optional
        Called after each thumbnail.
    cancel : threading.Event, optional
        Set to stop; nothing is written then.

    Returns
    -------
    ContactSheet

    Raises
    ------
    ValueError
        Bad options.
    InputError
        The folder cannot be listed or holds no stills (``InputError``), or
        the sheet cannot be written (``OutputError``).
    """
    from PIL import Image, ImageDraw

    from napari_video_extract.core.dedup import ordered_images
    from napari_video_extract.core.manifest import read_manifest

    fmt = fmt.lower()
    if fmt not in SHEET_FORMATS:
        raise ValueError(f"unknown sheet format {fmt!r} (use jpg or png)")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if width < 64 * columns:
        raise ValueError(f"width must be at least 64 pixels per column ({64 * columns})")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    if max_stills < 0:
        raise ValueError(f"max_stills must be >= 0, got {max_stills}")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    try:
        images, _ = ordered_images(folder)
    except OSError as exc:
        raise InputError(folder, f"cannot list folder ({exc.strerror or exc})") from None
    if not images:
        raise InputError(folder, "no stills in this folder")
    records = [r for r in read_manifest(folder) if not r.skipped]  # no image for those
    by_name = {Path(r.file).name: r for r in records}
    if info is None:
        search = [Path(p) for p in (video_search or [])]
        video = _find_video(records, search)
        if video is not None:
            from napari_video_extract.core.probe import probe

            with contextlib.suppress(InputError):  # the header falls back to frames.csv
                info = probe(video)

    files = _subsample(images, max_stills)
    header = _header(folder, info, records, files, len(images))

    # Cell geometry: the common aspect of the stills (frames.csv, else the first).
    sizes = Counter((r.width, r.height) for r in records if r.width > 0 and r.height > 0)
    if sizes:
        sw, sh = sizes.most_common(1)[0][0]
    else:
        try:
            with Image.open(files[0]) as im:
                sw, sh = im.size
        except (OSError, ValueError):
            sw, sh = 16, 9
    gap = max(4, width // 200)
    cell_w = (width - gap * (columns + 1)) // columns
    cell_h = max(1, round(cell_w * sh / max(sw, 1)))
    label_size = max(10, min(28, cell_w // 12))
    label_h = label_size + gap
    title_size = max(14, min(48, width // 40))
    info_size = max(11, title_size * 2 // 3)
    header_h = gap + title_size + gap + len(header.lines) * (info_size + gap) + gap
    rows = math.ceil(len(files) / columns)
    height = header_h + rows * (cell_h + label_h + gap) + gap
    if SHEET_FORMATS[fmt] == "JPEG" and height > _JPEG_MAX_SIDE:
        raise ValueError(
            f"{len(files)} stills make a sheet {height} pixels tall, more than JPEG allows "
            f"({_JPEG_MAX_SIDE}): use fewer stills (max_stills), more columns, or png"
        )

    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = gap
    draw.text((gap, y), header.title, font=_font(title_size), fill=_TEXT)
    y += title_size + gap
    small = _font(info_size)
    for line in header.lines:
        draw.text((gap, y), line, font=small, fill=_DIM_TEXT)
        y += info_size + gap
    label_font = _font(label_size)

    result = ContactSheet(
        path=Path(), folder=folder, total=len(images), header=[header.title, *header.lines]
    )
    for k, path in enumerate(files):
        if cancel is not None and cancel.is_set():
            raise InputError(folder, "cancelled; no sheet written")
        r, c = divmod(k, columns)
        left = gap + c * (cell_w + gap)
        top = header_h + r * (cell_h + label_h + gap)
        box = (left, top, left + cell_w, top + cell_h)
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=_CELL_BACKGROUND)
        try:
            thumb = _thumbnail(path, (cell_w, cell_h))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            result.unreadable[path] = str(exc) or type(exc).__name__
            draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(90, 90, 90))
        else:
            x0, y0 = left + (cell_w - thumb.width) // 2, top + (cell_h - thumb.height) // 2
            sheet.paste(thumb, (x0, y0))
            box = (x0, y0, x0 + thumb.width, y0 + thumb.height)
            thumb.close()
        rec = by_name.get(path.name)
        label = format_timestamp(rec.time, hours=header.hours) if rec else path.name
        draw.text((left, top + cell_h + gap // 2), label, font=label_font, fill=_TEXT)
        result.files.append(path)
        result.cells.append(box)
        if progress:
            progress(k + 1, len(files))

    data = _encode(sheet, fmt, quality)
    result.size = sheet.size
    sheet.close()
    result.path = _write(folder, output, fmt, data)
    return result


def _write(folder: Path, output, fmt: str, data: bytes) -> Path:
    """Put the sheet in place without ever replacing a file we did not write."""
    explicit = output is not None
    path = Path(output) if explicit else default_sheet_path(folder, fmt=fmt)
    base = path
    n = 1
    while True:
        try:
            if path.exists() or path.is_symlink():
                if path.is_file() and not path.is_symlink() and is_our_sheet(path):
                    _place(path, data, replace=True)
                    return path
                if explicit:
                    raise OutputError(path, "exists and is not a contact sheet of this tool")
            elif _place(path, data, replace=False):
                return path
            else:
                continue  # a file appeared meanwhile: look at it again
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(
                path, f"cannot write contact sheet ({exc.strerror or exc})"
            ) from None
        n += 1
        path = base.with_name(f"{base.stem}_{n}{base.suffix}")
