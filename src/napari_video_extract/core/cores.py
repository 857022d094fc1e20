"""How many CPU cores this process may use."""

from __future__ import annotations

import os

__all__ = ["usable_cores"]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask on Linux), at least 1.

    ``os.cpu_count()`` counts the machine's cores, also those a container or
    ``taskset`` does not let the process use.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
