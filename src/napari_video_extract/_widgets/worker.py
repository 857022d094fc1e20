"""One cancellable background run per dock, with its progress bar inside the dock.

:class:`DockRun` starts a :func:`napari.qt.threading.create_worker` thread,
feeds a magicgui :class:`~magicgui.widgets.ProgressBar` that lives in the dock
(napari's activity panel is hidden by default), keeps the Run/Cancel buttons
in step, and cancels the run when the dock is closed: napari's close button
takes the widget out of its dock (its parent becomes None) and may keep it
alive, so both that and the widget's deletion count as closing.
The work function gets a ``threading.Event`` as its last argument and reports
``(done, total)`` by yielding it (or yields its own messages to an ``on_yield``
handler). Every dock of the plugin (extraction, contact sheet, duplicates)
runs through it.
"""

from __future__ import annotations

import inspect
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from magicgui.widgets import ProgressBar, PushButton

__all__ = ["UPDATE_S", "DockRun", "WorkerCrash", "progress_steps"]


class DockRun:
    """The background run of one dock widget.

    Parameters
    ----------
    native : QWidget
        The dock's Qt widget: when it is destroyed, the run is cancelled.
    progress_bar : ProgressBar
        Shown while a run is going.
    start_buttons : sequence of PushButton
        Disabled while a run is going.
    cancel_button : PushButton
        Enabled while a run is going; cancels it.
    on_close : callable, optional
        Called once when the dock is closed (after the run is cancelled).
    """

    def __init__(
        self,
        native: Any,
        progress_bar: ProgressBar,
        start_buttons: Sequence[PushButton],
        cancel_button: PushButton,
        *,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.cancel_event = threading.Event()
        self.worker: Any = None
        self._bar = progress_bar
        self._starts = list(start_buttons)
        self._cancel_button = cancel_button
        self._bar.visible = False
        cancel_button.enabled = False
        cancel_button.clicked.connect(self.cancel)
        self.closed = False
        self._on_close = on_close
        native.destroyed.connect(self._closing)
        self._watcher = _close_watcher(native, self._closing)

    def _closing(self, *_: Any) -> None:
        if self.closed:
            return
        self.closed = True
        self.cancel()
        if self._on_close is not None:
            self._on_close()

    @property
    def running(self) -> bool:
        """Whether a run is going."""
        return self.worker is not None

    def start(
        self,
        func: Callable[..., Any],
        *args: Any,
        on_return: Callable[[Any], None] | None = None,
        on_error: Callable[[Exception], None],
        on_finish: Callable[[], None] | None = None,
        on_yield: Callable[[Any], None] | None = None,
    ) -> None:
        """Run ``func(*args, cancel_event)`` in a thread (no-op while one is going).

        Parameters
        ----------
        func : callable
            A generator function (or a plain one) run in the worker thread.
        *args
            Its arguments; the run's cancel event is passed after them.
        on_return, on_error, on_finish : callable, optional
            Main-thread handlers of its result, its exception, and the end of
            the run (after the buttons are reset).
        on_yield : callable, optional
            Main-thread handler of what it yields; default: ``(done, total)``
            pairs that move the progress bar. The handler moves the bar itself
            (:meth:`show_progress`).
        """
        from napari.qt.threading import create_worker

        if self.running:
            return
        self.cancel_event = threading.Event()
        worker = create_worker(
            _reraising(func), *args, self.cancel_event, _start_thread=False, _ignore_errors=True
        )
        worker.yielded.connect(self._on_progress if on_yield is None else on_yield)
        if on_return is not None:
            worker.returned.connect(on_return)
        worker.errored.connect(on_error)
        worker.finished.connect(lambda: self._on_finished(on_finish))
        self.worker = worker
        for button in self._starts:
            button.enabled = False
        self._cancel_button.enabled = True
        self._bar.value = 0
        self._bar.max = 1
        self._bar.visible = True
        worker.start()

    def cancel(self, *_: Any) -> None:
        """Ask the run to stop at its next check."""
        self.cancel_event.set()

    def _on_progress(self, message: tuple[int, int]) -> None:
        self.show_progress(*message)

    def show_progress(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` in the dock's progress bar."""
        native = self._bar.native
        try:
            # QProgressBar.setValue repaints at once; with updates off the bar is
            # painted with the rest of the dock (e.g. its status line) in one go.
            native.setUpdatesEnabled(False)
            try:
                self._bar.max = max(1, int(total))
                self._bar.value = min(int(done), self._bar.max)
            finally:
                native.setUpdatesEnabled(True)
        except RuntimeError:  # the dock is gone
            pass

    def _on_finished(self, on_finish: Callable[[], None] | None) -> None:
        self.worker = None
        try:
            for button in self._starts:
                button.enabled = True
            self._cancel_button.enabled = False
            self._bar.visible = False
        except RuntimeError:  # the dock is gone
            return
        if on_finish is not None:
            on_finish()


class WorkerCrash(Exception):
    """A ``RuntimeError`` raised by a dock's work function, handed on as an error.

    superqt's worker takes a ``RuntimeError`` for a deleted Qt object: it only
    warns and never emits ``finished``, which would leave the dock running
    for ever with its buttons disabled.
    """


def _reraising(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its ``RuntimeError`` raised as :class:`WorkerCrash`."""
    if inspect.isgeneratorfunction(func):

        def generator(*args: Any) -> Any:
            try:
                return (yield from func(*args))
            except RuntimeError as exc:
                raise WorkerCrash(str(exc) or type(exc).__name__) from exc

        return generator

    def function(*args: Any) -> Any:
        try:
            return func(*args)
        except RuntimeError as exc:
            raise WorkerCrash(str(exc) or type(exc).__name__) from exc

    return function


#: Seconds between two progress reports handed to the GUI. Each one repaints
#: the dock, and a window holding napari's OpenGL canvas is composited whole
#: on every repaint: ~20-35 ms of CPU under Mesa's software GL, on the main
#: thread and Mesa's threads. Unthrottled, a search over 2,000 stills (one
#: report per still) used ~2.6 s of CPU for 74 repaints, CPU the hash pool
#: needs (benchmarks/bench_napari_review.py); two a second still move the bar.
UPDATE_S = 0.5


def progress_steps(
    call: Callable[[Callable[[int, int], None]], Any], *, interval: float = UPDATE_S
) -> Any:
    """Generator body for :meth:`DockRun.start` around a core call with a ``progress`` callback.

    ``call(progress)`` runs in a helper thread; its ``(done, total)`` reports
    are yielded here, at most one per ``interval`` seconds (the newest one;
    the first and the last report are always yielded), and its result is
    returned (its exception raised).

    Parameters
    ----------
    call : callable
        ``call(progress)`` runs the work and returns its result.
    interval : float, optional
        Least seconds between two yielded reports.
    """
    messages: queue.SimpleQueue = queue.SimpleQueue()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call(lambda done, total: messages.put((done, total)))
        except BaseException as exc:  # handed to the worker thread below
            box["error"] = exc
        finally:
            messages.put(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    pending = None  # the newest report not yielded yet
    last = None  # when the last report was yielded
    while True:
        wait = None if pending is None else max(0.0, last + interval - time.monotonic())
        try:
            message = messages.get(timeout=wait)
        except queue.Empty:  # the interval is over: show the newest report
            yield pending
            pending, last = None, time.monotonic()
            continue
        if message is None:
            break
        pending = message
        if last is None or time.monotonic() - last >= interval:
            yield pending
            pending, last = None, time.monotonic()
    if pending is not None:
        yield pending
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _close_watcher(native: Any, closing: Callable[[], None]) -> Any:
    """Call ``closing`` when ``native`` loses its parent (taken out of its dock)."""
    from qtpy.QtCore import QEvent, QObject

    class Watcher(QObject):
        def __init__(self) -> None:
            super().__init__(native)
            self.had_parent = native.parent() is not None

        def eventFilter(self, obj: Any, event: Any) -> bool:
            if event.type() == QEvent.Type.ParentChange:
                if obj.parent() is not None:
                    self.had_parent = True
                elif self.had_parent:
                    closing()
            return False

    watcher = Watcher()
    native.installEventFilter(watcher)
    return watcher
