"""Dock settings that persist between sessions: one small JSON file per dock.

Stored in the user's config folder (:func:`platformdirs.user_config_dir`,
e.g. ``~/.config/napari-video-extract`` on Linux; platformdirs ships with
napari). A missing or corrupt file gives the defaults; a failed write is
ignored (settings are a convenience, never worth an error).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["load_settings", "save_settings", "settings_path"]


def settings_path(name: str) -> Path:
    """Where the settings of dock ``name`` live."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("napari-video-extract", appauthor=False)) / f"{name}.json"


def load_settings(name: str) -> dict[str, Any]:
    """The saved settings of dock ``name`` (``{}`` when none or unreadable)."""
    try:
        data = json.loads(settings_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_settings(name: str, values: dict[str, Any]) -> None:
    """Save the settings of dock ``name`` atomically; errors are ignored."""
    path = settings_path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass
