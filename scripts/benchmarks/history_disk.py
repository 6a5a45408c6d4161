"""Disk that a project's history takes, and the saves that write it, with earlier pictures
kept as the box their edit changed (ours) and kept whole (before).

A photo with a little sensor-like noise (so its PNG is about as large as a photo's) gets
edits that each repaint a box of a ninth of it, at another place each time, and the
project is saved after every edit as a designer saving now and then would. Ours keeps the
picture before each edit after the first as the box that edit changed
(:mod:`dedit_app.picture_patches`); the reference is the same project saved with every
earlier picture whole, as saves did before, in the same process on the same edits. Both
are read back and every earlier picture checked byte for byte.

    python scripts/bench.py ui --only history [--quick | --full]

``--quick``: 1500 x 1000, 4 edits; ``--full``: 6000 x 4000, 10 edits. The seconds are the
saves' together; "peak MB" is the bundle's size on disk after the last save.

:func:`far_rows` goes back far: 100 edits (``--quick``: 40 of 1.5 MP), saved after
every 8th, then the picture before edit 2 read back from the project opened again. Ours
keeps a whole picture every 32 edits (:data:`dedit_app.project.BOXES_BETWEEN_WHOLE`);
the reference keeps every picture after the photo as a box alone, as saves did before.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks.common import Row, grainy_photo, with_ratios


def bag_photo_project(height: int, width: int):
    """A new project of a grainy ``height`` x ``width`` photo with two items (background,
    bag), for the edits of
    :func:`repaint_ninth`."""
    from dedit_app.partition import check_labels
    from dedit_app.project import Project

    photo = grainy_photo(height, width, grain=6)
    labels = check_labels(np.zeros((height, width), np.int32))
    labels[height // 4 : height // 2, width // 4 : width // 2] = 1
    return Project.new(photo, labels, ["background", "bag"])


def repaint_ninth(project, n: int) -> None:
    """Repaint a box of a ninth of the picture (a handbag recoloured), at place ``n``.
    Every pixel of the box changes, however many edits came before (an added value
    would stop at white, and the edits after would change nothing)."""
    h, w = project.labels.shape
    top, left = (n % 3) * h // 3, ((n // 3) % 3) * w // 3
    image = project.image.copy()
    box = image[top : top + h // 3, left : left + w // 3]
    np.bitwise_xor(box, np.uint8(37 * n % 255 + 1), out=box)
    project.apply(image, project.labels, {"kind": "text", "item": 1, "prompt": f"look {n}"})


def forget_names() -> None:
    """Drop every remembered box and content name: the next save works them out again."""
    from dedit_app import bundle_files, picture_patches

    picture_patches._KNOWN.clear()
    bundle_files._NAMES.clear()


@contextmanager
def _whole_pictures():
    """Saves as before: every earlier picture written whole."""
    from dedit_app.project import Project

    held = Project._held_history
    Project._held_history = lambda self: [(k, b, None, True) for k, b, *_ in held(self)]
    try:
        yield
    finally:
        Project._held_history = held


@contextmanager
def _boxes_only():
    """Saves as before whole pictures were kept now and then: every box laid in."""
    from dedit_app import project as project_module

    every = project_module.BOXES_BETWEEN_WHOLE
    project_module.BOXES_BETWEEN_WHOLE = 1 << 30
    try:
        yield
    finally:
        project_module.BOXES_BETWEEN_WHOLE = every


def _run(height: int, width: int, edits: int) -> tuple[float, float, float]:
    """``(seconds of the saves, MB on disk, seconds to read back the picture before the
    second edit)`` for one project, its earlier pictures checked exactly."""
    from dedit_app.project import Project

    project = bag_photo_project(height, width)
    pictures = [project.image]
    saving = 0.0
    with tempfile.TemporaryDirectory(prefix="dedit-bench-history-") as scratch:
        folder = Path(scratch) / "history.dedit"
        for n in range(edits):
            repaint_ninth(project, n)
            pictures.append(project.image)
            start = time.perf_counter()
            project.save(folder)
            saving += time.perf_counter() - start
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        saved = Project.load(folder)
        start = time.perf_counter()
        second = saved.snapshot(saved.history[1])[0]
        reading = time.perf_counter() - start
        if not np.array_equal(second, pictures[1]):
            raise AssertionError("the picture before the second edit did not come back exactly")
        for k, record in enumerate(saved.history):
            if not np.array_equal(saved.snapshot(record)[0], pictures[k]):
                raise AssertionError(f"the picture before edit {k + 1} did not come back exactly")
    return saving, size, reading


def rows(profile: str) -> list[Row]:
    full = profile == "full"
    height, width, edits = (4000, 6000, 10) if full else (1000, 1500, 4)
    ours = _run(height, width, edits)
    with _whole_pictures():
        whole = _run(height, width, edits)
    case = f"history on disk, {edits} edits @{height * width / 1e6:g} MP"
    note = (
        f"{ours[1]:.0f} MB vs {whole[1]:.0f} MB on disk ({whole[1] / max(ours[1], 1e-9):.1f}x "
        f"less); picture before edit 2 read back in {ours[2]:.2f} s vs {whole[2]:.2f} s; exact"
    )
    return with_ratios(
        Row(case, "boxes an edit changed", ours[0], ours[1], note=note),
        Row(case, "whole pictures (before)", whole[0], whole[1]),
    )


def _far(height: int, width: int, edits: int, checked: tuple[int, ...]) -> tuple[float, float]:
    """``(seconds to read back the picture before edit 2, MB on disk)`` after ``edits``
    edits saved every 8th; the pictures before the edits numbered ``checked`` (from 1,
    2 among them) are compared byte for byte."""
    from dedit_app.project import Project

    project = bag_photo_project(height, width)
    kept = {}
    with tempfile.TemporaryDirectory(prefix="dedit-bench-far-") as scratch:
        folder = Path(scratch) / "far.dedit"
        for n in range(edits):
            if n + 1 in checked:
                kept[n + 1] = project.image  # the picture before edit n + 1
            repaint_ninth(project, n)
            if (n + 1) % 8 == 0 or n + 1 == edits:
                project.save(folder)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        saved = Project.load(folder)
        start = time.perf_counter()
        second = saved.snapshot(saved.history[1])[0]
        reading = time.perf_counter() - start
        for number in checked:
            picture = second if number == 2 else saved.snapshot(saved.history[number - 1])[0]
            if not np.array_equal(picture, kept[number]):
                raise AssertionError(f"the picture before edit {number} did not come back exactly")
    return reading, size


def far_rows(profile: str) -> list[Row]:
    full = profile == "full"
    height, width, edits = (4000, 6000, 100) if full else (1000, 1500, 40)
    checked = tuple(sorted({2, 32, 33, edits // 2, edits}))
    ours = _far(height, width, edits, checked)
    with _boxes_only():
        boxes = _far(height, width, edits, checked)
    case = f"going back to before edit 2 of {edits} @{height * width / 1e6:g} MP"
    note = f"{ours[1]:.0f} MB vs {boxes[1]:.0f} MB on disk; edits {checked} checked exactly"
    return with_ratios(
        Row(case, "a whole picture every 32 edits", ours[0], ours[1], note=note),
        Row(case, "every one a box (before)", boxes[0], boxes[1]),
    )


def _save_after(height: int, width: int, edits: int, threads: int) -> tuple[float, float]:
    """``(seconds, MB)`` of a save after ``edits`` unsaved edits, written as the editor
    writes them (:meth:`Project.write_pictures` ahead of :meth:`Project.save`) on
    ``threads`` threads, with no content name or box remembered from before."""
    from dedit_app import project as project_module

    project = bag_photo_project(height, width)
    for n in range(edits):
        repaint_ninth(project, n)
    for array in _arrays(project):
        array.flags.writeable = False  # as the editor holds them: names can be remembered
    second = project.history[1]["_before"][0]  # the picture before edit 2
    forget_names()
    threads_before, project_module.PICTURE_THREADS = project_module.PICTURE_THREADS, threads
    try:
        with tempfile.TemporaryDirectory(prefix="dedit-bench-save-") as scratch:
            folder = Path(scratch) / "saved.dedit"
            start = time.perf_counter()
            project.make_folder(folder)
            project_module.Project.write_pictures(folder, project.pictures())
            project.save(folder)
            seconds = time.perf_counter() - start
            size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            saved = project_module.Project.load(folder)
            if not np.array_equal(saved.snapshot(saved.history[1])[0], second):
                raise AssertionError("the picture before edit 2 did not come back exactly")
    finally:
        project_module.PICTURE_THREADS = threads_before
    return seconds, size


def _arrays(project) -> list[np.ndarray]:
    """The picture, the map, and each earlier picture and map the history holds, newest
    last."""
    found = [project.image, project.labels]
    for record in project.history:
        found += record["_before"]
    return found


def save_rows(profile: str) -> list[Row]:
    from dedit_app import project as project_module

    full = profile == "full"
    height, width, edits = (4000, 6000, 10) if full else (1000, 1500, 6)
    threads = project_module.PICTURE_THREADS
    ours = _save_after(height, width, edits, threads)
    one = _save_after(height, width, edits, 1)
    case = f"save after {edits} unsaved edits @{height * width / 1e6:g} MP"
    note = f"{ours[1]:.0f} MB; the picture before edit 2 read back exactly"
    return with_ratios(
        Row(case, f"pictures written {threads} at a time", ours[0], ours[1], note=note),
        Row(case, "one at a time (before)", one[0], one[1]),
    )
