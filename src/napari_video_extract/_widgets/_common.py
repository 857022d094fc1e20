"""Shared bits of the dock widgets: notifications, path fields, image reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import FileEdit


def _show_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def _show_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


def _path_value(edit: FileEdit) -> Path | None:
    """The path typed/chosen in ``edit``, or None when empty."""
    text = str(edit.value or "").strip()
    return None if text in ("", ".") else Path(text).expanduser()


def _rgb01(rgb: tuple[int, int, int]) -> tuple[float, float, float, float]:
    return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255, 1.0)


def _read_rgb(path: Path) -> np.ndarray:
    """Decode an image file as an (H, W, 3) uint8 array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
