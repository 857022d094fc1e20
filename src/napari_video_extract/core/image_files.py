"""Still images on disk: encode one, and write it atomically, never over a user's file.

:func:`write_image` writes to a temporary name (``.<name>.tmp-<pid>-<thread>``,
which :func:`~napari_video_extract.core.folder_lock.remove_stale_temporaries`
recognises) and moves it into place only where no file of that name exists,
unless the caller knows the file there is ours and asks to replace it.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_FORMATS", "encode_image", "write_image"]

IMAGE_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


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


def write_image(folder: Path, name: str, data: bytes, *, replace: bool) -> str:
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
