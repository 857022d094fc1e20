"""Typed errors of the engine.

Every error that concerns one file carries that file's path and a short reason,
and its ``str()`` is one line, ``"<path>: <reason>"``, ready to be shown to a
user. A batch catches :class:`InputError` per file and goes on with the others.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DecodeError",
    "InputError",
    "NotAVideoError",
    "OutputError",
    "VideoOpenError",
    "os_error_reason",
]


class InputError(Exception):
    """A problem with one input file; the batch goes on with the others.

    Parameters
    ----------
    path : str or Path
        The file concerned.
    reason : str
        A short human-readable reason (one line, no trailing period).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}")


class VideoOpenError(InputError):
    """The file does not exist, cannot be read, or ffmpeg cannot open it."""


class NotAVideoError(VideoOpenError):
    """The file opens but holds no decodable video stream (e.g. audio only)."""


class DecodeError(InputError):
    """Decoding failed or gave fewer frames than the plan needed."""


class OutputError(InputError):
    """An output folder or file cannot be written."""


def os_error_reason(exc: OSError) -> str:
    """An OSError as a short one-line reason, without ``[Errno N]``.

    Names the file concerned when the error carries one (``"<file>: Is a
    directory"``), so it reads well after the input's own path.
    """
    reason = " ".join(str(exc.strerror or exc).split()) or type(exc).__name__
    if exc.filename is not None:
        reason = f"{exc.filename}: {reason}"
    if exc.filename2 is not None:
        reason = f"{reason} ({exc.filename2})"
    return reason
