"""A background worker that decodes ahead of a reader while the user steps forward.

:class:`Prefetcher` owns one daemon thread that calls a step function (decode
one more frame into the reader's cache) for as long as the reader asks for
it and the step says there is more to do. It knows nothing about video: the
reader decides what "more" is (a bounded number of frames ahead of the last
frame read) and keeps its own lock around the decoder, so the frames are the
ones a foreground read would have decoded, in the same order.

Foreground reads come first: while one is waiting (:meth:`Prefetcher.foreground`)
the worker starts no new step, so a read waits at most for the one frame
being decoded. The step function is held through a weak reference, so a
reader that is no longer used can be collected while its worker sleeps.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator

__all__ = ["Prefetcher"]


class Prefetcher:
    """Run ``step`` in a background thread whenever :meth:`request` is called.

    Parameters
    ----------
    step : bound method
        Does one unit of work and returns True if there is more to do; held
        weakly (a :class:`weakref.WeakMethod`). An exception stops the
        current request, never the program.
    name : str
        Name of the thread (shown in debuggers and ``threading.enumerate``).
    """

    def __init__(self, step: Callable[[], bool], *, name: str) -> None:
        self._step = weakref.WeakMethod(step)
        self._name = name
        self._cond = threading.Condition()
        self._generation = 0  # bumped by each request
        self._done_generation = 0  # the last request the worker finished
        self._foreground = 0  # foreground reads waiting or running
        self._stopped = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the worker thread exists and has not been stopped."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stopped

    def request(self) -> None:
        """Ask for the step to run until it says there is no more to do."""
        with self._cond:
            if self._stopped:
                return
            self._generation += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    @contextlib.contextmanager
    def foreground(self) -> Iterator[None]:
        """Hold the worker back (no new step starts) for the duration of a read."""
        with self._cond:
            self._foreground += 1
        try:
            yield
        finally:
            with self._cond:
                self._foreground -= 1
                self._cond.notify_all()

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop the worker and wait for its current step to end (idempotent)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _has_work(self) -> bool:
        return self._generation != self._done_generation and not self._foreground

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self._has_work():
                    self._cond.wait()
                if self._stopped:
                    return
                generation = self._generation
            step = self._step()
            if step is None:  # the reader was collected
                return
            try:
                more = step()
            except Exception:  # the reader's own reads report decoder errors
                more = False
            del step
            if not more:
                with self._cond:
                    # A request made during this step asks for more: keep it.
                    self._done_generation = max(self._done_generation, generation)
