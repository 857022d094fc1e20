"""numpy-style indexing of lazy ``(N, ...)`` stacks (videos, folders of stills).

A lazy stack decodes one item per leading index; these helpers turn a numpy
key into that leading index and the rest of the key, so every lazy stack
accepts the same keys (int, slice, index array, tuple, Ellipsis).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LazyStack", "leading_indices", "split_key"]


def split_key(key: Any, ndim: int) -> tuple[Any, tuple]:
    """Split ``key`` into its leading (item) index and the key for each item.

    Parameters
    ----------
    key : any numpy basic or 1-D integer-array index
    ndim : int
        Dimensions of the stack.

    Returns
    -------
    first, rest
        The index along the first axis and the (possibly empty) tuple for the
        remaining axes.

    Raises
    ------
    IndexError
        More indices than dimensions.
    """
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        at = next(n for n, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (ndim - len(key) + 1)
        key = key[:at] + fill + key[at + 1 :]
    if not key:
        key = (slice(None),)
    if len(key) > ndim:
        raise IndexError(f"too many indices for a {ndim}-d stack")
    return key[0], key[1:]


def leading_indices(first: Any, n: int, noun: str) -> np.ndarray:
    """The item numbers a slice or index array ``first`` selects among ``n`` items.

    Raises
    ------
    IndexError
        Out of range, or not one-dimensional (``noun`` names the items).
    """
    if isinstance(first, slice):
        return np.arange(n)[first]
    indices = np.arange(n)[np.asarray(first)]
    if indices.ndim != 1:
        raise IndexError(f"only 1-D {noun} index arrays are supported")
    return indices


class LazyStack:
    """The array-like facts every lazy uint8 ``(N, ...)`` stack shares.

    Subclasses set ``shape``; napari and numpy read ``dtype``, ``ndim``,
    ``size`` and ``nbytes`` without decoding anything.
    """

    shape: tuple[int, ...]
    dtype = np.dtype(np.uint8)

    @property
    def ndim(self) -> int:
        """Number of dimensions, like the shape."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Bytes the whole stack would take once decoded (uint8: one per element)."""
        return self.size

    def __len__(self) -> int:
        return self.shape[0]
