"""Fixtures for the editor window without models: an empty window, and one with a
synthetic photo open and a known partition. Registered in conftest.py."""

from __future__ import annotations

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
