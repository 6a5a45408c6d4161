"""Fixtures for the editor window: an empty window, one with a synthetic photo open and a
known partition, and (with the tiny random SDXL) one with that photo prepared and open.
Registered in conftest.py."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

NAMES = ["wall", "table", "bag", "ball"]


def _new_window(qtbot, tmp_path: Path):
    from ui.testing import make_window

    w = make_window(tmp_path / "settings")
    qtbot.addWidget(w)
    return w


@pytest.fixture
def window(qtbot, tmp_path):
    w = _new_window(qtbot, tmp_path)
    yield w
    w.close()


def open_scene(window, tmp_path: Path) -> np.ndarray:
    """Open a synthetic photo in ``window`` and give it a known partition (ids 0..3, named
    NAMES); returns that ``(H, W)`` item map."""
    from ui.testing import wait_idle, write_synthetic_photo

    photo = tmp_path / "scene.png"
    labels = write_synthetic_photo(photo)
    assert window.open_path(photo)
    wait_idle(window)
    window.doc.set_partition(labels, list(NAMES), "Known items")
    return labels


@pytest.fixture
def scene(window, tmp_path):
    """The window with a synthetic photo open and a known partition (ids 0..3)."""
    labels = open_scene(window, tmp_path)
    window.doc.undo.clear()
    return window, labels


def count_where(monkeypatch) -> list[threading.Thread]:
    """The threads that count items' pixels (``partition.item_areas``, wherever it was
    imported) from now on: the tests that the UI thread is spared the counting read it."""
    from dedit_app import partition
    from ui import files, tasks

    counted, original = [], partition.item_areas

    def item_areas(*args):
        counted.append(threading.current_thread())
        return original(*args)

    for module in (partition, files, tasks):
        monkeypatch.setattr(module, "item_areas", item_areas)
    return counted


def tiny_settings(model: Path, **changes):
    """Editor settings for the tiny model: one training step each, two sampling steps,
    two candidates, on the CPU."""
    from ui.settings import EditorSettings

    base = EditorSettings(
        model=str(model),
        device="cpu",
        precision="float32",
        emb_steps=1,
        model_steps=1,
        steps=2,
        candidates=2,
        seed=1,
        edge=4,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="session")
def prepared_bundle(tiny_sdxl_path, tmp_path_factory) -> Path:
    """A project of the synthetic scene, prepared on the tiny model (through the same task
    the window queues) and saved: tests copy it instead of training again."""
    from dedit_app.jobs import CancelToken, run_job
    from dedit_app.project import Project
    from ui import engine
    from ui.testing import synthetic_scene
    from ui.worker import WorkerContext

    image, labels = synthetic_scene()
    project = Project.new(image, labels, list(NAMES), source="scene.png")
    task = engine.prepare_task(project, tiny_settings(tiny_sdxl_path))
    result = run_job(task.run(WorkerContext(), CancelToken()))
    engine.store_prepared(project, result)
    folder = tmp_path_factory.mktemp("bundle") / "scene.dedit"
    project.save(folder)
    return folder


@pytest.fixture
def tiny_window(qtbot, tmp_path, tiny_sdxl_path):
    """An empty window set to edit with the tiny model (modules that edit name it
    ``window``)."""
    w = _new_window(qtbot, tmp_path)
    w.apply_settings(tiny_settings(tiny_sdxl_path))
    yield w
    w.close()


@pytest.fixture
def opened(tiny_window, prepared_bundle, tmp_path):
    """The tiny-model window with a copy of the prepared scene open."""
    copy = tmp_path / "scene.dedit"
    shutil.copytree(prepared_bundle, copy)
    assert tiny_window.open_path(copy)
    assert tiny_window.editing.prepared(), tiny_window.prepare_panel.status.text()
    return tiny_window


def outside_edit(active, edge: int):
    """The pixels an edit of ``active`` (``(H, W)`` bool) with a soft edge of ``edge``
    pixels must leave exactly as they were."""
    from dedit_app import partition

    hard, _soft = partition.edit_regions(active, edge)
    return hard


def brush_at_bag_edge(window, labels, spans, *, item: int = 2, size: int = 4) -> None:
    """Select ``item`` (a click inside it), take a brush of ``size`` pixels and paint it
    along the row through the middle of the scene's bag (item 2), one stroke per
    ``(start, end)`` of ``spans``, in pixels right of the bag's right edge."""
    from ui.canvas import Tool
    from ui.testing import click, drag, inner_pixel

    _bx, by = inner_pixel(labels, 2)
    click(window.canvas, *inner_pixel(labels, item))
    window.set_tool(Tool.BRUSH)
    window._set_brush_size(size)
    right = int(np.nonzero(labels[by] == 2)[0].max())
    for start, end in spans:
        drag(window.canvas, [(right + start, by), (right + end, by)])


def tight_undo_budget(doc, scratch: Path) -> int:
    """Let ``doc`` keep in RAM, for undo, no more than one picture and one item map of its
    own size, moving the rest to files in ``scratch``; returns that budget in bytes."""
    doc.budget = doc.image.nbytes + doc.labels.nbytes
    doc.scratch = scratch
    return doc.budget


def land_edits(doc, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Apply ``count`` edits as results land (every other one with a new item map, as a
    move's), a brush stroke after the second and a merge after the third; then wait for
    the pictures the undo budget moves to files. Returns a copy of ``(image, labels)`` of
    every state from the one before the first edit to the last, undo's order reversed."""
    states = [(doc.image.copy(), doc.labels.copy())]
    for k in range(count):
        image = doc.image.copy()
        image[k % image.shape[0]] = 40 * k % 256
        labels = doc.labels
        if k % 2:
            labels = labels.copy()
            labels[k : k + 6, : 30 + k] = 0
        doc.apply_result(image, labels, {"kind": "recon"}, f"Edit {k}")
        states.append((doc.image.copy(), doc.labels.copy()))
        if k == 1:
            x, y = (int(v) for v in np.argwhere(doc.labels == 1)[0][::-1])
            doc.paint([(x + 0.5, y + 0.5)], 4, 2)
            states.append((doc.image.copy(), doc.labels.copy()))
        if k == 2:
            doc.merge((1, 3))
            states.append((doc.image.copy(), doc.labels.copy()))
        doc.settle_memory()
    return states


def before_edit(k: int) -> int:
    """The index in :func:`land_edits`'s states of the one edit ``k`` was applied to (the
    stroke and the merge are states of their own)."""
    return k + (k >= 2) + (k >= 3)


def undo_arrays(doc) -> list[np.ndarray]:
    """Every picture and item map the document's undo steps and history hold."""
    found = []
    for k in range(doc.undo.count()):
        cmd = doc.undo.command(k)
        for state in (cmd.before, cmd.after):
            found += [state.image, state.labels]
            for record in state.history:
                found += record.get("_before") or ()
        found += [cmd.drawn, cmd.drawn_before]
    return found


def bytes_in_memory(arrays) -> int:
    """Bytes of the distinct ``arrays`` held in RAM (mapped files left out)."""
    from dedit_app.spill import file_backed

    distinct = {id(a): a for a in arrays if a is not None and not file_backed(a)}
    return sum(a.nbytes for a in distinct.values())


def assert_holds_history(saved, states, edits: int) -> None:
    """``saved`` (a Project loaded from a save or a recovery copy) shows the last of
    :func:`land_edits`'s ``states`` and holds each of its ``edits`` earlier pictures and
    item maps exactly."""
    np.testing.assert_array_equal(saved.image, states[-1][0])
    assert len(saved.history) == edits
    for k, record in enumerate(saved.history):
        image, labels = saved.snapshot(record)
        np.testing.assert_array_equal(image, states[before_edit(k)][0])
        np.testing.assert_array_equal(labels, states[before_edit(k)][1])
