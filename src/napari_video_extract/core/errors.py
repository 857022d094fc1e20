"""Typed errors of the engine.

Every error that concerns one file carries that file's path and a short reason,
and its ``str()`` is one line, ``"<path>: <reason>"``, ready to be shown to a
user. A batch catches :class:`InputError` per file and goes on with the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "DecodeError",
    "InputError",
    "NotAVideoError",
    "OutputError",
    "SeekRefusedError",
    "SettingError",
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


class SeekRefusedError(DecodeError):
    """A run refused where it began: its keyframe does not decode as one, or
    the seek landed after it. Its frames would lack their references; a run
    starting earlier can give them exactly."""


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


class SettingError(ValueError):
    """A setting (``every``, ``start``...) has a value the engine refuses.

    The message names settings by placeholder, so each face words it its own
    way: ``str()`` uses the neutral names (``"every must be ..."``), the CLI
    its flags (``--every``), a widget its field labels (``every (s)``).

    Parameters
    ----------
    template : str
        The message, with ``{name}`` for each setting it names and
        ``{value}``-style placeholders for ``values``.
    settings : sequence of str
        The settings the message names (keys of :meth:`worded`'s mapping).
    **values : str
        Already formatted values (file names, numbers); never interpreted
        as a template, so user text with braces is safe.
    """

    def __init__(self, template: str, *, settings: Sequence[str], **values: str) -> None:
        self.template = template
        self.settings = tuple(settings)
        self.values = {k: str(v) for k, v in values.items()}
        super().__init__(self.worded())

    def worded(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each setting called by ``names[setting]`` (default: its own name).

        Parameters
        ----------
        names : mapping of str to str, optional
            What each face calls the settings.

        Returns
        -------
        str
        """
        names = names or {}
        return self.template.format(**{s: names.get(s, s) for s in self.settings}, **self.values)
