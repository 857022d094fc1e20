"""Widget settings that outlive a session: one small JSON file in the user's config dir.

``<user config dir>/napari-video-extract/widgets.json`` (``platformdirs``:
``~/.config/...`` on Linux, honouring ``XDG_CONFIG_HOME``) holds one object
per widget, field name -> value. A missing, unreadable or foreign file gives
the defaults; values of the wrong type are ignored field by field. Writes are
atomic (temporary file + rename), so two docks saving at once never leave a
torn file.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from napari_video_extract.core.manifest import write_atomic

__all__ = ["load_settings", "save_settings", "settings_path"]

_FILE_NAME = "widgets.json"


def settings_path() -> Path:
    """Where the widget settings are stored."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("napari-video-extract", appauthor=False)) / _FILE_NAME


def _read_all(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_settings(widget: str) -> dict[str, Any]:
    """The saved fields of ``widget`` (empty when none were saved).

    Parameters
    ----------
    widget : str
        The widget's key (its title).

    Returns
    -------
    dict
    """
    values = _read_all(settings_path()).get(widget)
    return values if isinstance(values, dict) else {}


def save_settings(widget: str, values: dict[str, Any]) -> None:
    """Store the fields of ``widget``; an unwritable config dir is not an error.

    Parameters
    ----------
    widget : str
        The widget's key (its title).
    values : dict
        JSON-serialisable field values.
    """
    path = settings_path()
    data = _read_all(path)
    data[widget] = values
    with contextlib.suppress(OSError):  # settings are a convenience, never a failure
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
