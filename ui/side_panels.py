"""The preparation card and the reference-photo panel."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.canvas import CanvasView
from ui.canvas_gestures import REF_ITEM_MIME
from ui.clipboard import dropped_files
from ui.document import Document
from ui.icons import icon
from ui.items_panel import ITEM_ROLE, PROMPT_ROLE, SHARE_ROLE, ItemDelegate
from ui.jobs_panel import format_duration, progress_words, time_left
from ui.overlay import item_colours
from ui.widgets import LossPlot
from ui.worker import JobRecord


class PreparePanel(QFrame):
    """Preparing (fine-tuning) the items' prompts: a button, progress, loss curve, time left."""

    prepare_clicked = Signal()
    cancel_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 10, 12, 12)
        lay.setSpacing(8)
        # The title shares its row with the button and the sentence has the card's whole
        # width below: two lines in a narrow dock rather than five beside the button.
        top = QHBoxLayout()
        self.title = QLabel("Not prepared")
        self.title.setObjectName("prepareTitle")
        self.title.setStyleSheet("font-weight: 600; font-size: 14px; background: transparent;")
        self.status = QLabel("Prepare once to teach the model each item's look; then edit.")
        self.status.setProperty("role", "hint")
        self.status.setWordWrap(True)
        top.addWidget(self.title, 1)
        self.button = QPushButton(icon("prepare", "#ffffff"), "Prepare")
        self.button.setObjectName("prepareButton")
        self.button.setProperty("primary", True)
        self.button.setToolTip("Learn a prompt for every item (Ctrl+P)")
        self.button.clicked.connect(self.prepare_clicked)
        self.cancel = QPushButton("Cancel")
        self.cancel.setObjectName("prepareCancel")
        self.cancel.clicked.connect(self.cancel_clicked)
        self.cancel.setVisible(False)
        top.addWidget(self.button)
        top.addWidget(self.cancel)
        lay.addLayout(top)
        lay.addWidget(self.status)
        self.bar = QProgressBar()
        self.bar.setFixedHeight(6)
        self.bar.setTextVisible(False)
        self.bar.setVisible(False)
        lay.addWidget(self.bar)
        self.plot = LossPlot()
        self.plot.setVisible(False)
        lay.addWidget(self.plot)

    def show_idle(self, prepared: bool, note: str = "", enabled: bool = True) -> None:
        self.title.setText("Prepared" if prepared else "Not prepared")
        self.status.setText(
            note
            or (
                "Every item has its own learned prompt; type a prompt and press Enter."
                if prepared
                else "Prepare once to teach the model each item's look; then edit."
            )
        )
        self.button.setText("Prepare again" if prepared else "Prepare")
        self.button.setProperty("primary", not prepared or bool(note))
        self.button.style().unpolish(self.button)
        self.button.style().polish(self.button)
        self.button.setVisible(True)
        self.button.setEnabled(enabled)
        self.cancel.setVisible(False)
        self.bar.setVisible(False)
        self.plot.setVisible(False)  # the curve is for watching training, not afterwards

    def show_running(self, record: JobRecord) -> None:
        from dedit_app.jobs import JobState

        self.button.setVisible(False)
        self.cancel.setVisible(True)
        self.cancel.setEnabled(record.state is not JobState.CANCELLING)
        self.bar.setVisible(True)
        self.plot.setVisible(True)
        p = record.progress
        self.title.setText(
            "Preparing…" if record.state is not JobState.CANCELLING else "Cancelling…"
        )
        if p is None or not p.total:
            self.bar.setRange(0, 0)
            self.status.setText("Loading the model…" if p is None else (p.message or p.stage))
            return
        self.bar.setRange(0, p.total)
        self.bar.setValue(p.step)
        left = time_left(record)
        bits = progress_words(p) if p.stage else ["Training", f"step {p.step} of {p.total}"]
        if left is not None:
            bits.append(f"about {format_duration(left)} left")
        self.status.setText(" · ".join(bits))
        self.plot.set_data(record.losses, p.total)


class ReferenceItems(QListWidget):
    """The reference photo's items; drag one onto an item of the photo to swap it in."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setItemDelegate(ItemDelegate(self))
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMouseTracking(True)
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_Hover)

    def mimeData(self, items: list[QListWidgetItem]) -> QMimeData:
        md = QMimeData()
        if items:
            md.setData(REF_ITEM_MIME, str(items[0].data(ITEM_ROLE)).encode())
            md.setText(items[0].text())
        return md

    def mimeTypes(self) -> list[str]:
        return [REF_ITEM_MIME]


class ReferencePanel(QWidget):
    """A second photo whose items can be swapped into the first."""

    open_clicked = Signal()
    close_clicked = Signal()
    files_dropped = Signal(list)  # [path]: photos dropped here open as the reference

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.setAcceptDrops(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(8)
        self.hint = QLabel(
            "Open a second photo, then drag one of its items onto an item of your photo to "
            "swap it in. Both photos are prepared together."
        )
        self.hint.setProperty("role", "hint")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)
        buttons = QHBoxLayout()
        self.open_button = QPushButton(icon("reference"), "Open reference photo…")
        self.open_button.clicked.connect(self.open_clicked)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close_clicked)
        self.close_button.setVisible(False)
        buttons.addWidget(self.open_button, 1)
        buttons.addWidget(self.close_button)
        lay.addLayout(buttons)
        self.canvas = CanvasView()
        self.canvas.setMinimumHeight(180)
        self.canvas.setVisible(False)
        self.canvas.setAcceptDrops(False)
        self.canvas.drags_out = True  # its items are dragged onto the photo, not moved
        lay.addWidget(self.canvas, 3)
        self.status = QLabel()
        self.status.setProperty("role", "hint")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.items = ReferenceItems()
        self.items.setVisible(False)
        lay.addWidget(self.items, 2)
        lay.addStretch(0)
        self.canvas.item_clicked.connect(lambda k, _m: self.doc and self.doc.select([k]))

    def dragEnterEvent(self, event) -> None:
        if dropped_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.files_dropped.emit(dropped_files(event.mimeData()))

    def set_document(self, doc: Document | None) -> None:
        if self.doc is not None:
            self.doc.changed.disconnect(self._rebuild)
        self.doc = doc
        self.canvas.set_document(doc)
        has = doc is not None
        self.canvas.setVisible(has)
        self.items.setVisible(has)
        self.close_button.setVisible(has)
        self.open_button.setText("Open another…" if has else "Open reference photo…")
        if doc is not None:
            doc.changed.connect(self._rebuild)
        self._rebuild()

    def _rebuild(self, *_args) -> None:
        self.items.clear()
        doc = self.doc
        if doc is None:
            self.status.setText("")
            return
        colours = item_colours(len(doc.items))
        counts = doc.counts
        total = max(int(counts.sum()), 1)
        for k in doc.visible_items():
            row = QListWidgetItem(doc.items[k].name)
            row.setData(ITEM_ROLE, k)
            row.setData(Qt.ItemDataRole.DecorationRole, _qcolour(colours[k]))
            row.setData(PROMPT_ROLE, "drag onto your photo")
            row.setData(SHARE_ROLE, f"{100.0 * counts[k] / total:.0f}%")
            self.items.addItem(row)


def _qcolour(rgb):
    from PySide6.QtGui import QColor

    return QColor(int(rgb[0]), int(rgb[1]), int(rgb[2]))
