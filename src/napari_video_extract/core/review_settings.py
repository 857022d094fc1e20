"""The settings of a duplicate review: the CLI ``dedup``'s hash and clustering options.

:class:`ReviewSettings` is checked when made (each bad setting raises a
:class:`ValueError` naming it) and fills in the defaults ``dedup`` uses
(threshold from the hash and ``verify``, ``min_similarity`` from
``changes``). A :class:`~napari_video_extract.core.review.Review` clusters
with them; it is also importable from :mod:`~napari_video_extract.core.review`.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari_video_extract.core.dedup_settings import (
    KEEP_POLICIES,
    MODES,
    check_changes,
    check_method,
    default_min_similarity,
    default_threshold,
    hash_bits,
)

__all__ = ["ReviewSettings"]


@dataclass(frozen=True)
class ReviewSettings:
    """Hash and clustering settings of a review (the CLI's ``dedup`` options).

    Raises
    ------
    ValueError
        The setting named in the message is invalid (``method``,
        ``hash_size``, ``threshold``, ``mode``, ``keep``, ``changes`` or
        ``min_similarity``); each face words it in its own terms.

    Notes
    -----
    With ``verify`` (the default, as ``dedup``) ``threshold`` is the hash
    candidate bound (default ``default_threshold(verify=True)``) and an
    aligned comparison of thumbnails decides at ``min_similarity`` (default
    ``default_min_similarity(changes)``).
    """

    method: str = "phash"
    hash_size: int = 8
    threshold: int | None = None
    mode: str = "global"
    keep: str = "first"
    crop_borders: bool = True
    verify: bool = True
    min_similarity: float | None = None
    changes: str = "global"

    def __post_init__(self) -> None:
        check_method(self.method, self.hash_size)
        n_bits = hash_bits(self.method, self.hash_size)
        if self.threshold is None:
            object.__setattr__(
                self,
                "threshold",
                default_threshold(self.method, self.hash_size, verify=self.verify),
            )
        check_changes(self.changes)
        if self.min_similarity is None:
            object.__setattr__(self, "min_similarity", default_min_similarity(self.changes))
        if not -1.0 <= float(self.min_similarity) <= 1.0:
            raise ValueError("min_similarity must be from -1 to 1")
        if int(self.threshold) != self.threshold or not 0 <= self.threshold <= n_bits:
            raise ValueError(f"threshold must be 0 to {n_bits} bits for this hash")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.keep not in KEEP_POLICIES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_POLICIES)}")

    @property
    def n_bits(self) -> int:
        """Bits per hash."""
        return hash_bits(self.method, self.hash_size)
