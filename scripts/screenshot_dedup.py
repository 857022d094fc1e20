"""Screenshot of the duplicate finder reviewing the sample video's stills.

Run under a display (Xvfb with Mesa is enough)::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshot_dedup.py

Opens the bundled sample video with our reader, extracts a still every second
with the interval extraction widget, runs the duplicate finder widget on the
stills and saves the window (viewer + dock widgets) to
``docs/images/duplicate_finder.png``.
"""

from __future__ import annotations

import argparse
import gc
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
    from napari_video_extract._widgets import DuplicateFinderWidget, IntervalExtractionWidget
    from napari_video_extract.core.sample import sample_video_path

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window.resize(1500, 900)
    (video,) = viewer.open(sample_video_path(), plugin="napari-video-extract")

    with tempfile.TemporaryDirectory() as tmp:
        extraction = IntervalExtractionWidget(viewer)
        extraction.source.value = video
        extraction.every.value = 1.0
        extraction.out_dir.value = Path(tmp)
        extraction.start()
        _wait(app, extraction)
        stills = viewer.layers[-1]
        viewer.layers.remove(video)
        del video  # close its decoder now, not at interpreter exit
        gc.collect()

        finder = DuplicateFinderWidget(viewer)
        viewer.window.add_dock_widget(finder, name="Duplicate finder", area="right")
        finder.source.value = stills
        finder.start()
        _wait(app, finder)
        # Show a duplicate: the second still of the colour bars.
        review = finder.review
        duplicate = int(next(i for i in range(review.n) if not review.kept[i]))
        row = finder.row_of(duplicate)
        finder.table.selectRow(row)
        finder.go_to(duplicate)
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
