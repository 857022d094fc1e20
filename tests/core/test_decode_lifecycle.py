"""The decoder's watchdog, closing and error paths (no timing claims, only bounds).

* A slow consumer (slow disk, slow callback) is not a stalled decoder: only
  the time a read waits for ffmpeg counts.
* A real stall (a decoder that stops producing while the consumer waits) is
  still caught.
* Closing a frame generator, or an error in the consumer, stops the decoders
  at once and leaves no thread behind.

Bounds are loose (2 s for things that take milliseconds) so that a busy
machine does not make them flaky.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import synthetic
from napari_video_extract.core import decode
from napari_video_extract.core.decode import FrameStream, decode_frames
from napari_video_extract.core.extract import Interval, extract_video
from napari_video_extract.core.probe import probe


def _wait_for_threads(limit: int, seconds: float = 2.0) -> int:
    deadline = time.monotonic() + seconds
    while threading.active_count() > limit and time.monotonic() < deadline:
        time.sleep(0.02)
    return threading.active_count()


def test_slow_consumer_is_not_a_stalled_decoder(indexed_video, monkeypatch):
    # The limit is short for the test; the consumer is slower than it.
    monkeypatch.setattr(decode, "STALL_TIMEOUT_SECONDS", 1.5)
    info = probe(indexed_video)
    # More frames than the hand-over queue and the 1 MiB pipe hold, so ffmpeg
    # must wait for us while we are slow.
    wanted = list(range(0, 250, 5))
    missing: list[int] = []
    got = []
    for frame in decode_frames(info, wanted, workers=1, missing=missing):
        if not got:
            time.sleep(3.5)  # a slow disk or callback, while the decoder waits for us
        got.append((frame.index, synthetic.decode_index(frame.image)))
    assert missing == []
    assert sorted(got) == [(i, i) for i in wanted]


def test_a_real_stall_is_still_caught(indexed_video):
    info = probe(indexed_video)
    stream = FrameStream(info, 0, seek=False, stall_timeout=0.5)
    try:
        first = next(stream)
        assert synthetic.decode_index(first.image) == 0
        os.kill(stream._proc.pid, signal.SIGSTOP)  # a decoder that hangs
        t0 = time.monotonic()
        with pytest.raises(StopIteration):
            for _ in range(info.frame_count):  # frames already in the pipe come first
                next(stream)
        assert time.monotonic() - t0 < 5
        assert "produced nothing" in stream.error_text()
    finally:
        stream.close()


def test_closing_the_generator_is_prompt_and_leaks_no_thread(indexed_video):
    info = probe(indexed_video)
    before = threading.active_count()
    frames = decode_frames(info, range(0, 250, 2), workers=2)
    first = next(frames)
    assert synthetic.decode_index(first.image) == first.index
    time.sleep(0.3)  # let the decoders fill the hand-over queue
    t0 = time.monotonic()
    frames.close()
    assert time.monotonic() - t0 < 2
    assert _wait_for_threads(before) <= before


def test_an_error_in_the_consumer_surfaces_at_once(indexed_video):
    info = probe(indexed_video)
    before = threading.active_count()

    def consume() -> None:
        for _frame in decode_frames(info, range(0, 250, 2), workers=2):
            time.sleep(0.3)
            raise RuntimeError("callback failed")

    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="callback failed"):
        consume()
    assert time.monotonic() - t0 < 2.5  # 0.3 s of it is the consumer's own sleep
    assert _wait_for_threads(before) <= before


def test_an_error_in_an_extract_callback_surfaces_at_once(indexed_video, tmp_path):
    def on_frame(record, image) -> None:
        time.sleep(0.3)
        raise RuntimeError("on_frame failed")

    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="on_frame failed"):
        extract_video(indexed_video, tmp_path / "out", Interval(every=0.1), on_frame=on_frame)
    assert time.monotonic() - t0 < 4  # includes probing and starting the decoders
