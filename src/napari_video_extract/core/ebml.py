"""EBML, the binary format of Matroska and WebM: element ids, sizes, integers.

An EBML element is an id and a size, both variable-length integers whose
first byte says their length, then ``size`` bytes of payload. These
functions read them from any buffer (``bytes``, ``memoryview``, ``mmap``) at
a position and return the position after what they read; anything a
reader of plain files would not expect raises :class:`Unusual`, and the
caller falls back to a slower, general reader.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["TIME_LIMIT", "Unusual", "children", "element_id", "element_size", "limited", "uint"]

#: Timestamps, durations and ticks at or past this are unusual: far from any
#: real film and clear of int64 overflow when added up.
TIME_LIMIT = 1 << 62


class Unusual(Exception):
    """The file holds something this reader does not read (the caller falls back)."""


def element_id(b, pos: int) -> tuple[int, int]:
    """The element id at ``pos`` (1 to 4 bytes, marker bits kept) and the position after it."""
    first = b[pos]
    n = 1 if first & 0x80 else 2 if first & 0x40 else 3 if first & 0x20 else 4
    if not first & 0xF0:
        raise Unusual("bad element id")
    return int.from_bytes(b[pos : pos + n], "big"), pos + n


def element_size(b, pos: int) -> tuple[int | None, int]:
    """The size at ``pos`` (None if "unknown": all value bits set) and the position after it."""
    first = b[pos]
    if first & 0x80:
        value, n = first & 0x7F, 1
    elif first & 0x40:
        value, n = ((first & 0x3F) << 8) | b[pos + 1], 2
    else:
        n = 1
        while n <= 8 and not first & (0x80 >> (n - 1)):
            n += 1
        if n > 8:
            raise Unusual("bad size")
        value = int.from_bytes(b[pos : pos + n], "big") & ((1 << (7 * n)) - 1)
    if value == (1 << (7 * n)) - 1:
        return None, pos + n
    return value, pos + n


def uint(b, pos: int, size: int) -> int:
    """The unsigned integer of ``size`` (at most 8) bytes at ``pos``."""
    if size > 8:
        raise Unusual("integer too long")
    return int.from_bytes(b[pos : pos + size], "big")


def children(b, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(id, payload position, size)`` of each element in ``[start, end)``."""
    pos = start
    while pos < end:
        eid, pos = element_id(b, pos)
        size, pos = element_size(b, pos)
        if size is None or pos + size > end:
            raise Unusual("element size")
        yield eid, pos, size
        pos += size


def limited(value: int) -> int:
    """``value`` if it is a sane time or duration (in ``[0, TIME_LIMIT)``)."""
    if not 0 <= value < TIME_LIMIT:
        raise Unusual("time out of range")
    return value
