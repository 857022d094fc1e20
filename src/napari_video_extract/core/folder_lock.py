"""The extraction lock of an output folder, and clean-up after killed runs.

One run at a time writes a video's output folder: :func:`folder_lock` holds
an ``flock`` for the whole run (the kernel releases it when the process dies,
so a killed run never blocks the next), and only the holder removes the
temporary files killed runs left (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from napari_video_extract.core.errors import OutputError

__all__ = ["LOCK_NAME", "folder_lock", "remove_stale_temporaries"]

LOCK_NAME = ".nve-extract.lock"

#: Temporary names of our images (``image_files.write_image``:
#: ``.<name>.tmp-<pid>-<thread>``) and manifest (``manifest.write_atomic``:
#: ``.frames.csv.tmp-<pid>``).
_OUR_TEMPORARY = re.compile(r"\.(?:.+\.(?:jpg|png|webp)|frames\.csv)\.tmp-(?P<pid>\d+)(?:-\d+)?")


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (ours counts as alive)."""
    if pid <= 0:
        return True  # not a real pid: unsure, so treat as live
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files that killed runs of this tool left behind.

    Call only with the folder lock held (:func:`folder_lock`): then no other
    run of this tool writes here. A temporary is removed only when its name is
    one of ours (see ``_OUR_TEMPORARY``) and the process id it carries is not
    running, so a live writer's file is never touched, even one that does not
    hold the lock (e.g. a run of an older version).
    """
    for path in folder.glob(".*.tmp-*"):
        match = _OUR_TEMPORARY.fullmatch(path.name)
        if match and not _pid_alive(int(match["pid"])):
            with contextlib.suppress(OSError):
                path.unlink()


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's extraction lock for the duration; refuse if taken.

    The lock is an ``flock`` on :data:`LOCK_NAME` (released by the kernel
    when its process dies, so a killed run never blocks the next). A refused
    run closes its handle and never touches the file. The holder removes the
    file while it still holds the lock; a run that locked a file which was
    removed (or replaced) meanwhile sees that its handle is no longer the
    folder's lock file and tries again, so two runs never both "hold" it.
    """
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(folder, "another extraction is writing this folder") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        held = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (
            held.st_dev,
            held.st_ino,
        ):
            break
        os.close(fd)  # locked a file the previous holder had just removed
    try:
        yield
    finally:
        # Remove while still holding the lock, then release.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
