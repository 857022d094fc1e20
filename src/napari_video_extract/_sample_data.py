"""napari sample data: the bundled sample video, opened through our reader."""

from __future__ import annotations

from typing import Any

__all__ = ["sample_video"]


def sample_video() -> list[tuple[Any, dict, str]]:
    """The sample video (640x360, 24 s, six scenes) as a lazy image layer.

    The video is generated with ffmpeg on first use (about 2 s) and cached,
    see :func:`napari_video_extract.core.sample.sample_video_path`.

    Returns
    -------
    list of tuple
        ``[(VideoArray, add_kwargs, "image")]``, as the reader returns.

    Raises
    ------
    RuntimeError
        ffmpeg could not generate the sample video.
    """
    from napari_video_extract._reader import read_video
    from napari_video_extract.core.sample import sample_video_path

    return read_video(sample_video_path())
