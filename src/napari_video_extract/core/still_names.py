"""The file names of stills: templates such as ``{stem}_{timestamp}_f{frame:06d}``.

:func:`validate_template` refuses a template that could make anything but a
plain file name; :func:`render_name` fills one in for a still, and refuses a
result that is not a plain file name either.
"""

from __future__ import annotations

import os
import string

from napari_video_extract.core.errors import SettingError

__all__ = ["DEFAULT_NAME_TEMPLATE", "render_name", "validate_template"]

#: Default image name: sorts in time order and shows the timestamp.
DEFAULT_NAME_TEMPLATE = "{stem}_{timestamp}_f{frame:06d}"


def _timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}-{m:02d}-{s:02d}.{ms:03d}"


_TEMPLATE_FIELDS = {"stem", "timestamp", "time", "time_ms", "frame", "index"}


def validate_template(template: str) -> None:
    """Raise ValueError unless ``template`` makes plain file names.

    Fields: ``{stem}`` video name without extension, ``{timestamp}``
    ``HH-MM-SS.mmm``, ``{time}`` seconds, ``{time_ms}`` milliseconds,
    ``{frame}`` frame index, ``{index}`` sample number. The extension is added.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise SettingError(
            "bad {name_template} {t}: {why}",
            settings=["name_template"],
            t=repr(template),
            why=str(exc),
        ) from None
    for _, name, _, _ in parsed:
        if name is not None and name.split(".")[0].split("[")[0] not in _TEMPLATE_FIELDS:
            raise SettingError(
                "bad {name_template} {t}: unknown field {field} (known: {known})",
                settings=["name_template"],
                t=repr(template),
                field="{" + name + "}",
                known=", ".join(sorted(_TEMPLATE_FIELDS)),
            )
    literal = "".join(p[0] for p in parsed)
    if "/" in literal or "\\" in literal or "\0" in literal or template.startswith("."):
        raise SettingError(
            "bad {name_template} {t}: must be a plain file name "
            "(no '/', '\\', leading '.', or '..')",
            settings=["name_template"],
            t=repr(template),
        )
    render_name(template, stem="x", time=1.0, frame=1, index=1)


def render_name(template: str, *, stem: str, time: float, frame: int, index: int) -> str:
    """The file name (without extension) for one still; never a path."""
    name = template.format(
        stem=stem,
        timestamp=_timestamp(time),
        time=round(time, 6),
        time_ms=round(time * 1000),
        frame=frame,
        index=index,
    )
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name.startswith(".")
        or os.path.isabs(name)
    ):
        raise SettingError(
            "{name_template} gives {n}, which is not a plain file name",
            settings=["name_template"],
            n=repr(name),
        )
    return name
