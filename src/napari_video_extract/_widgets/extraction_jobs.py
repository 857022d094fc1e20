"""Worker side of the extraction widgets: one video after the other, progress, read-back.

Runs in a :func:`napari.qt.threading.create_worker` thread and touches no
layer: it yields :class:`Progress` (at most 4 a second) and one
:class:`VideoDone` per video, which the widget handles on the main thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_video_extract.core.errors import InputError, SettingError
from napari_video_extract.core.extract import HeadTail, Interval, extract_video
from napari_video_extract.core.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from napari_video_extract.core.stills import StillStack

__all__ = ["Progress", "VideoDone", "extraction_job", "worded"]

# Seconds between two progress updates sent to the GUI. Each one repaints the
# dock, and a window holding napari's OpenGL canvas composites the whole window
# on every repaint: ~20 ms of CPU under Mesa's software GL (measured with
# benchmarks/bench_napari.py: at 10 updates a second the widget used ~30 % more
# CPU than the CLI for the same extraction).
_UPDATE_S = 0.25


@dataclass
class VideoDone:
    """One video's outcome, sent from the worker to the main thread."""

    video: Path
    out_dir: Path
    stack: StillStack | None = None
    #: The stills layer's ``(data, add_kwargs, "image")``, built in the worker
    #: (pandas and the features table stay off the GUI thread).
    layer: tuple | None = None
    written: int = 0
    resumed: int = 0
    error: str | None = None


@dataclass
class Progress:
    """Progress of one phase of one video, sent from the worker."""

    number: int
    phase: str
    done: int = 0
    total: int = 0


def worded(exc: Exception, names: Mapping[str, str]) -> str:
    """The message of ``exc``, settings called by ``names`` (see SettingError.worded)."""
    return exc.worded(names) if isinstance(exc, SettingError) else str(exc)


def extraction_job(
    jobs: Sequence[tuple[Path, Path]],
    spec: Interval | HeadTail,
    options: dict[str, Any],
    names: Mapping[str, str],
    cancel: threading.Event,
) -> Iterator[Progress | VideoDone]:
    """Worker body: extract each video, yielding progress and per-video results.

    Yields :class:`Progress` and one :class:`VideoDone` per video started;
    returns nothing. Never raises for one video's failure.
    """
    from napari_video_extract.core.stills import open_stills

    messages: queue.SimpleQueue = queue.SimpleQueue()
    with ThreadPoolExecutor(max_workers=1) as pool:
        for number, (video, out_dir) in enumerate(jobs):
            if cancel.is_set():
                break
            outcome = VideoDone(video=video, out_dir=out_dir)
            yield Progress(number, "probing")

            def run(outcome: VideoDone = outcome, number: int = number) -> None:
                try:
                    res = extract_video(
                        outcome.video,
                        outcome.out_dir,
                        spec,
                        cancel=cancel,
                        progress=lambda d, t: messages.put(Progress(number, "extracting", d, t)),
                        **options,
                    )
                except InputError as exc:
                    # An error about another file (e.g. a foreign frames.csv in the
                    # output folder) still names the video it stopped.
                    about_video = exc.path.resolve() == outcome.video.resolve()
                    outcome.error = str(exc) if about_video else f"{outcome.video}: {exc}"
                    return
                except (ValueError, OSError) as exc:  # a setting, a disk: this video only
                    outcome.error = f"{outcome.video}: {worded(exc, names)}"
                    return
                outcome.written, outcome.resumed = res.written, res.resumed
                if res.error:
                    outcome.error = f"{outcome.video}: {res.error}"

            future = pool.submit(run)
            # At most 4 updates a second reach the GUI thread: one per still
            # would keep it (and the GIL) busy repainting while stills are encoded.
            latest: Progress | None = None
            while not future.done():
                with contextlib.suppress(queue.Empty):
                    latest = messages.get(timeout=_UPDATE_S)
                with contextlib.suppress(queue.Empty):
                    while True:
                        latest = messages.get_nowait()
                if latest is not None:
                    yield latest
                    latest = None
                    time.sleep(_UPDATE_S)
            with contextlib.suppress(queue.Empty):
                while True:
                    latest = messages.get_nowait()
            if latest is not None:
                yield latest
            future.result()
            if (outcome.out_dir / MANIFEST_NAME).is_file() and not cancel.is_set():
                # The read-back is a listing: images are decoded when shown.
                yield Progress(number, "listing stills")
                try:
                    stack = open_stills(outcome.out_dir / MANIFEST_NAME)
                except OSError as exc:
                    outcome.error = outcome.error or f"{outcome.out_dir}: {exc}"
                else:
                    outcome.stack = stack if len(stack) else None
            elif cancel.is_set() and (outcome.out_dir / MANIFEST_NAME).is_file():
                # Cancelled: still show what is complete (a listing, not a read).
                with contextlib.suppress(OSError):
                    stack = open_stills(outcome.out_dir / MANIFEST_NAME)
                    outcome.stack = stack if len(stack) else None
            if outcome.stack is not None:
                outcome.layer = _layer_data(outcome)
            yield outcome


def _layer_data(outcome: VideoDone) -> tuple:
    """The stills layer of one video's outcome, as the reader makes it."""
    from napari_video_extract._reader import read_stills

    name = f"{outcome.video.stem} stills"
    [layer] = read_stills(outcome.out_dir, stack=outcome.stack, name=name)
    layer[1]["metadata"]["video"] = str(outcome.video)
    return layer
