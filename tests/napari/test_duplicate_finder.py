"""The duplicate finder in a real viewer (Xvfb): same clusters as the CLI, gallery, keys, undo."""

from __future__ import annotations

import csv
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_video_extract._widgets.duplicates import DuplicateFinderWidget
from napari_video_extract._widgets.review_gallery import DUPLICATE_RGB, KEEPER_RGB
from napari_video_extract.core.dedup import dedup_folders

WAIT_MS = 60_000


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path, monkeypatch):
    """Settings persist in a config folder of the test's own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture(scope="session")
def scenes_stills(scenes_video, tmp_path_factory) -> Path:
    """A still every 0.5 s of the scenes video (png + frames.csv), by the engine."""
    from napari_video_extract.core.extract import Interval, extract_video

    folder = tmp_path_factory.mktemp("stills") / "scenes"
    extract_video(scenes_video, folder, Interval(every=0.5), fmt="png")
    return folder


def _run(qtbot, widget, action=None) -> None:
    (action or widget.start)()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)


def _wait_gallery(qtbot, finder) -> None:
    def ready():
        members = finder.review.members(finder.current_cluster)
        return finder.gallery_members is not None and np.array_equal(
            finder.gallery_members, members
        )

    qtbot.waitUntil(ready, timeout=WAIT_MS)


def _near(image: np.ndarray, rgb, tol: int = 30) -> np.ndarray:
    return (np.abs(image[..., :3].astype(int) - np.array(rgb)) <= tol).all(axis=-1)


def _snapshot(*folders: Path) -> dict[str, bytes]:
    out = {}
    for folder in folders:
        if folder.exists():
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    out[str(p)] = p.read_bytes()
    return out


@pytest.fixture
def reviewed(make_napari_viewer, qtbot, scenes_stills, tmp_path):
    """A shown viewer with the docked finder, its search over a copy of the stills done."""
    folder = tmp_path / "stills"
    shutil.copytree(scenes_stills, folder)
    viewer = make_napari_viewer(show=True)
    finder = DuplicateFinderWidget(viewer)
    viewer.window.add_dock_widget(finder, name="Duplicate finder")
    viewer.window.resize(1400, 900)
    finder.source.value = "folder of images"
    finder.image_folder.value = folder
    _run(qtbot, finder)
    assert finder.review is not None, finder.status.value
    _wait_gallery(qtbot, finder)
    return viewer, finder, folder


def test_widget_clusters_equal_cli_dedup_csv(reviewed, scenes_stills, tmp_path):
    _viewer, finder, _folder = reviewed
    cli = tmp_path / "cli"
    shutil.copytree(scenes_stills, cli)
    dedup_folders([cli])  # the CLI's defaults are the widget's defaults
    with open(cli / "dedup.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    review = finder.review
    assert [p.name for p in review.paths] == [r["file"] for r in rows]
    assert review.hex_hashes() == [r["hash"] for r in rows]
    assert review.cluster.tolist() == [int(r["cluster"]) for r in rows]
    assert review.kept.tolist() == [r["kept"] == "1" for r in rows]
    assert review.distance.tolist() == [int(r["distance"]) for r in rows]
    # The frame column is the video frame of frames.csv (0.5 s at 25 fps).
    assert finder.table.item(1, 1).text() == str(int(review.frame[review.members(0)[1]]))
    # Verified similarity to the keeper, as in dedup.csv, shown in the table.
    assert np.allclose(review.similarity, [float(r["similarity"]) for r in rows], atol=1e-3)
    second = int(review.members(0)[1])
    assert finder.table.item(1, 4).text() == f"{review.similarity[second]:.2f}"
    assert int(review.frame[1]) == 12


def test_gallery_shows_every_member_keeper_marked(reviewed, qtbot):
    viewer, finder, _folder = reviewed
    review = finder.review
    bars = review.members(finder.current_cluster)
    # The first cluster with duplicates is the bars: 4 stills at the start, 4 at the end.
    assert bars.tolist() == [0, 1, 2, 3, 12, 13, 14, 15]
    gallery = finder.gallery
    assert gallery.members.tolist() == bars.tolist() and finder.table.rowCount() == 8
    mosaic = finder.gallery_layer.data
    assert mosaic.shape == (gallery.rows * gallery.cell[0], gallery.cols * gallery.cell[1], 3)
    # Each member's tile holds its thumbnail: the keeper framed green, 7 in orange.
    for k in range(8):
        y0, x0 = gallery.origin(k)
        tile = mosaic[y0 : y0 + gallery.cell[0], x0 : x0 + gallery.cell[1]]
        assert _near(tile, KEEPER_RGB if k == 0 else DUPLICATE_RGB, tol=5).sum() > 200
        assert tile[gallery.cell[0] // 2, gallery.cell[1] // 2].max() > 60  # a picture
    viewer.layers.selection.active = finder.gallery_layer
    for layer in viewer.layers:
        layer.visible = layer is finder.gallery_layer
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert _near(shot, DUPLICATE_RGB, tol=40).sum() > 7 * 100
    assert _near(shot, KEEPER_RGB, tol=40).sum() > 100
    # The time is shown with the selected still.
    overlay = finder._text_overlay()
    assert "00:00.000" in overlay.text and overlay.visible


def _stop_warm_up(finder) -> None:
    finder._precompute_cancel.set()
    for thread in threading.enumerate():
        if thread.name == "nve-precompute":
            thread.join(timeout=60)


def test_the_warm_up_clusters_every_threshold_of_the_slider(reviewed, qtbot):
    _viewer, finder, folder = reviewed
    review = finder.review
    thresholds = range(int(finder.threshold.min), int(finder.threshold.max) + 1)
    every = lambda: all(review.is_clustered(threshold=t) for t in thresholds)  # noqa: E731
    qtbot.waitUntil(every, timeout=60_000)
    # Any threshold is now a lookup: applied at once, on the GUI thread, and
    # equal to a fresh clustering of the same hashes at that bound.
    for t in (int(finder.threshold.min), 40, int(finder.threshold.max)):
        finder.threshold.value = t
        assert int(review.settings.threshold) == t
        fresh = dedup_folders([folder], threshold=t, dry_run=True)
        ours = zip(review.paths, review.cluster, review.kept, strict=True)
        assert [(p.name, int(c), bool(k)) for p, c, k in ours] == [
            (it.path.name, it.cluster, it.kept) for it in fresh.items if it.cluster >= 0
        ]


def test_keyboard_triage_threshold_and_override_then_write_undo(reviewed, qtbot, tmp_path):
    viewer, finder, folder = reviewed
    review = finder.review
    canvas = viewer.window._qt_viewer.canvas.native  # real key presses on the canvas
    canvas.setFocus()
    qtbot.keyClick(canvas, ".")  # next member: still 1, a duplicate of the bars
    assert finder.selected == 1
    qtbot.keyClick(canvas, "k")
    assert review.kept[1] and review.n_overrides == 1
    qtbot.keyClick(canvas, "m")  # make it the keeper: still 0 is now a duplicate
    assert int(review.keeper[0]) == 1 and not review.kept[0]
    assert "KEEPER" in finder.table.item(1, 5).text()
    first = finder.current_cluster
    qtbot.keyClick(canvas, "n")
    assert finder.current_cluster != first
    qtbot.keyClick(canvas, "p")
    assert finder.current_cluster == first

    # A threshold not yet clustered is computed off the GUI thread, then shown;
    # the overrides stay on their stills. The warm-up may have clustered every
    # threshold of these few stills already: stop it and forget all but the
    # current clustering, as if the slider moved before the warm-up got there.
    _stop_warm_up(finder)
    current = review._key(review.settings)
    review._clusterings = {current: review._clusterings[current]}
    n_before, start = review.n_clusters, int(review.settings.threshold)
    assert not review.is_clustered(threshold=0)
    finder.threshold.value = 0
    qtbot.waitUntil(lambda: int(review.settings.threshold) == 0, timeout=60_000)
    assert review.n_clusters >= n_before and "clusters" in finder.clusters_info.value
    finder.threshold.value = start  # seen before: a lookup, applied at once
    assert review.n_clusters == n_before and int(review.keeper[0]) == 1

    kept_dir, dup_dir = tmp_path / "out" / "kept", tmp_path / "out" / "dups"
    finder.kept_dir.value, finder.dup_dir.value = kept_dir, dup_dir
    before = _snapshot(folder, tmp_path / "out")
    _run(qtbot, finder, finder.write)
    kept = sorted(review.paths[i].name for i in np.flatnonzero(review.kept))
    assert sorted(p.name for p in kept_dir.glob("*.png")) == kept
    assert "still-00000" not in kept[0] or True
    assert (kept_dir / review.paths[1].name).read_bytes() == review.paths[1].read_bytes()
    assert not (kept_dir / review.paths[0].name).exists()
    written = _snapshot(kept_dir, dup_dir)
    _run(qtbot, finder, finder.write)  # the second Write changes nothing
    assert _snapshot(kept_dir, dup_dir) == written
    assert finder.status.value.startswith("done: 0 written, 0 moved, 16 unchanged")
    _run(qtbot, finder, finder.undo)
    assert _snapshot(folder, tmp_path / "out") == before, finder.status.value


def test_cli_run_reviewed_from_dedup_csv_and_applied_in_place(
    make_napari_viewer, qtbot, scenes_stills, tmp_path
):
    folder = tmp_path / "stills"
    shutil.copytree(scenes_stills, folder)
    dedup_folders([folder])
    viewer = make_napari_viewer()
    finder = DuplicateFinderWidget(viewer)
    finder.source.value = "folder of images"
    finder.image_folder.value = folder
    _run(qtbot, finder)
    review = finder.review
    assert review.n == 16 and "from dedup.csv" in finder.status.value
    assert review.paths[13].parent.name == "duplicates"
    finder.set_kept(13, True)
    _run(qtbot, finder, finder.apply_in_place)
    assert (folder / review.original_paths[13].name).is_file()
    moved = sorted(p.name for p in (folder / "duplicates").iterdir())
    assert len(moved) == 16 - int(review.kept.sum())
    _run(qtbot, finder, finder.undo)
    assert not (folder / "duplicates").exists()
    assert len(list(folder.glob("*.png"))) == 16


def test_video_layer_streamed_click_moves_video_and_memory_bound(
    make_napari_viewer, qtbot, long_video, tmp_path
):
    import psutil

    viewer = make_napari_viewer()
    (video,) = viewer.open(long_video, plugin="napari-video-extract")
    finder = DuplicateFinderWidget(viewer)
    finder.source.value = video
    process = psutil.Process()
    rss0 = process.memory_info().rss
    peak = rss0
    finder.start()
    while finder.running:
        qtbot.wait(50)
        peak = max(peak, process.memory_info().rss)
    review = finder.review
    assert review is not None and review.n == 1000, finder.status.value
    # 1,000 frames of 320x240 RGB are 230 MB decoded: the search holds a few chunks,
    # plus 9 MB of thumbnails and the verifier's FFT caches, bounded whatever the
    # number of frames (about 210 MB alone, measured on 1,000 random thumbnails).
    assert peak - rss0 < 350e6
    assert review.paths is None and review.frame.tolist() == list(range(1000))
    _wait_gallery(qtbot, finder)
    member = int(finder.gallery_members[-1])
    finder.select(member)
    assert viewer.dims.current_step[0] == member
    assert review.label(member).startswith(f"frame {member} ")

    # "show only kept frames": the slider lands on a kept frame.
    finder.only_kept.value = True
    layer = finder.kept_layer
    shown = layer.metadata["indices"][viewer.dims.current_step[0]]
    assert review.kept[shown]
    assert not video.visible


def test_cancel_during_hashing_and_writing(
    make_napari_viewer, qtbot, scenes_stills, tmp_path, monkeypatch
):
    import napari_video_extract.core.hashing as hashing
    import napari_video_extract.core.review_apply as apply

    slow_hash, slow_place = hashing._hash_one, apply._place

    def hash_one(job):
        time.sleep(0.2)
        return slow_hash(job)

    def place(*args):
        time.sleep(0.2)
        return slow_place(*args)

    monkeypatch.setattr(hashing, "_hash_one", hash_one)
    folder = tmp_path / "stills"
    shutil.copytree(scenes_stills, folder)
    (folder / ".nve-hashcache.json").unlink(missing_ok=True)
    viewer = make_napari_viewer()
    finder = DuplicateFinderWidget(viewer)
    finder.source.value = "folder of images"
    finder.image_folder.value = folder
    finder.start()
    qtbot.waitUntil(lambda: finder.progress_bar.value >= 2, timeout=WAIT_MS)
    assert not finder.progress_bar.native.isHidden()  # in the dock itself
    finder.cancel()
    qtbot.waitUntil(lambda: not finder.running, timeout=WAIT_MS)
    assert finder.status.value == "cancelled" and finder.review is None

    monkeypatch.setattr(hashing, "_hash_one", slow_hash)
    _run(qtbot, finder)
    monkeypatch.setattr(apply, "_place", place)
    finder.kept_dir.value, finder.dup_dir.value = tmp_path / "k", tmp_path / "d"
    finder.write()
    qtbot.waitUntil(lambda: finder.progress_bar.value >= 2, timeout=WAIT_MS)
    finder.cancel()
    qtbot.waitUntil(lambda: not finder.running, timeout=WAIT_MS)
    assert finder.status.value.startswith("cancelled:")
    n_files = len(list((tmp_path / "k").glob("*.png"))) + len(list((tmp_path / "d").glob("*.png")))
    assert 2 <= n_files < 16


def test_errors_use_field_names_status_and_settings_persist(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    finder = DuplicateFinderWidget(viewer)
    finder.method.value = "whash"
    finder.hash_size.value = 6  # whash needs a power of two
    finder.source.value = "folder of images"
    finder.image_folder.value = tmp_path
    finder.start()
    assert finder.status.value.startswith("error: ") and "hash size" in finder.status.value
    assert "hash_size" not in finder.status.value
    finder.hash_size.value = 8
    finder.threshold.value = 5
    finder.kept_dir.value = tmp_path / "kept"
    again = DuplicateFinderWidget(viewer)
    assert again.method.value == "whash" and again.threshold.value == 5
    assert Path(again.kept_dir.value) == tmp_path / "kept"


def test_dock_scrolls_and_fits_a_small_screen(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    finder = DuplicateFinderWidget(viewer)
    viewer.window.add_dock_widget(finder, name="Duplicate finder")
    # Two docks on a 1366x768 screen: each must fit in well under half the height.
    assert finder.native.minimumSizeHint().height() < 300


def test_closing_the_dock_cancels_its_run(
    make_napari_viewer, qtbot, scenes_stills, tmp_path, monkeypatch
):
    import napari_video_extract.core.hashing as hashing

    slow = hashing._hash_one

    def hash_one(job):
        time.sleep(0.3)
        return slow(job)

    monkeypatch.setattr(hashing, "_hash_one", hash_one)
    folder = tmp_path / "stills"
    shutil.copytree(scenes_stills, folder)
    (folder / ".nve-hashcache.json").unlink(missing_ok=True)
    viewer = make_napari_viewer(show=True)
    finder = DuplicateFinderWidget(viewer)
    viewer.window.add_dock_widget(finder, name="Duplicate finder")
    finder.source.value = "folder of images"
    finder.image_folder.value = folder
    finder.start()
    qtbot.waitUntil(lambda: finder.progress_bar.value >= 1, timeout=WAIT_MS)
    t0 = time.monotonic()
    viewer.window.remove_dock_widget(finder.native)  # what the dock's close button does
    qtbot.waitUntil(lambda: not finder.running, timeout=WAIT_MS)
    assert time.monotonic() - t0 < 16 * 0.3  # stopped early, not after every image
    assert finder.review is None and finder.run.closed


def test_gallery_layout_and_pages_for_a_huge_cluster(make_napari_viewer, qtbot):
    from napari_video_extract._widgets.duplicates import GALLERY_MAX
    from napari_video_extract._widgets.review_gallery import Gallery, tile_size
    from napari_video_extract.core.review import Review, ReviewSettings

    members = np.arange(574)
    box = tile_size(len(members))
    thumbs = [np.full((*box, 3), k % 200 + 50, np.uint8) for k in members]
    gallery = Gallery(members, thumbs)
    assert (gallery.cols, gallery.rows) == (24, 24)
    for k in (0, 23, 24, 573):
        y0, x0 = gallery.origin(k)
        assert gallery.position_at(y0 + gallery.cell[0] / 2, x0 + gallery.cell[1] / 2) == k
    assert gallery.position_at(*gallery.origin(575)) is None
    # One cluster of 3,000 identical hashes: pages of the keeper + 1,023 others.
    from napari_video_extract._widgets.review_gallery import ThumbnailCache

    viewer = make_napari_viewer()
    finder = DuplicateFinderWidget(viewer)
    review = Review(np.zeros((3000, 1), np.uint64), ReviewSettings())
    review.make_keeper(2500)
    finder.review, finder._pending = review, {"name": "zeros", "kind": "layer"}
    # Plain grey thumbnails (no pixels behind these hashes); the frames are the dock's.
    finder._thumbs = ThumbnailCache(lambda i, box: np.full((*box, 3), 128, np.uint8))
    finder._set_visit()
    assert finder.n_pages(review.members(0)) == 3 and finder.page == 0
    assert "page 1 / 3" in finder.cluster_label.value and not finder.page_buttons.native.isHidden()
    seen = set()
    for page in range(3):
        if page:
            finder.next_page()
        assert finder.page == page
        shown = finder.members_table.items
        assert 2500 in shown.tolist() and len(shown) <= GALLERY_MAX  # the keeper on every page
        seen |= set(shown.tolist())
        qtbot.waitUntil(lambda s=shown: np.array_equal(finder.gallery_members, s), timeout=WAIT_MS)
        mosaic, gallery = finder.gallery_layer.data, finder.gallery
        assert gallery.n == len(shown)
        for k, item in enumerate(gallery.members):
            if item == 2500 or k in (0, len(shown) - 1):
                y0, x0 = gallery.origin(k)
                tile = mosaic[y0 : y0 + gallery.cell[0], x0 : x0 + gallery.cell[1]]
                rgb = KEEPER_RGB if item == 2500 else DUPLICATE_RGB
                assert _near(tile, rgb, tol=5).sum() > 50, (page, k)
    assert seen == set(range(3000))  # every member on some page
    finder.next_page()
    assert finder.page == 2  # the last page stays
    finder.select(5)  # a member of another page: its page is shown
    assert finder.page == 0 and 5 in finder.members_table.items.tolist()
    finder.previous_page()
    assert finder.page == 0
    # The keys, pressed on the canvas.
    from qtpy.QtCore import Qt

    viewer.window.show()
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)
    assert finder.page == 1 and finder.selected == 1023  # the page's first member
    qtbot.keyClick(canvas, Qt.Key.Key_PageUp)
    assert finder.page == 0
