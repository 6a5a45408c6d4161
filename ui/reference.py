"""The reference photo (``window.reference_photo``): a second photo or project whose items
can be dragged onto the photo being edited, to swap them in (D-Edit's joint preparation
learns both photos together).

Opening one reads it (on the files thread when large), shows it in the reference panel
and, for a photo, finds its items with the same segmenter as the main photo. Preparing and
swapping are :mod:`ui.editing`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt

from dedit_app.errors import DEditError
from dedit_app.reference_items import prepared_reference
from dedit_app.wording import counted
from ui.document import Document
from ui.segmenting import unavailable
from ui.tasks import SegmentAuto, readonly
from ui.worker import JobRequest

if TYPE_CHECKING:
    from dedit_app.project import Project
    from ui.mainwindow import MainWindow


class ReferenceController(QObject):
    """Opens and closes the reference photo; ``doc`` is its document (None: none open)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.doc: Document | None = None
        self.finding: int | None = None  # the job finding its items (it outlives the photo)
        self._finding_for: Document | None = None  # the reference that job finds items of
        self._reading: int | None = None  # ticket of a reference being read
        self._kept_for: Document | None = None  # the photo whose kept items it was given

    def open(self, path: str | Path) -> bool:
        """Open a photo or project as the reference; False when refused at once. A large
        one is read on the files thread and shows when it is ready."""
        from ui.files import picture_size

        path = Path(path)
        try:
            size = picture_size(path)
            self._stop_reading()
            ticket = self.w.files.read(path, size, self._read, self._failed)
        except DEditError as err:
            self.w.show_error(str(err))
            return False
        if ticket is not None:
            self._reading = ticket
            self.w.reference_panel.status.setText(f"Opening {path.name}…")
            self._show_dock()
        return True

    def busy(self) -> str:
        """Why a joint preparation should wait ("" when it need not): the reference is
        still being read, or its items found. Prepared now, the preparation would learn
        the reference as one item, its whole photo, and be of no use to the swap once its
        items are listed."""
        if self._reading is not None:
            return (
                "The reference photo is still being opened; prepare once its items are "
                "listed, so both photos are learned together."
            )
        record = self.w.jobs.jobs.get(self.finding) if self.finding is not None else None
        if self.doc is not None and self._finding_for is self.doc and record and record.active:
            return (
                "The reference photo's items are still being found; prepare once they are "
                "listed, so both photos are learned together."
            )
        return ""

    def show_state(self, joint: bool) -> None:
        """Say under the reference what it is ready for and what to do next: the sentence
        follows the photo open beside it (``joint``: it is prepared together with the
        reference; or not, another one, none). :meth:`EditController.update_state` calls
        it with what it worked out for the preparation card."""
        ref = self.doc
        if ref is None or self.busy():
            return  # "Opening…" or "Finding items…" is on show
        doc = self.w.doc
        n = counted(len(ref.visible_items()), "item")
        if doc is None:
            text = (
                f"{n}. Open your photo, prepare the two together (Ctrl+P), then drag an "
                "item onto it."
            )
        elif joint:
            how = "as your photo was prepared with them"
            if self._kept_for is not doc:
                how = "prepared with your photo"
            text = f"{n}, {how}: drag one onto your photo to swap it in."
        else:
            text = (
                f"{n}. Prepare (Ctrl+P) to learn both photos together, then drag an item "
                "onto your photo."
            )
        self.w.reference_panel.status.setText(text)

    def _stop_finding(self) -> None:
        """The reference goes (closed or replaced): its items would be of no use, and the
        job would hold up the jobs queued after it, a preparation among them."""
        if self._finding_for is not None and self.finding is not None:
            record = self.w.jobs.jobs.get(self.finding)
            if record is not None and record.active:
                self.w.jobs.retire(self.finding)
        self._finding_for = None

    def _stop_reading(self) -> None:
        if self._reading is not None:
            self.w.files.thread.forget(self._reading)
            self._reading = None

    def _failed(self, message: str) -> None:
        self._reading = None
        self.w.reference_panel.status.setText("")
        self.w.editing.update_state()  # the reference on show, if any, stays: its sentence too
        self.w.show_error(message)

    def _read(self, project: Project) -> None:
        self._reading = None
        # A reference lends its items' looks and is never exported or saved from here:
        # a 16-bit reference's 16 bits (144 MB at 24 MP) are let go.
        project.deep = None
        image = project.image if project.folder is None else None
        self._stop_finding()
        ref = Document(project, self)
        old, self.doc = self.doc, ref
        self._kept_for = None
        self.w.reference_panel.set_document(ref)
        self._show_dock()
        if old is not None:
            old.deleteLater()
        self.w.editing.update_state()
        if image is not None and not self.take_prepared_items():
            self._find_items(ref, image)

    def take_prepared_items(self) -> bool:
        """Give the reference photo the items the open photo was prepared with, when the
        project kept them (:mod:`dedit_app.reference_items`) and the reference is that
        very photo: found afresh, they could be split otherwise (another segmenter or its
        settings) and the swap would need preparing again. True when it did. A reference
        opened as a project keeps its own items."""
        ref, doc = self.doc, self.w.doc
        if ref is None or doc is None or ref.folder is not None:
            return False
        kept = prepared_reference(doc.project, of=ref.image)  # that very photo, or None
        if kept is None:
            return False
        if not np.array_equal(ref.labels, kept.labels) or [i.name for i in ref.items] != list(
            kept.names
        ):
            ref.set_partition(kept.labels, list(kept.names), "Items it was prepared with")
            ref.undo.clear()
        self._kept_for = doc
        self._stop_finding()  # what it would find is not used: these items are
        self.w.editing.update_state()  # says so under the reference (show_state)
        return True

    def _find_items(self, ref: Document, image, instead_of: str = "") -> None:
        """Find the items of reference ``ref``; ``instead_of`` as in
        :meth:`ui.segmenting.SegmentController.segment_auto` (the default backend finds
        them, and the sentence says why the chosen one could not)."""
        w = self.w
        instead_of = instead_of or w.segmenting.cannot_build()
        backend = w.segmenting.backend(instead_of)
        task = SegmentAuto(readonly(image), ("reference", id(ref)), *backend)

        def done(seg) -> None:
            if ref is not self.doc:
                return
            self._finding_for = None
            if not self.take_prepared_items():
                ref.set_partition(seg.labels, list(seg.names), "Find items")
                ref.undo.clear()
                if instead_of:
                    n = len(ref.visible_items())
                    w.segmenting.say_found_instead(instead_of, n, " in the reference")
                w.editing.update_state()  # says what to do next (show_state)

        def cancelled() -> None:
            if ref is self.doc:  # cancelled in the Jobs panel: the photo stays one item
                self._finding_for = None
                w.editing.update_state()

        def failed(message: str) -> None:
            if ref is not self.doc:
                return
            self._finding_for = None
            if unavailable(record) and not instead_of:
                self._find_items(ref, image, instead_of=message)
            else:
                w.editing.update_state()  # one item, its whole photo: says what it can do
                w.show_error(message)

        def started(_record) -> None:
            if ref is self.doc and self.finding == record.request.id:
                w.reference_panel.status.setText("Finding items…")

        record = w.jobs.submit(
            JobRequest("Find items in the reference", task, kind="segment"),
            on_finished=done,
            on_failed=failed,
            on_cancelled=cancelled,
            on_progress=started,
        )
        self.finding, self._finding_for = record.request.id, ref
        ahead = w.jobs.ahead(record.request.id)
        w.reference_panel.status.setText(
            f"Its items are found when “{ahead.request.title}” is done: one job at a time "
            "uses the model."
            if ahead is not None
            else "Finding items…"
        )

    def _show_dock(self) -> None:
        if not self.w.reference_dock.isVisible():
            self.w.reference_dock.show()
            self.w.resizeDocks([self.w.reference_dock], [300], Qt.Orientation.Horizontal)
        self.w.reference_dock.raise_()

    def close(self) -> None:
        """Close the reference photo (and stop reading one)."""
        self._stop_reading()
        self._stop_finding()
        ref, self.doc = self.doc, None
        self._kept_for = None
        self.w.reference_panel.set_document(None)
        if ref is not None:
            ref.deleteLater()
        self.w.editing.update_state()


__all__ = ["ReferenceController"]
