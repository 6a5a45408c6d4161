"""A large photo at 100 % on the canvas (:mod:`ui.photo_levels`): how long the UI thread
is held when the view zooms there for the first time, and when an edit lands there.

Ours makes a level too large for a frame on the canvas's own thread and draws what it
has meanwhile (a smaller level of the same picture, or the picture shown before); the
reference makes it where it is drawn (the same code with no thread), and a second one
also makes it as the canvas did before, with Qt's conversions. Each for a plain photo
and for a Display P3 one, whose levels are also turned into the screen's colours. All
are checked to end with the same pixels on screen.

    python scripts/bench.py ui [--quick | --full] --only "photo levels"
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from benchmarks.common import Row, with_ratios  # noqa: E402


def rows(profile: str) -> Iterator[Row]:
    from benchmarks.screen_colours import p3_profile, photo_and_edit
    from benchmarks.ui import _app, _GapMeter

    _app()
    photo, edited = photo_and_edit(profile)
    meter = _GapMeter()
    mp = f"{photo.shape[0] * photo.shape[1] / 1e6:g} MP"
    for kind, icc in (("plain", None), ("Display P3", p3_profile())):
        ours = _held(meter, photo, edited, icc, threaded=True)
        here = _held(meter, photo, edited, icc, threaded=False)
        with _qt_conversion():
            before = _held(meter, photo, edited, icc, threaded=False)
        for what in ("first view at 100 %", "edit lands at 100 %"):
            (gap, ready, shown), (ref, _, ref_shown) = ours[what], here[what]
            agree = np.array_equal(shown, ref_shown) and np.array_equal(shown, before[what][2])
            case = f"{what}, {kind} @{mp}"
            mine = Row(
                case,
                "large level on the canvas's thread (ours)",
                gap,
                None,
                note=f"longest UI-thread gap; sharp after {ready:.2f} s; agree={agree}",
            )
            yield from with_ratios(mine, Row(case, "made where it is drawn", ref, None))
            old = before[what][0]
            yield Row(
                case,
                "there, with Qt's conversions (before)",
                old,
                None,
                note=f"{old / gap:.2f}x the time ours holds the UI thread" if gap else "",
            )


@contextmanager
def _qt_conversion() -> Iterator[None]:
    """Levels made as before this module: a 24-bit RGB QImage copied, which Qt converts
    to its 32-bit format when it becomes a pixmap, on the UI thread."""
    from ui import photo_levels
    from ui.imaging import rgb_image

    made = photo_levels.screen_image
    photo_levels.screen_image = lambda rgb: (rgb_image(rgb), np.empty((0, 0, 4), np.uint8))
    try:
        yield
    finally:
        photo_levels.screen_image = made


def _held(meter, photo, edited, icc, threaded: bool, repeats: int = 3) -> dict:
    """``{case: (median longest UI-thread gap s, median s until sharp, last pixels)}``."""
    from dedit_app.project import Project
    from ui.canvas import CanvasView
    from ui.document import Document
    from ui.imaging import qimage_rgb

    labels = np.zeros(photo.shape[:2], np.int32)
    view = CanvasView()
    view.resize(1200, 800)
    view.show()
    if not threaded:
        view.photo._maker = None
    out = {}
    firsts, edits = [], []
    for _ in range(repeats):
        doc = Document(Project.new(photo, labels, ["all"], profile=icc))
        view.set_document(doc)  # fit-to-view: a small level
        view.viewport().grab()
        firsts.append(_gap(meter, view, view.actual_pixels))
        for picture in (edited, photo, edited)[:repeats]:  # an edit, its undo, again

            def land(doc=doc, picture=picture) -> None:
                doc.apply_result(picture, labels, {"kind": "text"}, "edit")

            edits.append(_gap(meter, view, land))
    shown = qimage_rgb(view.viewport().grab().toImage())
    for name, runs in (("first view at 100 %", firsts), ("edit lands at 100 %", edits)):
        gaps = sorted(g for g, _ in runs)
        readies = sorted(r for _, r in runs)
        out[name] = (gaps[len(gaps) // 2], readies[len(readies) // 2], shown)
    view.shutdown()
    view.close()
    return out


def _gap(meter, view, action: Callable[[], None]) -> tuple[float, float]:
    """(longest UI-thread gap, seconds until the sharp picture was drawn) while ``action``
    runs on the UI thread and the view repaints until its photo is ready."""
    from PySide6.QtCore import QTimer

    from ui.testing import wait_until

    done: list[float] = []

    def act() -> None:
        t0 = time.perf_counter()
        action()
        view.viewport().grab()  # the repaint the change asks for, now
        done.append(t0)

    meter.start()
    wait_until(lambda: meter.last is not None, 5, "the gap meter")
    QTimer.singleShot(0, act)
    wait_until(lambda: bool(done) and view.photo.ready(), 60, "the photo's level")
    view.viewport().grab()  # the repaint its coming asks for
    took = time.perf_counter() - done[0]
    return meter.stop(), took
