"""What the window shows before a picture is open: a place to drop a photo, the recent
photos and projects one click away, and any unsaved work a crash left behind.

A designer opens the editor to go on with yesterday's project far more often than to start
a new one, so the recent files are on the page itself, not only under File ▸ Open recent.
Paths are shown as they were remembered; nothing here touches the disk (a stale network
folder must not freeze the window). A file that has gone is found when it is clicked. Each
recent file has a tile with its thumbnail, when one was kept (:mod:`ui.thumbnails`; the
window reads them on its files thread and hands them to :meth:`StartPage.set_thumbnails`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPen
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.clipboard import dropped_files
from ui.imaging import thumbnail
from ui.theme import COLORS

MAX_SHOWN = 8  # recent files on the page; the File menu has them all
FOLDER_WIDTH = 340  # pixels: the page stays a calm column however deep a folder is
TILE = 48  # logical pixels: a recent file's thumbnail tile


def _folder_text(path: str) -> str:
    """The folder of ``path`` with the home folder written ``~``."""
    parent = Path(path).parent
    try:
        return "~/" + str(parent.relative_to(Path.home()))
    except ValueError:
        return str(parent)


class StartPage(QWidget):
    """The empty window's page. Files dropped on it come out as ``files_dropped``; the
    window answers the other signals (``restore_clicked``/``discard_clicked`` carry a
    :class:`ui.recovery.Copy`)."""

    open_clicked = Signal()
    recent_clicked = Signal(str)
    restore_clicked = Signal(object)
    discard_clicked = Signal(object)
    files_dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("startPage")
        self.setAcceptDrops(True)
        self._hover_drop = False  # a file is being dragged over: the border lights up
        outer = QVBoxLayout(self)
        outer.setContentsMargins(80, 60, 80, 60)
        outer.addStretch(1)
        column = QWidget()
        column.setMaximumWidth(560)
        lay = QVBoxLayout(column)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(10)
        title = QLabel("Drop a photo here")
        title.setStyleSheet("font-size: 21px; font-weight: 600;")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # Two short lines, not one wrapped one: the page's narrowest width is the longest line.
        hint = QLabel(
            "or open one (Ctrl+O), or paste one (Ctrl+V).\n"
            "Every item in it becomes editable by prompt."
        )
        hint.setProperty("role", "hint")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.open_button = QPushButton("Open a photo or project…")
        self.open_button.setProperty("primary", True)
        self.open_button.clicked.connect(self.open_clicked)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.open_button)
        row.addStretch(1)
        lay.addWidget(title)
        lay.addWidget(hint)
        lay.addSpacing(6)
        lay.addLayout(row)
        self.unsaved_box, self._unsaved_grid = self._section("UNSAVED WORK")
        self.recent_box, self._recent_grid = self._section("RECENT")
        self._recent_grid.setVerticalSpacing(6)  # tiles need air between them
        lay.addWidget(self.unsaved_box)
        lay.addWidget(self.recent_box)
        outer.addWidget(column, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(1)
        self.recent_buttons: list[QPushButton] = []
        self.recent_tiles: dict[str, QPushButton] = {}  # path -> its thumbnail tile
        self.restore_buttons: list[QPushButton] = []
        self.discard_buttons: list[QPushButton] = []
        self.set_recent([])
        self.set_copies([])

    @staticmethod
    def _section(heading: str) -> tuple[QWidget, QGridLayout]:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 18, 0, 0)
        lay.setSpacing(6)
        label = QLabel(heading)
        label.setProperty("role", "heading")
        lay.addWidget(label)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        grid.setColumnStretch(1, 1)
        lay.addLayout(grid)
        return box, grid

    @staticmethod
    def _clear(grid: QGridLayout) -> None:
        while grid.count():
            widget = grid.takeAt(0).widget()
            if widget is not None:
                widget.hide()  # gone from this frame on, not only when it is deleted
                widget.deleteLater()

    def set_recent(self, paths: list[str]) -> None:
        """Show the first :data:`MAX_SHOWN` of ``paths`` (most recent first)."""
        self._clear(self._recent_grid)
        self.recent_buttons, self.recent_tiles = [], {}
        for row, path in enumerate(paths[:MAX_SHOWN]):
            button = QPushButton(Path(path).name.replace("&", "&&"))  # "&" is no mnemonic
            button.setProperty("flat", True)
            button.setToolTip(f"Open {path}")
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.setStyleSheet(
                "QPushButton { text-align: left; font-weight: 600; padding: 2px 0; }"
                f"QPushButton:hover {{ color: {COLORS['accent_hover']}; }}"
            )
            button.clicked.connect(lambda _=False, p=path: self.recent_clicked.emit(p))
            tile = self._tile(path)
            tile.clicked.connect(button.click)
            folder = QLabel()
            folder.setText(  # a deep folder keeps its start and its end
                folder.fontMetrics().elidedText(
                    _folder_text(path), Qt.TextElideMode.ElideMiddle, FOLDER_WIDTH
                )
            )
            folder.setProperty("role", "hint")
            folder.setToolTip(path)
            text = QWidget()  # name over folder, beside the tile
            column = QVBoxLayout(text)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(0)
            column.addWidget(button, 0, Qt.AlignmentFlag.AlignLeft)
            column.addWidget(folder)
            self._recent_grid.addWidget(tile, row, 0)
            self._recent_grid.addWidget(text, row, 1)
            self.recent_buttons.append(button)
            self.recent_tiles[path] = tile
        self.recent_box.setVisible(bool(self.recent_buttons))

    def _tile(self, path: str) -> QPushButton:
        """A recent file's tile: its kind in words until a thumbnail comes."""
        suffix = Path(path).suffix.lower()
        tile = QPushButton("project" if suffix == ".dedit" else suffix[1:4] or "file")
        tile.setFixedSize(TILE, TILE)
        tile.setToolTip(f"Open {path}")
        tile.setCursor(Qt.CursorShape.PointingHandCursor)
        tile.setIconSize(QSize(TILE - 4, TILE - 4))
        tile.setStyleSheet(
            f"QPushButton {{ background: {COLORS['raised']}; border: 1px solid "
            f"{COLORS['border']}; border-radius: 6px; padding: 0; font-size: 10px; "
            f"color: {COLORS['muted']}; }}"
            f"QPushButton:hover {{ border-color: {COLORS['accent_hover']}; }}"
        )
        return tile

    def set_thumbnails(self, found: dict[str, np.ndarray]) -> None:
        """Show thumbnails (``path -> (h, w, 3)`` uint8 RGB, from
        :func:`ui.thumbnails.read`) on the tiles of the recent files they belong to."""
        ratio = self.devicePixelRatioF()
        for path, image in found.items():
            tile = self.recent_tiles.get(path)
            if tile is None:  # the list changed while they were read
                continue
            pixmap = thumbnail(image, TILE - 4, ratio=ratio)
            tile.setText("")
            tile.setIcon(QIcon(pixmap))

    def set_copies(self, copies: list) -> None:
        """Show the recovery copies that can be restored (:class:`ui.recovery.Copy`)."""
        self._clear(self._unsaved_grid)
        self.restore_buttons, self.discard_buttons = [], []
        for row, copy in enumerate(copies):
            name = QLabel(copy.title)
            name.setTextFormat(Qt.TextFormat.PlainText)  # a file name is never markup
            name.setStyleSheet("font-weight: 600;")
            when = QLabel(f"not saved, kept at {copy.when}")
            when.setProperty("role", "hint")
            restore = QPushButton("Restore")
            restore.setToolTip(f"Open the unsaved work kept in {copy.folder}")
            restore.clicked.connect(lambda _=False, c=copy: self.restore_clicked.emit(c))
            discard = QPushButton("Discard…")
            discard.setProperty("flat", True)
            discard.setToolTip("Delete this unsaved work (asks first)")
            discard.clicked.connect(lambda _=False, c=copy: self.discard_clicked.emit(c))
            for col, widget in enumerate((name, when, restore, discard)):
                self._unsaved_grid.addWidget(widget, row, col)
            self.restore_buttons.append(restore)
            self.discard_buttons.append(discard)
        self.unsaved_box.setVisible(bool(self.restore_buttons))

    # ----- dropping a file --------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if dropped_files(event.mimeData()):
            self._hover_drop = True
            self.update()
            event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:
        self._hover_drop = False
        self.update()

    def dropEvent(self, event) -> None:
        self._hover_drop = False
        self.update()
        paths = dropped_files(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(COLORS["canvas"]))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = COLORS["accent"] if self._hover_drop else COLORS["border"]
        painter.setPen(QPen(QColor(colour), 2, Qt.PenStyle.DashLine))
        painter.drawRoundedRect(QRectF(self.rect().adjusted(40, 40, -40, -40)), 16, 16)


__all__ = ["MAX_SHOWN", "TILE", "StartPage"]
