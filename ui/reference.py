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
        self._reading: int | None = None  # ticket of a reference being read

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

    def _stop_reading(self) -> None:
        if self._reading is not None:
            self.w.files.thread.forget(self._reading)
            self._reading = None

    def _failed(self, message: str) -> None:
        self._reading = None
        self.w.reference_panel.status.setText("")
        self.w.show_error(message)

    def _read(self, project: Project) -> None:
        self._reading = None
        image = project.image if project.folder is None else None
        ref = Document(project, self)
        old, self.doc = self.doc, ref
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
        kept = prepared_reference(doc.project)
        if kept is None or not kept.fits(ref.image):
            return False
        if not np.array_equal(ref.labels, kept.labels) or [i.name for i in ref.items] != list(
            kept.names
        ):
            ref.set_partition(kept.labels, list(kept.names), "Items it was prepared with")
            ref.undo.clear()
        self.w.reference_panel.status.setText(
            f"{counted(len(ref.visible_items()), 'item')}, as your photo was prepared with "
            "them: drag one onto your photo to swap it in."
        )
        self.w.editing.update_state()
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
            if ref is self.doc and not self.take_prepared_items():
                ref.set_partition(seg.labels, list(seg.names), "Find items")
                ref.undo.clear()
                n = len(ref.visible_items())
                w.reference_panel.status.setText(
                    f"{counted(n, 'item')}. Prepare (Ctrl+P) to learn both photos "
                    "together, then drag an item onto your photo."
                )
                if instead_of:
                    w.segmenting.say_found_instead(instead_of, n, " in the reference")
                w.editing.update_state()

        def failed(message: str) -> None:
            if ref is not self.doc:
                return
            if unavailable(record) and not instead_of:
                self._find_items(ref, image, instead_of=message)
            else:
                w.reference_panel.status.setText("")
                w.show_error(message)

        w.reference_panel.status.setText("Finding items…")
        record = w.jobs.submit(
            JobRequest("Find items in the reference", task, kind="segment"),
            on_finished=done,
            on_failed=failed,
        )
        self.finding = record.request.id

    def _show_dock(self) -> None:
        if not self.w.reference_dock.isVisible():
            self.w.reference_dock.show()
            self.w.resizeDocks([self.w.reference_dock], [300], Qt.Orientation.Horizontal)
        self.w.reference_dock.raise_()

    def close(self) -> None:
        """Close the reference photo (and stop reading one)."""
        self._stop_reading()
        ref, self.doc = self.doc, None
        self.w.reference_panel.set_document(None)
        if ref is not None:
            ref.deleteLater()
        self.w.editing.update_state()


__all__ = ["ReferenceController"]
