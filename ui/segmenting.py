"""Finding items: automatic segmentation of a photo and click-to-segment a new item, both
on the worker thread with the backend chosen in Settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QInputDialog

from dedit_app.errors import DEditError, SegmenterUnavailable
from dedit_app.segment import DEFAULT_BACKEND, backend_status
from dedit_app.wording import counted
from ui.canvas import Tool
from ui.document import Document
from ui.tasks import TEXT_BACKENDS, SegmentAuto, SegmentClick, readonly, segmenter_options
from ui.worker import JobRecord, JobRequest

if TYPE_CHECKING:
    from ui.mainwindow import MainWindow


def unavailable(record: JobRecord) -> bool:
    """Job ``record`` failed because the chosen segmenter cannot be built (its package,
    weights or device): mended in Settings, not by clicking again."""
    return record.error == SegmenterUnavailable.__name__


class SegmentController(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.click_points: list[tuple[float, float, bool]] = []  # (x, y, include)
        self.click_mask: np.ndarray | None = None  # the latest proposal, (H, W) bool
        self._click_job: int | None = None
        self._segment_job: int | None = None

    def options(self) -> tuple:
        """``get_backend`` options for the configured backend, hashable."""
        s = self.w.settings
        options = segmenter_options(s.segmenter, s.sam_checkpoint, s.grounding_checkpoint, s.device)
        return tuple(sorted(options.items()))

    def backend(self, instead_of: str = "") -> tuple[str, tuple]:
        """``(name, options)`` of the backend to find items with: the chosen one, or the
        weights-free default when ``instead_of`` says why the chosen one cannot load."""
        if instead_of:
            return DEFAULT_BACKEND, ()
        return self.w.settings.segmenter, self.options()

    def cannot_build(self) -> str:
        """Why the chosen backend cannot be built, as far as its files and packages tell
        without loading anything, or "" (a job may still find out more)."""
        return backend_status(self.w.settings.segmenter, **dict(self.options()))

    def say_found_instead(self, instead_of: str, n: int, where: str = "") -> None:
        """The default backend found ``n`` items because of ``instead_of``: say so until
        dismissed, with the way to the setting that mends it."""
        self.w.show_info(
            f"{instead_of} The default segmenter found {counted(n, 'item')}{where} instead.",
            timeout_ms=0,
            action=self.w.settings_action("Segmentation"),
        )

    @staticmethod
    def image_key(doc: Document) -> tuple:
        """Names a picture, so the worker's segmenter embeds each picture once."""
        return (id(doc), doc.image_version)

    # ----- automatic --------------------------------------------------------------------

    def segment_auto(
        self, first: bool = False, text: str | None = None, instead_of: str = ""
    ) -> None:
        """Find the items of the picture (replaces the items; undoable).

        ``first``: the find that follows opening a photo. ``instead_of``: the sentence
        saying why the chosen backend could not be built; the weights-free default then
        finds the items, and the sentence is shown with them.
        """
        w, doc = self.w, self.w.doc
        if doc is None:
            return
        reason = "" if instead_of else self.cannot_build()
        if reason:  # known before any job starts, and before asking what to find
            self._cannot_find(reason, first)
            return
        backend, options = self.backend(instead_of)
        if backend in TEXT_BACKENDS and not text:
            text = self.ask_text()
            if not text:
                w.status_message.setText(
                    "Add items by clicking (C), or find them by text with Items > Find items."
                )
                return
        if self._segment_job is not None:
            w.jobs.cancel(self._segment_job)
        task = SegmentAuto(readonly(doc.image), self.image_key(doc), backend, options, text)
        title = "Find items" + (f" ({backend})" if backend != DEFAULT_BACKEND else "")

        def done(seg) -> None:
            if doc is not w.doc:
                return
            doc.set_partition(seg.labels, list(seg.names), title)
            n = len(doc.visible_items())
            if instead_of:
                self.say_found_instead(instead_of, n)
                return
            w.status_message.setText(
                f"Found {counted(n, 'item')}. Click one to select it; Ctrl+P prepares them "
                "for editing."
            )

        def failed(message: str) -> None:
            if doc is not w.doc:
                return
            if unavailable(record):
                self._cannot_find(message, first)
                return
            extra = " The photo stays one item; add items by clicking (C)." if first else ""
            w.show_error(message + extra)

        record = w.jobs.submit(
            JobRequest(title, task, kind="segment"), on_finished=done, on_failed=failed
        )
        self._segment_job = record.request.id

    def _cannot_find(self, reason: str, first: bool) -> None:
        """The chosen backend cannot be built, for ``reason``."""
        if first:
            # A freshly opened photo still gets its items: the default needs no weights.
            self.segment_auto(first=True, instead_of=reason)
        else:
            self.w.show_error(reason, action=self.w.settings_action("Segmentation"))

    def ask_text(self) -> str:
        """Ask what a text-driven segmenter should look for ("" when the user cancels)."""
        w = self.w
        text, ok = QInputDialog.getText(
            w,
            "Find items",
            "What should be found? Separate the things with full stops,\n"
            "for example: handbag. table. person",
            text=w.settings.segment_text,
        )
        text = text.strip() if ok else ""
        if text:
            w.settings.segment_text = text
            w.settings.save(w.qsettings)
        return text

    # ----- click to segment -------------------------------------------------------------

    def add_click(self, x: float, y: float, include: bool) -> None:
        """A click of the click tool at pixel-centre ``(x, y)``; asks for a new proposal."""
        w, doc = self.w, self.w.doc
        if doc is None:
            return
        self.click_points.append((x, y, include))
        w.canvas.set_markers(self.click_points)
        if not any(p for _x, _y, p in self.click_points):
            w.status_message.setText("Click on the thing itself first (left click).")
            return
        if self._click_job is not None:
            w.jobs.cancel(self._click_job)  # only the latest clicks matter
        task = SegmentClick(
            readonly(doc.image),
            self.image_key(doc),
            tuple((px, py) for px, py, _ in self.click_points),
            tuple(int(p) for _x, _y, p in self.click_points),
            w.settings.segmenter,
            self.options(),
        )
        n_clicks = len(self.click_points)

        def done(mask: np.ndarray) -> None:
            if doc is not w.doc or len(self.click_points) != n_clicks:
                return
            self.click_mask = mask
            w.canvas.set_proposal(mask)
            w._update_actions()
            w.status_message.setText(
                "Enter adds the highlighted area as a new item; click more to refine "
                "(right-click excludes); Esc starts over."
            )

        def failed(message: str) -> None:
            if doc is w.doc:
                action = w.settings_action("Segmentation") if unavailable(record) else None
                w.show_error(message, action=action)

        record = w.jobs.submit(
            JobRequest("Select by clicking", task, kind="click", quiet=True),
            on_finished=done,
            on_failed=failed,
        )
        self._click_job = record.request.id

    def commit(self) -> None:
        """Make the proposal a new item (undoable) and let the user name it."""
        w, doc = self.w, self.w.doc
        if doc is None or self.click_mask is None:
            return
        try:
            doc.add_item(self.click_mask, f"item {len(doc.items)}")
        except DEditError as err:
            w.show_error(str(err))
            return
        self.clear()
        w.set_tool(Tool.SELECT)
        w.items_panel.name_edit.setFocus()
        w.items_panel.name_edit.selectAll()

    def forget_document(self) -> None:
        """The window is about to drop its picture: stop finding its items (a SAM run can
        take a while, and the next picture's jobs wait behind it)."""
        for job_id in (self._segment_job, self._click_job):
            if job_id is not None:
                self.w.jobs.retire(job_id)
        self._segment_job = self._click_job = None

    def clear(self) -> None:
        self.click_points = []
        self.click_mask = None
        self.w.canvas.set_markers([])
        self.w.canvas.set_proposal(None)
        self.w._update_actions()
