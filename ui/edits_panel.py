"""Activity ▸ Edits: every applied edit the project keeps, saved ones included, and a way
back to the picture from before any of them (or its export, without going back).

History (the undo stack) holds only what was done since the project was opened, so after
reopening it is empty. The project itself keeps the picture, item map and items from
before each applied edit; "Go back to before it" makes them current again as one more
edit (:mod:`dedit_app.going_back`), which Ctrl+Z undoes and which leaves every later edit
in the list. Edits set aside by going back are shown dimmed.

The earlier picture is read on the files thread (a second for 24 MP): the canvas stays
live meanwhile, and if the history changed before it lands (an undo, another edit) the
list is as it was asked about no more, so nothing is applied and the sentence says why.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from dedit_app.errors import DEditError
from dedit_app.going_back import back_before, set_aside
from dedit_app.wording import edit_words
from ui.theme import COLORS

EMPTY = "No edits yet. Each applied edit is listed here and kept with the project."


def _plain(record: dict) -> dict:
    """A history entry as the project file keeps it (held pictures left out), to tell
    whether the entry asked about is still the one at its place."""
    return {key: value for key, value in record.items() if key != "_before"}


class EditsPanel(QWidget):
    """The list of applied edits, oldest first, numbered as ``dedit info`` numbers them."""

    def __init__(self) -> None:
        super().__init__()
        self.list = QListWidget()
        self.list.setObjectName("editsList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setWordWrap(True)
        self.back_button = QPushButton("Go back to before it")
        self.back_button.setToolTip(
            "Makes the picture, items and prompts from before the chosen edit current "
            "again, as one more edit: the later edits stay in this list, and Ctrl+Z undoes it. "
            "Hold \\ to see that picture first."
        )
        self.back_button.setEnabled(False)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Writes the picture from before the chosen edit to a file, at full resolution, "
            "without going back to it."
        )
        self.export_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.back_button, 1)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.list.currentRowChanged.connect(self._on_row)
        self._count = 0

    def show_history(self, history: list[dict], names: list[str]) -> None:
        """List ``history`` (a project's, oldest first); keeps the chosen row when it is
        still there."""
        row = self.list.currentRow()
        aside = set_aside(history)
        self.list.blockSignals(True)
        self.list.clear()
        if not history:
            empty = QListWidgetItem(EMPTY)
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.list.addItem(empty)
        for number, record in enumerate(history, start=1):
            when = str(record.get("time", "")).replace("T", " ")
            row_item = QListWidgetItem(f"{number}  {edit_words(record, names)}")
            row_item.setData(Qt.ItemDataRole.UserRole, number)
            tip = [when] if when else []
            if aside[number - 1]:
                row_item.setForeground(QColor(COLORS["muted"]))
                tip.append("Set aside by going back to before an earlier edit.")
            row_item.setToolTip("\n".join(tip))
            self.list.addItem(row_item)
        self._count = len(history)
        self.list.setCurrentRow(row if 0 <= row < len(history) else -1)
        self.list.blockSignals(False)
        self._on_row(self.list.currentRow())
        if row < 0:
            self.list.scrollToBottom()

    def chosen(self) -> int | None:
        """The edit number of the chosen row (1-based), or None."""
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def _on_row(self, row: int) -> None:
        number = self.chosen() if row >= 0 else None
        self.back_button.setEnabled(number is not None)
        self.export_button.setEnabled(number is not None)
        self.back_button.setText(
            f"Go back to before edit {number}" if number else "Go back to before it"
        )


class GoingBack:
    """``window.going_back``: fills the Edits tab and goes back to before an edit."""

    def __init__(self, window, panel: EditsPanel) -> None:
        self.w = window
        self.panel = panel
        self._ticket: int | None = None
        panel.back_button.clicked.connect(lambda: self.go_back(panel.chosen()))
        # a double click or Enter on a row does the same: it is one undoable step
        panel.list.itemActivated.connect(lambda _row: self.go_back(panel.chosen()))
        panel.export_button.clicked.connect(
            lambda: self.w.files.export_dialog(before=panel.chosen())
        )

    def compared(self) -> int | None:
        """The edit chosen in the Edits tab while it is on show (1-based), whose earlier
        picture holding \\ compares with (:mod:`ui.original`); else None."""
        # isHidden, not isVisible: closed by the user, not merely off screen
        on_show = self.w.activity.currentWidget() is self.panel and not (
            self.w.activity_dock.isHidden()
        )
        number = self.panel.chosen() if on_show else None
        doc = self.w.doc
        if doc is None or number is None or not 1 <= number <= len(doc.project.history):
            return None
        return number

    def refresh(self) -> None:
        """The document or its history changed: list its edits again."""
        doc = self.w.doc
        if doc is None:
            self.panel.show_history([], [])
            return
        self.panel.show_history(doc.project.history, [item.name for item in doc.items])

    def offer(self) -> None:
        """Undo was asked for with nothing left to undo since the project was opened, but
        the project keeps earlier edits: show them, the newest chosen, and say how."""
        self.w.activity_dock.show()
        self.w.activity.setCurrentWidget(self.panel)
        self.panel.list.setCurrentRow(self.panel.list.count() - 1)
        self.w.status_message.setText(
            "Undo holds what was done since the project was opened. To go further back, "
            "choose an edit under Activity ▸ Edits and go back to before it."
        )

    def forget(self) -> None:
        """The picture closes: a read under way lands nowhere."""
        if self._ticket is not None:
            self.w.files.thread.forget(self._ticket)
        self._ticket = None

    def go_back(self, number: int | None) -> None:
        """Go back to before edit ``number`` (1-based): read its picture on the files
        thread, then apply it as one undoable step."""
        doc = self.w.doc
        if doc is None or number is None:
            return
        if self._ticket is not None:  # one at a time: the history it lands on must hold
            self.w.status_message.setText(
                "Still reading the picture to go back to; choose again once it is back."
            )
            return
        if not self.w._before_history_jump():  # a stroke under way; a results strip closes
            return
        if not 1 <= number <= len(doc.project.history):
            self.w.show_error(f"There is no edit {number} any more; choose another.")
            return
        asked = _plain(doc.project.history[number - 1])
        copy = doc.project.job_copy(history=True)
        self.w.status_message.setText(f"Reading the picture from before edit {number}…")

        def done(way) -> None:
            self._ticket = None
            if doc is not self.w.doc:
                return
            history = doc.project.history
            if len(history) < number or _plain(history[number - 1]) != asked:
                self.w.show_error(
                    f"The edits changed while the picture from before edit {number} was "
                    "read, so nothing was changed; choose the edit again."
                )
                return
            try:
                doc.go_back(way, f"Back to before edit {number}")
            except DEditError as err:
                self.w.show_error(str(err))
                return
            self.w.status_message.setText(
                f"The picture from before edit {number} is back, as edit "
                f"{len(doc.project.history)}; Ctrl+Z undoes it."
            )

        def failed(message: str) -> None:
            self._ticket = None
            if doc is self.w.doc:
                self.w.show_error(message)

        self._ticket = self.w.files.thread.submit(
            f"Reading the picture from before edit {number}",
            lambda: back_before(copy, number),
            done,
            failed,
        )


__all__ = ["EMPTY", "EditsPanel", "GoingBack"]
