"""Small widgets: the message bar, the loss curve, the candidates strip."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.imaging import thumbnail
from ui.theme import COLORS, scaled_font


def repolish(widget: QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class MessageBar(QFrame):
    """A dismissable line above the canvas for errors (stay) and notices (fade after a while).

    ``action`` adds one button (for example "Prepare now") that runs a callback.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.setProperty("level", "info")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 8, 8, 8)
        lay.setSpacing(10)
        self.icon = QLabel()
        self.icon.setFixedWidth(18)
        self.label = QLabel()
        self.label.setObjectName("messageText")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.action = QPushButton()
        self.action.setVisible(False)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss (Esc)")
        self.close_button.clicked.connect(self.dismiss)
        lay.addWidget(self.icon)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action)
        lay.addWidget(self.close_button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self._callback = None
        self.action.clicked.connect(self._run_action)
        self.hide()

    def text(self) -> str:
        return self.label.text() if self.isVisibleTo(self.parentWidget()) else ""

    @property
    def level(self) -> str:
        return str(self.property("level"))

    def show_message(
        self,
        text: str,
        level: str = "info",
        *,
        action: tuple[str, object] | None = None,
        timeout_ms: int | None = None,
    ) -> None:
        self.setProperty("level", level)
        repolish(self)
        self.icon.setText({"error": "⚠", "ok": "✓"}.get(level, "ℹ"))
        colour = {"error": COLORS["error"], "ok": COLORS["ok"]}.get(level, COLORS["accent"])
        self.icon.setStyleSheet(f"color: {colour}; font-size: 15px;")
        self.label.setText(text)
        if action is not None:
            self.action.setText(action[0])
            self._callback = action[1]
            self.action.setVisible(True)
        else:
            self._callback = None
            self.action.setVisible(False)
        self.show()
        if timeout_ms is None:
            timeout_ms = 0 if level == "error" else 6000
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def dismiss(self) -> None:
        self._timer.stop()
        self.hide()

    def _run_action(self) -> None:
        cb = self._callback
        self.dismiss()
        if cb is not None:
            cb()


class LossPlot(QWidget):
    """The training loss as a line (raw, faint) and its moving average (bright)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(70)
        self.steps: list[int] = []
        self.values: list[float] = []
        self.total = 0

    def sizeHint(self) -> QSize:
        return QSize(240, 90)

    def set_data(self, points: list[tuple[int, float]], total: int) -> None:
        self.steps = [p[0] for p in points]
        self.values = [p[1] for p in points]
        self.total = total
        self.update()

    def clear(self) -> None:
        self.set_data([], 0)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        p.setPen(QPen(QColor(COLORS["border"]), 1))
        p.setBrush(QColor(COLORS["window"]))
        p.drawRoundedRect(r, 6, 6)
        plot = r.adjusted(8, 20, -8, -8)
        small = scaled_font(self.font(), 0.85)
        p.setFont(small)
        p.setPen(QColor(COLORS["muted"]))
        vals = [v for v in self.values if math.isfinite(v)]
        if not vals:
            p.drawText(
                r.adjusted(8, 4, -8, -4),
                Qt.AlignmentFlag.AlignCenter,
                "The loss curve appears here while preparing.",
            )
            return
        lo, hi = min(vals), max(vals)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        n = max(self.total, max(self.steps) if self.steps else 1, 1)
        first = min(self.steps) if self.steps else 0

        def pt(step: int, v: float) -> QPointF:
            x = plot.left() + plot.width() * (step - first) / max(n - first, 1)
            y = plot.bottom() - plot.height() * (v - lo) / (hi - lo)
            return QPointF(x, y)

        # Grid: three faint lines.
        p.setPen(QPen(QColor(COLORS["border"]), 1, Qt.PenStyle.DotLine))
        for f in (0.0, 0.5, 1.0):
            y = plot.top() + plot.height() * f
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        raw = QPainterPath()
        for i, (s, v) in enumerate(zip(self.steps, self.values)):
            raw.moveTo(pt(s, v)) if i == 0 else raw.lineTo(pt(s, v))
        colour = QColor(COLORS["accent"])
        colour.setAlpha(70)
        p.setPen(QPen(colour, 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(raw)
        smooth = _ema(np.asarray(self.values, np.float64), 0.9)
        path = QPainterPath()
        for i, (s, v) in enumerate(zip(self.steps, smooth)):
            path.moveTo(pt(s, v)) if i == 0 else path.lineTo(pt(s, v))
        p.setPen(QPen(QColor(COLORS["accent"]), 2))
        p.drawPath(path)
        p.setPen(QColor(COLORS["muted"]))
        p.drawText(
            QRectF(r.left() + 8, r.top() + 3, r.width() - 16, 16),
            Qt.AlignmentFlag.AlignLeft,
            "loss",
        )
        p.setPen(QColor(COLORS["text"]))
        p.drawText(
            QRectF(r.left() + 8, r.top() + 3, r.width() - 16, 16),
            Qt.AlignmentFlag.AlignRight,
            f"{smooth[-1]:.4f}",
        )


def _ema(values: np.ndarray, decay: float) -> np.ndarray:
    out = np.empty_like(values)
    acc = values[0]
    for i, v in enumerate(values):
        acc = decay * acc + (1 - decay) * v if i else v
        out[i] = acc
    return out


class CandidatesStrip(QFrame):
    """The results of the latest edit: click one to use it; compare with the original.

    Holding the compare key (backslash) or dragging the split slider shows the picture
    before the edit; the main window does the showing.
    """

    chosen = Signal(int)  # candidate index
    split_changed = Signal(object)  # 0..1, or None when the slider is at the right end
    discard = Signal()
    done = Signal()
    more = Signal()  # run the edit again with other seeds

    THUMB = 72
    TILE = THUMB + 8  # a result's button: the thumbnail in its padding and border (2 + 2)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("candidates")
        self.setStyleSheet(
            f"QFrame#candidates {{ background: {COLORS['panel']}; "
            f"border-top: 1px solid {COLORS['border']}; }}"
        )
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 8)
        lay.setSpacing(8)
        # Long titles and hints wrap within a column of their own, so they never squeeze
        # the thumbnails out of sight.
        info_box = QWidget()
        info_box.setMaximumWidth(280)
        # it yields width to the thumbnails first: two results and More stay in sight in
        # the narrowest window (the central area of a 1024 px wide screen)
        info_box.setMinimumWidth(140)
        info = QVBoxLayout(info_box)
        info.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Results")
        self.title.setStyleSheet("font-weight: 600;")
        self.hint = QLabel("Click one to use it. Hold \\ to see the original.")
        self.hint.setProperty("role", "hint")
        for label in (self.title, self.hint):
            label.setWordWrap(True)
            info.addWidget(label)
        info.addStretch(1)
        lay.addWidget(info_box)
        # The thumbnails scroll sideways when the window is narrow, instead of widening it.
        holder = QWidget()
        self.thumbs = QHBoxLayout(holder)
        self.thumbs.setContentsMargins(0, 0, 0, 0)
        self.thumbs.setSpacing(6)
        # A tile after the results, like one more of them: the next results appear there.
        self.more_button = QToolButton()
        self.more_button.setText("More\nresults")
        self.more_button.setFixedSize(self.TILE, self.TILE)
        self.more_button.setToolTip(
            "Run this edit again from the same picture with new seeds; the results join these"
        )
        self.more_button.setStyleSheet(
            f"QToolButton {{ border: 1px dashed {COLORS['border']}; border-radius: 8px; "
            f"color: {COLORS['muted']}; font-size: 11px; }}"
            f"QToolButton:hover {{ border-color: {COLORS['accent_hover']}; "
            f"color: {COLORS['text']}; }}"
            f"QToolButton:disabled {{ color: {COLORS['border']}; }}"
        )
        self.more_button.clicked.connect(self.more)
        self.thumbs.addWidget(self.more_button)
        self.thumbs.addStretch(1)
        scroller = QScrollArea()
        scroller.setWidget(holder)
        scroller.setWidgetResizable(True)
        scroller.setFrameShape(QFrame.Shape.NoFrame)
        scroller.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # room below the tiles for the sideways scroll bar, which would hide their lower edge
        bar = scroller.horizontalScrollBar().sizeHint().height()
        scroller.setFixedHeight(self.TILE + 2 + bar)
        scroller.setMinimumWidth(3 * self.TILE + 2 * self.thumbs.spacing())
        scroller.setStyleSheet(
            "QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }"
        )
        lay.addWidget(scroller, 1)
        # The buttons over the before | after slider, in one column: the row stays narrow
        # enough for the thumbnails.
        column = QVBoxLayout()
        column.setSpacing(4)
        buttons = QHBoxLayout()
        split_label = QLabel("Before | after")
        split_label.setProperty("role", "hint")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(100)
        self.slider.setToolTip("Drag left to compare with the picture before this edit")
        self.slider.valueChanged.connect(self._on_slider)
        column.addLayout(buttons)
        column.addWidget(split_label)
        column.addWidget(self.slider)
        lay.addLayout(column)
        self.discard_button = QPushButton("Undo edit")
        self.discard_button.setToolTip("Go back to the picture before this edit (Ctrl+Z)")
        self.discard_button.clicked.connect(self.discard)
        self.done_button = QPushButton("Done")
        self.done_button.setProperty("primary", True)
        self.done_button.setToolTip("Keep the chosen result (Enter)")
        self.done_button.clicked.connect(self.done)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.done_button)
        self.buttons: list[QToolButton] = []
        self.active = 0
        # the document's colour profile to the screen's (set with the document; None: as
        # the values are), so that a result looks as it will on the canvas
        self.colours = None
        self.hide()

    def set_candidates(self, images: list[np.ndarray], title: str, active: int = 0) -> None:
        self._drop_buttons()
        for i, img in enumerate(images):
            b = QToolButton()
            b.setCheckable(True)
            b.setIcon(QIcon(self._thumbnail(img)))
            b.setIconSize(QSize(self.THUMB, self.THUMB))
            b.setFixedSize(self.TILE, self.TILE)
            b.setToolTip(f"Result {i + 1} (press {i + 1})")
            b.setStyleSheet(
                "QToolButton { padding: 2px; border: 2px solid transparent; border-radius: 8px; }"
                f"QToolButton:checked {{ border-color: {COLORS['accent']}; background: none; }}"
            )
            b.clicked.connect(lambda _=False, i=i: self.chosen.emit(i))
            self.thumbs.insertWidget(self.thumbs.count() - 2, b)  # before More and the stretch
            self.buttons.append(b)
        self.title.setText(title)
        self.set_active(active)
        self.slider.setValue(100)
        self.show()

    def _thumbnail(self, image: np.ndarray) -> QPixmap:
        """``image``'s thumbnail for this screen's device pixels, and for at least two per
        logical pixel: sharp on a Retina screen and when the window moves to one, and on
        a 3x screen too (twice THUMB, scaled up, was soft there)."""
        return thumbnail(image, self.THUMB, self.colours, max(2.0, self.devicePixelRatioF()))

    def set_thumbnail(self, index: int, image: np.ndarray | QPixmap) -> QPixmap:
        """Show ``image`` (``(H, W, 3)`` uint8, or a thumbnail this returned before) as
        result ``index``'s thumbnail; returns the thumbnail."""
        small = image if isinstance(image, QPixmap) else self._thumbnail(image)
        if 0 <= index < len(self.buttons):
            self.buttons[index].setIcon(QIcon(small))
        return small

    def set_active(self, index: int) -> None:
        self.active = index
        for i, b in enumerate(self.buttons):
            b.setChecked(i == index)

    def _on_slider(self, value: int) -> None:
        self.split_changed.emit(None if value >= 100 else value / 100.0)

    def _drop_buttons(self) -> None:
        # Out of the row at once: deleteLater alone leaves them on show until the event
        # loop next runs, beside the next edit's results.
        for b in self.buttons:
            self.thumbs.removeWidget(b)
            b.hide()
            b.deleteLater()
        self.buttons = []

    def clear(self) -> None:
        self._drop_buttons()
        self.slider.setValue(100)
        self.hide()
