"""One border crop for all the stills of a video: the bars every one of them has.

Letterbox and pillarbox bars are a property of a video, not of a frame.
Found per still, a flat or dark background (a cell on a flat background, coins
on black) passes for a bar by an amount that changes with noise and framing,
so neighbouring stills of one shot are cropped differently and no longer
match. The stills of one video (a ``frames.csv`` folder, a napari video
layer) therefore share one box: on each side, the thinnest bar found in any
of its stills (a still uniform all over says nothing and is left out).
Images of no known video keep their own crop.
"""

from __future__ import annotations

from collections.abc import Sequence

from napari_video_extract.core.borders import BorderBox

__all__ = ["consensus_boxes"]


def consensus_boxes(
    boxes: Sequence[BorderBox | None], groups: Sequence[int]
) -> list[BorderBox | None]:
    """The box each image is cropped with: its video's consensus, or its own.

    Parameters
    ----------
    boxes : sequence of BorderBox or None
        Each image's own bars (``None``: not cropped, e.g. unreadable).
    groups : sequence of int
        The video of each image; ``-1`` for an image of no known video.

    Returns
    -------
    list of BorderBox or None
        For an image of a video, the per-side minimum of the bars of the
        video's non-blank images of the same (normalised) size; else its own
        box.

    Raises
    ------
    ValueError
        ``boxes`` and ``groups`` differ in length.
    """
    if len(boxes) != len(groups):
        raise ValueError(f"{len(boxes)} boxes for {len(groups)} group ids")
    thinnest: dict[tuple[int, int, int], list[int]] = {}
    for box, group in zip(boxes, groups, strict=True):
        if box is None or group < 0 or box.blank:
            continue
        key = (int(group), box.width, box.height)
        sides = thinnest.get(key)
        if sides is None:
            thinnest[key] = list(box.margins)
        else:
            thinnest[key] = [min(a, b) for a, b in zip(sides, box.margins, strict=True)]
    out: list[BorderBox | None] = []
    for box, group in zip(boxes, groups, strict=True):
        if box is None or group < 0:
            out.append(box)
            continue
        # A video of blank stills only: nothing to crop.
        sides = thinnest.get((int(group), box.width, box.height), [0, 0, 0, 0])
        out.append(BorderBox(box.width, box.height, *sides))
    return out
