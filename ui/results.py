"""The results of an edit: applied as one undo step, offered in the candidates strip, more
of them on request, compared with the picture before.

- The first result is applied at once ("Project.apply": the edited picture becomes the new
  base); clicking another result in the strip swaps it into that same step. More results
  runs the edit again with the next seeds and the new results join the strip.
- An edit that lands after the picture changed while it ran (edits queued back to back,
  items brushed or renamed meanwhile) is laid over those changes
  (:mod:`dedit_app.rebase`, on the side thread) instead of undoing them; only when it
  would paint over something changed meanwhile does it wait for a click in the strip.
  Such results are not lost when the next edit lands: they wait their turn and come back
  to the strip when it closes (Done, Undo edit, Discard, undo).
- Before | after: holding \\ or the strip's slider shows the picture before the edit.

:class:`ResultsMixin` is half of :class:`ui.editing.EditController`, which asks for the
edits; it is kept apart to be read on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from dedit_app.errors import DEditError
from ui import engine
from ui.document import Document, LaidEdit, StateCommand, same_picture

if TYPE_CHECKING:
    from ui.editing import PendingEdit
    from ui.mainwindow import MainWindow


@dataclass(eq=False)  # compared by identity: which edit's results
class Candidates:
    """The results of the latest edit, in the strip."""

    images: list[np.ndarray]
    pending: PendingEdit
    command: StateCommand | None
    entries: list[dict[str, Any]] = field(default_factory=list)  # each result's record
    active: int = 0
    more_job: int | None = None  # a More results job under way
    title: str = ""  # the strip's title
    note: str = ""  # the hint while none of them is applied: why, and what a click does
    # Laid over changes made while the edit ran: each thumbnail then shows its result
    # laid over them, as a click would apply it, not the picture the edit started from.
    laid_over: bool = False
    thumbs: dict[int, Any] = field(default_factory=dict)  # result -> its laid thumbnail


class ResultsMixin:
    """Landing, laying, choosing and comparing the results of edits (see the module)."""

    w: MainWindow
    candidates: Candidates | None
    waiting: list[Candidates]  # results none of which is applied, oldest first, off the strip
    _compare_held: bool
    _split: float | None
    _choosing: int | None  # the side thread's ticket of a chosen result being laid

    doc: Document | None  # provided by EditController
    _submit: Callable[..., int]
    _need_prepared: Callable[[], bool]
    _past_failure: Callable[[], None]

    def _show_landed(
        self,
        pending: PendingEdit,
        images: list[np.ndarray],
        entries: list[dict[str, Any]],
        laid: LaidEdit | None,
        problem: str,
    ) -> None:
        doc = pending.doc
        self._past_failure()
        cmd, title = None, pending.title
        if laid is not None and laid.kept:
            title = _laid(pending.title)
        if laid is not None and laid.conflicts == 0:
            # Asked for before other changes and clear of them: it joins them (a later
            # edit, a brushed item, a new name all stay), as if made after them. The
            # history says so: its step did not start from the picture before it.
            cmd = doc.apply_result(
                laid.image, laid.labels, _record(pending.entry, laid), title, laid.items, laid.drawn
            )
        note = ""
        if cmd is None:
            title = f"{pending.title} (the picture changed meanwhile)"
            note = problem or (
                "It overlaps changes made while it ran. Click a result to lay it over them; "
                "Undo takes it back."
            )
        self._set_aside()
        c = Candidates(images, pending, cmd, entries, title=title, note=note)
        c.laid_over = cmd is not None and laid.kept
        self._put(c)
        if c.laid_over:
            c.thumbs[0] = self.w.candidates.set_thumbnail(0, laid.image)
            self._lay_thumbnails(c, 1)
        if cmd is not None and pending.kind == "duplicate":
            self._select_copies(doc, pending)
        self.w.status_message.setText(f"Done: {pending.title}.")

    @staticmethod
    def _select_copies(doc: Document, pending: PendingEdit) -> None:
        """Select the copies a duplicate made, to drag them on, as a design tool selects
        a duplicate; unless other items were chosen while it ran."""
        copies = len(pending.entry.get("copies") or ())
        if copies and list(doc.selection) == list(pending.entry.get("items") or ()):
            n = len(doc.items)
            doc.select(tuple(range(n - copies, n)))

    def _lay_thumbnails(self, c: Candidates, start: int) -> None:
        """Thumbnails ``start`` on of results laid over changes made while their edit ran:
        each result laid into the edit's step on the side thread, as choosing it would."""
        if not c.laid_over:
            return
        for k in range(start, len(c.images)):

            def show(laid: LaidEdit | None, _problem: str, k: int = k) -> None:
                if laid is not None and c is self.candidates:
                    c.thumbs[k] = self.w.candidates.set_thumbnail(k, laid.image)

            self._lay(c.pending, c.images[k], show, c.command)

    def _put(self, c: Candidates) -> None:
        """Show ``c`` in the strip."""
        self.candidates = c
        active = -1 if c.command is None else c.active
        self.w.candidates.set_candidates(c.images, self._title(c), active)
        for k, small in c.thumbs.items():
            self.w.candidates.set_thumbnail(k, small)
        self._show_buttons()
        self._show_more()
        self._show_compare()

    def _title(self, c: Candidates) -> str:
        n = len(self.waiting)
        return c.title + (f" · {n} more edit{'s' if n > 1 else ''} waiting" if n else "")

    def _show_buttons(self) -> None:
        """The hint and the strip's buttons for the results on show: applied (Undo edit
        takes the step back) or waiting (Discard drops them; the picture stays)."""
        c, strip = self.candidates, self.w.candidates
        if c is None:
            return
        if c.command is None:
            strip.hint.setText(c.note)
            strip.discard_button.setText("Discard")
            strip.discard_button.setToolTip("Drop these results; the picture stays as it is")
        else:
            many = "Click a result to use it. " if len(c.images) > 1 else ""
            strip.hint.setText(many + "Hold \\ to see the original.")
            strip.discard_button.setText("Undo edit")
            strip.discard_button.setToolTip("Go back to the picture before this edit (Ctrl+Z)")

    def _set_aside(self) -> None:
        """Take the results on show off the strip: none of them applied, they wait their
        turn; else they are done with (the step stays in the undo history)."""
        c, self.candidates = self.candidates, None
        if c is not None and c.command is None:
            self.waiting.append(c)
        elif c is not None and c.more_job is not None:
            self.w.jobs.cancel(c.more_job)  # nobody will see those results

    def _lay(
        self,
        p: PendingEdit,
        image: np.ndarray,
        then: Callable[[LaidEdit | None, str], None],
        step: StateCommand | None = None,
    ) -> int | None:
        """Result ``image`` of edit ``p`` as it goes onto the picture now, or into ``step``
        (another result of the edit that step applied): ``then(laid, "")``, or
        ``then(None, sentence)`` when it cannot be laid there. At once when the picture is
        the one the edit was asked for; else worked out on the side thread (at 24 MP it
        takes 0.1-0.2 s), and again if the picture changed once more meanwhile; then the
        side thread's ticket is returned."""
        doc = p.doc
        onto = doc.state() if step is None else step.before
        drawn = doc.drawn_labels() if step is None else None  # a step keeps what it drew

        def work() -> LaidEdit:
            return doc.lay_onto(onto, p.base, (image, p.labels), p.regions, p.items, drawn)

        if same_picture(onto, p.base, drawn):
            try:
                laid = work()  # nothing to lay over: no pixel is touched
            except DEditError as err:
                then(None, str(err))
                return None
            then(laid, "")
            return None

        def done(laid: LaidEdit) -> None:
            if doc is not self.doc:
                return
            now = doc.state() if step is None else step.before
            if not same_picture(now, onto) or now.items != onto.items:
                self._lay(p, image, then, step)  # changed again while it was laid
                return
            then(laid, "")

        def failed(message: str) -> None:
            if doc is self.doc:
                then(None, message)

        return self.w.side.submit(f"Laying “{p.title}” over the picture", work, done, failed)

    # ----- more results -----------------------------------------------------------------

    def more_results(self) -> None:
        """Run the edit whose results are in the strip again, from the same picture, with
        the seeds after those used so far; the new results join the strip."""
        c, doc = self.candidates, self.doc
        if c is None or doc is None or c.more_job is not None or c.pending.task is None:
            return
        task = c.pending.task
        made = (task.project.training or {}).get("weights_id")
        if made != (doc.project.training or {}).get("weights_id"):
            self.w.show_error(
                "The project was prepared again after this edit; make the edit again to get "
                "results from what it learned."
            )
            return
        if not self._need_prepared():
            return
        seed = 1 + max((e.get("seed", 0) for e in c.entries), default=task.request.options.seed)
        options = replace(task.request.options, seed=int(seed))
        again = replace(task, request=replace(task.request, options=options))
        p = c.pending
        more = replace(p, title=f"More: {p.title}", sketch=None, refused="", more_for=c)
        c.more_job = self._submit(more, again)
        self._show_more()

    def _more_landed(self, c: Candidates, result) -> None:
        c.more_job = None
        if c is not self.candidates and not any(w is c for w in self.waiting):
            return  # closed by now
        images, _labels = engine.result_images(result, c.pending.labels)
        c.entries += [engine.result_entry(result, k) for k in range(len(images))]
        c.images += images
        if c is not self.candidates:
            return  # waiting: they join the strip when its turn comes
        self._put(c)
        self._lay_thumbnails(c, len(c.images) - len(images))
        self.w.status_message.setText(f"{len(images)} more results of {c.pending.title}.")

    def _show_more(self) -> None:
        c = self.candidates
        busy = c is not None and c.more_job is not None
        self.w.candidates.more_button.setEnabled(c is not None and not busy)
        self.w.act_more.setEnabled(c is not None and not busy)
        self.w.candidates.more_button.setText("Making\nmore…" if busy else "More\nresults")

    # ----- candidates -------------------------------------------------------------------

    def _is_latest(self, command: StateCommand | None) -> bool:
        """True when ``command`` is the step undo would take back next."""
        doc = self.doc
        return (
            command is not None
            and doc is not None
            and doc.undo.index() > 0
            and doc.undo.command(doc.undo.index() - 1) is command
        )

    def choose_candidate(self, index: int) -> None:
        c = self.candidates
        doc = self.doc
        if c is None or doc is None or not 0 <= index < len(c.images):
            return
        p = c.pending
        entry = dict(p.entry)
        if index < len(c.entries):
            entry.update(c.entries[index])
        entry["candidate"] = index
        latest = self._is_latest(c.command)
        step = c.command if latest else None

        def chosen(laid: LaidEdit | None, problem: str) -> None:
            self._choosing = None
            if c is not self.candidates or doc is not self.doc:
                return  # another edit's results, or another photo, by now
            if problem:
                self.w.show_error(problem)
                return
            if self._is_latest(c.command) != latest:
                self.choose_candidate(index)  # undone or redone meanwhile: choose again
                return
            if step is None:
                # Not (or no longer) the latest step: this result, laid over the picture
                # on show, is a new step.
                # It waited for this click; now applied, it no longer says so.
                c.title = _laid(p.title) if laid.kept else p.title
                c.command = doc.apply_result(
                    laid.image, laid.labels, _record(entry, laid), c.title, laid.items, laid.drawn
                )
                self.w.candidates.title.setText(self._title(c))
                self._show_buttons()
            else:
                # Another result of the same edit: the same pixels painted, the same map
                # drawn (``step.drawn`` stays).
                after = doc.result_state(
                    step.before, laid.image, laid.labels, _record(entry, laid), laid.items
                )
                step.replace_after(after)
            c.active = index
            self.w.candidates.set_active(index)
            self._show_compare()

        if self._choosing is not None:
            self.w.side.forget(self._choosing)  # clicked another result before it was laid
        self._choosing = self._lay(p, c.images[index], chosen, step)

    def set_split(self, split: float | None) -> None:
        self._split = split
        self._show_compare()

    def hold_compare(self, on: bool) -> None:
        """\\ pressed or let go: the picture before the edit on show, or with no edit on
        show the photo before its first edit (:mod:`ui.original`)."""
        original = self.w.original
        if (on and self.candidates is None) or (not on and original.held):
            original.hold(on)
            return
        self._compare_held = on
        self._show_compare()

    def _show_compare(self) -> None:
        c = self.candidates
        if c is None or c.command is None:
            self.w.canvas.set_compare(None, None)
            return
        before = c.command.before.image
        if self._compare_held:
            self.w.canvas.set_compare(before, 1.0)
        elif self._split is not None:
            self.w.canvas.set_compare(before, self._split)
        else:
            self.w.canvas.set_compare(None, None)

    def unapplied(self) -> list[str]:
        """The titles of the edits whose results wait for a click (none of them applied):
        closing the picture drops them."""
        shown = [self.candidates] if self.candidates and self.candidates.command is None else []
        return [c.pending.title for c in shown + self.waiting]

    def discard_result(self) -> None:
        """Undo edit (or, for results none of which is applied, Discard)."""
        c = self.candidates
        doc = self.doc
        if c is not None and doc is not None and self._is_latest(c.command):
            doc.undo.undo()
        self.close_candidates()

    def close_candidates(self) -> None:
        """Done with the results on show; results waiting their turn come next."""
        self._close_strip()
        if self.waiting:
            self._put(self.waiting.pop(0))

    def set_results_aside(self) -> None:
        """Undo or redo: the strip's step is no longer the latest; results waiting for a
        click still wait (they are laid over whatever picture is on show then)."""
        self._set_aside()
        self.close_candidates()

    def forget_results(self) -> None:
        """Another photo: its results, on show and waiting, go."""
        waiting, self.waiting = self.waiting, []
        for c in waiting:
            if c.more_job is not None:
                self.w.jobs.cancel(c.more_job)
        self._close_strip()

    def _close_strip(self) -> None:
        c, self.candidates = self.candidates, None
        if c is not None and c.more_job is not None:
            self.w.jobs.cancel(c.more_job)  # nobody will see those results
        self._split = None
        self._compare_held = False
        self.w.candidates.clear()
        self.w.canvas.set_compare(None, None)
        self._show_more()


def _record(entry: dict[str, Any], laid: LaidEdit) -> dict[str, Any]:
    """The history record of an applied result: ``laid_over`` when it was laid over
    changes made while it ran (its pixels were not made from the picture before it), and
    a duplicate's copies under the ids they took then."""
    if laid.renumbered and isinstance(entry.get("copies"), list):
        entry = {**entry, "copies": [k + laid.renumbered for k in entry["copies"]]}
    return {**entry, "laid_over": True} if laid.kept else entry


def _laid(title: str) -> str:
    """The strip's title of an edit laid over changes made while it ran."""
    return f"{title} (laid over the changes made meanwhile)"


__all__ = ["Candidates", "ResultsMixin"]
