"""Take the README screenshots from a real napari viewer.

Needs a display with OpenGL; on a headless machine run it under Xvfb::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshots.py

Each screenshot is one function ``shot_<name>(viewer) -> Path`` registered in
``SHOTS``; ``python scripts/screenshots.py viewer_video`` takes only that one.
Images go to ``docs/images/``, saved as optimised PNG (kept small for the repo).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
#: Window size of every screenshot (logical pixels).
WINDOW_SIZE = (1200, 760)


def _new_viewer():
    import napari

    viewer = napari.Viewer(title="napari-video-extract", show=True)
    viewer.window.resize(*WINDOW_SIZE)
    return viewer


def _settle(viewer, *, ms: int = 300) -> None:
    """Let Qt lay out and paint the window before grabbing it."""
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    QApplication.processEvents()


def _save(image, name: str, *, max_width: int = 1200) -> Path:
    """Save an RGBA screenshot as a palette-free, optimised PNG."""
    from PIL import Image

    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"{name}.png"
    picture = Image.fromarray(image).convert("RGB")
    if picture.width > max_width:
        height = round(picture.height * max_width / picture.width)
        picture = picture.resize((max_width, height), Image.LANCZOS)
    picture.save(path, optimize=True)
    return path


def shot_viewer_video(viewer) -> Path:
    """The sample video opened by our reader, in the middle of a scene."""
    viewer.open_sample("napari-video-extract", "sample_video")
    layer = viewer.layers[-1]
    viewer.dims.set_point(0, 140)  # the Mandelbrot zoom (scene 2)
    viewer.reset_view()
    _settle(viewer)
    image = viewer.screenshot(canvas_only=False, flash=False)
    assert layer.data.shape[0] == 600
    return _save(image, "viewer_video")


#: name -> function taking a fresh viewer and returning the saved image path.
#: The duplicate finder screenshot (``dedup_clusters``) belongs here too.
SHOTS: dict[str, Callable[..., Path]] = {
    "viewer_video": shot_viewer_video,
}


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots named on the command line (default: all).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (0 on success).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"screenshots to take: {', '.join(SHOTS)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SHOTS))
    if unknown:
        parser.error(f"unknown screenshot(s): {', '.join(unknown)}")
    for name in args.names or list(SHOTS):
        viewer = _new_viewer()
        try:
            path = SHOTS[name](viewer)
        finally:
            viewer.close()
        size_kb = path.stat().st_size / 1024
        sys.stdout.write(f"{path.relative_to(REPO)}: {size_kb:.0f} KB\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
