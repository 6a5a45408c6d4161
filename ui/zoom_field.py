"""The zoom in the status bar, as a field: it reads the canvas's zoom (screen pixels per
photo pixel, as in design tools), and a zoom typed into it ("150", "150 %") or picked
from its list (Fit, 25 % ... 800 %) is the canvas's next. A label only said it before."""

from __future__ import annotations

import re

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QComboBox

FIT = "Fit"
PRESETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # screen zooms in the list, after Fit
_PERCENT = re.compile(r"\s*(\d+(?:[.,]\d*)?)\s*%?\s*")


def parse_percent(text: str) -> float | None:
    """``"150"``, ``"150 %"`` or ``"12,5%"`` -> 1.5 or 0.125; None for anything else, or
    for a zoom outside 1 % .. 6400 %."""
    match = _PERCENT.fullmatch(text)
    if match is None:
        return None
    zoom = float(match.group(1).replace(",", ".")) / 100
    return zoom if 0.01 <= zoom <= 64.0 else None


class _Percent(QValidator):
    """Lets the field hold a number and a percent sign while it is typed, nothing else."""

    def validate(self, text: str, pos: int):
        if text.strip() == "" or text == FIT or re.fullmatch(r"\s*\d*(?:[.,]\d*)?\s*%?\s*", text):
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Invalid, text, pos


class ZoomField(QComboBox):
    """An editable list of zooms; says the canvas's zoom with :meth:`show_zoom`."""

    zoom_asked = Signal(float)  # screen pixels per photo pixel
    fit_asked = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setToolTip("Zoom: type a percentage and press Enter, or pick one")
        self.addItem(FIT)
        for zoom in PRESETS:
            self.addItem(f"{zoom * 100:g}%", zoom)
        self.lineEdit().setValidator(_Percent(self))
        self.setMinimumContentsLength(6)
        self._shown = ""
        self.activated.connect(self._picked)
        self.lineEdit().returnPressed.connect(self._typed)
        self.lineEdit().editingFinished.connect(self._restore)

    def show_zoom(self, zoom: float | None) -> None:
        """Say ``zoom`` (screen pixels per photo pixel); None: no picture, no field."""
        self._shown = "" if zoom is None else f"{zoom * 100:.0f}%"
        self.setEditText(self._shown)
        self.setVisible(zoom is not None)

    def _picked(self, index: int) -> None:
        if self.itemText(index) == self._shown:  # the zoom on show, or Enter on it
            return
        zoom = self.itemData(index)
        if zoom is None:
            self.fit_asked.emit()
        else:
            self.zoom_asked.emit(float(zoom))
        self._restore()

    def _typed(self) -> None:
        text = self.currentText()
        # nothing typed: Enter on the zoom on show (the combo box hands Enter to its
        # line edit twice, the second time with the text put back)
        if text == self._shown:
            return
        if text.strip() == FIT:
            self.fit_asked.emit()
        else:
            zoom = parse_percent(text)
            if zoom is not None:
                self.zoom_asked.emit(zoom)
        self._restore()  # what the canvas now shows, or what it showed for bad input

    def _restore(self) -> None:
        self.setEditText(self._shown)


__all__ = ["FIT", "PRESETS", "ZoomField", "parse_percent"]
