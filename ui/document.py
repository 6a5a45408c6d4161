"""The open document as the UI sees it: a Project, its undo stack, selection and hover.

Every change to the picture, the item partition or the items goes through
:meth:`Document.push`, which records the whole state before and after in a
:class:`StateCommand` on a ``QUndoStack``. States share their arrays (they are never
modified in place: the document marks them read-only), so a step costs only the arrays it
replaced, and undo restores the previous image and labels exactly, byte for byte. Past
:data:`UNDO_RAM_BUDGET`, the arrays only undo holds move into mapped files
(:meth:`Document.keep_to_budget`).

The label map stays the one source of truth; item masks, pixel counts and bounding boxes
are derived from it and cached per version.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QStandardPaths, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from dedit_app import partition, rebase, spill
from dedit_app.bundle_files import share_names
from dedit_app.errors import ItemError, ProjectError
from dedit_app.project import Item, Project, recorded_items
from dedit_app.project_file import OWN
from dedit_app.wording import free_name
from ui.overlay import compact_labels

log = logging.getLogger(__name__)

UNDO_LIMIT = 100
# Bytes of earlier pictures and item maps that undo and the history keep in RAM; beyond it
# the ones farthest from the step on show move into files (dedit_app.spill). Without it a
# 24 MP photo held ~130 MB more per step (72 MB picture, 96 MB item map), 5 GB after forty
# edits, and a 16 GB laptop that also holds SDXL started to swap. 1 GiB keeps the last
# half dozen such steps (about seventy of a 3 MP photo) instant; older ones come back from
# the file, at disk speed, when undo or a save reads them.
UNDO_RAM_BUDGET = 1 << 30
# After a spill file could not be written (a full disk), the pictures stay in RAM as they
# always did, and writing is not tried again on every step for this long.
SPILL_RETRY_S = 300.0


def default_scratch() -> Path:
    """Where pictures held for undo go when RAM holds too many: the user's cache folder
    (a disk, unlike ``/tmp`` on systems that keep it in RAM)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    return Path(base or Path.home() / ".cache" / "dedit-studio") / "undo"


def frozen(array: np.ndarray) -> np.ndarray:
    """``array`` marked read-only, so nothing edits a state that undo may bring back."""
    if array.flags.writeable:
        array.flags.writeable = False
    return array


# Pixels per item of label maps counted off the UI thread (an edit's job, the files thread
# reading a project), by the map's identity: when one becomes a document's item map, its
# counts are not worked out again on the UI thread (90 ms for a 24 MP map). Weak
# references, so no map stays alive for it.
_AREAS: dict[int, tuple[weakref.ref, np.ndarray]] = {}
_AREAS_LOCK = threading.RLock()  # a map freed while it is held calls back into it


def know_areas(labels: np.ndarray, areas: np.ndarray | None) -> None:
    """Remember ``areas``, the pixels per item of ``labels`` (``(n_items,)`` int64, as
    :func:`dedit_app.partition.item_areas` counts them); any thread."""
    if areas is None:
        return
    key = id(labels)

    def gone(_ref, key=key) -> None:
        with _AREAS_LOCK:
            entry = _AREAS.get(key)
            if entry is not None and entry[0]() is None:
                del _AREAS[key]

    with _AREAS_LOCK:
        _AREAS[key] = (weakref.ref(labels, gone), np.asarray(areas))


def known_areas(labels: np.ndarray) -> np.ndarray | None:
    """The areas remembered for this very array, or None."""
    with _AREAS_LOCK:
        entry = _AREAS.get(id(labels))
    return entry[1] if entry is not None and entry[0]() is labels else None


@dataclass(frozen=True)
class LaidEdit:
    """An edit's result as it goes into the picture (:meth:`Document.lay_onto`)."""

    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int32
    items: list[Item] | None  # None: the items stay as they are
    drawn: np.ndarray | None  # the map the picture was made with, when not ``labels``
    conflicts: int  # pixels of its region changed meanwhile too (dedit_app.rebase)
    kept: bool  # changes made while it ran were kept (it was laid over them)
    # How far a duplicate's copies moved up the ids: items added meanwhile (another copy)
    # took the ones it was made with.
    renumbered: int = 0


@dataclass(frozen=True)
class State:
    """Everything undo can bring back."""

    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int32
    items: tuple[Item, ...]
    history: tuple[dict[str, Any], ...]
    # Which finding of items the ids refer to: Find items numbers them afresh (and going
    # back to items found before does too), so an edit asked for before it cannot be laid
    # onto what came after (see Document.lay_onto).
    finding: int = 0


def same_picture(now: State, then: State, drawn: np.ndarray | None = None) -> bool:
    """``now`` shows the very picture and item map of ``then`` (the same arrays) and no
    item was reshaped by hand since it was drawn (``drawn``: the map it was drawn with, None
    or ``now.labels`` when none was): an edit made from ``then`` goes in as it was made."""
    return (
        now.image is then.image
        and now.labels is then.labels
        and (drawn is None or drawn is now.labels)
    )


class StateCommand(QUndoCommand):
    """One undoable step: restores ``before`` on undo and ``after`` on redo."""

    def __init__(
        self,
        doc: Document,
        text: str,
        before: State,
        after: State,
        *,
        select_before: tuple[int, ...] = (),
        select_after: tuple[int, ...] = (),
        kind: str = "",
    ) -> None:
        super().__init__(text)
        self.doc = doc
        self.before, self.after = before, after
        self.select_before, self.select_after = select_before, select_after
        self.kind = kind
        # The map the picture after this step was made with, where it is not the step's
        # own (an edit laid onto items brushed while it ran); None: ``after.labels``.
        self.drawn: np.ndarray | None = None
        # The map the picture before this step was made with (set by Document.push): kept
        # with the step, so that what is left to redraw does not depend on how many steps
        # the undo stack still holds.
        self.drawn_before: np.ndarray | None = None

    @property
    def drawn_after(self) -> np.ndarray | None:
        """The map the picture after this step was made with: an edit's or a new set of
        items' own; any other step (brush, eraser, merge, rename) leaves the picture, and
        so what it was made with, as it was."""
        if self.kind in ("edit", "segment"):
            return self.after.labels if self.drawn is None else self.drawn
        return self.drawn_before

    def redo(self) -> None:
        self.doc.restore(self.after, self.select_after)

    def undo(self) -> None:
        self.doc.restore(self.before, self.select_before)

    def replace_after(self, after: State) -> None:
        """Swap in another result of the same edit (a different candidate)."""
        self.after = after
        if self.doc.undo.command(self.doc.undo.index() - 1) is self:
            self.doc.restore(after, self.select_after)
        self.doc.keep_to_budget()

    def swap_arrays(self, sub: Callable[[np.ndarray | None], np.ndarray | None]) -> None:
        """Hold ``sub(a)`` wherever this step holds array ``a`` (see
        :meth:`Document.keep_to_budget`)."""
        self.before, self.after = _swapped(self.before, sub), _swapped(self.after, sub)
        self.drawn, self.drawn_before = sub(self.drawn), sub(self.drawn_before)


def _swapped(state: State, sub: Callable[[np.ndarray | None], np.ndarray | None]) -> State:
    """``state`` holding ``sub(a)`` for each of its arrays ``a``. History records are
    changed in place: the states and the project share them."""
    for record in state.history:
        before = record.get("_before")
        if before is not None:
            swapped = (sub(before[0]), sub(before[1]))
            if swapped[0] is not before[0] or swapped[1] is not before[1]:
                record["_before"] = swapped
    image, labels = sub(state.image), sub(state.labels)
    if image is state.image and labels is state.labels:
        return state
    return replace(state, image=image, labels=labels)


def _state_arrays(state: State) -> list[np.ndarray]:
    """The pictures and item maps ``state`` holds, its history's included."""
    found = [state.image, state.labels]
    for record in state.history:
        found += record.get("_before") or ()
    return found


@dataclass(frozen=True)
class _Diff:
    """Where two label maps (weakly held) differ: ``witness`` a ``(row, col)`` where they
    do (None: nowhere) and ``box`` ``(rows, cols)`` slices that hold every such pixel."""

    drawn: weakref.ref
    labels: weakref.ref
    witness: tuple[int, int] | None
    box: tuple[slice, slice] | None

    @classmethod
    def within(cls, drawn: np.ndarray, labels: np.ndarray, window: tuple[slice, slice]) -> _Diff:
        """The pixels where they differ, looked for inside ``window`` (they hold all)."""
        box = partition.bounding_window(drawn[window] != labels[window], 0)
        witness = None
        if box is not None:
            rows, cols = window
            box = (
                slice(box[0].start + rows.start, box[0].stop + rows.start),
                slice(box[1].start + cols.start, box[1].stop + cols.start),
            )
            row = box[0].start  # the box's first row holds one
            col = box[1].start + int(np.argmax(drawn[row, box[1]] != labels[row, box[1]]))
            witness = (row, col)
        return cls(weakref.ref(drawn), weakref.ref(labels), witness, box)

    def across(self, labels: np.ndarray, window: tuple[slice, slice]) -> _Diff:
        """The same for ``labels``, a map equal to this one's outside ``window``."""
        drawn = self.drawn()
        if self.witness is not None and not _inside(self.witness, window):
            # that pixel is the same in both maps, so it still differs from the drawn one
            box = _union(self.box, window)
            return _Diff(self.drawn, weakref.ref(labels), self.witness, box)
        return _Diff.within(drawn, labels, window if self.box is None else _union(self.box, window))


def _inside(pixel: tuple[int, int], window: tuple[slice, slice]) -> bool:
    return (
        window[0].start <= pixel[0] < window[0].stop
        and window[1].start <= pixel[1] < window[1].stop
    )


def _union(a: tuple[slice, slice], b: tuple[slice, slice]) -> tuple[slice, slice]:
    """The bounding box of two boxes."""
    return (
        slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
        slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)),
    )


class Document(QObject):
    """A project being edited."""

    changed = Signal(frozenset)  # parts that changed: "image", "labels", "items"
    _spill_done = Signal()  # from the spill thread (queued to the UI thread)
    selection_changed = Signal()
    hover_changed = Signal()
    dirty_changed = Signal(bool)

    def __init__(
        self,
        project: Project,
        parent: QObject | None = None,
        *,
        budget: int | None = None,
        scratch: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.project = project
        # Bytes of pictures held only for undo that stay in RAM (None: UNDO_RAM_BUDGET)
        # and the folder the rest go to (None: default_scratch()); see keep_to_budget.
        self.budget = budget
        self.scratch = scratch
        self._spill_failed_at: float | None = None
        self._spilling: threading.Thread | None = None  # writing files, see keep_to_budget
        self._spill_result: tuple[dict, bool] | None = None
        self._spill_again = False  # steps pushed while it wrote: look again when it is done
        # States other parts of the editor hold and compare by identity (an edit under way
        # and results on show keep the state they were made from): their arrays stay in
        # RAM, or an edit landing on its own picture would take it for a changed one.
        self.pinned: Callable[[], list[State]] = list
        self._spill_done.connect(self._take_spill)
        self._home = project.folder  # where Save writes; see restored()
        self._home_digest: str | None = None  # what a restored document expects there
        frozen(project.image)
        frozen(project.labels)
        self.undo = QUndoStack(self)
        self.undo.setUndoLimit(UNDO_LIMIT)
        self.undo.cleanChanged.connect(self._on_clean_changed)
        self.undo.indexChanged.connect(self._keep_drawn)
        # The state opened with, and the map its picture was made with (a project saved
        # with items reshaped and not yet redrawn says which).
        self._opened = (project.image, project.drawn)
        self.selection: tuple[int, ...] = ()
        self.hover: int | None = None
        self.image_version = 0
        self.labels_version = 0
        self._finding, self._findings = 0, 0  # see State.finding
        self._gone_back: set[int] = set()  # findings that going back began (go_back)
        self._unsaved_work = project.folder is None  # a new photo is unsaved until saved
        self._cache: dict[tuple, Any] = {}
        # The latest brush or eraser stroke: (map before, map after, window), the maps weakly
        # held; the two maps are equal outside the window. And what is known of where the
        # map the picture was drawn with and the item map differ (see _differs). Both keep
        # a stroke's bookkeeping to its window instead of the whole picture.
        self._stroke: tuple[weakref.ref, weakref.ref, tuple[slice, slice]] | None = None
        self._diff: _Diff | None = None
        # Bounding boxes per item of the last few label maps, by the map's identity (undo
        # and redo bring the same arrays back).
        self._boxes: dict[int, tuple[weakref.ref, dict[int, tuple[int, int, int, int]]]] = {}
        # Label maps the learned weights fit: the one prepared on and those applied edits
        # made from it. Any other (brush, eraser, merge, new items) means "refined since".
        # A project saved refined opens with none: the map it was prepared on is not kept.
        self._prepared = project.prepared
        # Weakly: a map no step, result or picture on show holds any more cannot come
        # back, so whether it was prepared no longer matters; held strongly, every map
        # a move or removal made stayed all session (96 MB each at 24 MP, past undo's
        # hundred steps).
        self._prepared_maps: list[weakref.ref] = []
        if project.prepared and not project.refined:
            self._also_prepared(project.labels)

    def __del__(self) -> None:
        # A document let go without deleteLater() (a script's, a test's, a benchmark's)
        # and caught in a reference cycle (each step holds its document) was taken
        # apart by Python's garbage collector in an order that crashed Qt: the undo
        # stack deleted steps whose Python side was already gone (a segmentation fault
        # in QUndoStack::clear). Its steps go first, while everything is whole.
        try:
            self.undo.blockSignals(True)
            self.undo.clear()
        except (AttributeError, RuntimeError):  # never made, or Qt deleted it already
            pass

    @classmethod
    def restored(
        cls,
        project: Project,
        home: Path | None,
        parent: QObject | None = None,
        home_digest: str | None = None,
    ):
        """A document brought back from a recovery copy (:mod:`ui.recovery`). It reads its
        earlier pictures and learned weights from the copy's folder (``project.folder``)
        but saves to ``home``, the project it came from (None: a photo never saved, so
        Save asks where). It starts unsaved. ``home_digest``: the
        :func:`~dedit_app.project_file.digest` of home's project.json as the editor that
        kept the copy last saw it; a save finding another there (saved since by another
        program) is refused, as any save is, instead of wiping that work."""
        doc = cls(project, parent)
        doc._home = home
        doc._home_digest = home_digest if home is not None else None
        doc._unsaved_work = True
        return doc

    # ----- reading ----------------------------------------------------------------------

    @property
    def image(self) -> np.ndarray:
        return self.project.image

    @property
    def labels(self) -> np.ndarray:
        return self.project.labels

    @property
    def items(self) -> list[Item]:
        return self.project.items

    @property
    def folder(self) -> Path | None:
        """Where Save writes (None: Save asks): the project's folder, except for a
        document restored from a recovery copy (:meth:`restored`)."""
        return self._home

    @property
    def home_digest(self) -> str | None:
        """The digest of :attr:`folder`'s project.json as this document last saw it, for a
        recovery copy to remember; None when it has none to compare with."""
        if self._home is not None and self.project.folder == self._home:
            return self.project.digest_on_disk
        return self._home_digest

    @property
    def dirty(self) -> bool:
        return self._unsaved_work or not self.undo.isClean()

    def _on_clean_changed(self, _clean: bool) -> None:
        self.dirty_changed.emit(self.dirty)

    def mark_dirty(self) -> None:
        """Something that is not an undo step changed (preparing, settings)."""
        self._unsaved_work = True
        self.dirty_changed.emit(True)

    def _cached(self, key: tuple, make: Any) -> Any:
        full = (self.labels_version, *key)
        if full not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[full] = make()
        return self._cache[full]

    def prepared_on(self, labels: np.ndarray) -> None:
        """Preparation finished for the partition ``labels`` (the array it was given)."""
        self._prepared = True
        self._prepared_maps = []
        self._also_prepared(labels)
        self._keep_refined()

    @property
    def prepared_labels(self) -> list[np.ndarray]:
        """The item maps the learned weights fit that something still holds: the one
        prepared on and those applied edits made from it."""
        return [m for m in (ref() for ref in self._prepared_maps) if m is not None]

    def _also_prepared(self, labels: np.ndarray) -> None:
        self._prepared_maps = [r for r in self._prepared_maps if r() is not None]
        self._prepared_maps.append(weakref.ref(labels))

    def drawn_labels(self) -> np.ndarray:
        """The item map the picture on show was made with: that of the latest undo step
        that changed the picture (an edit) or replaced every item (finding items), else the
        map the document opened with (``Project.drawn`` when it was saved reshaped). Brush,
        eraser, merge and new items change the items but not the pixels; :meth:`reshaped`
        is what they changed, for Redraw to paint. Each step keeps the map before and after
        it, so the answer holds however many steps the undo stack has let go."""
        index = self.undo.index()
        if index > 0:
            drawn = self.undo.command(index - 1).drawn_after
        elif self.undo.count():
            drawn = self.undo.command(0).drawn_before
        else:
            drawn = None
        if drawn is not None:
            return drawn
        image, opened = self._opened
        if self.image is image and opened is not None:
            return opened
        return self.labels

    @property
    def reshaped(self) -> bool:
        """Some pixel's item differs from the one the picture was made with."""
        # The picture changes what was drawn without changing the items, and a step is
        # restored (and asked about) before the undo stack counts it: key on all three.
        key = ("reshaped", self.image_version, self.undo.index())

        def differs() -> bool:
            drawn = self.drawn_labels()
            return drawn is not self.labels and self._differs(drawn, self.labels)

        return self._cached(key, differs)

    def _differs(self, drawn: np.ndarray, labels: np.ndarray) -> bool:
        """Some pixel of ``drawn`` and ``labels`` differs: ``(drawn != labels).any()``,
        worked out in the latest stroke's window where the answer for the map on the other
        side of that stroke is known (a stroke changes nothing outside its window)."""
        known, stroke = self._diff, self._stroke
        if known is not None and known.drawn() is drawn and known.labels() is labels:
            return known.witness is not None
        other = None
        if stroke is not None:
            before, after, window = stroke[0](), stroke[1](), stroke[2]
            if labels is after:
                other = before
            elif labels is before:
                other = after
        if other is not None and other is drawn:  # they differ only inside the window
            diff = _Diff.within(drawn, labels, window)
        elif (
            other is not None
            and known is not None
            and known.drawn() is drawn
            and (known.labels() is other)
        ):
            diff = known.across(labels, window)
        else:
            diff = _Diff.within(
                drawn, labels, (slice(0, labels.shape[0]), slice(0, labels.shape[1]))
            )
        self._diff = diff
        return diff.witness is not None

    def _keep_drawn(self, _index: int = 0) -> None:
        # Saved with the project, so that a reshape survives closing and reopening (and a
        # recovery copy); after the undo stack has counted the step, which drawn_labels reads.
        self.project.drawn = self.drawn_labels() if self.reshaped else None

    @property
    def refined_since_prepare(self) -> bool:
        """The items were changed by hand after the project was prepared."""
        return self._prepared and not any(lab is self.labels for lab in self.prepared_labels)

    def _keep_refined(self) -> None:
        # The project file carries the answer, so that reopening the project (or its
        # recovery copy) still says so: the undo steps that tell are not saved.
        if self.project.training is not None:
            self.project.refined = self.refined_since_prepare

    @property
    def counts(self) -> np.ndarray:
        """Pixels per item id, ``(len(items),)`` int64."""
        return self._cached(("counts", len(self.items)), self._count)

    def _count(self) -> np.ndarray:
        known = known_areas(self.labels)
        if known is not None and len(known) == len(self.items):
            return known
        areas = partition.item_areas(self.labels, len(self.items))
        know_areas(self.labels, areas)  # undo and redo bring this very map back
        return areas

    @property
    def compact_labels(self) -> np.ndarray:
        """The label map in the smallest dtype (what the overlay samples)."""
        # Ids are below the item count (the project's invariant), so no max is needed.
        return self._cached(("compact",), lambda: compact_labels(self.labels, len(self.items) - 1))

    def visible_items(self) -> list[int]:
        """Ids of items that own at least one pixel, in id order."""
        return [int(k) for k in np.nonzero(self.counts)[0]]

    def bbox(self, item: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` inclusive pixel box of ``item``: worked out once per map
        (kept for the last few maps, which undo and redo bring back), without the checks
        of the whole map that :func:`~dedit_app.partition.item_bbox` makes (the document's
        maps were checked when they were set)."""
        boxes = self._box_cache()
        if item not in boxes:
            boxes[item] = partition.item_bbox(self.labels, item, checked=True)
        return boxes[item]

    def known_boxes(self) -> dict[int, tuple[int, int, int, int]] | None:
        """Item id -> :meth:`bbox` of every item with pixels, when :meth:`keep_boxes` was
        given them for the map on show; None until then (what a drag snaps to: worked out
        off the UI thread, a tenth of a second for 30 items at 24 MP)."""
        boxes = self._box_cache()
        return {k: b for k, b in boxes.items() if k != "all"} if "all" in boxes else None

    def keep_boxes(self, labels: np.ndarray, boxes: dict[int, tuple[int, int, int, int]]) -> None:
        """Keep ``boxes`` (item -> its :func:`dedit_app.partition.item_bbox` in ``labels``)
        as every item's box, when ``labels`` is still the map on show."""
        if labels is self.labels:
            cache = self._box_cache()
            cache.update(boxes)
            cache["all"] = True

    def _box_cache(self) -> dict:
        """The boxes known for the map on show (kept for the last few maps)."""
        labels = self.labels
        entry = self._boxes.get(id(labels))
        if entry is None or entry[0]() is not labels:
            for key in [k for k, (ref, _) in self._boxes.items() if ref() is None]:
                del self._boxes[key]
            while len(self._boxes) >= 8:
                del self._boxes[next(iter(self._boxes))]
            entry = self._boxes[id(labels)] = (weakref.ref(labels), {})
        return entry[1]

    def items_box(self, items) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``, x1 and y1 exclusive: the pixel box around ``items``
        (from :meth:`bbox`; an item with no pixels raises ItemError)."""
        boxes = [self.bbox(k) for k in items]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes) + 1, max(b[3] for b in boxes) + 1
        return x0, y0, x1, y1

    def item_at(self, x: float, y: float) -> int | None:
        """The item under image position ``(x, y)`` (pixel (i, j) covers [i, i+1) x [j, j+1))."""
        h, w = self.labels.shape
        i, j = int(np.floor(x)), int(np.floor(y))
        if 0 <= i < w and 0 <= j < h:
            return int(self.labels[j, i])
        return None

    def item_name(self, item: int) -> str:
        return self.items[item].name if 0 <= item < len(self.items) else f"item {item}"

    def state(self) -> State:
        return State(
            image=self.project.image,
            labels=self.project.labels,
            items=tuple(replace(i) for i in self.project.items),
            history=tuple(self.project.history),
            finding=self._finding,
        )

    # ----- selection --------------------------------------------------------------------

    def select(self, items: tuple[int, ...] | list[int]) -> None:
        items = tuple(dict.fromkeys(int(i) for i in items if 0 <= i < len(self.items)))
        if items != self.selection:
            self.selection = items
            self.selection_changed.emit()

    def toggle(self, item: int) -> None:
        if item in self.selection:
            self.select(tuple(i for i in self.selection if i != item))
        else:
            self.select((*self.selection, item))

    @property
    def current(self) -> int | None:
        """The primary selected item (the first one picked)."""
        return self.selection[0] if self.selection else None

    def set_hover(self, item: int | None) -> None:
        if item != self.hover:
            self.hover = item
            self.hover_changed.emit()

    # ----- changing ---------------------------------------------------------------------

    def restore(self, state: State, selection: tuple[int, ...] | None = None) -> None:
        """Make ``state`` current (undo/redo and commands call this)."""
        parts = set()
        if state.image is not self.project.image:
            parts.add("image")
            self.image_version += 1
        if state.labels is not self.project.labels:
            parts.add("labels")
            self.labels_version += 1
        if [(i.name, i.prompt) for i in self.project.items] != [
            (i.name, i.prompt) for i in state.items
        ]:
            parts.add("items")
        self.project.image = frozen(state.image)
        self.project.labels = frozen(state.labels)
        # Learned token strings belong to the preparation, which undo does not take back.
        tokens = [i.tokens for i in self.project.items]
        self.project.items = [
            replace(it, tokens=tokens[k] if k < len(tokens) else it.tokens)
            for k, it in enumerate(state.items)
        ]
        self.project.history = list(state.history)
        self._finding = state.finding
        self._keep_refined()
        if selection is not None:
            self.selection = tuple(i for i in selection if i < len(self.items))
        counts = self.counts
        self.selection = tuple(i for i in self.selection if counts[i] > 0)
        if self.hover is not None and (self.hover >= len(counts) or counts[self.hover] == 0):
            self.hover = None
        self.changed.emit(frozenset(parts | {"items"}))
        self.selection_changed.emit()

    def push(
        self,
        text: str,
        after: State,
        *,
        select_after: tuple[int, ...] | None = None,
        kind: str = "",
        drawn: np.ndarray | None = None,
    ) -> StateCommand:
        """Record and apply a change; ``text`` names it in the history panel (``drawn``:
        :attr:`StateCommand.drawn`)."""
        before = self.state()
        cmd = StateCommand(
            self,
            text,
            before,
            after,
            select_before=self.selection,
            select_after=self.selection if select_after is None else select_after,
            kind=kind,
        )
        cmd.drawn = None if drawn is None else frozen(drawn)
        cmd.drawn_before = self.drawn_labels()
        self.undo.push(cmd)  # calls redo()
        self.keep_to_budget()
        return cmd

    # ----- memory held for undo ---------------------------------------------------------

    def held_for_undo(self) -> list[np.ndarray]:
        """The distinct arrays in RAM that only undo, redo and the history hold (the
        picture on show, its item map and the map it was drawn with are not among them),
        nearest to the step on show first: ``(H, W, 3)`` uint8 pictures, ``(H, W)`` int32
        maps; last, the photo at 16 bits (``(H, W, 3)`` uint16), which only an export
        reads. Mapped files (already moved out) are left out."""
        shown = self._kept_in_ram()
        index = self.undo.index()
        found: dict[int, tuple[int, np.ndarray]] = {}

        def hold(array: np.ndarray | None, distance: int) -> None:
            if array is None or id(array) in shown or spill.file_backed(array):
                return
            known = found.get(id(array))
            if known is None or distance < known[0]:
                found[id(array)] = (distance, array)

        for k in range(self.undo.count()):
            cmd = self.undo.command(k)
            # step k goes from state k to state k + 1; state ``index`` is on show
            for state, at in ((cmd.before, k), (cmd.after, k + 1)):
                for array in _state_arrays(state):
                    hold(array, abs(at - index))
            hold(cmd.drawn, abs(k + 1 - index))
            hold(cmd.drawn_before, abs(k - index))
        for array in self._opened:
            hold(array, self.undo.count() + 1)  # reached by no step: far
        hold(self.project.deep, self.undo.count() + 2)  # read only by exports: farthest
        return [array for _, array in sorted(found.values(), key=lambda e: e[0])]

    def _kept_in_ram(self) -> set[int]:
        """Identities of the arrays that never move to files: the picture on show, its item
        map, the map it was drawn with, and those of the :attr:`pinned` states."""
        kept = {id(self.project.image), id(self.project.labels), id(self.project.drawn)}
        for state in self.pinned():
            kept.update(id(a) for a in _state_arrays(state))
        return kept

    def keep_to_budget(self) -> None:
        """Move pictures held only for undo into files once they take more RAM than
        :attr:`budget`, the farthest from the step on show first.

        Each moved array is replaced, everywhere the document holds it, by its file mapped
        read-only (:func:`dedit_app.spill.spill`): equal bytes, one identity from then on,
        so undo, the history, saves and recovery copies read it like any array. The files
        are written on a thread of their own (at 24 MP a step's 170 MB took the UI thread
        0.2 s), and the arrays swapped on this thread when they are done. When the scratch
        folder cannot be written, the pictures stay in RAM, as before this bound existed.
        """
        if self._spilling is not None:
            self._spill_again = True  # once the files under way are in place
            return
        failed = self._spill_failed_at
        if failed is not None and time.monotonic() - failed < SPILL_RETRY_S:
            return
        chosen = self._over_budget()
        if not chosen:
            return
        folder = default_scratch() if self.scratch is None else self.scratch
        self._spill_again = False
        self._spilling = threading.Thread(
            target=self._spill, args=(chosen, folder), name="undo pictures to files", daemon=True
        )
        self._spilling.start()

    def _over_budget(self) -> list[np.ndarray]:
        """The arrays to move out of RAM, farthest first, to bring what undo holds there
        within :attr:`budget`."""
        budget = UNDO_RAM_BUDGET if self.budget is None else self.budget
        held = self.held_for_undo()
        excess = sum(a.nbytes for a in held) - budget
        chosen = []
        for array in reversed(held):
            if excess <= 0:
                break
            chosen.append(array)
            excess -= array.nbytes
        return chosen

    def _spill(self, chosen: list[np.ndarray], folder: Path) -> None:
        """On the spill thread: write ``chosen`` (never changed in place, so safe to read
        here) and hand the mapped files to the UI thread."""
        moved: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        failed = False
        try:
            for array in chosen:
                mapped = spill.spill(array, folder)
                if mapped is None:
                    failed = True
                    log.info("Could not write to %s; earlier pictures stay in memory.", folder)
                    break
                moved[id(array)] = (array, mapped)
        finally:
            self._spill_result = (moved, failed)
            with contextlib.suppress(RuntimeError):  # the document was closed meanwhile
                self._spill_done.emit()

    def settle_memory(self) -> None:
        """Wait for the files being written for undo and put them in place now (tests,
        benchmarks; the editor lets the event loop deliver them)."""
        thread = self._spilling
        if thread is not None:
            thread.join()
        self._take_spill()

    def _take_spill(self) -> None:
        """On the UI thread: the spill thread is done; swap its files in."""
        result, self._spill_result = self._spill_result, None
        if result is None:
            return  # taken already (settle_memory), or nothing under way
        self._spilling = None
        moved, failed = result
        if failed:
            self._spill_failed_at = time.monotonic()
        # Undo may have brought one of them on show, or an edit been asked for from it,
        # while it was written: it stays in RAM (their holders must agree on its identity).
        shown = self._kept_in_ram()
        self._swap_arrays({k: v for k, v in moved.items() if k not in shown})
        if self._spill_again and not failed:
            self.keep_to_budget()

    def _swap_arrays(self, moved: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        """Hold the new array of each ``id(old): (old, new)`` of ``moved`` wherever the
        document holds the old one, so that the old one is freed."""

        def sub(array: np.ndarray | None) -> np.ndarray | None:
            entry = None if array is None else moved.get(id(array))
            return array if entry is None else entry[1]

        for k in range(self.undo.count()):
            self.undo.command(k).swap_arrays(sub)
        self._opened = (sub(self._opened[0]), sub(self._opened[1]))
        self.project.deep = sub(self.project.deep)
        self._prepared_maps = [weakref.ref(sub(a)) for a in self.prepared_labels]
        for old, new in moved.values():
            know_areas(new, known_areas(old))
            share_names(old, new)

    def with_labels(self, labels: np.ndarray, items: list[Item] | None = None) -> State:
        s = self.state()
        return replace(
            s, labels=frozen(partition.check_labels(labels)), items=tuple(items or s.items)
        )

    def _need_item(self, item: int | None) -> int:
        if item is None:
            raise ItemError("Select an item first: click it on the picture or in the list.")
        if not 0 <= item < len(self.items) or self.counts[item] == 0:
            raise ItemError(f"There is no item {item} in this picture.")
        return item

    def paint(self, points: list[tuple[float, float]], radius: float, item: int | None) -> None:
        """Brush: the pixels under the stroke join ``item`` (pixel-centre coordinates)."""
        item = self._need_item(item)
        window = partition.stroke_window(self.labels.shape, points, radius)
        if window is None:
            return  # no pixel under it
        stroke = partition.stroke_mask(self.labels.shape, points, radius, window)
        if not (self.labels[window][stroke] != item).any():
            return  # every pixel under it is the item's already
        labels = partition.paint(self.labels, stroke, item, window=window, checked=True)
        self._push_stroke(f"Brush {self.item_name(item)}", labels, window, "brush")

    def erase(self, points: list[tuple[float, float]], radius: float, item: int | None) -> None:
        """Eraser: ``item``'s pixels under the stroke go to the nearest other item."""
        item = self._need_item(item)
        if self.counts[item] == self.counts.sum():
            raise ItemError(
                f"{self.item_name(item)} covers the whole picture, so there is no other item "
                "to give its pixels to."
            )
        window = partition.stroke_window(self.labels.shape, points, radius)
        if window is None:
            return
        stroke = partition.stroke_mask(self.labels.shape, points, radius, window)
        if not (self.labels[window][stroke] == item).any():
            return  # none of the item's pixels under it: nothing changes
        labels = partition.erase(self.labels, stroke, item, window=window, checked=True)
        self._push_stroke(f"Erase {self.item_name(item)}", labels, window, "erase")

    def _push_stroke(
        self, text: str, labels: np.ndarray, window: tuple[slice, slice], kind: str
    ) -> None:
        """Push a stroke's map, which differs from the current one only inside ``window``:
        its pixel counts follow from the window's, and what is left to redraw is worked
        out there (:meth:`_differs`). Neither looks at the rest of the picture."""
        before = self.labels
        n = len(self.items)
        areas = (
            self.counts
            - partition.item_areas(before[window], n)[:n]
            + partition.item_areas(labels[window], n)[:n]
        )
        labels = frozen(labels)
        know_areas(labels, areas)
        self._stroke = (weakref.ref(before), weakref.ref(labels), window)
        # partition's own output from a checked map: no need to check it again
        self.push(text, replace(self.state(), labels=labels), kind=kind)

    def merge(self, items: tuple[int, ...] | list[int]) -> None:
        """Merge every item of ``items`` into the first."""
        items = [self._need_item(i) for i in items]
        if len(items) < 2:
            raise ItemError("Select two or more items to merge (Ctrl+click adds to the selection).")
        keep, others = items[0], items[1:]
        # One pass over the map for them all, checked against the pixel counts
        labels = frozen(partition.merge_many(self.labels, keep, others, self.counts))
        areas = self.counts.copy()
        areas[keep] += areas[others].sum()
        areas[others] = 0
        know_areas(labels, areas)
        names = ", ".join(self.item_name(i) for i in others)
        self.push(
            f"Merge {names} into {self.item_name(keep)}",
            replace(self.state(), labels=labels),
            select_after=(keep,),
            kind="merge",
        )

    def rename(self, item: int, name: str) -> None:
        item = self._need_item(item)
        name = " ".join(name.split())
        if not name:
            raise ItemError("An item name cannot be empty.")
        if name == self.items[item].name:
            return
        items = [replace(i) for i in self.items]
        old = items[item].name
        items[item].name = name
        self.push(f"Rename {old} to {name}", replace(self.state(), items=tuple(items)))

    def set_prompt(self, item: int, prompt: str) -> None:
        item = self._need_item(item)
        prompt = prompt.strip()
        if prompt == self.items[item].prompt:
            return
        items = [replace(i) for i in self.items]
        items[item].prompt = prompt
        self.push(
            f"Prompt of {items[item].name}: {prompt or '(its own look)'}",
            replace(self.state(), items=tuple(items)),
        )

    def add_item(self, mask: np.ndarray, name: str = "") -> int:
        """A new item made of the pixels of ``mask`` (bool ``(H, W)``); returns its id."""
        mask = np.asarray(mask, bool)
        if mask.shape != self.labels.shape or not mask.any():
            raise ItemError("The new item has no pixels; click on the thing you want to select.")
        if mask.all():
            raise ItemError("The new item would cover the whole picture; add a negative click.")
        new_id = len(self.items)
        # checked: the id follows the item list, which keeps items merged away (no pixels),
        # so it may lie past the map's largest label + 1 that paint would otherwise allow
        labels = partition.paint(self.labels, mask, new_id, checked=True)
        items = [replace(i) for i in self.items]
        items.append(Item(name or f"item {new_id}"))
        self.push(
            f"New item {items[-1].name}",
            self.with_labels(labels, items),
            select_after=(new_id,),
            kind="new-item",
        )
        return new_id

    def set_partition(self, labels: np.ndarray, names: list[str], text: str) -> None:
        """Replace every item (automatic segmentation)."""
        labels = partition.check_labels(labels)
        if labels.shape != self.labels.shape:
            raise ItemError("The segmentation does not match the picture's size.")
        items = tuple(Item(n) for n in names)
        if int(labels.max()) >= len(items):
            raise ItemError("The segmentation names fewer items than its map uses.")
        self._findings += 1
        self.push(
            text,
            replace(self.state(), labels=frozen(labels), items=items, finding=self._findings),
            select_after=(),
            kind="segment",
        )

    def apply_result(
        self,
        image: np.ndarray,
        labels: np.ndarray,
        entry: dict[str, Any],
        text: str,
        items: list[Item] | None = None,
        drawn: np.ndarray | None = None,
        finding: int | None = None,
    ) -> StateCommand:
        """Make an edited picture the new base (``Project.apply``), as one undo step;
        ``drawn``: the map the picture was made with when it is not ``labels``
        (:attr:`StateCommand.drawn`); ``finding``: the :attr:`State.finding` after it,
        when its ids mean other items than before (None: the same)."""
        before = self.state()
        # validates; raises and changes nothing
        self.project.apply(image, labels, entry, items=items)
        after = self.state()
        if any(lab is before.labels for lab in self.prepared_labels):
            self._also_prepared(after.labels)
        self.project.image, self.project.labels = before.image, before.labels
        self.project.items = [replace(i) for i in before.items]
        self.project.history = list(before.history)
        after = replace(after, image=frozen(after.image))
        if finding is not None:
            after = replace(after, finding=finding)
        return self.push(text, after, kind="edit", drawn=drawn)

    def go_back(self, way, text: str) -> StateCommand:
        """Make ``way`` (a :class:`dedit_app.going_back.WayBack`) current as one undoable
        edit. Its item map counts as one the learned weights fit when the map on show
        does (going back is an edit made from it) or when it holds the very ids of one
        they fit: read from the project folder, it is never the same array."""
        if any(np.array_equal(m, way.labels) for m in self.prepared_labels):
            self._also_prepared(way.labels)
        finding = None
        if [i.name for i in way.items] != [i.name for i in self.items]:
            # Items found again (or renamed) since: the same id may name another item, so
            # an edit asked for before must not be laid over this one (see lay_onto).
            self._findings += 1
            finding = self._findings
            self._gone_back.add(finding)
        return self.apply_result(
            way.image, way.labels, way.entry, text, items=way.items, finding=finding
        )

    def result_state(
        self,
        base: State,
        image: np.ndarray,
        labels: np.ndarray,
        entry: dict[str, Any],
        items: list[Item] | None = None,
    ) -> State:
        """The state ``Project.apply`` would make from ``base`` (for swapping candidates)."""
        record = copy.copy(entry)
        record.setdefault("items_before", recorded_items(list(base.items)))
        record["_before"] = (base.image, base.labels)
        labels = frozen(partition.check_labels(labels))
        if any(lab is base.labels for lab in self.prepared_labels):
            self._also_prepared(labels)
        return State(
            image=frozen(image),
            labels=labels,
            items=tuple(replace(i) for i in (items if items is not None else base.items)),
            history=(*base.history, record),
            finding=base.finding,
        )

    def lay_onto(
        self,
        onto: State,
        base: State,
        made: tuple[np.ndarray, np.ndarray | None],
        regions: tuple[np.ndarray, np.ndarray, float],
        items: list[Item] | None = None,
        onto_drawn: np.ndarray | None = None,
    ) -> LaidEdit:
        """An edit asked for at ``base`` as it lands on ``onto``, the state on show now or
        that of the step it goes into (:func:`dedit_app.rebase.lay_onto`).

        ``made`` is its ``(picture, item map)`` (map None: the edit kept it), ``regions``
        where it painted (``engine.result_regions``), ``items`` its items (None: kept).
        On ``base`` itself that is the edit as made. Otherwise what changed meanwhile stays
        (other edits, brushing, renames) and the edit's pixels, item ids and prompts are laid
        over it. ``onto_drawn`` is the map ``onto``'s picture was made with (items reshaped
        by hand and not redrawn yet): they stay to be redrawn where the edit did not paint.
        Raises ItemError when the ids no longer mean the same items."""
        image, labels = made
        if onto.finding != base.finding:
            if {onto.finding, base.finding} & self._gone_back:
                raise ItemError(
                    "The picture went back to an earlier version of its items after this edit "
                    "was asked for; make the edit again."
                )
            raise ItemError(
                "The items were found again after this edit was asked for; make the edit again."
            )
        after = list(items or base.items)
        added = after[len(base.items) :]  # a duplicate's copies, with the ids that follow
        shift = len(onto.items) - len(base.items) if added else 0
        if shift < 0:
            raise ItemError("Items were taken away while the copy was made; make it again.")
        if shift:  # items added meanwhile (another copy): these copies' ids follow them
            n = len(base.items)
            labels = np.where(labels >= n, labels + shift, labels).astype(np.int32)
            made = (made[0], labels)
        merged = [replace(i) for i in onto.items]
        for k, (was, now) in enumerate(zip(base.items, after[: len(base.items)], strict=True)):
            if k < len(merged) and was.prompt != now.prompt:
                merged[k].prompt = now.prompt
            if k < len(merged) and was.name != now.name:
                merged[k].name = now.name
        for copy_ in added:  # named apart from those added meanwhile ("cup copy 2")
            taken = {i.name for i in merged}
            merged.append(replace(copy_, name=free_name(copy_.name, taken)))
        kept = onto.items != base.items
        if onto_drawn is onto.labels:
            onto_drawn = None  # nothing reshaped by hand: the map is the one drawn
        if same_picture(onto, base, onto_drawn):
            # The picture the edit was made from: nothing to lay it over.
            made_labels = base.labels if labels is None else labels
            return LaidEdit(image, made_labels, merged if kept else items, None, 0, kept, shift)
        laid = rebase.lay_onto(
            (base.image, base.labels), made, regions, (onto.image, onto.labels), onto_drawn
        )
        if int(laid.labels.max()) >= len(merged):
            raise ItemError("An item this edit changes was taken away meanwhile; make it again.")
        kept = kept or onto.image is not base.image or onto.labels is not base.labels
        return LaidEdit(laid.image, laid.labels, merged, laid.drawn, laid.conflicts, kept, shift)

    # ----- saving -----------------------------------------------------------------------

    def save(self, folder: str | Path | None = None, old_weights: list[Path] | None = None) -> Path:
        """Save the project (see :meth:`Project.save`) to ``folder`` (default: :attr:`folder`)
        and mark the document clean."""
        target = Path(folder) if folder is not None else self._home
        if target is None:
            raise ProjectError("Choose a folder to save the project in.")
        expect = OWN
        if target == self._home and self._home != self.project.folder:
            expect = self._home_digest  # restored: home as the crashed editor saw it
        path = self.project.save(target, old_weights, expect)
        self._home, self._home_digest = path, None  # from here the project's own
        self._unsaved_work = False
        self.undo.setClean()
        self.dirty_changed.emit(self.dirty)
        return path
