"""Activity ▸ History: the undo stack as a list, where a click jumps to that step.

Qt's ``QUndoView`` moves the stack's index itself, past what Ctrl+Z does first: close
the results strip of an edit that stops being the latest step (or its tiles would
re-apply it), and wait for a brush stroke or drag in progress to end. A jump here asks
the window first, as Ctrl+Z and Ctrl+Y do.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QUndoView

# Keys with which the list moves its current row, and so the stack's index
_MOVING_KEYS = {
    Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown,
    Qt.Key.Key_Home, Qt.Key.Key_End,
}  # fmt: skip


class HistoryView(QUndoView):
    """``before_jump()`` runs before a click or key moves to another step; False from it
    (a stroke in progress) keeps the step where it is."""

    def __init__(self, before_jump: Callable[[], bool]) -> None:
        super().__init__()
        self._before_jump = before_jump
        self.setEmptyLabel("Opened")

    def mousePressEvent(self, event) -> None:
        row = self.indexAt(event.position().toPoint()).row()
        stack = self.stack()
        if stack is not None and row >= 0 and row != stack.index() and not self._before_jump():
            event.accept()
            return
        super().mousePressEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() in _MOVING_KEYS and not self._before_jump():
            event.accept()
            return
        super().keyPressEvent(event)
