"""Choosing what the duplicate finder reviews: a stills/video layer or a folder of images.

A mixin of :class:`~napari_video_extract._widgets.duplicates.DuplicateFinderWidget`
(split out of it by concept; it works on the dock's fields and state).

Why one hand-refreshed ComboBox and not magicgui's layer annotation
(``napari.layers.Image``), checked against napari 0.9.2:

* its choices are exactly the layers of that type (``napari.utils._magicgui.
  get_layers``), so it cannot also offer "folder of images": that needs a
  second widget and a source switch, a visible change of the dock (and of
  its saved settings) left for a follow-up;
* it finds the viewer by walking up the Qt parents (``find_viewer_ancestor``)
  and napari refreshes it only for a widget docked with
  ``add_dock_widget``; the dock is given its viewer and is also used
  undocked (scripts, tests), where such a list stays empty;
* the dock filters the layers (image stacks of 3 or 4 dimensions, not its
  own gallery and kept-only layers), which the annotation cannot.

The list refreshes on the viewer's layer ``inserted``/``removed`` events,
docked or not.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["IMAGE_FOLDER_SOURCE", "SourcePicker"]

#: The choice that reviews a folder of images instead of a layer.
IMAGE_FOLDER_SOURCE = "folder of images"


class SourcePicker:
    """Part of the duplicate finder dock (see its module docstring)."""

    # -------------------------------------------------------------- sources

    def _source_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        ours = {id(x) for x in (self.gallery_layer, self.kept_layer) if x is not None}
        layers = [
            (f"layer: {layer.name}", layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image)
            and id(layer) not in ours
            and (layer.data.ndim == 3 if not layer.rgb else layer.data.ndim == 4)
        ]
        return [*layers, (IMAGE_FOLDER_SOURCE, IMAGE_FOLDER_SOURCE)]

    def _refresh_sources(self, _event: Any = None) -> None:
        with contextlib.suppress(RuntimeError):
            self.source.reset_choices()
            self._on_source_changed()

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        if layer is self.gallery_layer:
            self.gallery_layer = None
        if layer is self.kept_layer:
            self.kept_layer = None
        if layer is self.source_layer:
            self.source_layer = None
        self._refresh_sources()

    def _on_source_changed(self, _value: Any = None) -> None:
        is_folder = self.source.value == IMAGE_FOLDER_SOURCE
        self.image_folder.visible = is_folder
        self.use_csv.visible = is_folder
