"""Fixtures for the editor window without models: an empty window, and one with a
synthetic photo open and a known partition. Registered in conftest.py."""

from __future__ import annotations

import threading

import pytest

NAMES = ["wall", "table", "bag", "ball"]


@pytest.fixture
def window(qtbot, tmp_path):
    from ui.testing import make_window

    w = make_window(tmp_path / "settings")
    qtbot.addWidget(w)
    yield w
    w.close()


@pytest.fixture
def scene(window, tmp_path):
    """The window with a synthetic photo open and a known partition (ids 0..3)."""
    from ui.testing import wait_idle, write_synthetic_photo

    photo = tmp_path / "scene.png"
    labels = write_synthetic_photo(photo)
    assert window.open_path(photo)
    wait_idle(window)
    window.doc.set_partition(labels, list(NAMES), "Known items")
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
