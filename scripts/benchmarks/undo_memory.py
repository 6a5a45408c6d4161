"""RAM that undo holds while a designer edits a large photo, bounded and not.

Opens a photo in ``ui.document.Document`` and lands edits the way the editor does
(``Document.apply_result``: a new picture each time, every other one with a new item map
as a move brings), with a brush stroke and a merge after every fifth. Ours keeps what
only undo holds within ``UNDO_RAM_BUDGET`` and moves the rest into mapped files
(:mod:`dedit_app.spill`); the reference is the same document with no bound, as before,
run in the same process on the same edits. Both are undone to the start and checked to
give the photo and its item map back byte for byte.

    python scripts/bench.py ui --only undo [--quick | --full]

``--quick``: 3000 x 2000, 16 edits, a 256 MB budget (so that it is reached);
``--full``: 6000 x 4000, 40 edits, the editor's own 1 GiB budget. The seconds are the UI
thread's for the landings; "peak MB" is the growth of the process's own RAM (RssAnon, not
the pages of mapped files, which the system may drop at will) after the last edit.

Then each is undone a step at a time to the start, every step's picture and item map read
once as the canvas and the items list read them: the slowest step of ours is one whose
pictures come back from their files. Run as root, the system's file cache is emptied
first (``/proc/sys/vm/drop_caches``), so those reads are cold, from the disk; otherwise
the note says they may have been served from the cache.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import Row, with_ratios  # noqa: E402


def _anon_mb() -> float:
    """The process's anonymous RSS in MB (Linux); NaN elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _photo(height: int, width: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
    photo = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    labels = np.zeros((height, width), np.int32)
    for k in range(1, 6):
        labels[k * height // 8 : (k + 2) * height // 8, k * width // 8 : (k + 1) * width // 8] = k
    return photo, labels, [f"item {k}" for k in range(6)]


def _edit(doc, n: int) -> None:
    """Land edit ``n`` (1-based) as the editor does, and a stroke and a merge every fifth."""
    h, w = doc.labels.shape
    edited = doc.image.copy()
    edited[(n * 97) % h] = (n * 40) % 256  # one row changed: a new picture
    labels = doc.labels
    if n % 2 == 0:  # a move: a new item map too
        labels = doc.labels.copy()
        y = (n * 131) % (h - 200)
        labels[y : y + 200, 100:400] = 1
    doc.apply_result(edited, labels, {"kind": "move" if n % 2 == 0 else "text"}, f"edit {n}")
    if n % 5 == 0:
        seen = doc.visible_items()
        doc.paint([(w / 2, h / 2), (w / 2 + 300, h / 2 + 100)], 40.0, seen[-1])
        if len(seen) > 2:
            doc.merge((seen[-2], seen[-1]))


def _drop_file_cache() -> bool:
    """Empty the system's file cache (Linux, as root): True when it was."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    return True


def _read_once(*arrays: np.ndarray) -> None:
    """Touch every byte, as drawing the picture and counting the items do."""
    for array in arrays:
        int(array.sum(dtype=np.uint64))


def _run(
    height: int, width: int, edits: int, budget: int | None
) -> tuple[float, float, list[float], bool]:
    """``(UI-thread seconds for the edits, MB of RAM grown, seconds of each undo step,
    whether the file cache was emptied first)`` for one document, undone to the start and
    checked to be exact. ``budget`` None: no bound (the reference)."""
    from dedit_app.project import Project
    from ui.document import Document

    photo, labels, names = _photo(height, width)
    first = (photo.copy(), labels.copy())
    with tempfile.TemporaryDirectory(prefix="dedit-bench-undo-") as scratch:
        doc = Document(
            Project.new(photo, labels, names),
            budget=budget if budget is not None else 1 << 62,
            scratch=Path(scratch),
        )
        del photo, labels
        gc.collect()
        before = _anon_mb()
        took = 0.0
        for n in range(1, edits + 1):
            start = time.perf_counter()
            _edit(doc, n)
            took += time.perf_counter() - start
            doc.settle_memory()  # the editor's event loop puts the files in place
        gc.collect()
        grown = _anon_mb() - before
        cold = _drop_file_cache()
        steps = []
        while doc.undo.canUndo():
            start = time.perf_counter()
            doc.undo.undo()
            _read_once(doc.image, doc.labels)
            steps.append(time.perf_counter() - start)
        if not (np.array_equal(doc.image, first[0]) and np.array_equal(doc.labels, first[1])):
            raise AssertionError("undo to the start did not give the photo back exactly")
        doc.deleteLater()
        del doc
        gc.collect()
    return took, grown, steps, cold


def rows(profile: str) -> list[Row]:
    from PySide6.QtCore import QCoreApplication

    from ui.document import UNDO_RAM_BUDGET

    _app = QCoreApplication.instance() or QCoreApplication([])
    full = profile == "full"
    height, width, edits = (4000, 6000, 40) if full else (2000, 3000, 16)
    budget = UNDO_RAM_BUDGET if full else 256 << 20
    ours = _run(height, width, edits, budget)
    unbounded = _run(height, width, edits, None)
    case = f"undo RAM, {edits} edits @{height * width / 1e6:.0f} MP"
    note = (
        f"RAM {ours[1]:.0f} MB vs {unbounded[1]:.0f} MB "
        f"({unbounded[1] / max(ours[1], 1):.1f}x less); undo exact"
    )
    undo_case = f"undo a step, the slowest of {len(ours[2])}"
    cache = "file cache emptied first" if ours[3] else "not root: files may be cached"
    undo_note = f"median {1000 * float(np.median(ours[2])):.0f} ms; {cache}"
    return [
        *with_ratios(
            Row(case, f"budget {budget >> 20} MB, rest in files", ours[0], ours[1], note=note),
            Row(case, "no bound (before)", unbounded[0], unbounded[1]),
        ),
        *with_ratios(
            Row(undo_case, "from files when spilled", max(ours[2]), None, note=undo_note),
            Row(
                undo_case,
                "all in RAM (before)",
                max(unbounded[2]),
                None,
                note=f"median {1000 * float(np.median(unbounded[2])):.0f} ms",
            ),
        ),
    ]
