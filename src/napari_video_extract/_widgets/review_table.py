"""The members table of the duplicate review: one row per still of the shown cluster.

Columns: still (file name, or ``#index`` for frames of a layer), the video
frame (not the stack index), time (mm:ss.mmm), distance to the keeper in bits,
and the decision (KEEPER / KEPT / DUPLICATE, "(by hand)" for overrides). A
magicgui :class:`~magicgui.widgets.Table` so it sits in the dock like any
field; clicking a row calls ``on_pick(item_index)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from magicgui.widgets import Table

from napari_video_extract._widgets.review_gallery import DUPLICATE_RGB, KEPT_RGB
from napari_video_extract.core.review import Review, format_time

__all__ = ["MembersTable", "decision_word"]

COLUMNS = ("still", "frame", "time", "d (bits)", "similarity", "decision")


def decision_word(review: Review, i: int) -> str:
    """KEEPER, KEPT or DUPLICATE, with "(by hand)" when it is an override."""
    kept = "KEEPER" if int(review.keeper[i]) == i else "KEPT"
    word = kept if review.kept[i] else "DUPLICATE"
    return word + (" (by hand)" if review.kept[i] != review.auto_kept[i] else "")


class MembersTable:
    """The table widget and the item index behind each row.

    Parameters
    ----------
    on_pick : callable(int)
        Called with the item index of a clicked row.
    """

    def __init__(self, on_pick: Callable[[int], None]) -> None:
        from qtpy.QtWidgets import QAbstractItemView

        self.widget = Table(label="members")
        self.qt = self.widget.native  # a QTableWidget
        self.qt.setColumnCount(len(COLUMNS))
        self.qt.setHorizontalHeaderLabels(list(COLUMNS))
        self.qt.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.qt.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.qt.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.qt.verticalHeader().setVisible(False)
        # Column widths from the first rows only (a 1,024-row cluster measured
        # every cell at each threshold change).
        self.qt.horizontalHeader().setResizeContentsPrecision(64)
        self.qt.setMinimumHeight(120)
        self.items = np.zeros(0, dtype=np.int64)
        self.qt.cellClicked.connect(lambda row, _col: on_pick(int(self.items[row])))

    def fill(self, review: Review, members: np.ndarray) -> None:
        """Show ``members`` (item indices) of ``review``."""
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QTableWidgetItem

        self.items = np.asarray(members, dtype=np.int64)
        # magicgui's Table turns every cell set into a change event (nothing
        # here listens to them; 6 per row): not sent while filling.
        self.qt.blockSignals(True)
        self.qt.setUpdatesEnabled(False)
        try:
            self.qt.setRowCount(len(self.items))
            for row, i in enumerate(self.items.tolist()):
                frame = int(review.frame[i])
                cells = (
                    review.paths[i].name if review.paths is not None else f"#{i}",
                    str(frame) if frame >= 0 else "",
                    format_time(float(review.time[i])),
                    str(int(review.distance[i])),
                    "" if np.isnan(review.similarity[i]) else f"{review.similarity[i]:.2f}",
                    decision_word(review, i),
                )
                for col, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if col == len(COLUMNS) - 1:
                        rgb = KEPT_RGB if review.kept[i] else DUPLICATE_RGB
                        item.setForeground(QColor(*rgb))
                    self.qt.setItem(row, col, item)
        finally:
            self.qt.setUpdatesEnabled(True)
            self.qt.blockSignals(False)
        self.qt.resizeColumnsToContents()

    def row_of(self, index: int) -> int:
        """Row of item ``index``; KeyError when it is not shown."""
        rows = np.flatnonzero(self.items == index)
        if not len(rows):
            raise KeyError(index)
        return int(rows[0])

    def select(self, index: int) -> None:
        """Highlight the row of item ``index`` (if shown)."""
        if index in set(self.items.tolist()):
            self.qt.selectRow(self.row_of(index))
