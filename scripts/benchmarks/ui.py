"""Editor responsiveness: overlay redraw time and the longest UI-thread stall during a job.

1. Overlay redraw for a 4096 x 4096 photo with 30 items in a 1600 x 1000 viewport: ours
   (screen-space sampling + colour-code lookup + Qt indexed conversion) beside the
   straightforward full-resolution lookup (table over every photo pixel, then scaled to the
   viewport). Both are checked to give the same colours at the sampled pixels. Also the
   whole canvas repaint (photo + overlay + handles) after a hover change.
2. UI stall: a 5 ms QTimer records the longest gap between its ticks while a real job
   (automatic segmentation of a 1024^2 photo; the tiny-model preparation when the engine
   is installed) runs on the worker thread, beside the same job run on the UI thread.
   The target is under 50 ms.
3. An edit landing at a photo's own resolution (6 MP; 24 MP with --full; 3 candidates):
   the UI thread's time to show the picture and the candidates' thumbnails, beside
   full-size pixmaps; with --full, how long dropping a moved item there holds the UI
   thread, the preview worked out on the side thread, beside working it out on the UI
   thread.
4. An edit landing after the picture changed while it ran, laid over those changes (6 MP;
   24 MP with --full): the window around the edit beside the whole frame.
5. Opening, saving and exporting a picture of that size (:mod:`benchmarks.ui_files`):
   how long each holds the UI thread with the files thread, beside doing it at once.
6. A wide-gamut photo at 100 % (:mod:`benchmarks.screen_colours`): converting only the
   box a picture changed for the screen, beside the whole picture.
7. A fresh editor's first Prepare and first edit (:mod:`benchmarks.ui_cold`): the engine
   loaded ahead on a thread of its own, beside nothing loaded ahead.
8. A large photo zoomed to 100 % and an edit landing there (:mod:`benchmarks.photo_levels`):
   the large level made on the canvas's own thread, beside making it where it is drawn.
9. A drag of one or two items beginning: their cut-out at the view's zoom, beside a
   full-size one.

    python scripts/bench.py ui [--quick | --full]
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import (  # noqa: E402
    history_disk,
    photo_levels,
    recovery_copies,
    screen_colours,
    ui_cold,
    ui_files,
    undo_memory,
)
from benchmarks.common import (  # noqa: E402
    Row,
    guarded,
    measure,
    scratch_folder,
    voronoi_labels,
    with_ratios,
)


def _app():
    from ui.app import create_app

    return create_app()


def overlay_rows(
    side: int = 4096, items: int = 30, viewport=(1600, 1000), ratio: int = 1
) -> list[Row]:
    """``viewport`` in logical pixels; ``ratio`` device pixels per logical one (2: the
    same window on a Retina screen, rendered for its device pixels with 2-pixel lines)."""
    from ui import overlay
    from ui.imaging import argb_image, indexed_image

    _app()
    labels = voronoi_labels(side, side, items).astype(np.uint8)
    tables = overlay.build_tables(items, selected=(3,), hover=5)
    vw, vh = viewport[0] * ratio, viewport[1] * ratio
    viewport = (vw, vh)
    rows: list[Row] = []
    views = {
        "fit": (vh / side, ((vw - vh * 1.0) / 2, 0.0)),
        "100%": (1.0 * ratio, (-1000.0 * ratio, -1000.0 * ratio)),
        "300%": (3.0 * ratio, (-5000.0 * ratio, -5000.0 * ratio)),
    }
    screen = "" if ratio == 1 else f" {ratio}x screen"
    for name, (scale, origin) in views.items():

        def ours(scale=scale, origin=origin):
            pos, r, c = overlay.view_window(labels.shape, origin=origin, scale=scale, size=viewport)
            sampled = overlay.sample_labels(labels, r, c)
            return indexed_image(*overlay.render_codes(sampled, tables, ratio))

        def full_res(scale=scale, origin=origin):
            # The straightforward way: colour every photo pixel, then scale to the screen.
            rgba = np.take(tables.fill, labels)
            pos, r, c = overlay.view_window(labels.shape, origin=origin, scale=scale, size=viewport)
            return argb_image(rgba[r[0] : r[-1] + 1, c[0] : c[-1] + 1]).scaled(len(c), len(r))

        # Agreement: our fills equal the full-resolution table at every sampled pixel.
        pos, r, c = overlay.view_window(labels.shape, origin=origin, scale=scale, size=viewport)
        sampled = overlay.sample_labels(labels, r, c)
        ok = np.array_equal(
            overlay.render(sampled, tables, outlines=False),
            np.take(tables.fill, labels)[np.ix_(r, c)],
        )
        t_ours, m_ours = measure(ours, repeats=15)
        t_ref, m_ref = measure(full_res, repeats=3)
        note = f"{len(c)}x{len(r)} px drawn; agree={ok}"
        rows += with_ratios(
            Row(
                f"overlay {side}² {items} items {name}{screen}",
                "screen-space LUT",
                t_ours,
                m_ours,
                note=note,
            ),
            Row(
                f"overlay {side}² {items} items {name}{screen}",
                "full-res LUT + scale",
                t_ref,
                m_ref,
            ),
        )
    if ratio == 1:  # the canvas draws on this machine's screen, whatever its ratio
        rows.append(canvas_repaint_row(side, items, viewport))
    return rows


def canvas_repaint_row(side: int, items: int, viewport) -> Row:
    """The whole canvas repaint after the hovered item changes (photo, overlay, handles)."""
    from dedit_app.project import Project
    from ui.canvas import CanvasView
    from ui.document import Document

    app = _app()
    rng = np.random.default_rng(1)
    image = cv2.resize(
        rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
        (side, side),
        interpolation=cv2.INTER_LINEAR,
    )
    labels = voronoi_labels(side, side, items)
    doc = Document(Project.new(image, labels, [f"item {k}" for k in range(items)]))
    view = CanvasView()
    view.resize(*viewport)
    view.show()
    view.set_document(doc)
    view.fit()
    doc.select([3])
    app.processEvents()
    view.viewport().grab()  # build mipmaps and caches once
    hover = [0]

    def repaint():
        hover[0] = (hover[0] + 1) % items
        doc.set_hover(hover[0])
        view.viewport().grab()

    t, m = measure(repaint, repeats=15)
    view.close()
    return Row(
        f"canvas repaint {side}² {items} items",
        "hover change, fit view",
        t,
        m,
        note="photo + overlay + handles; one frame is 16.7 ms",
    )


def _canvas_showing(app, doc):
    """A 1200 x 800 canvas showing ``doc`` fit to view, drawn once."""
    from ui.canvas import CanvasView

    view = CanvasView()
    view.resize(1200, 800)
    view.show()
    view.set_document(doc)
    view.fit()
    app.processEvents()
    return view


def landing_rows(height: int = 4000, width: int = 6000, candidates: int = 3) -> list[Row]:
    """An edit's pictures landing on the UI thread at a photo's own resolution: the canvas
    shows the new picture at fit-to-view and the candidate strip gets its thumbnails.
    Ours (the canvas's lazy mipmap, thumbnails shrunk before they become pixmaps) through
    the real canvas, beside what it did before: a full-size pixmap of the picture, the
    mipmap levels from it, and thumbnails scaled from full-size pixmaps."""
    from PySide6.QtCore import Qt

    from dedit_app import partition
    from dedit_app.project import Project
    from ui.document import Document, frozen, know_areas
    from ui.imaging import rgb_image, rgb_pixmap, thumbnail
    from ui.widgets import CandidatesStrip

    app = _app()
    rng = np.random.default_rng(2)
    small = rng.integers(0, 255, (48, 72, 3), dtype=np.uint8)
    photo = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    labels = np.zeros((height, width), np.int32)
    labels[height // 4 : height // 2, width // 3 : width // 2] = 1
    pictures = [np.roll(photo, 50 * (c + 1), axis=1) for c in range(candidates)]
    doc = Document(Project.new(photo, labels, ["background", "item"]))
    view = _canvas_showing(app, doc)
    view.viewport().grab()
    side = 2 * CandidatesStrip.THUMB

    def ours():
        doc.apply_result(pictures[0], labels, {"kind": "text"}, "edit")
        view.viewport().grab()
        return [thumbnail(p, side) for p in pictures]

    def before():
        from PySide6.QtGui import QPixmap

        full = QPixmap.fromImage(rgb_image(pictures[0]))
        levels, k = [full], 0
        while view.zoom * 2 ** (k + 1) <= 1.0:
            k += 1
            size = (width >> k, height >> k)
            shrunk = cv2.resize(pictures[0], size, interpolation=cv2.INTER_AREA)
            levels.append(QPixmap.fromImage(rgb_image(shrunk)))
        keep = Qt.AspectRatioMode.KeepAspectRatio
        smooth = Qt.TransformationMode.SmoothTransformation
        return [rgb_pixmap(p).scaled(side, side, keep, smooth) for p in pictures]

    t, m = measure(ours, repeats=3)
    rt, rm = measure(before, repeats=3)
    view.close()
    case = f"edit landing, {height * width / 1e6:.0f} MP"
    # A move or a removal lands with a new item map: the items panel counts each item's
    # pixels again.
    at, am = measure(lambda: partition.item_areas(labels, 2), repeats=3)
    bt, bm = measure(lambda: np.bincount(labels.ravel(), minlength=2), repeats=3)
    # The new item map becoming the document's: the items panel's counts come with the
    # edit's result (counted on the worker), or are counted here as before.
    moved = labels.copy()
    moved[height // 3 : height // 2 + height // 10, width // 3 : width // 2] = 1
    areas = partition.item_areas(moved, 2)
    # Each landing brings a map other than the current one (as every move does); equal
    # copies, so both ways count the same pixels.
    maps = {handed: [frozen(moved.copy()) for _ in range(2)] for handed in (True, False)}
    turn = [0]

    def land(handed: bool):
        turn[0] += 1
        new = maps[handed][turn[0] % 2]
        if handed:
            know_areas(new, areas)
        doc.apply_result(pictures[0], new, {"kind": "move", "item": 1}, "move")
        return doc.counts

    ht, hm = measure(lambda: land(True), repeats=3)
    ct, cm = measure(lambda: land(False), repeats=3)
    note = "UI thread; fit view + thumbnails"
    rows = with_ratios(
        Row(case, f"{candidates} pictures: ours", t, m, note=note),
        Row(case, f"{candidates} pictures: full-size pixmaps", rt, rm),
    )
    rows += with_ratios(
        Row(case, "item areas: row bands (ours)", at, am, note="new item map: the items panel"),
        Row(case, "item areas: np.bincount", bt, bm),
    )
    return rows + with_ratios(
        Row(case, "new item map: counts from the job (ours)", ht, hm, note="UI thread"),
        Row(case, "new item map: counted on the UI thread", ct, cm),
    )


def drop_rows(height: int = 4000, width: int = 6000, repeats: int = 2) -> list[Row]:
    """Dropping a moved item on a photo at its own resolution: how long the UI thread is
    held. Ours checks the edit there (``edits.check_edit``) and works out the preview (the
    new item map and the sketch) on the side thread (:mod:`ui.side_thread`) while the UI
    thread idles in its event loop; the reference does both on the UI thread, as the
    editor did before."""
    import json

    from dedit_app import edits
    from dedit_app.partition import Move
    from dedit_app.project import Project
    from ui.preview import move_preview
    from ui.side_thread import SideThread
    from ui.testing import wait_until

    _app()
    rng = np.random.default_rng(4)
    photo = cv2.resize(rng.integers(0, 255, (48, 72, 3), dtype=np.uint8), (width, height))
    labels = np.zeros((height, width), np.int32)
    labels[height // 4 : 3 * height // 4, width // 3 : 3 * width // 4] = 1  # a fifth
    labels[:, : width // 6] = 2
    project = Project.new(photo, labels, ["background", "item", "left"])
    project.store_weights({}, {"items": json.dumps(["<a>", "<b>", "<c>"])})
    moves = (Move(1, width / 30, height / 40),)
    request = edits.MoveRequest(moves)
    side = SideThread()
    meter = _GapMeter()

    def ours() -> tuple[float, float]:
        """(longest UI-thread gap, seconds until the preview was on hand)."""
        answers: list = []
        meter.start()
        t0 = time.perf_counter()
        edits.check_edit(project, request)
        side.submit(
            "preview", lambda: move_preview(photo, labels, moves), answers.append, answers.append
        )
        wait_until(lambda: bool(answers), 600, "the preview")
        took = time.perf_counter() - t0
        if isinstance(answers[0], str):
            raise RuntimeError(answers[0])
        return meter.stop(), took

    def before() -> float:
        t0 = time.perf_counter()
        move_preview(photo, labels, moves)
        edits.check_edit(project, request)
        return time.perf_counter() - t0

    ours()  # warm-up
    held, ready = zip(*(ours() for _ in range(repeats)))
    reference = sorted(before() for _ in range(repeats))[repeats // 2]
    side.shutdown()
    case = f"move drop, {height * width / 1e6:.0f} MP"
    return with_ratios(
        Row(
            case,
            "UI thread held, side thread (ours)",
            sorted(held)[repeats // 2],
            None,
            note=f"longest timer gap; preview on hand after {sorted(ready)[repeats // 2]:.2f} s; "
            "the item is a fifth of the photo",
        ),
        Row(case, "preview + check on UI thread", reference, None),
    )


def drag_start_rows(height: int = 4000, width: int = 6000) -> list[Row]:
    """The UI thread's time as a drag (or a nudge, or a turn) begins: the cut-out of the
    dragged items that follows the pointer, at fit-to-view. Ours
    (``CanvasView._start_ghost``: one compare per item, the cut-out shrunk to the zoom)
    beside a full-size cut-out of ``np.isin`` of the items, as a naive canvas would. Both
    cover the same photo pixels (checked on the full-size masks)."""
    from PySide6.QtGui import QPixmap

    from dedit_app.project import Project
    from ui.document import Document
    from ui.imaging import cutout_image

    app = _app()
    rng = np.random.default_rng(5)
    photo = cv2.resize(rng.integers(0, 255, (48, 72, 3), dtype=np.uint8), (width, height))
    labels = np.zeros((height, width), np.int32)
    labels[height // 8 : 7 * height // 8, width // 12 : 5 * width // 12] = 1
    labels[height // 4 : 3 * height // 4, width // 2 : 11 * width // 12] = 2
    doc = Document(Project.new(photo, labels, ["background", "bag", "chair"]))
    view = _canvas_showing(app, doc)
    mp = f"{height * width / 1e6:.0f} MP"
    rows = []
    for items in ((1,), (1, 2)):
        boxes = [doc.bbox(i) for i in items]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        window = labels[y0 : y1 + 1, x0 : x1 + 1]
        mask = window == items[0]
        for other in items[1:]:
            mask |= window == other
        if not np.array_equal(mask, np.isin(window, items)):
            raise RuntimeError("the cut-out masks differ")

        def naive(items=items, box=(x0, y0, x1, y1)) -> None:
            a, b, c, d = box
            whole = np.isin(labels[b : d + 1, a : c + 1], items)
            QPixmap.fromImage(cutout_image(photo[b : d + 1, a : c + 1], whole))

        t_ours, _ = measure(lambda items=items: view._start_ghost(items), repeats=5)
        t_naive, _ = measure(naive, repeats=5)
        case = f"drag start, {len(items)} item{'s' if len(items) > 1 else ''}, {mp}"
        rows += with_ratios(
            Row(case, "cut-out at the zoom, a compare per item (ours)", t_ours, None),
            Row(case, "full-size cut-out of np.isin", t_naive, None),
        )
    view.ghost.setVisible(False)
    return rows


def late_rows(height: int = 4000, width: int = 6000, edge: float = 24.0) -> list[Row]:
    """An edit that lands after the picture changed while it ran, laid over the changes
    (``rebase.lay_onto``, on the side thread): ours works in the window around the edit;
    the reference applies the same rules over the whole frame with ``np.where``. Both
    must make the same picture."""
    from dedit_app import partition
    from dedit_app.rebase import lay_onto

    rng = np.random.default_rng(5)
    base = cv2.resize(rng.integers(0, 255, (48, 72, 3), dtype=np.uint8), (width, height))
    labels = np.zeros((height, width), np.int32)
    labels[height // 4 : 3 * height // 4, width // 3 : 3 * width // 4] = 1  # a fifth
    labels[:, : width // 6] = 2
    active = labels == 1
    _hard, soft = partition.edit_regions(active, edge)
    made = base.copy()
    made[active | soft] //= 2
    onto = base.copy()
    onto[labels == 2] = 255 - onto[labels == 2]  # another edit landed meanwhile

    def ours():
        return lay_onto((base, labels), (made, None), (active, soft, edge), (onto, labels))

    def full_frame():
        recoloured = (onto != base).any(axis=-1)
        paint = active | (soft & ~recoloured)
        image = np.where(paint[..., None], made, onto)
        deep = partition.distance_to(~active) > edge
        return image, int(np.count_nonzero(active & recoloured & deep))

    laid, (image, conflicts) = ours(), full_frame()
    same = np.array_equal(laid.image, image) and laid.conflicts == conflicts
    t, m = measure(ours, repeats=3)
    rt, rm = measure(full_frame, repeats=3)
    case = f"late edit laid over changes, {height * width / 1e6:.0f} MP"
    return with_ratios(
        Row(case, "window around the edit (ours)", t, m, note=f"same picture: {same}"),
        Row(case, "whole frame, np.where", rt, rm),
    )


# ----- UI stall while a job runs ---------------------------------------------------------


class _GapMeter:
    """Records the longest gap between ticks of a 5 ms timer on the UI thread."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.worst = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last)
        self.last = now

    def start(self) -> None:
        self.last, self.worst = None, 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def _segment_task(side: int):
    from ui.tasks import SegmentAuto, readonly
    from ui.testing import synthetic_scene

    image, _ = synthetic_scene(side, side)
    return SegmentAuto(readonly(image), ("bench", side, time.perf_counter()), "classical", ())


def _tiny_prepare_task(folder, steps: int):
    """A tiny-model preparation (``steps`` per stage) of a 256^2 scene, or None without the
    engine: real torch work on the worker thread."""
    from dedit_app.finetune import FinetuneOptions
    from dedit_app.project import Project
    from ui import engine
    from ui.testing import synthetic_scene

    if not engine.tiny_model_available():
        return None
    image, labels = synthetic_scene(256, 256)
    names = [f"item {k}" for k in range(int(labels.max()) + 1)]
    return engine.PrepareTask(
        engine.ModelSpec(str(engine.make_tiny_model(folder)), "cpu", "float32"),
        engine.snapshot(Project.new(image, labels, names)),
        None,
        FinetuneOptions(emb_steps=steps, model_steps=steps),
    )


def stall_rows(side: int = 1024, steps: int = 8) -> list[Row]:
    from dedit_app.jobs import JobState
    from ui.testing import wait_until
    from ui.worker import JobQueue, JobRequest, WorkerContext

    _app()
    rows: list[Row] = []
    jobs = JobQueue()
    tasks = [("segment 1024²", lambda: _segment_task(side))]
    folder = scratch_folder("dedit-bench-ui-")
    if _tiny_prepare_task(folder, steps) is not None:
        tasks.append(
            (f"tiny prepare, {2 * steps} steps", lambda: _tiny_prepare_task(folder, steps))
        )
    for name, make in tasks:
        meter = _GapMeter()
        meter.start()
        t0 = time.perf_counter()
        rec = jobs.submit(JobRequest(name, make()))
        # The UI thread idles in its event loop, as in the editor (a processEvents/sleep
        # spin would fight the worker for the GIL and measure something else).
        wait_until(lambda rec=rec: not rec.active, 3600, name)
        took = time.perf_counter() - t0
        worst = meter.stop()
        ok = rec.state is JobState.DONE
        # The reference: the same job on the UI thread, as a naive editor would run it.
        meter.start()
        task = make()
        QTimer_single_shot_run(task, WorkerContext())
        blocked = meter.stop()
        rows += with_ratios(
            Row(
                f"UI stall: {name}",
                "job on worker thread",
                worst,
                None,
                note=f"longest timer gap; job took {took:.2f} s; done={ok}; target < 0.05 s",
            ),
            Row(f"UI stall: {name}", "job on UI thread", blocked, None),
        )
    jobs.shutdown()
    return rows


def QTimer_single_shot_run(task, ctx) -> None:  # noqa: N802 - reads as what it does
    """Run a task to completion on this (the UI) thread while the gap meter's timer waits."""
    from PySide6.QtWidgets import QApplication

    from dedit_app.jobs import CancelToken, run_job

    QApplication.processEvents()
    out = task.run(ctx, CancelToken())
    if hasattr(out, "__next__"):
        run_job(out)
    QApplication.processEvents()


def run(profile: str) -> Iterator[Row]:
    yield from guarded("overlay", overlay_rows)
    yield from guarded("overlay 2x screen", lambda: overlay_rows(ratio=2))
    yield from guarded("stall", lambda: stall_rows(steps=20 if profile == "full" else 4))
    size = (4000, 6000) if profile == "full" else (2000, 3000)
    yield from guarded("landing", lambda: landing_rows(*size))
    yield from guarded("drop", lambda: drop_rows(*size))
    yield from guarded("drag start", lambda: drag_start_rows(*size))
    yield from guarded("screen colours", lambda: screen_colours.rows(profile))
    yield from guarded("photo levels", lambda: photo_levels.rows(profile))
    yield from guarded("late", lambda: late_rows(*size))
    yield from ui_files.run(profile, size)
    yield from guarded("undo", lambda: undo_memory.rows(profile))
    yield from guarded("history", lambda: history_disk.rows(profile))
    yield from guarded("far back", lambda: history_disk.far_rows(profile))
    yield from guarded("unsaved save", lambda: history_disk.save_rows(profile))
    yield from guarded("recovery", lambda: recovery_copies.rows(profile))
    yield from ui_cold.run(profile)
    if profile == "full":
        yield from guarded("overlay 8192", lambda: overlay_rows(side=8192, items=60))
