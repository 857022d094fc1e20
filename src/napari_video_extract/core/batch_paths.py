"""The paths of a batch: the videos among the inputs, and one output folder each.

:func:`collect_videos` expands the files and folders a user gives into the
videos to process (sorted, each once); :func:`output_folders` names one
output folder per video after its stem, never shared by two videos.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from napari_video_extract.core.errors import InputError, VideoOpenError, os_error_reason
from napari_video_extract.core.formats import is_video_name
from napari_video_extract.core.manifest import MANIFEST_NAME

__all__ = ["collect_videos", "output_folders"]


def collect_videos(
    inputs: Iterable[str | os.PathLike], *, recursive: bool = False
) -> tuple[list[Path], list[Path], list[InputError]]:
    """Expand files and folders into a sorted list of video files.

    Returns
    -------
    videos : list of Path
        Files to process: every file given explicitly, and files with a video
        extension (case-insensitive) found in given folders.
    skipped : list of Path
        Files in given folders that are not videos.
    errors : list of InputError
        Inputs that do not exist.
    """
    videos: list[Path] = []
    skipped: list[Path] = []
    errors: list[InputError] = []
    seen: set[Path] = set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.iterdir()
            try:
                children = sorted(walker)
            except OSError as exc:
                errors.append(VideoOpenError(path, f"cannot list folder: {os_error_reason(exc)}"))
                continue
            for child in children:
                if child.name.startswith(".") or not child.is_file():
                    continue
                if recursive and any(p.startswith(".") for p in child.relative_to(path).parts):
                    continue
                if is_video_name(child.name):
                    key = child.resolve()
                    if key not in seen:
                        seen.add(key)
                        videos.append(child)
                elif child.name != MANIFEST_NAME:
                    skipped.append(child)
        elif path.exists():
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                videos.append(path)
        else:
            errors.append(VideoOpenError(path, "no such file or folder"))
    return videos, skipped, errors


def output_folders(videos: Sequence[Path], out_root: Path) -> dict[Path, Path]:
    """One output folder per video, named after its stem, never shared.

    Two videos with the same stem (``a.mp4`` and ``a.avi``, or ``x/a.mp4`` and
    ``y/a.mp4``) get distinct names: the extension is appended, then the parent
    folder names, so the mapping is deterministic for a given input list.
    """
    by_stem: dict[str, list[Path]] = {}
    for v in videos:
        by_stem.setdefault(v.stem, []).append(v)
    names: dict[Path, str] = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        for v in group:
            names[v] = f"{stem}_{v.suffix.lstrip('.').lower()}" if v.suffix else stem
        # Still clashing (same name in different folders): add parent names.
        if len({names[v] for v in group}) < len(group):
            for v in group:
                parents = [p for p in v.resolve().parent.parts[-2:] if p not in ("/", "")]
                names[v] = "__".join([*parents, names[v]])
    # A stem of "." or ".." (videos named "..mp4", "...mp4") would put the
    # stills in --out itself or in its parent; a leading dot would hide them.
    names = {v: f"_{n}" if n.startswith(".") else n for v, n in names.items()}
    # Final guard: never let two videos share a folder.
    used: dict[str, Path] = {}
    for v in videos:
        name = names[v]
        n = 2
        while name in used and used[name] != v:
            name = f"{names[v]}-{n}"
            n += 1
        used[name] = v
        names[v] = name
    return {v: out_root / names[v] for v in videos}
