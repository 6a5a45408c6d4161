"""Hold \\ to see the photo before its first edit, over the picture as it is now.

With an edit's results on show, \\ compares with the picture before *that* edit
(:mod:`ui.editing`); with none, it compares with the photo before *every* edit, as
Lightroom's before/after key does. After many edits that is the question a designer asks:
what did the photo look like at the start? With Activity ▸ Edits on show and an edit
chosen there, it compares with the picture before *that* edit instead: a look before
going back to it (:mod:`ui.edits_panel`).

The photo before the first edit is in memory for edits made since opening; for a saved
project it is one of its files, read on the files thread the first time it is asked for
(a second for 24 MP) and kept while the picture is open.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dedit_app.errors import DEditError
from dedit_app.project import read_picture

SHOWING = "The photo before its first edit. Let go of \\ to see it as it is now."


class OriginalPhoto:
    """``window.original``: shows the photo before its first edit while \\ is held."""

    def __init__(self, window) -> None:
        self.w = window
        self.held = False
        self._read: tuple[Path, np.ndarray] | None = None  # the last file read, and its pixels
        self._ticket: int | None = None
        # The picture before a later edit chosen in Activity ▸ Edits, last read: (its
        # history entry, pixels); and the sentence shown with it.
        self._read_edit: tuple[dict, np.ndarray] | None = None
        self._edit_ticket: int | None = None
        self._showing_edit = ""

    def hold(self, on: bool) -> None:
        """\\ pressed (``on``) or let go, with no results strip on show."""
        self.held = on
        doc, canvas = self.w.doc, self.w.canvas
        if not on or doc is None:
            canvas.set_compare(None, None)
            if self.w.status_message.text() in (SHOWING, self._showing_edit):
                self.w.status_message.clear()
            return
        number = self.w.going_back.compared()
        if number is not None and number > 1:
            self._hold_before_edit(doc, number)
            return
        try:
            first = doc.project.first_picture()
        except DEditError as err:
            self.w.show_error(str(err))
            return
        if isinstance(first, Path):
            if self._read is None or self._read[0] != first:
                self._read_aside(doc, first)
                return
            first = self._read[1]
        if first is doc.image:
            self.w.status_message.setText("No edits yet: this is the photo as it was opened.")
            return
        canvas.set_compare(first, 1.0)
        self.w.status_message.setText(SHOWING)

    def _hold_before_edit(self, doc, number: int) -> None:
        """Show the picture before edit ``number`` (2 or later) of ``doc``'s history: at
        once when it is in memory or was read last, else read on the files thread."""
        record = doc.project.history[number - 1]
        before = record.get("_before")
        if before is not None:
            picture = before[0]
        elif self._read_edit is not None and self._read_edit[0] is record:
            picture = self._read_edit[1]
        else:
            self._read_edit_aside(doc, number, record)
            return
        self.w.canvas.set_compare(picture, 1.0)
        self._showing_edit = (
            f"The picture before edit {number}. Let go of \\ to see it as it is now."
        )
        self.w.status_message.setText(self._showing_edit)

    def forget(self) -> None:
        """The picture closes: drop what was read for it."""
        for ticket in (self._ticket, self._edit_ticket):
            if ticket is not None:
                self.w.files.thread.forget(ticket)
        self._read = self._ticket = self._read_edit = self._edit_ticket = None
        self.held = False

    def _read_edit_aside(self, doc, number: int, record: dict) -> None:
        if self._edit_ticket is not None:
            return  # being read; it shows when it lands if \ is still held
        self.w.status_message.setText(f"Reading the picture before edit {number}…")
        copy = doc.project.job_copy(history=True)

        def done(pixels: np.ndarray) -> None:
            self._edit_ticket = None
            if doc is not self.w.doc:
                return
            self._read_edit = (record, pixels)
            if self.held:
                self.hold(True)

        def failed(message: str) -> None:
            self._edit_ticket = None
            if doc is self.w.doc:
                self.w.show_error(message)

        self._edit_ticket = self.w.files.thread.submit(
            f"Reading the picture before edit {number}",
            lambda: copy.snapshot(copy.history[number - 1])[0],
            done,
            failed,
        )

    def _read_aside(self, doc, path: Path) -> None:
        if self._ticket is not None:
            return  # already being read; it shows when it lands if \ is still held
        self.w.status_message.setText("Reading the photo before its first edit…")

        def done(pixels: np.ndarray) -> None:
            self._ticket = None
            if doc is not self.w.doc:
                return
            self._read = (path, pixels)
            if self.held:
                self.hold(True)

        def failed(message: str) -> None:
            self._ticket = None
            if doc is self.w.doc:
                self.w.show_error(message)

        self._ticket = self.w.files.thread.submit(
            "Reading the photo before its first edit", lambda: read_picture(path), done, failed
        )


__all__ = ["SHOWING", "OriginalPhoto"]
