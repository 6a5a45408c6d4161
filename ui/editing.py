"""Preparing and editing: turns the designer's gestures into engine jobs and their results
into undoable steps.

- Prepare: one job per project (jointly with the reference photo when one is open);
  progress, loss curve and time left in the preparation card; the learned weights are kept
  with the project and reused until the items or the model change.
- Edits (text, move/resize, remove, swap, redraw) are jobs; move and remove show an instant
  preview (:mod:`ui.preview`, worked out on the side thread, :mod:`ui.side_thread`, so a
  drop never freezes the canvas) until the diffusion result lands. What becomes of the
  results (applied as one undo step, the candidates strip, more results, laid over changes
  made while the edit ran) is :mod:`ui.results`'s.
- The reference photo itself (opening, finding its items) is :mod:`ui.reference`'s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject

from dedit_app.errors import DEditError
from dedit_app.partition import copy_offset, group_moves
from ui import engine
from ui.document import Document, State, know_areas
from ui.preview import copy_preview, move_preview, remove_preview
from ui.results import Candidates, ResultsMixin
from ui.tasks import readonly
from ui.worker import JobRecord, JobRequest

if TYPE_CHECKING:
    from ui.mainwindow import MainWindow

log = logging.getLogger(__name__)
# Characters of a prompt that an edit's title shows (the Jobs card, the results strip, the
# history list); the whole prompt stays in the item's field and the project's history.
TITLE_PROMPT = 48


@dataclass
class PendingEdit:
    """An edit job the UI waits for."""

    doc: Document
    base: State  # the state the request was made from
    kind: str  # text | move | duplicate | remove | swap | redraw
    title: str
    item: int | None  # the item edited (None: redraw, which paints several)
    entry: dict[str, Any]  # the history record (JSON-serialisable)
    labels: np.ndarray | None = None  # the label map after the edit, when it changes
    items: list | None = None  # the items after the edit, when they change (prompt)
    regions: tuple | None = None  # where the result painted (engine.result_regions)
    sketch: int | None = None  # the preview's ticket on the side thread while it is worked out
    refused: str = ""  # why the preview refused the edit (the job is cancelled for it)
    task: Any = None  # the engine.EditTask queued: More results runs it again, other seeds
    more_for: Candidates | None = None  # set on a More results job: whose strip it fills


class EditController(ResultsMixin, QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.pending: dict[int, PendingEdit] = {}
        self.prepare_job: int | None = None
        self.candidates: Candidates | None = None
        self.waiting: list[Candidates] = []
        self._compare_held = False
        self._split: float | None = None
        self._last_prepare_losses: list[tuple[int, float]] = []
        self._shown_preview: int | None = None  # the job whose preview the canvas shows
        self._choosing: int | None = None  # the side thread's ticket of a chosen result
        # Models (ModelSpec.load_key) the user has been told run slowly on the processor:
        # told once a session, and Prepare goes ahead when they say so.
        self._told_slow: set[tuple[str, str, str]] = set()
        self._failure = ""  # the last job failure said over the picture

    # ----- state ------------------------------------------------------------------------

    @property
    def doc(self) -> Document | None:
        return self.w.doc

    @property
    def reference(self) -> Document | None:
        """The reference photo's document, when one is open (:mod:`ui.reference`)."""
        return self.w.reference_photo.doc

    def prepared(self, doc: Document | None = None) -> bool:
        doc = doc or self.doc
        return bool(
            doc is not None
            and engine.is_prepared(doc.project, self.w.settings, self._ref_project())
        )

    def _ref_project(self):
        return self.reference.project if self.reference is not None else None

    def update_state(self) -> None:
        """Refresh the preparation card, the edit actions and the sentence under the
        reference photo."""
        doc = self.doc
        # each reads the weights file's header: once per refresh (a click, a job's news)
        prepared = doc is not None and self.prepared(doc)
        joint = (
            prepared
            and self.reference is not None
            and engine.prepared_with(doc.project, self.reference.project)
        )
        self.w.reference_photo.show_state(joint)
        panel = self.w.prepare_panel
        record = self.w.jobs.jobs.get(self.prepare_job) if self.prepare_job else None
        if record is not None and record.active:
            panel.show_running(record)
            return
        if doc is None:
            panel.show_idle(False, "Open a photo to start.", enabled=False)
            return
        why = engine.unavailable()
        if why:
            panel.show_idle(False, why, enabled=False)
            return
        note = ""
        if not prepared and doc.project.prepared:
            note = engine.stale_reason(doc.project, self.w.settings)
        elif prepared and doc.reshaped:
            note = (
                "Items were reshaped by hand: Redraw (Ctrl+R) paints the picture to their new "
                "shapes; preparing again fits them best."
            )
        elif prepared and doc.refined_since_prepare:
            note = "Items were changed by hand after preparing; prepare again for the best results."
        elif prepared and self.reference is not None and not joint:
            note = "Prepare again to learn the reference photo too, then drag its items here."
        panel.show_idle(prepared, note)

    def jobs_changed(self) -> None:
        self.update_state()

    def settings_changed(self) -> None:
        self.update_state()

    def document_changed(self) -> None:
        self.forget_results()
        self.update_state()
        if self.doc is not None:
            self.doc.pinned = self._states_held
            engine.load_ahead()  # a photo is open: Prepare and edits will want the engine

    def _states_held(self) -> list[State]:
        """The states of the open document that edits under way and results on show or
        waiting were made from (:attr:`Document.pinned`)."""
        held = [p.base for p in self.pending.values() if p.doc is self.doc]
        held += [c.pending.base for c in (self.candidates, *self.waiting) if c is not None]
        return held

    def forget_document(self, doc: Document) -> None:
        """The window is about to drop ``doc``: stop its jobs (they leave the Activity list
        once they end) and forget its results."""
        for job_id, p in list(self.pending.items()):
            if p.doc is doc:
                self.w.jobs.retire(job_id)
        if self.prepare_job is not None:
            self.w.jobs.retire(self.prepare_job)
        self.forget_results()
        self._clear_preview()

    def before_undo(self) -> None:
        """Undo/redo while a result is on show: the strip no longer matches; close it
        (results waiting for a click keep waiting)."""
        self.set_results_aside()

    # ----- preparing --------------------------------------------------------------------

    def prepare(self) -> None:
        doc = self.doc
        if doc is None:
            return
        why = engine.unavailable()
        if why:
            self.w.show_error(why)
            return
        if self.prepare_job is not None:
            rec = self.w.jobs.jobs.get(self.prepare_job)
            if rec is not None and rec.active:
                self.w.show_info("The project is already being prepared.")
                return
        waiting = self.w.reference_photo.busy()
        if waiting:
            self.w.show_error(waiting)
            return
        key = engine.ModelSpec.from_settings(self.w.settings).load_key
        if key not in self._told_slow:
            slow = engine.processor_warning(self.w.settings)
            if slow:  # hours of work and a big download: only when they say so
                action = ("Prepare on the processor", lambda: self._prepare_slowly(key))
                self.w.show_info(slow, timeout_ms=0, action=action)
                return
        try:
            task = engine.prepare_task(doc.project, self.w.settings, self._ref_project())
        except DEditError as err:
            self.w.show_error(str(err))
            return
        task = replace(task, after=self.w.downloads.waiting_for(task.spec.source))
        title = "Prepare project" + (" with reference" if self.reference is not None else "")
        ref = self.reference
        started = time.monotonic()
        labels_used, finding = doc.labels, doc.state().finding

        def done(result) -> None:
            if doc is not self.doc:
                return
            if doc.state().finding != finding:
                # Find items numbers the items afresh: tokens learned for item 3 would go
                # to whatever item is 3 now.
                self.w.show_error(
                    "The items were found again while the photo was being prepared, so what "
                    "it learned no longer fits them; prepare again."
                )
                self.update_state()
                return
            # A saved project with nothing else unsaved keeps its preparation at once.
            # Other unsaved changes are the designer's to save or discard, so the
            # preparation waits with them (a recovery copy holds it within a second).
            keep = doc.folder is not None and not doc.dirty
            engine.store_prepared(doc.project, result, ref.project if ref else None, write=False)
            doc.prepared_on(labels_used)
            doc.mark_dirty()
            saved = keep and self.w.files.save_project(doc.folder)
            self._last_prepare_losses = list(self.w.jobs.jobs[record.request.id].losses)
            self.w.prepare_panel.plot.set_data(
                self._last_prepare_losses, max((s for s, _ in self._last_prepare_losses), default=0)
            )
            self.w.items_panel.rebuild()
            if not keep or saved:  # else the save's refusal stays on show: it is not kept
                kept = "" if saved else " Save keeps it with the project."
                self.w.show_info(
                    f"Prepared in {_minutes(time.monotonic() - started)}.{kept} Type a prompt "
                    "for an item and press Enter, drag an item, or press Delete.",
                    "ok",
                )
            self.update_state()

        def failed(message: str) -> None:
            if doc is self.doc:
                self._show_failure(record, message)
            self.update_state()

        def cancelled() -> None:
            if doc is self.doc:
                self.w.show_info("Preparing was cancelled; nothing was changed.")
            self.update_state()

        record = self.w.jobs.submit(
            JobRequest(title, task, kind="prepare"),
            on_finished=done,
            on_failed=failed,
            on_cancelled=cancelled,
            on_progress=lambda rec: self.w.prepare_panel.show_running(rec),
        )
        self.prepare_job = record.request.id
        self.update_state()

    def _prepare_slowly(self, key: tuple[str, str, str]) -> None:
        """Prepare although the model runs on the processor: the user has said so."""
        self._told_slow.add(key)
        self.prepare()

    def _tell_if_slow(self) -> None:
        """At the first edit of a model this session, say when it runs on the processor
        (a project prepared elsewhere, on a GPU); the edit goes ahead either way."""
        key = engine.ModelSpec.from_settings(self.w.settings).load_key
        if key not in self._told_slow:
            self._told_slow.add(key)
            slow = engine.processor_warning(self.w.settings)
            if slow:
                self.w.show_info(slow, timeout_ms=0)

    def cancel_prepare(self) -> None:
        if self.prepare_job is not None:
            self.w.jobs.cancel(self.prepare_job)
            self.update_state()

    def _need_prepared(self) -> bool:
        why = engine.unavailable()
        if why:
            self.w.show_error(why)
            return False
        if self.prepared():
            return True
        doc = self.doc
        rec = self.w.jobs.jobs.get(self.prepare_job) if self.prepare_job else None
        if rec is not None and rec.active:
            self.w.show_error("The project is still being prepared; edit when it is done.")
            return False
        reason = engine.stale_reason(doc.project, self.w.settings) if doc else ""
        if not doc or not doc.project.has_weights:
            reason = (
                "This project has not been prepared yet. Prepare it first (Ctrl+P): the model "
                "learns each item's look once, then every edit takes seconds."
            )
        self.w.show_error(reason, action=("Prepare now", self.prepare))
        return False

    # ----- edits ------------------------------------------------------------------------

    def text_edit(self, item: int, prompt: str) -> None:
        doc = self.doc
        if doc is None:
            return
        prompt = prompt.strip()
        if not prompt:
            self.w.show_error(f"Type what {doc.item_name(item)} should become, then press Enter.")
            return
        if not self._need_prepared():
            return
        self.w.remember_prompt(prompt)
        items = [replace(i) for i in doc.items]
        items[item].prompt = prompt
        # the other selected items are regenerated with it, each from its own tokens, so
        # that they fit what it becomes (the paper's extra active items)
        extra = tuple(i for i in doc.selection if i != item) if item in doc.selection else ()
        entry = {"kind": "text", "item": int(item), "prompt": prompt}
        if extra:
            entry["extra_active"] = list(extra)
        try:
            task = engine.edit_task(
                doc.project, self.w.settings, "text", item=item, prompt=prompt, extra=extra
            )
        except DEditError as err:
            self.w.show_error(str(err))
            return
        title = f"{doc.item_name(item)} → “{_clipped(prompt, TITLE_PROMPT)}”"
        self._submit(PendingEdit(doc, doc.state(), "text", title, item, entry, items=items), task)

    def move_items(
        self,
        items: tuple[int, ...],
        dx: float,
        dy: float,
        scale: float,
        angle: float = 0.0,
        flip: bool = False,
    ) -> None:
        """Move ``items`` together as one group: mirror them (``flip``), scale them by
        ``scale`` and turn them by ``angle`` degrees, clockwise as seen, about the middle
        of the box round them all (Shift+H, a corner handle, or just outside one), and
        shift them by ``(dx, dy)`` photo pixels (a drag or a nudge)."""
        doc = self.doc
        if doc is None or not self._need_prepared():
            return
        items = tuple(int(i) for i in items)
        try:
            # boxes kept per map: no pass over the picture (an item gone meanwhile, its
            # nudge asked late, is refused here in words)
            boxes = {i: doc.bbox(i) for i in items}
            moves = group_moves(boxes, float(dx), float(dy), float(scale), float(angle), flip)
            task = engine.edit_task(doc.project, self.w.settings, "move", moves=moves)
        except DEditError as err:
            self.w.show_error(str(err))
            return
        verb = (
            "Flip" if flip else "Turn" if angle else "Resize" if abs(scale - 1) > 1e-3 else "Move"
        )
        way = " vertically" if flip and angle == 180 else ""  # a flip is always left to right
        entry = {"kind": "move", "item": items[0], "dx": float(dx), "dy": float(dy)}
        entry.update(scale=float(scale), angle=float(angle), flip=flip, items=list(items))
        title = f"{verb} {_names([doc.item_name(i) for i in items])}{way}"
        pending = PendingEdit(doc, doc.state(), "move", title, items[0], entry)
        job_id = self._submit(pending, task)
        if job_id is None:
            return
        image, labels = readonly(doc.image), readonly(doc.labels)
        self._sketch(job_id, lambda: move_preview(image, labels, moves))

    def duplicate_items(self, items: tuple[int, ...], dx: float, dy: float) -> None:
        """Copy ``items`` as new items, shifted together by ``(dx, dy)`` photo pixels (an
        Alt+drag, or Ctrl+D beside them): each copy looks as its item does, and the
        items stay where they are. The copies are selected when they land."""
        doc = self.doc
        if doc is None or not self._need_prepared():
            return
        items = tuple(int(i) for i in items)
        try:
            moves = group_moves({i: doc.bbox(i) for i in items}, float(dx), float(dy))
            task = engine.edit_task(doc.project, self.w.settings, "duplicate", moves=moves)
        except DEditError as err:
            self.w.show_error(str(err))
            return
        entry = {"kind": "duplicate", "item": items[0], "dx": float(dx), "dy": float(dy)}
        entry["items"] = list(items)
        title = f"Duplicate {_names([doc.item_name(i) for i in items])}"
        pending = PendingEdit(doc, doc.state(), "duplicate", title, items[0], entry)
        job_id = self._submit(pending, task)
        if job_id is None:
            return
        image, labels, first = readonly(doc.image), readonly(doc.labels), len(doc.items)
        self._sketch(job_id, lambda: copy_preview(image, labels, moves, first))

    def _selected(self, verb: str) -> Document | None:
        """The document, when items are selected to ``verb``; otherwise None, having said
        how to select one when a picture is open."""
        doc = self.doc
        if doc is not None and not doc.selection:
            self.w.show_error(f"Select the item to {verb} first: click it on the picture.")
            return None
        return doc

    def duplicate_selected(self) -> None:
        """Copy the selected items just beside them, where the picture has room (Ctrl+D);
        the copies can then be dragged where they belong."""
        doc = self._selected("duplicate")
        if doc is None:
            return
        x0, y0, x1, y1 = doc.items_box(doc.selection)  # ends exclusive
        dx, dy = copy_offset((x0, y0, x1 - 1, y1 - 1), doc.labels.shape)
        self.duplicate_items(doc.selection, dx, dy)

    def flip_selected(self, vertical: bool = False) -> None:
        """Mirror the selected items left to right (Shift+H; ``vertical``: top to bottom,
        Shift+V) as one group; the model paints them again in their mirrored shapes, as
        after a move."""
        doc = self._selected("flip")
        if doc is None:
            return
        self.move_items(doc.selection, 0.0, 0.0, 1.0, 180.0 if vertical else 0.0, flip=True)

    def remove_selected(self) -> None:
        doc = self._selected("remove")
        if doc is None or not self._need_prepared():
            return
        item, also = doc.current, doc.selection[1:]  # Delete removes every selected item
        try:
            task = engine.edit_task(doc.project, self.w.settings, "remove", item=item, also=also)
        except DEditError as err:
            self.w.show_error(str(err))
            return
        entry = {"kind": "remove", "item": int(item)}
        if also:
            entry["also"] = list(also)
        names = _names([doc.item_name(i) for i in (item, *also)])
        pending = PendingEdit(doc, doc.state(), "remove", f"Remove {names}", item, entry)
        doc.select([])
        job_id = self._submit(pending, task)
        if job_id is None:
            return
        image, labels = readonly(doc.image), readonly(doc.labels)
        self._sketch(job_id, lambda: remove_preview(image, labels, (item, *also)))

    def redraw(self) -> None:
        """Paint again the pixels whose item was changed by hand (brush, eraser, merge)
        since the picture was made, each as its new item: the paper's reshape."""
        doc = self.doc
        if doc is None or not self._need_prepared():
            return
        try:
            task = engine.edit_task(
                doc.project, self.w.settings, "redraw", drawn=doc.drawn_labels()
            )
        except DEditError as err:
            self.w.show_error(str(err))
            return
        pending = PendingEdit(
            doc, doc.state(), "redraw", "Redraw the reshaped items", None, {"kind": "redraw"}
        )
        self._submit(pending, task)

    def swap_item(self, target: int, ref_item: int) -> None:
        doc, ref = self.doc, self.reference
        if doc is None or ref is None:
            return
        if not self._need_prepared():
            return
        if not engine.prepared_with(doc.project, ref.project):
            self.w.show_error(
                "The photo and the reference were not prepared together. Prepare again "
                "(Ctrl+P) with the reference open, then drag the item again.",
                action=("Prepare now", self.prepare),
            )
            return
        try:
            task = engine.edit_task(
                doc.project,
                self.w.settings,
                "swap",
                item=target,
                reference=ref.project,
                ref_item=ref_item,
            )
        except DEditError as err:
            self.w.show_error(str(err))
            return
        entry = {
            "kind": "swap",
            "item": int(target),
            "reference_item": int(ref_item),  # the engine's name, as `dedit edit` records
            "reference": ref.project.source,
        }
        # a prompt typed for it before no longer says how it looks (Project.apply too)
        items = [replace(i) for i in doc.items]
        items[target].prompt = ""
        self._submit(
            PendingEdit(
                doc,
                doc.state(),
                "swap",
                f"{doc.item_name(target)} ← {ref.item_name(ref_item)}",
                target,
                entry,
                items=items,
            ),
            task,
        )

    def _submit(self, pending: PendingEdit, task) -> int | None:
        """Queue ``task`` for ``pending``; its job id, or None when the very same edit of
        the very same picture is queued or running already (Enter pressed twice, Delete
        held down): its result would only repeat that one's."""
        # arrow presses still waiting for their move ask it first, so that it comes in
        # the order they were made (a nudge, then Delete at once)
        self.w.canvas.end_nudge()
        for other in self.pending.values():
            if (
                other.doc is pending.doc
                and other.more_for is None
                and pending.more_for is None
                and other.base.image is pending.base.image
                and other.base.labels is pending.base.labels
                and other.entry == pending.entry
            ):
                then = (
                    "The copy is selected when it lands; Ctrl+D then copies it on."
                    if pending.kind == "duplicate"
                    else "For other results of it, use More results."
                )
                self.w.show_info(f"Already under way: {pending.title}. {then}")
                return None
        pending.task = task
        record = self.w.jobs.submit(
            JobRequest(pending.title, task, kind="edit"),
            on_finished=lambda result: self._landed(record, result),
            on_failed=lambda message: self._ended(record, message),
            on_cancelled=lambda: self._ended(record, None),
        )
        self.pending[record.request.id] = pending
        self._tell_if_slow()
        self.w.activity.setCurrentWidget(self.w.jobs_panel)
        self.w.status_message.setText(f"Queued: {pending.title}.")
        return record.request.id

    # ----- instant previews -------------------------------------------------------------

    def _sketch(self, job_id: int, sketch) -> None:
        """Work out the preview of edit ``job_id`` on the side thread; ``sketch()``
        returns ``(picture (H, W, 3) uint8, item map (H, W) int32)``."""
        pending = self.pending.get(job_id)
        if pending is None:
            return
        title = f"The preview of “{pending.title}”"

        def guarded():
            # A refusal (DEditError) stops the edit; a bug in the sketch only costs the
            # preview: the edit goes on without one.
            try:
                return sketch()
            except DEditError:
                raise
            except Exception:
                log.exception("%s failed; the edit goes on without it", title)
                return None

        pending.sketch = self.w.side.submit(
            title,
            guarded,
            lambda result: self._sketched(job_id, result),
            lambda message: self._sketch_refused(job_id, message),
        )

    def _sketched(self, job_id: int, result) -> None:
        pending = self.pending.get(job_id)
        if pending is None or pending.doc is not self.doc:
            return  # the edit already landed, failed or was cancelled; or another photo
        pending.sketch = None
        if result is None:
            return  # the sketch failed (logged); the result will show without a preview
        if self._shown_preview is not None and self._shown_preview > job_id:
            return  # a later edit's preview is on show; this one is already out of date
        image, labels = result
        self._shown_preview = job_id
        self.w.canvas.set_preview(image, labels)

    def _sketch_refused(self, job_id: int, message: str) -> None:
        """The preview found the edit impossible (an item pushed off the picture): the job
        would fail with the same sentence, perhaps after other jobs; stop it now."""
        pending = self.pending.get(job_id)
        if pending is None:
            return
        pending.sketch = None
        pending.refused = message
        self.w.jobs.cancel(job_id)
        if pending.doc is self.doc:
            self.w.show_error(message)

    def _clear_preview(self, job_id: int | None = None) -> None:
        """Take the preview off the canvas: any (``job_id`` None) or that job's."""
        if job_id is None or self._shown_preview == job_id:
            self._shown_preview = None
            self.w.canvas.clear_preview()

    def _forget(self, record: JobRecord) -> PendingEdit | None:
        """The edit of ``record`` ended: stop waiting for its preview, take it off."""
        pending = self.pending.pop(record.request.id, None)
        if pending is None:
            return None
        if pending.sketch is not None:
            self.w.side.forget(pending.sketch)
        self._clear_preview(record.request.id)
        return pending

    def _ended(self, record: JobRecord, message: str | None) -> None:
        pending = self._forget(record)
        if pending is None or pending.doc is not self.doc:
            return
        if pending.more_for is not None:
            pending.more_for.more_job = None
            self._show_more()
        if pending.refused:
            return  # its sentence is on show already
        if message:
            self._show_failure(record, message)
        else:
            self.w.show_info(f"Cancelled: {pending.title}. Nothing was changed.")

    def _show_failure(self, record: JobRecord, message: str) -> None:
        """Job ``record`` failed with ``message``; a missing or broken model (or a device
        that is not there, or numbers that overflowed in its precision) is mended in the
        settings, so the sentence comes with the way there."""
        if record.error in ("ModelLoadError", "Overflowed"):
            self.w.show_error(message, action=self.w.settings_action("Model"))
        else:
            self.w.show_error(message)
        self._failure = message

    def _past_failure(self) -> None:
        """A job succeeded: an earlier job's failure still over the picture would read as
        this one's, so it goes (any other message stays)."""
        if self._failure and self.w.message_text() == self._failure:
            self.w.dismiss_message()
        self._failure = ""

    def _landed(self, record: JobRecord, result) -> None:
        pending = self.pending.get(record.request.id)
        if pending is None or pending.doc is not self.doc:
            self._forget(record)
            return
        # Forgotten only once taken in: a failure here is the job's, and _ended (which
        # forgets it then) says so over the picture.
        if pending.more_for is not None:
            self._more_landed(pending.more_for, result)
            self._forget(record)
            return
        images, labels = engine.result_images(
            result, pending.labels if pending.labels is not None else pending.base.labels
        )
        pending.labels = labels
        pending.items = engine.result_items(result) or pending.items  # a duplicate's copies
        pending.regions = engine.result_regions(result)
        entries = [engine.result_entry(result, k) for k in range(len(images))]
        pending.entry = {**pending.entry, **entries[0]}
        know_areas(labels, engine.result_areas(result))  # the list need not count them
        self._forget(record)
        self._lay(
            pending,
            images[0],
            lambda laid, problem: self._show_landed(pending, images, entries, laid, problem),
        )


def _clipped(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _names(names: list[str]) -> str:
    """ "bag", "bag and ball", "bag, ball and cup"; past four, how many ("6 items")."""
    if len(names) > 4:
        return f"{len(names)} items"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _minutes(seconds: float) -> str:
    from ui.jobs_panel import format_duration

    return format_duration(seconds)


__all__ = ["EditController", "PendingEdit"]
