"""Screenshot of the duplicate finder reviewing the sample video's stills.

Run under a display (Xvfb with Mesa is enough)::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshot_dedup.py

Opens the bundled sample video with our reader, extracts a still every second
with the interval extraction engine, runs the duplicate finder widget on the
folder of stills (next to the video layer) and saves the window (viewer +
dock) with the colour-bars cluster in the gallery to
``docs/images/duplicate_finder.png``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _wait(app, widget, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while widget.running:
        if time.monotonic() > deadline:
            raise TimeoutError("the widget's worker did not finish")
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "images" / "duplicate_finder.png"
    )
    args = parser.parse_args()

    from PIL import Image
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_video_extract._widgets.duplicates import DuplicateFinderWidget
    from napari_video_extract.core.extract import Interval, extract_video
    from napari_video_extract.core.sample import sample_video_path

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window.resize(1500, 900)
    viewer.open(sample_video_path(), plugin="napari-video-extract")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sample"
        extract_video(sample_video_path(), folder, Interval(every=1.0), fmt="jpg")
        finder = DuplicateFinderWidget(viewer)
        viewer.window.add_dock_widget(finder, name="Duplicate finder", area="right")
        finder.source.value = "folder of images"
        finder.image_folder.value = folder
        finder.start()
        _wait(app, finder)
        deadline = time.monotonic() + 60
        while finder.gallery is None and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        finder.next_member()  # select a duplicate of the first cluster
        viewer.reset_view()
        for _ in range(20):
            app.processEvents()
            time.sleep(0.05)
        shot = viewer.screenshot(canvas_only=False, flash=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(shot).convert("RGB").save(args.out, optimize=True)
    print(
        f"saved {args.out} ({args.out.stat().st_size // 1024} KB, {shot.shape[1]}x{shot.shape[0]})"
    )
    viewer.close()


if __name__ == "__main__":
    main()
