"""The vocabulary of duplicate detection: hash methods, modes, keep policies, thresholds.

Plain Python with no numpy, Pillow or imagehash, so the command line can list
the choices and check the settings before any heavy import.
"""

from __future__ import annotations

import numbers

__all__ = [
    "CHANGES",
    "DEFAULT_CANDIDATE_THRESHOLDS_64",
    "DEFAULT_MIN_SIMILARITY",
    "DEFAULT_THRESHOLDS_64",
    "KEEP_POLICIES",
    "METHODS",
    "MODES",
    "check_changes",
    "check_method",
    "default_min_similarity",
    "default_threshold",
    "hash_bits",
]

#: Hash methods, the first one is the default.
METHODS = ("phash", "dhash", "ahash", "whash", "colorhash")

#: Clustering modes, the first one is the default.
MODES = ("global", "sequential")

#: Which member of a cluster is kept, the first one is the default.
KEEP_POLICIES = ("first", "sharpest", "largest")

#: Default duplicate threshold in bits **for 64-bit hashes** (hash_size 8),
#: chosen from ``benchmarks/eval_dedup.py`` (two disjoint photograph sets,
#: several seeds): phash F1 is flat (0.983-1.000, nothing lost) from 10 to 16
#: bits, and precision falls from 20-22 bits, where stills of different
#: photographs start to come within reach (closest pair: 18 bits). 12 keeps a
#: 6-bit margin below that. :func:`default_threshold` scales it with the
#: number of bits.
DEFAULT_THRESHOLDS_64 = {"phash": 12, "dhash": 12, "ahash": 8, "whash": 8, "colorhash": 6}

#: Default candidate bound in bits (64-bit hashes) when an aligned
#: verification decides (:mod:`~napari_video_extract.core.matching`): looser
#: than :data:`DEFAULT_THRESHOLDS_64`, since the hash only proposes pairs.
#: Chosen with ``benchmarks/eval_dedup.py`` (sum over all its sets).
DEFAULT_CANDIDATE_THRESHOLDS_64 = {
    "phash": 24, "dhash": 24, "ahash": 16, "whash": 16, "colorhash": 12,
}  # fmt: skip

#: Verification modes: ``global`` (whole-picture correlation) and ``local``
#: (the worst block must agree too: something moved in a static scene).
CHANGES = ("global", "local")

#: Default smallest verified similarity of a duplicate, per mode, chosen with
#: ``benchmarks/eval_dedup.py`` (sum over its sets) and, for ``local``, the
#: person-walks-in test case.
DEFAULT_MIN_SIMILARITY = {"global": 0.7, "local": 0.5}


def check_changes(changes: str) -> None:
    """Raise ValueError unless ``changes`` is one of :data:`CHANGES`."""
    if changes not in CHANGES:
        raise ValueError(f"unknown changes mode {changes!r}; choose one of {', '.join(CHANGES)}")


def default_min_similarity(changes: str = "global") -> float:
    """Default smallest verified similarity of a duplicate in a ``changes`` mode."""
    check_changes(changes)
    return DEFAULT_MIN_SIMILARITY[changes]


def check_method(method: str, hash_size: int) -> None:
    """Raise ValueError unless ``method`` and ``hash_size`` can make a hash."""
    if method not in METHODS:
        raise ValueError(f"unknown hash method {method!r}; choose one of {', '.join(METHODS)}")
    if (
        not isinstance(hash_size, numbers.Integral)
        or isinstance(hash_size, bool)
        or hash_size < 2
        or hash_size > 64
    ):
        raise ValueError(f"hash_size must be an integer from 2 to 64, got {hash_size!r}")
    if method == "whash" and hash_size & (hash_size - 1):
        raise ValueError(f"whash needs a power-of-two hash_size, got {hash_size}")


def colorhash_binbits(hash_size: int) -> int:
    """Bits per bin of colorhash for a hash size (8 gives imagehash's default, 3)."""
    # colorhash has 14 bins of ``binbits`` bits.
    return max(1, round(hash_size * 3 / 8))


def hash_bits(method: str = "phash", hash_size: int = 8) -> int:
    """Number of bits of a hash.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    hash_size : int
        ``hash_size ** 2`` bits for phash/dhash/ahash/whash; for colorhash,
        ``14 * round(3 * hash_size / 8)`` bits.

    Returns
    -------
    int
        The number of bits.

    Raises
    ------
    ValueError
        Unknown method or invalid hash size.
    """
    check_method(method, hash_size)
    if method == "colorhash":
        return 14 * colorhash_binbits(hash_size)
    return int(hash_size) * int(hash_size)


def default_threshold(method: str = "phash", hash_size: int = 8, *, verify: bool = False) -> int:
    """Default largest Hamming distance (in bits) for two images to be duplicates.

    The value for 64-bit hashes (:data:`DEFAULT_THRESHOLDS_64`) scales with the
    number of bits, so the default means the same *fraction* of differing bits
    at any hash size (e.g. phash: 12 bits of 64, 48 of 256).

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    hash_size : int
        Hash size as given to ``hash_files``.
    verify : bool, optional
        The candidate bound of the verified matching
        (:data:`DEFAULT_CANDIDATE_THRESHOLDS_64`) instead of the hash-only
        threshold.

    Returns
    -------
    int
        Threshold in bits, at least 1.

    Raises
    ------
    ValueError
        Unknown method or invalid hash size.
    """
    n_bits = hash_bits(method, hash_size)
    reference_bits = 64 if method != "colorhash" else hash_bits("colorhash", 8)
    table = DEFAULT_CANDIDATE_THRESHOLDS_64 if verify else DEFAULT_THRESHOLDS_64
    return max(1, round(table[method] * n_bits / reference_bits))
