"""What a recovery copy costs the files thread after many unsaved edits of a large photo.

The editor keeps a copy of unsaved work beside itself (:mod:`ui.recovery`), rewritten five
seconds after each edit lands. Every unsaved edit's earlier picture is held in memory,
so each copy must name them all: the box each edit changed is found, cropped and hashed
once per pair of pictures and then remembered (:mod:`dedit_app.picture_patches`), and
files already in the copy's folder are not written again. So the copy after edit N writes
edit N's box and the new picture, however many edits came before it. The reference is the
same last copy written with nothing remembered and into an empty folder: what every copy
would cost if each named and wrote the whole history again, and what the first copy costs
when a restored session already holds many edits.

    python scripts/bench.py ui --only recovery [--quick | --full]

``--quick``: 1500 x 1000, 8 edits; ``--full``: 6000 x 4000, 40 edits (the copies of the
first, the middle and the last edit are timed; the rest are written untimed). The seconds
are the files thread's for one copy; "peak MB" is the copy's size on disk.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Row, with_ratios
from benchmarks.history_disk import bag_photo_project, forget_names, repaint_ninth


def _copy(slot: Path, project) -> float:
    """Seconds to write ``project``'s recovery copy into ``slot``, as the editor does."""
    from ui.recovery import write_copy

    start = time.perf_counter()
    write_copy(slot, project.job_copy(history=True), {"home": None}, None)
    return time.perf_counter() - start


def rows(profile: str) -> list[Row]:
    from dedit_app.project import Project

    full = profile == "full"
    height, width, edits = (4000, 6000, 40) if full else (1000, 1500, 8)
    project = bag_photo_project(height, width)
    for array in (project.image, project.labels):
        array.flags.writeable = False  # as the editor holds them: names can be remembered
    timed: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="dedit-bench-recovery-") as scratch:
        slot = Path(scratch) / "slot.dedit"
        for n in range(edits):
            repaint_ninth(project, n)
            project.image.flags.writeable = False
            seconds = _copy(slot, project)
            if n in (0, edits // 2, edits - 1):
                timed[n + 1] = seconds
        size = sum(p.stat().st_size for p in slot.iterdir()) / 1e6
        forget_names()
        fresh = Path(scratch) / "fresh.dedit"
        whole = _copy(fresh, project)
        if Project.load(slot).history != Project.load(fresh).history:
            raise AssertionError("the two copies do not hold the same history")
        restored = Project.load(slot)
        if not np.array_equal(restored.snapshot(restored.history[1])[0], _before(project, 1)):
            raise AssertionError("the copy does not give the picture before edit 2 back")
    case = f"recovery copy after {edits} unsaved edits @{height * width / 1e6:.3g} MP"
    first, middle = timed[1], timed[edits // 2 + 1]
    note = (
        f"copy after edit 1: {first:.2f} s, after edit {edits // 2 + 1}: {middle:.2f} s; "
        f"{size:.0f} MB; picture before edit 2 read back exactly"
    )
    return with_ratios(
        Row(case, "names remembered, files kept (ours)", timed[edits], size, note=note),
        Row(case, "everything named and written again", whole, size),
    )


def _before(project, k: int) -> np.ndarray:
    """The picture before edit ``k + 1``, as the project holds it in memory."""
    return project.history[k]["_before"][0]
