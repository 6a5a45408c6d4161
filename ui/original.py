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

from dedit_app.bundle_files import read_picture
from dedit_app.errors import DEditError
from dedit_app.going_back import picture_before

SHOWING = "The photo before its first edit. Let go of \\ to see it as it is now."


class OriginalPhoto:
    """``window.original``: shows the photo before its first edit while \\ is held."""

    def __init__(self, window) -> None:
        self.w = window
        self.held = False
        self._read: tuple[Path, np.ndarray] | None = None  # the last file read, and its pixels
        # The picture before a later edit chosen in Activity ▸ Edits, last read: (its
        # history entry, pixels); and the sentence shown with it.
        self._read_edit: tuple[dict, np.ndarray] | None = None
        self._showing_edit = ""
        self._tickets: dict[str, int] = {}  # reads under way: "first" and "edit"

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
                self._read_aside(
                    doc,
                    "first",
                    "Reading the photo before its first edit",
                    lambda: read_picture(first),
                    lambda pixels: setattr(self, "_read", (first, pixels)),
                )
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
            copy = doc.project.job_copy(history=True)
            self._read_aside(
                doc,
                "edit",
                f"Reading the picture before edit {number}",
                lambda: picture_before(copy, number)[0],
                lambda pixels: setattr(self, "_read_edit", (record, pixels)),
            )
            return
        self.w.canvas.set_compare(picture, 1.0)
        self._showing_edit = (
            f"The picture before edit {number}. Let go of \\ to see it as it is now."
        )
        self.w.status_message.setText(self._showing_edit)

    def forget(self) -> None:
        """The picture closes: drop what was read for it."""
        for ticket in self._tickets.values():
            self.w.files.thread.forget(ticket)
        self._tickets.clear()
        self._read = self._read_edit = None
        self.held = False

    def _read_aside(self, doc, key: str, title: str, work, keep) -> None:
        """Run ``work()`` on the files thread and ``keep`` its pixels; they show when they
        land if \\ is still held. One read of each ``key`` at a time."""
        if key in self._tickets:
            return
        self.w.status_message.setText(f"{title}…")

        def done(pixels: np.ndarray) -> None:
            self._tickets.pop(key, None)
            if doc is not self.w.doc:
                return
            keep(pixels)
            if self.held:
                self.hold(True)

        def failed(message: str) -> None:
            self._tickets.pop(key, None)
            if doc is self.w.doc:
                self.w.show_error(message)

        self._tickets[key] = self.w.files.thread.submit(title, work, done, failed)


__all__ = ["SHOWING", "OriginalPhoto"]
