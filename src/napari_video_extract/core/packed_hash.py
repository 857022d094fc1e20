"""Packed perceptual hashes: bits in ``uint64`` words, Hamming distances in bits.

Hashes of many images are an ``(N, W)`` array of ``uint64`` words, the bits in
reading order, most significant bit first, zero-padded at the end. The Hamming
distance of two hashes is ``popcount(a ^ b)`` summed over words: a count of
**bits**, never of differing hex characters.

numpy only (no Pillow, no imagehash): clustering and matching import this
without the image stack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "PackedHash",
    "hamming_bits",
    "hashes_from_hex",
    "hashes_to_hex",
    "pack_bits",
    "unpack_bits",
]

if hasattr(np, "bitwise_count"):  # numpy >= 2

    def _popcount(words: np.ndarray) -> np.ndarray:
        return np.bitwise_count(words)

else:  # pragma: no cover - numpy < 2
    _POPCOUNT_TABLE = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(words: np.ndarray) -> np.ndarray:
        as_bytes = np.ascontiguousarray(words).view(np.uint8)
        counts = _POPCOUNT_TABLE[as_bytes].reshape(*words.shape, 8)
        return counts.sum(axis=-1, dtype=np.uint8)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack boolean hashes into ``uint64`` words.

    Parameters
    ----------
    bits : ndarray of bool, shape (..., n_bits) or (n_bits,)
        The bits in reading order.

    Returns
    -------
    ndarray of uint64, shape (..., ceil(n_bits / 64))
        Most significant bit first, zero padded at the end.
    """
    bits = np.asarray(bits, dtype=bool)
    n_bits = bits.shape[-1]
    n_words = max(1, math.ceil(n_bits / 64))
    if n_bits % 64:
        padded = np.zeros((*bits.shape[:-1], n_words * 64), dtype=bool)
        padded[..., :n_bits] = bits
    else:  # whole words (the usual 64 or 256 bits): nothing to pad
        padded = bits
    packed = np.packbits(padded, axis=-1)  # big-endian bytes
    return packed.view(">u8").astype(np.uint64).reshape(*bits.shape[:-1], n_words)


def unpack_bits(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Bits of packed hashes, ``uint8`` 0/1, shape ``(..., n_bits)`` (see :func:`pack_bits`)."""
    as_bytes = np.ascontiguousarray(words.astype(">u8")).view(np.uint8)
    return np.unpackbits(as_bytes.reshape(*words.shape[:-1], -1), axis=-1)[..., :n_bits]


def hamming_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distance in bits between packed hashes (broadcasting).

    Parameters
    ----------
    a, b : ndarray of uint64, shape (..., W)
        Packed hashes as returned by :func:`pack_bits` / :func:`hash_frames`.

    Returns
    -------
    ndarray of int
        Number of differing bits, shape ``broadcast(a, b).shape[:-1]``.
    """
    diff = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    counts = _popcount(diff)
    if counts.shape[-1] == 1:
        return counts[..., 0].astype(np.int64)
    return counts.sum(axis=-1, dtype=np.int64)


def hashes_to_hex(words: np.ndarray, n_bits: int) -> list[str]:
    """Hex strings of packed hashes (``ceil(n_bits / 4)`` digits, like imagehash).

    Parameters
    ----------
    words : ndarray of uint64, shape (N, W)
        Packed hashes.
    n_bits : int
        Number of meaningful bits.

    Returns
    -------
    list of str
        One lower-case hex string per hash.
    """
    words = np.atleast_2d(np.asarray(words, dtype=np.uint64))
    pad = words.shape[1] * 64 - n_bits
    digits = math.ceil(n_bits / 4)
    if pad == 0:  # whole words: the big-endian bytes are the digits
        width = 2 * 8 * words.shape[1]
        data = words.astype(">u8").tobytes().hex()
        return [data[k : k + width] for k in range(0, len(data), width)]
    out = []
    for row in words:
        value = 0
        for word in row:
            value = (value << 64) | int(word)
        out.append(format(value >> pad, f"0{digits}x"))
    return out


def hashes_from_hex(hexes: Sequence[str], n_bits: int) -> np.ndarray:
    """Packed hashes from hex strings written by :func:`hashes_to_hex`.

    Parameters
    ----------
    hexes : sequence of str
        Hex strings.
    n_bits : int
        Number of meaningful bits.

    Returns
    -------
    ndarray of uint64, shape (N, ceil(n_bits / 64))

    Raises
    ------
    ValueError
        A string is not hex or has more than ``n_bits`` bits.
    """
    n_words = max(1, math.ceil(n_bits / 64))
    pad = n_words * 64 - n_bits
    if n_words == 1:  # the common case (64 bits or fewer), without a loop over words
        values = [int(text, 16) for text in hexes]
        for text, value in zip(hexes, values, strict=True):
            if value >> n_bits:
                raise ValueError(f"hash {text!r} has more than {n_bits} bits")
        return np.array([v << pad for v in values], dtype=np.uint64).reshape(len(hexes), 1)
    out = np.zeros((len(hexes), n_words), dtype=np.uint64)
    mask = (1 << 64) - 1
    for i, text in enumerate(hexes):
        value = int(text, 16)
        if value >> n_bits:
            raise ValueError(f"hash {text!r} has more than {n_bits} bits")
        value <<= pad
        for w in range(n_words - 1, -1, -1):
            out[i, w] = value & mask
            value >>= 64
    return out


class PackedHash:
    """One perceptual hash: ``a - b`` is the Hamming distance in **bits**.

    Parameters
    ----------
    words : array_like of uint64, shape (W,)
        Packed bits (see :func:`pack_bits`).
    n_bits : int
        Number of meaningful bits.
    """

    __slots__ = ("n_bits", "words")

    def __init__(self, words: np.ndarray, n_bits: int) -> None:
        words = np.array(words, dtype=np.uint64).reshape(-1)
        if words.size != max(1, math.ceil(n_bits / 64)):
            raise ValueError(f"{words.size} words cannot hold exactly {n_bits} bits")
        words.flags.writeable = False
        self.words = words
        self.n_bits = int(n_bits)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> PackedHash:
        """Hash from a boolean array (e.g. ``imagehash.ImageHash.hash``)."""
        flat = np.asarray(bits, dtype=bool).reshape(-1)
        return cls(pack_bits(flat), flat.size)

    @classmethod
    def from_hex(cls, text: str, n_bits: int) -> PackedHash:
        """Hash from its hex string (see :meth:`to_hex`)."""
        return cls(hashes_from_hex([text], n_bits)[0], n_bits)

    def to_hex(self) -> str:
        """Hex string, ``ceil(n_bits / 4)`` lower-case digits."""
        if self.n_bits % 64 == 0:  # whole words: their big-endian bytes are the digits
            return self.words.astype(">u8").tobytes().hex()
        return hashes_to_hex(self.words[None, :], self.n_bits)[0]

    def bits(self) -> np.ndarray:
        """The hash as a boolean array of ``n_bits`` bits."""
        return unpack_bits(self.words[None, :], self.n_bits)[0].astype(bool)

    def __sub__(self, other: PackedHash) -> int:
        if not isinstance(other, PackedHash):
            return NotImplemented
        if other.n_bits != self.n_bits:
            raise ValueError(f"cannot compare a {self.n_bits}-bit and a {other.n_bits}-bit hash")
        return int(hamming_bits(self.words, other.words))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackedHash):
            return NotImplemented
        return self.n_bits == other.n_bits and bool(np.array_equal(self.words, other.words))

    def __hash__(self) -> int:
        return hash((self.n_bits, self.words.tobytes()))

    def __str__(self) -> str:
        return self.to_hex()

    def __repr__(self) -> str:
        return f"PackedHash({self.to_hex()!r}, n_bits={self.n_bits})"
