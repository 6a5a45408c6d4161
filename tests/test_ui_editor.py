"""The real editor window, driven like a designer would: open, click, brush, erase, merge,
rename, undo, save, reopen; and the errors a designer can cause."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from editor_fixtures import (  # noqa: E402
    brush_at_bag_edge,
    bytes_in_memory,
    land_edits,
    tight_undo_budget,
    undo_arrays,
)
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from dedit_app import partition, spill  # noqa: E402
from dedit_app.errors import ItemError  # noqa: E402
from dedit_app.imageio import load_image, save_image  # noqa: E402
from ui.canvas import Tool  # noqa: E402
from ui.canvas_gestures import MIN_RESIZED_SIDE, REF_ITEM_MIME, shift_words  # noqa: E402
from ui.items_panel import ITEM_ROLE, LIST_MIN_ROWS, ItemDelegate  # noqa: E402
from ui.testing import (  # noqa: E402
    click,
    drag,
    inner_pixel,
    make_window,
    view_point,
    wait_idle,
    wait_until,
    write_synthetic_photo,
)


def selected_rows(window) -> list[int]:
    return sorted(r.data(ITEM_ROLE) for r in window.items_panel.list.selectedItems())


# ----- opening and selecting -------------------------------------------------------------


def test_open_the_example_then_click_an_item_to_select_it(window, reference_dir, qtbot):
    assert window.open_path(reference_dir / "image.png")
    assert window.doc.image.shape == (1024, 1024, 3)
    wait_idle(window)
    doc = window.doc
    assert window.message_text() == ""
    visible = doc.visible_items()
    assert len(visible) >= 2, "the default segmenter should find several items"
    # Every pixel belongs to a listed item.
    assert set(np.unique(doc.labels)) == set(visible)
    assert window.items_panel.list.count() == len(visible)
    # The largest item: click deep inside it on the canvas.
    item = int(np.argmax(doc.counts))
    x, y = inner_pixel(doc.labels, item)
    QTest.mouseMove(window.canvas.viewport(), view_point(window.canvas, x, y))
    qtbot.waitUntil(lambda: doc.hover == item, timeout=2000)
    click(window.canvas, x, y)
    assert doc.selection == (item,)
    assert selected_rows(window) == [item]
    assert window.items_panel.name_edit.text() == doc.items[item].name


def test_a_photo_of_one_colour_is_found_as_one_item_in_the_singular(window, tmp_path):
    photo = tmp_path / "plain.png"
    save_image(photo, np.full((60, 80, 3), 140, np.uint8))
    assert window.open_path(photo)
    wait_idle(window)
    assert len(window.doc.visible_items()) == 1
    assert window.status_message.text().startswith("Found 1 item. Click one")
    assert window.items_panel.count_label.text() == "1 item"


def test_canvas_and_list_selection_stay_in_sync(scene):
    window, labels = scene
    doc = window.doc
    click(window.canvas, *inner_pixel(labels, 2))
    assert doc.selection == (2,) and selected_rows(window) == [2]
    click(window.canvas, *inner_pixel(labels, 3), modifiers=Qt.KeyboardModifier.ControlModifier)
    assert doc.selection == (2, 3) and selected_rows(window) == [2, 3]
    # A double-click selects the item alone, ready to retype its prompt.
    field = window.items_panel.prompt_edit
    assert QApplication.focusWidget() is not field
    QTest.mouseDClick(
        window.canvas.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        view_point(window.canvas, *inner_pixel(labels, 3)),
    )
    assert doc.selection == (3,) and QApplication.focusWidget() is field
    assert field.selectedText() == field.text()  # typing replaces the old prompt
    # Picking a row in the list selects on the canvas (handles follow a single item).
    lst = window.items_panel.list
    row = next(lst.item(i) for i in range(lst.count()) if lst.item(i).data(ITEM_ROLE) == 1)
    QTest.mouseClick(
        lst.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        lst.visualItemRect(row).center(),
    )
    assert doc.selection == (1,)
    assert window.canvas.handles.isVisible()
    x0, y0, x1, y1 = doc.bbox(1)
    assert window.canvas.handles.rect.width() == x1 - x0 + 1


def test_opening_a_non_image_shows_a_message_and_changes_nothing(scene, tmp_path):
    window, labels = scene
    doc = window.doc
    image, lab, items = doc.image, doc.labels, list(doc.items)
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture")
    assert not window.open_path(fake)
    message = window.message_text()
    assert "holiday.png" in message
    assert window.message_bar.level == "error"
    assert window.doc is doc and doc.image is image and doc.labels is lab
    assert doc.items == items
    missing = tmp_path / "nowhere.dedit"
    assert not window.open_path(missing)
    assert "nowhere.dedit" in window.message_text()
    assert window.doc is doc


# ----- refining, with exact undo ------------------------------------------------------------


def test_brush_and_eraser_change_the_item_and_undo_restores_exactly(scene):
    window, labels = scene
    doc = window.doc
    original = doc.labels
    bx, by = inner_pixel(labels, 2)
    click(window.canvas, bx, by)
    window.set_tool(Tool.BRUSH)
    window._set_brush_size(5)
    # Paint from the bag to the right, across the wall.
    drag(window.canvas, [(bx, by), (bx + 40, by), (bx + 80, by)])
    painted = doc.labels
    grew = (painted == 2) & (original != 2)
    assert grew.sum() > 100
    assert (painted[by, bx + 60] == 2) and original[by, bx + 60] != 2
    assert set(np.unique(painted[painted != original])) == {2}
    # Erase part of it again.
    window.set_tool(Tool.ERASER)
    drag(window.canvas, [(bx + 60, by), (bx + 80, by)])
    erased = doc.labels
    assert erased[by, bx + 70] != 2
    assert (erased != painted).sum() > 0
    # Undo twice: exactly the original label map, the very same array.
    window.act_undo.trigger()
    assert doc.labels is painted
    window.act_undo.trigger()
    assert doc.labels is original
    window.act_redo.trigger()
    np.testing.assert_array_equal(doc.labels, painted)


def assert_undo_and_redo_bring_back(window, states) -> None:
    """Undo from the last of ``states`` (``(image, labels)``, as :func:`land_edits` gives
    them) to the first, then redo to the last: each exactly, byte for byte."""
    doc = window.doc
    for image, labels in reversed(states[:-1]):
        window.act_undo.trigger()
        np.testing.assert_array_equal(doc.image, image)
        np.testing.assert_array_equal(doc.labels, labels)
    assert not doc.undo.canUndo()
    for image, labels in states[1:]:
        window.act_redo.trigger()
        np.testing.assert_array_equal(doc.image, image)
        np.testing.assert_array_equal(doc.labels, labels)


def test_pictures_undo_keeps_beyond_its_budget_go_to_files_and_come_back_exactly(scene, tmp_path):
    window, _labels = scene
    doc = window.doc
    scratch = tmp_path / "scratch"
    budget = tight_undo_budget(doc, scratch)
    states = land_edits(doc, 8)  # 8 pictures, 6 maps: without a bound they all stay
    shown = doc.image.nbytes + doc.labels.nbytes
    assert bytes_in_memory(undo_arrays(doc)) <= budget + shown
    assert bytes_in_memory(undo_arrays(doc)) < bytes_in_memory(s for st in states for s in st)
    assert any(spill.file_backed(a) for a in undo_arrays(doc) if a is not None)
    if os.name == "posix":
        assert list(scratch.iterdir()) == []  # each file unlinked once mapped
    assert_undo_and_redo_bring_back(window, states)
    assert window.message_text() == ""
    # The editor's own event loop puts the files in place, with no one waiting for them.
    doc.apply_result(255 - doc.image, doc.labels, {"kind": "recon"}, "Invert")
    wait_until(lambda: bytes_in_memory(undo_arrays(doc)) <= budget + shown, 10, "spilled")


def test_item_maps_no_step_holds_any_more_are_not_kept_as_prepared(scene, tmp_path):
    """Each move or removal from the prepared map makes a map the weights still fit; once
    undo has let go of those steps, and a save the history's, they cannot come back, and
    were kept all session."""
    import gc

    window, _labels = scene
    doc = window.doc
    first = doc.labels  # held here, as no step will
    doc.prepared_on(first)
    for k in range(4):
        labels = doc.labels.copy()
        labels[k : k + 6, :30] = 0
        doc.apply_result(doc.image.copy(), labels, {"kind": "move"}, f"Move {k}")
    assert len(doc.prepared_labels) == 5 and not doc.refined_since_prepare
    doc.undo.clear()  # as undo's hundred-step limit lets the oldest go
    doc.save(tmp_path / "saved.dedit")  # the history's earlier maps are in files now
    gc.collect()
    left = doc.prepared_labels
    assert len(left) == 2 and left[0] is first and left[1] is doc.labels
    assert not doc.refined_since_prepare
    doc.paint([(5.5, 5.5)], 4, 2)  # still told apart from a map changed by hand
    assert doc.refined_since_prepare


def test_pictures_stay_in_memory_when_their_files_cannot_be_written(scene, tmp_path, monkeypatch):
    window, _labels = scene
    doc = window.doc
    tries, spilling = [], spill.spill
    monkeypatch.setattr(spill, "spill", lambda *a: tries.append(1) or spilling(*a))
    full = tmp_path / "full disk"
    full.write_bytes(b"")  # a file where the folder should be: nothing can be written
    tight_undo_budget(doc, full)
    states = land_edits(doc, 5)
    assert not any(spill.file_backed(a) for a in undo_arrays(doc) if a is not None)
    assert len(tries) == 1  # not tried again at every step
    assert window.message_text() == ""  # nothing alarming: the editor works as it did
    assert_undo_and_redo_bring_back(window, states)


def test_erasing_an_item_that_covers_the_whole_picture_is_refused_by_name(scene):
    window, labels = scene
    doc = window.doc
    doc.set_partition(np.zeros_like(labels), ["backdrop"], "One item")
    with pytest.raises(ItemError, match="^backdrop covers the whole picture"):
        doc.erase([(5.5, 5.5)], 3, 0)
    assert not doc.labels.any()


def test_what_is_left_to_redraw_outlasts_the_steps_undo_keeps(scene):
    window, labels = scene
    doc = window.doc
    doc.undo.setUndoLimit(3)  # UNDO_LIMIT is 100; the stack is empty, so this takes
    # Six strokes: the first three fall off the undo stack.
    brush_at_bag_edge(window, labels, [(2 + 6 * k, 6 + 6 * k) for k in range(6)], size=3)
    assert doc.undo.count() == 3
    np.testing.assert_array_equal(doc.drawn_labels(), labels)
    changed = doc.labels != labels
    assert changed.any() and doc.reshaped and window.act_redraw.isEnabled()
    window.act_undo.trigger()  # the stroke undone leaves the five before it to redraw
    np.testing.assert_array_equal(doc.drawn_labels(), labels)
    window.doc.rename(2, "handbag")  # a step that is not a stroke keeps them too
    np.testing.assert_array_equal(doc.drawn_labels(), labels)


def test_brush_without_a_selection_says_what_to_do(scene):
    window, labels = scene
    window.doc.select([])
    window.set_tool(Tool.BRUSH)
    before = window.doc.labels
    drag(window.canvas, [(20, 20), (40, 20)])
    assert "Select an item first" in window.message_text()
    assert window.doc.labels is before


def test_merge_and_rename_are_undoable(scene):
    window, labels = scene
    doc = window.doc
    original = doc.labels
    click(window.canvas, *inner_pixel(labels, 2))
    click(window.canvas, *inner_pixel(labels, 3), modifiers=Qt.KeyboardModifier.ShiftModifier)
    window.act_merge.trigger()
    assert not (doc.labels == 3).any()
    np.testing.assert_array_equal(doc.labels == 2, (original == 2) | (original == 3))
    assert doc.selection == (2,)
    assert window.items_panel.list.count() == 3
    # Rename through the name field.
    name = window.items_panel.name_edit
    name.setFocus()
    name.setText("handbag")
    QTest.keyClick(name, Qt.Key.Key_Return)
    assert doc.items[2].name == "handbag"
    step = doc.undo.undoText()
    assert step and window.act_undo.toolTip() == f"Undo {step}  (Ctrl+Z)"
    window.act_undo.trigger()
    assert doc.items[2].name == "bag"
    window.act_undo.trigger()
    assert doc.labels is original
    assert window.items_panel.list.count() == 4


def _whole_canvas_stroke(shape, points, radius):
    """The brush's pixels drawn as they were before strokes kept to their window: on a
    canvas the size of the picture."""
    import cv2

    canvas = np.zeros(shape, dtype=np.uint8)
    pts = [(round(x * 16), round(y * 16)) for x, y in points]
    for p in pts:
        cv2.circle(canvas, p, max(round(radius * 16), 1), 1, -1, cv2.LINE_8, 4)
    for a, b in zip(pts, pts[1:]):
        cv2.line(canvas, a, b, 1, max(int(round(2 * radius)), 1), cv2.LINE_8, 4)
    return canvas.astype(bool)


def test_strokes_and_merges_keep_counts_boxes_and_redraw_as_the_whole_map_has_them(scene):
    window, labels = scene
    doc = window.doc
    h, w = labels.shape
    rng = np.random.default_rng(5)

    def check():
        lab = doc.labels
        counts = np.bincount(lab.ravel(), minlength=len(doc.items))
        np.testing.assert_array_equal(doc.counts, counts)
        assert doc.reshaped == bool((doc.drawn_labels() != lab).any())
        for k in doc.visible_items():
            assert doc.bbox(k) == partition.item_bbox(lab, k)

    strokes = [
        ([(0.0, 0.0), (w - 1.0, 0.0)], 3.0),  # along the top edge
        ([(w + 0.3, h / 2), (w - 2.5, h - 0.5)], 6.0),  # from past the right edge to a corner
        ([], 3.0),  # no point
        ([(-50.0, -50.0)], 3.0),  # off the picture
        ([(w / 2, h / 2)], 0.4),  # one pixel
    ]
    strokes += [
        ([tuple(p) for p in rng.uniform(-10, [w + 10, h + 10], (int(n), 2))], float(r))
        for n, r in zip(rng.integers(1, 6, 14), rng.uniform(0.5, 25, 14))
    ]
    for i, (pts, radius) in enumerate(strokes):
        before = doc.labels
        item = int(rng.choice(doc.visible_items()))
        whole = _whole_canvas_stroke(labels.shape, pts, radius)
        if i % 2:
            holes = whole & (before == item)
            expected = partition.fill_from_nearest(before, holes, before != item)
            doc.erase(pts, radius, item)
        else:
            expected = before.copy()
            expected[whole] = item
            doc.paint(pts, radius, item)
        np.testing.assert_array_equal(doc.labels, expected)
        if (expected == before).all():
            assert doc.labels is before  # nothing changed: no step
        check()
        if i == 8:  # the same stroke again: its pixels are the item's already
            pts, radius = [(w / 3, h / 3), (w / 2, h / 3)], 5.0
            doc.paint(pts, radius, item)
            again = doc.labels
            doc.paint(pts, radius, item)
            assert doc.labels is again
    for _ in range(3):
        doc.undo.undo()
        check()
    doc.undo.redo()
    check()
    present = doc.visible_items()
    doc.merge(present[::-1])
    assert doc.visible_items() == [present[-1]]
    check()
    doc.undo.undo()
    check()
    doc.merge(present[1:3])
    check()


def test_click_to_segment_adds_a_new_item(scene):
    window, labels = scene
    doc = window.doc
    original = doc.labels
    window.set_tool(Tool.CLICK)
    x, y = inner_pixel(labels, 3)
    click(window.canvas, x, y)
    wait_idle(window)
    mask = window.segmenting.click_mask
    assert mask is not None and mask[y, x]
    QTest.keyClick(window, Qt.Key.Key_Return)
    new = len(doc.items) - 1
    assert new == 4 and doc.items[new].name == "item 4"
    assert doc.labels[y, x] == new
    assert doc.selection == (new,)
    window.act_undo.trigger()
    assert doc.labels is original and len(doc.items) == 4


def test_a_new_item_after_the_last_item_was_merged_away_takes_the_next_free_number(scene):
    window, labels = scene
    doc = window.doc
    doc.merge([2, 3])  # item 3, the highest number, now has no pixels but keeps its row
    assert not (doc.labels == 3).any() and len(doc.items) == 4
    mask = doc.labels == 1
    new = doc.add_item(mask)
    assert new == 4 and doc.items[new].name == "item 4"
    np.testing.assert_array_equal(doc.labels == 4, mask)
    assert doc.counts[4] == mask.sum() and doc.counts[1] == 0


def test_a_segmenter_that_cannot_load_leaves_the_photo_its_items_and_a_way_to_mend_it(
    window, tmp_path, monkeypatch
):
    import dataclasses

    missing = tmp_path / "sam_vit_b_01ec64.pth"  # chosen in Settings, then moved away
    window.apply_settings(
        dataclasses.replace(window.settings, segmenter="sam", sam_checkpoint=str(missing))
    )
    opened: list[str] = []
    monkeypatch.setattr(window, "open_settings", lambda tab="": opened.append(tab))
    photo = tmp_path / "scene.png"
    write_synthetic_photo(photo)
    assert window.open_path(photo)
    wait_idle(window)
    doc = window.doc
    # A freshly opened photo is not left as one item: the weights-free default finds them,
    # and the sentence says why SAM did not, and stays until dismissed.
    n = len(doc.visible_items())
    assert n >= 2
    said = window.message_text()
    assert "SAM" in said and f"The default segmenter found {n} items instead." in said
    assert window.message_bar.level != "error" and not window.message_bar._timer.isActive()
    assert window.message_bar.action.text() == "Open settings"
    window.message_bar.action.click()
    assert opened == ["Segmentation"]
    # Asked for on purpose, the same backend fails in a sentence; the items stay.
    labels = doc.labels
    window.segmenting.segment_auto()
    wait_idle(window)
    assert "SAM" in window.message_text() and "instead" not in window.message_text()
    assert window.message_bar.level == "error"
    assert doc.labels is labels
    window.message_bar.action.click()
    # Clicking to add an item needs the same segmenter: the same way to mend it.
    window.set_tool(Tool.CLICK)
    click(window.canvas, 20, 20)
    wait_idle(window)
    assert "SAM" in window.message_text() and window.segmenting.click_mask is None
    window.message_bar.action.click()
    assert opened == ["Segmentation"] * 3
    # What decides it is the engine's class of error: bad input offers no settings.
    from ui.segmenting import unavailable

    record = window.jobs.jobs[max(window.jobs.jobs)]
    assert record.error == "SegmenterUnavailable" and unavailable(record)
    assert not unavailable(dataclasses.replace(record, error="SegmentationError"))
    # A reference photo gets its items the same way.
    other = tmp_path / "reference.png"
    write_synthetic_photo(other, 200, 260)
    assert window.reference_photo.open(other)
    wait_idle(window)
    n = len(window.reference_photo.doc.visible_items())
    assert n >= 2 and f"found {n} items in the reference instead." in window.message_text()
    assert window.reference_panel.status.text().startswith(f"{n} items.")


def test_a_text_segmenter_that_cannot_load_asks_no_question_first(window, tmp_path, monkeypatch):
    import dataclasses

    no_dino = tmp_path / "grounding-dino"  # a folder chosen in Settings, with no model saved
    window.apply_settings(
        dataclasses.replace(
            window.settings, segmenter="grounded-sam", grounding_checkpoint=str(no_dino)
        )
    )
    asked: list[str] = []
    monkeypatch.setattr(
        "ui.segmenting.QInputDialog.getText",
        lambda *args, **kwargs: (asked.append(args[1]), ("handbag", True))[1],
    )
    photo = tmp_path / "scene.png"
    write_synthetic_photo(photo)
    assert window.open_path(photo)
    wait_idle(window)
    # What to find is not asked when the answer could not be used: the files say so first.
    assert asked == []
    n = len(window.doc.visible_items())
    said = window.message_text()
    assert n >= 2 and str(no_dino) in said and f"found {n} items instead." in said
    labels = window.doc.labels
    window.segmenting.segment_auto()
    wait_idle(window)
    assert asked == [] and window.doc.labels is labels
    assert window.message_bar.level == "error" and "has no model in it" in window.message_text()
    assert window.message_bar.action.text() == "Open settings"
    # Once the backend can be built, Find items asks what to find.
    window.apply_settings(dataclasses.replace(window.settings, segmenter="classical"))
    monkeypatch.setattr("ui.segmenting.TEXT_BACKENDS", ("classical",))
    window.segmenting.segment_auto()
    wait_idle(window)
    assert asked == ["Find items"]


# ----- saving -------------------------------------------------------------------------------


def test_save_reopen_same_state_and_export_at_full_resolution(scene, tmp_path, qtbot):
    window, labels = scene
    doc = window.doc
    click(window.canvas, *inner_pixel(labels, 2))
    window.set_tool(Tool.BRUSH)
    drag(window.canvas, [inner_pixel(labels, 2), (10, 10)])
    doc.rename(2, "handbag")
    doc.set_prompt(3, "a red ball")
    target = tmp_path / "scene.dedit"
    assert window.save_project(target)
    assert not doc.dirty
    assert "scene.dedit" in window.windowTitle()

    other = make_window(tmp_path / "settings2")
    qtbot.addWidget(other)
    try:
        assert other.open_path(target)
        again = other.doc
        np.testing.assert_array_equal(again.image, doc.image)
        np.testing.assert_array_equal(again.labels, doc.labels)
        assert [(i.name, i.prompt) for i in again.items] == [(i.name, i.prompt) for i in doc.items]
        assert other.items_panel.list.count() == window.items_panel.list.count()
    finally:
        other.close()
    out = tmp_path / "export.png"
    assert window.export_image(out)
    np.testing.assert_array_equal(load_image(out), doc.image)
    assert not window.export_image(tmp_path / "export.xyz")
    assert ".xyz" in window.message_text()


def test_recent_files_are_remembered_in_the_given_settings_store(scene, tmp_path):
    window, _labels = scene
    recent = window.settings.recent
    assert recent and Path(recent[0]).name == "scene.png"
    actions = window.recent_menu.actions()
    assert actions and actions[0].text() == "scene.png"
    from ui.settings import EditorSettings
    from ui.testing import private_settings

    stored = EditorSettings.load(private_settings(tmp_path / "settings"))
    assert stored.recent == recent


# ----- gestures that start edits ----------------------------------------------------------


def test_dragging_an_item_asks_to_move_it_by_the_dragged_distance(scene):
    window, labels = scene
    moves = []
    window.canvas.move_requested.connect(lambda *a: moves.append(a))
    x, y = inner_pixel(labels, 3)
    drag(window.canvas, [(x, y), (x - 20, y + 5), (x - 40, y + 10)])
    assert len(moves) == 1
    items, dx, dy, scale, angle = moves[0]
    assert items == (3,) and scale == 1.0 and angle == 0.0
    # Screen pixels are larger than photo pixels at this zoom: allow one photo pixel.
    assert abs(dx + 40) <= 1 and abs(dy - 10) <= 1
    assert window.doc.selection == (3,)


def _bag_and_ball_selected(scene) -> list:
    """Select items 2 and 3 (Ctrl+click); the moves the canvas asks from then on."""
    window, labels = scene
    moves = []
    window.canvas.move_requested.connect(lambda *a: moves.append(a))
    click(window.canvas, *inner_pixel(labels, 2))
    click(window.canvas, *inner_pixel(labels, 3), modifiers=Qt.KeyboardModifier.ControlModifier)
    assert window.doc.selection == (2, 3)
    return moves


def test_dragging_one_of_several_selected_items_moves_them_all_and_a_click_selects_it(
    scene, monkeypatch
):
    window, labels = scene
    monkeypatch.setattr("ui.canvas_gestures.SNAP_REACH", 0)  # the drag as made, not snapped
    moves = _bag_and_ball_selected(scene)
    # one box round both, whose corners resize and turn them together
    b2, b3 = window.doc.bbox(2), window.doc.bbox(3)
    x0, y0, x1, y1 = min(b2[0], b3[0]), min(b2[1], b3[1]), max(b2[2], b3[2]), max(b2[3], b3[3])
    assert window.canvas.handles.isVisible()
    assert window.canvas.handles.rect == QRectF(x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    x, y = inner_pixel(labels, 3)
    drag(window.canvas, [(x, y), (x - 20, y + 5), (x - 40, y + 10)])
    ((items, dx, dy, scale, angle),) = moves
    assert items == (2, 3) and scale == 1.0 and angle == 0.0
    assert abs(dx + 40) <= 1 and abs(dy - 10) <= 1
    assert window.doc.selection == (2, 3)  # still both
    # the arrow keys nudge both too
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Down)
    window.canvas.end_nudge()
    assert moves[-1][0] == (2, 3) and moves[-1][2] > 0
    # pressed and let go without a drag: that item alone is selected, nothing moves
    click(window.canvas, x, y)
    assert window.doc.selection == (3,) and len(moves) == 2


def test_an_item_dragged_on_the_reference_canvas_is_carried_off_to_be_swapped(
    scene, tmp_path, monkeypatch
):

    window, _ = scene
    photo = tmp_path / "reference.png"
    write_synthetic_photo(photo, 200, 260)
    assert window.reference_photo.open(photo)
    wait_idle(window)
    ref = window.reference_panel.canvas
    ref.resize(400, 320)
    ref.fit()
    labels = window.reference_photo.doc.labels
    item = window.reference_photo.doc.visible_items()[-1]
    carried = []

    class Drag:  # QDrag.exec runs a loop of its own until the drop: stand in for it
        def __init__(self, source):
            self.source = source

        def setMimeData(self, md):  # noqa: N802 - Qt's name
            self.md = md

        def setPixmap(self, pixmap):  # noqa: N802
            self.pixmap = pixmap

        def setHotSpot(self, _point):  # noqa: N802
            pass

        def exec(self, _action):
            carried.append((bytes(self.md.data(REF_ITEM_MIME)).decode(), self.pixmap.size()))

    monkeypatch.setattr("ui.canvas_gestures.QDrag", Drag)
    moves = []
    ref.move_requested.connect(lambda *a: moves.append(a))
    x, y = inner_pixel(labels, item)
    drag(ref, [(x, y), (x - 20, y + 5), (x - 40, y + 10)])
    ((data, size),) = carried
    assert data == str(item) and 0 < max(size.width(), size.height()) <= 192
    assert not moves and not ref.ghost.isVisible()
    assert not ref.handles.isVisible()  # nothing to resize there
    ref.setFocus()
    QTest.keyClick(ref, Qt.Key.Key_Left)
    ref.end_nudge()
    assert not moves


def test_a_right_click_on_an_item_selects_it_and_offers_its_commands(scene, monkeypatch):
    from PySide6.QtGui import QContextMenuEvent

    from ui import actions

    window, labels = scene
    canvas = window.canvas
    shown = []

    def show(w, item, _at):  # the menu as it would show, without its own event loop
        menu = actions.canvas_menu(w, item)
        shown.append({a.text().replace("&", ""): a.isEnabled() for a in menu.actions()})
        menu.deleteLater()

    monkeypatch.setattr(actions, "show_canvas_menu", show)

    def right_click(x, y):
        at = QPointF(view_point(canvas, x, y)).toPoint()
        event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, at, canvas.mapToGlobal(at))
        QApplication.sendEvent(canvas.viewport(), event)
        QApplication.processEvents()

    click(canvas, *inner_pixel(labels, 2))
    right_click(*inner_pixel(labels, 3))
    assert window.doc.selection == (3,)  # the item under the pointer, as design tools do
    menu = shown[-1]
    commands = ("Rename item", "Flip horizontally", "Flip vertically", "Duplicate", "Remove item")
    for name in (*commands, "Edit prompt", "Copy", "Export selected items…"):
        assert menu[name], name
    assert "Merge items" in menu and not menu["Merge items"]  # one item: nothing to merge
    # on one of several selected items: they stay selected, and merging them is offered
    click(canvas, *inner_pixel(labels, 2), modifiers=Qt.KeyboardModifier.ControlModifier)
    right_click(*inner_pixel(labels, 3))
    assert window.doc.selection == (3, 2) and shown[-1]["Merge items"]
    # off the photo: the view's commands
    canvas.set_screen_zoom(0.05)
    right_click(-50, -50)
    assert set(shown[-1]) == {"Fit to window", "Actual pixels", "Paste as new photo"}
    # the click tool's right button marks where an item is not: no menu
    window.set_tool(Tool.CLICK)
    right_click(*inner_pixel(labels, 3))
    assert len(shown) == 3
    # a row of the items list offers the same commands, for its item
    rows = window.items_panel.list
    row = next(rows.item(k) for k in range(rows.count()) if rows.item(k).data(ITEM_ROLE) == 1)
    at = rows.visualItemRect(row).center()
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, at, rows.mapToGlobal(at))
    QApplication.sendEvent(rows.viewport(), event)
    QApplication.processEvents()
    assert window.doc.selection == (1,) and shown[-1]["Duplicate"]
    assert len(shown) == 4


def test_arrow_keys_nudge_the_selected_item_as_one_move_after_the_last_press(scene, qtbot):
    window, labels = scene
    canvas = window.canvas
    moves = []
    canvas.move_requested.connect(lambda *a: moves.append(a))
    canvas.set_screen_zoom(1.0)  # one press, one photo pixel
    click(canvas, *inner_pixel(labels, 3))
    canvas.setFocus()
    for key, mods in [
        (Qt.Key.Key_Right, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Right, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier),
        (Qt.Key.Key_Left, Qt.KeyboardModifier.NoModifier),
    ]:
        QTest.keyClick(canvas, key, mods)
    # the cut-out follows at once; the move waits for the presses to stop
    assert canvas.ghost.isVisible() and not moves
    qtbot.waitUntil(lambda: bool(moves), timeout=5000)
    assert moves == [((3,), 1.0, 10.0, 1.0, 0.0)]
    assert not canvas.ghost.isVisible()
    # zoomed out to a quarter, a press is a screen pixel: four photo pixels
    canvas.set_screen_zoom(0.25)
    QTest.keyClick(canvas, Qt.Key.Key_Up)
    canvas.end_nudge()  # what the wait, a click or another item chosen does
    assert moves[-1] == ((3,), 0.0, -4.0, 1.0, 0.0)
    # Esc drops the presses; with nothing selected the arrows leave the items alone
    QTest.keyClick(canvas, Qt.Key.Key_Left)
    QTest.keyClick(canvas, Qt.Key.Key_Escape)
    canvas.end_nudge()
    window.act_select_none.trigger()
    QTest.keyClick(canvas, Qt.Key.Key_Left)
    canvas.end_nudge()
    assert len(moves) == 2 and not canvas.ghost.isVisible()


def test_choosing_another_item_asks_for_the_nudge_made_so_far(scene):
    window, labels = scene
    moves = []
    window.canvas.move_requested.connect(lambda *a: moves.append(a))
    window.canvas.set_screen_zoom(1.0)
    click(window.canvas, *inner_pixel(labels, 3))
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Left)
    click(window.canvas, *inner_pixel(labels, 2))  # at once, not after the wait
    assert moves == [((3,), -1.0, 0.0, 1.0, 0.0)] and window.doc.selection == (2,)


def _drag_bags_corner(scene, to) -> tuple[list, tuple[int, int, int, int]]:
    """Select the bag and drag its bottom-right handle to ``to(box)`` (image pixels),
    through the box's centre; the move requests it made, and the bag's box."""
    window, labels = scene
    moves = []
    window.canvas.move_requested.connect(lambda *a: moves.append(a))
    click(window.canvas, *inner_pixel(labels, 2))
    box = x0, y0, x1, y1 = window.doc.bbox(2)
    drag(window.canvas, [(x1 + 0.5, y1 + 0.5), ((x0 + x1) / 2, (y0 + y1) / 2), to(box)])
    return moves, box


def test_a_corner_handle_snaps_the_corner_to_another_item_s_edge(scene, monkeypatch):
    window, labels = scene
    doc = window.doc
    x0, y0, x1, y1 = doc.bbox(2)
    line = x1 + 1 + 20  # another item's left edge, 20 pixels right of the bag's box
    monkeypatch.setattr(doc, "known_boxes", lambda: {0: (line, y1 + 60, line + 9, y1 + 70)})
    near = 3 / window.canvas.screen_zoom()  # three screen pixels short of it
    diagonal = (line - near - x0) / (x1 + 1 - x0)  # the scale the pointer asks
    moves, _ = _drag_bags_corner(
        scene, lambda b: (x0 + diagonal * (x1 + 1 - x0), y0 + diagonal * (y1 + 1 - y0))
    )
    ((items, _, _, scale, _),) = moves
    # scaled about the top-left corner so that the right edge lies on the other's left
    assert scale == pytest.approx((line - x0) / (x1 + 1 - x0), abs=1e-6)
    assert not window.canvas.measure_label.isVisible()  # the measure goes with the gesture
    assert not window.canvas.guides[0].isVisible()  # gone with the gesture


def test_dragging_a_corner_handle_asks_to_resize_about_the_opposite_corner(scene):
    # Drag the bottom-right corner half-way to the top-left one: half size.
    moves, (x0, y0, x1, y1) = _drag_bags_corner(
        scene, lambda b: ((b[0] + b[2]) / 2 + 0.5, (b[1] + b[3]) / 2 + 0.5)
    )
    assert len(moves) == 1
    items, dx, dy, scale, _ = moves[0]
    assert items == (2,)
    assert scale == pytest.approx(0.5, abs=0.03)
    # The top-left corner stays put: the centre moves a quarter of the box towards it.
    assert dx == pytest.approx(-(x1 - x0 + 1) / 4, abs=2)
    assert dy == pytest.approx(-(y1 - y0 + 1) / 4, abs=2)


def _mouse(view, kind, at: QPointF, modifiers=Qt.KeyboardModifier.NoModifier):
    """A mouse event at viewport point ``at``, the left button held (a move) or
    pressed/let go, with ``modifiers``: QTest's moves carry none."""
    from PySide6.QtGui import QMouseEvent

    button = Qt.MouseButton.LeftButton
    held = Qt.MouseButton.NoButton if kind is QEvent.Type.MouseButtonRelease else button
    global_at = QPointF(view.viewport().mapToGlobal(at.toPoint()))
    event = QMouseEvent(kind, at, global_at, button, held, modifiers)
    QApplication.sendEvent(view.viewport(), event)
    QApplication.processEvents()


def test_a_drag_just_outside_a_corner_handle_turns_the_item_about_its_centre(scene):
    window, labels = scene
    canvas = window.canvas
    moves = []
    canvas.move_requested.connect(lambda *a: moves.append(a))
    click(canvas, *inner_pixel(labels, 2))
    x0, y0, x1, y1 = window.doc.bbox(2)
    centre = QPointF(canvas.mapFromScene(QPointF((x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2)))
    corner = QPointF(canvas.mapFromScene(QPointF(x1 + 1, y0)))  # top right, in the view
    outside = corner + QPointF(12, -12)  # beyond the handle, inside the reach
    QTest.mouseMove(canvas.viewport(), outside.toPoint())
    assert canvas.viewport().cursor().shape() == Qt.CursorShape.BitmapCursor  # the turn arrow
    # turned a quarter clockwise about the centre: up-right becomes down-right
    turned = centre + QPointF(-(outside - centre).y(), (outside - centre).x())
    _mouse(canvas, QEvent.Type.MouseButtonPress, outside)
    _mouse(canvas, QEvent.Type.MouseMove, (outside + turned) / 2 + QPointF(20, 0))
    assert canvas.ghost.isVisible() and canvas.measure_label.isVisible()
    _mouse(canvas, QEvent.Type.MouseMove, turned)
    assert canvas.measure_label.text() in ("89°", "90°", "91°")
    _mouse(canvas, QEvent.Type.MouseButtonRelease, turned)
    ((items, dx, dy, scale, angle),) = moves
    assert items == (2,) and (dx, dy, scale) == (0.0, 0.0, 1.0)
    assert angle == pytest.approx(90, abs=1.5)
    assert not canvas.ghost.isVisible() and not canvas.measure_label.isVisible()
    # with Shift, the angle snaps to 15°; a turn the other way is counter-clockwise
    a_little = centre + (outside - centre) * 0.8 + QPointF(-30, 0)
    _mouse(canvas, QEvent.Type.MouseButtonPress, outside)
    _mouse(canvas, QEvent.Type.MouseMove, a_little, Qt.KeyboardModifier.ShiftModifier)
    _mouse(canvas, QEvent.Type.MouseButtonRelease, a_little, Qt.KeyboardModifier.ShiftModifier)
    angle = moves[-1][4]
    assert angle < 0 and angle % 15 == 0
    # Esc during a turn drops it
    _mouse(canvas, QEvent.Type.MouseButtonPress, outside)
    _mouse(canvas, QEvent.Type.MouseMove, turned)
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key.Key_Escape)
    _mouse(canvas, QEvent.Type.MouseButtonRelease, turned)
    assert len(moves) == 2 and not canvas.measure_label.isVisible()
    # Ctrl+click there adds the item under the pointer instead of turning
    q = canvas.mapToScene(outside.toPoint())
    there = window.doc.item_at(q.x(), q.y())
    ctrl = Qt.KeyboardModifier.ControlModifier
    QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, ctrl, outside.toPoint())
    assert there is not None and there in window.doc.selection and len(moves) == 2


def test_a_drag_with_alt_held_copies_the_item_and_the_pointer_says_so(scene):
    window, labels = scene
    canvas = window.canvas
    moves, copies = [], []
    canvas.move_requested.connect(lambda *a: moves.append(a))
    canvas.copy_requested.connect(lambda *a: copies.append(a))
    x, y = inner_pixel(labels, 2)
    start = QPointF(view_point(canvas, x, y))
    away = start + QPointF(40, 10)
    alt = Qt.KeyboardModifier.AltModifier
    _mouse(canvas, QEvent.Type.MouseButtonPress, start)
    _mouse(canvas, QEvent.Type.MouseMove, away, alt)
    assert canvas.viewport().cursor().shape() == Qt.CursorShape.DragCopyCursor
    _mouse(canvas, QEvent.Type.MouseButtonRelease, away, alt)
    ((items, dx, dy),) = copies
    assert items == (2,) and dx > 0 and dy > 0 and not moves
    assert canvas.viewport().cursor().shape() != Qt.CursorShape.DragCopyCursor
    # Alt let go before the drag ends: a move, as the pointer shows again
    _mouse(canvas, QEvent.Type.MouseButtonPress, start)
    _mouse(canvas, QEvent.Type.MouseMove, away, alt)
    canvas.setFocus()
    QTest.keyRelease(canvas, Qt.Key.Key_Alt)
    assert canvas.viewport().cursor().shape() == Qt.CursorShape.ArrowCursor
    _mouse(canvas, QEvent.Type.MouseButtonRelease, away)
    assert len(copies) == 1 and len(moves) == 1


def _drag_by(canvas, item_at: tuple[float, float], by: tuple[float, float], modifiers) -> None:
    """Press at image point ``item_at`` and let go ``by`` image pixels away, the move on
    the way there made with ``modifiers`` held (a press with Ctrl or Shift would select)."""
    x, y = item_at
    start = QPointF(view_point(canvas, x, y))
    end = QPointF(view_point(canvas, x + by[0], y + by[1]))
    _mouse(canvas, QEvent.Type.MouseButtonPress, start)
    _mouse(canvas, QEvent.Type.MouseMove, (start + end) / 2, modifiers)
    _mouse(canvas, QEvent.Type.MouseMove, end, modifiers)


def test_a_drag_snaps_the_box_to_the_picture_s_middle_and_another_item_s_edge(scene, monkeypatch):
    window, labels = scene
    canvas, doc = window.canvas, window.doc
    moves = []
    canvas.move_requested.connect(lambda *a: moves.append(a))
    h, w = labels.shape
    x0, y0, x1, y1 = doc.bbox(2)
    at = inner_pixel(labels, 2)
    near = 3 / canvas.screen_zoom()  # three screen pixels, in the photo's
    none = Qt.KeyboardModifier.NoModifier
    # every item's box, found on the side thread as an item is pressed, as bbox gives each
    _mouse(canvas, QEvent.Type.MouseButtonPress, QPointF(view_point(canvas, *at)))
    _mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(view_point(canvas, *at)))
    wait_until(lambda: doc.known_boxes() is not None, 10, "the items' boxes")
    boxes = doc.known_boxes()
    assert boxes == {k: partition.item_bbox(labels, k) for k in doc.visible_items()}
    # only the picture's own lines: the box's left edge lands 3 screen pixels past its
    # middle, and lies on it, a guide drawn there, up and down the picture
    monkeypatch.setattr(doc, "known_boxes", dict)
    _drag_by(canvas, at, (w / 2 - x0 + near, 0.4 * (h / 2 - y0)), none)
    assert canvas.guides[0].isVisible() and canvas.guides[0].line().x1() == w / 2
    assert canvas.guides[0].line().length() == h
    # the shift so far shows beside the pointer, as it will be asked
    label = canvas.measure_label
    assert label.isVisible() and label.text().startswith(shift_words(w / 2 - x0, 0)[:-5])
    assert shift_words(12.4, -30) == "+12, −30 px" and shift_words(0.2, 1) == "0, +1 px"
    _mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(0, 0))  # the drag made is kept
    assert moves[-1][1] == round(w / 2 - x0) and not canvas.guides[0].isVisible()
    assert not label.isVisible()
    # with Ctrl held it goes where the pointer does
    _drag_by(canvas, at, (w / 2 - x0 + near, 0), Qt.KeyboardModifier.ControlModifier)
    assert not canvas.guides[0].isVisible()
    _mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(0, 0))
    assert abs(moves[-1][1] - (w / 2 - x0 + near)) < 1.5
    # another item's box: the right edge of this one meets its left edge
    other = (x1 + 40, y0, x1 + 60, y1)
    monkeypatch.setattr(doc, "known_boxes", lambda: {0: other})
    _drag_by(canvas, at, (39 + near, 0), none)
    _mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(0, 0))
    assert moves[-1][1] == 39  # its last column x1 + 39, next to the other's first
    # Shift keeps it level: the small drop does not count
    monkeypatch.setattr(doc, "known_boxes", dict)
    _drag_by(canvas, at, (25, 4), Qt.KeyboardModifier.ShiftModifier)
    _mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(0, 0))
    assert moves[-1][2] == 0.0


def test_the_corner_of_several_selected_items_resizes_them_together(scene):
    window, _ = scene
    moves = _bag_and_ball_selected(scene)
    r = window.canvas.handles.rect
    corner, middle = (r.right() - 0.5, r.bottom() - 0.5), (r.center().x(), r.center().y())
    halfway = ((corner[0] + middle[0]) / 2, (corner[1] + middle[1]) / 2)
    drag(window.canvas, [corner, middle, halfway])
    ((items, _, _, scale, angle),) = moves
    assert items == (2, 3) and scale == pytest.approx(0.75, abs=0.05) and angle == 0.0


def test_a_corner_handle_dragged_past_the_opposite_corner_stops_at_a_visible_size(scene):
    moves, (x0, y0, x1, y1) = _drag_bags_corner(scene, lambda b: (b[0] - 20.5, b[1] - 20.5))
    ((items, _, _, scale, _),) = moves
    side = min(x1 - x0, y1 - y0) + 1
    assert items == (2,) and scale == pytest.approx(max(0.1, MIN_RESIZED_SIDE / side))
    assert scale * side >= MIN_RESIZED_SIDE - 1e-6


@pytest.mark.parametrize("size", [(1024, 640), (908, 480)])
def test_a_short_window_scrolls_the_items_panel_instead_of_squashing_its_fields(scene, size):
    window, labels = scene
    click(window.canvas, *inner_pixel(labels, 2))
    window.resize(*size)
    QApplication.processEvents()
    panel = window.items_panel
    for widget in (panel.name_edit, panel.prompt_edit, panel.delete_button):
        assert widget.height() >= widget.sizeHint().height(), widget
    assert panel.list.height() >= LIST_MIN_ROWS * ItemDelegate.ROW
    window.resize(1440, 900)
    QApplication.processEvents()
    assert panel.list.height() > LIST_MIN_ROWS * ItemDelegate.ROW + ItemDelegate.ROW  # it grows


@pytest.mark.parametrize("width", [1024, 800])
def test_on_a_narrow_window_the_tool_hint_gives_way_and_settings_stays_on_the_tool_bar(
    scene, width
):
    window, _ = scene
    window.resize(width, 640)
    QApplication.processEvents()
    bar, hint = window.main_toolbar, window.opt_label
    settings = bar.widgetForAction(window.act_settings)
    assert settings.isVisible() and bar.rect().contains(settings.geometry())
    assert hint.width() < hint.sizeHint().width()  # the sentence shortened, not the bar
    assert hint.toolTip() == hint.text() and "Shift+H" in hint.text()
    window.resize(1440, 900)
    QApplication.processEvents()
    assert hint.width() >= hint.sizeHint().width()


def test_a_narrow_window_shows_two_results_whole_beside_the_title_and_buttons(scene):
    window, _ = scene
    window.resize(1024, 640)
    strip = window.candidates
    images = [np.full((*window.doc.labels.shape, 3), 60 * k, np.uint8) for k in range(4)]
    strip.set_candidates(images, "Bag → “a white handbag with a long golden chain”")
    QApplication.processEvents()
    view = strip.buttons[0].parentWidget().parentWidget()  # the scroll area's viewport
    whole = [
        b
        for b in strip.buttons
        if view.rect().contains(b.geometry().translated(b.parentWidget().pos()))
    ]
    assert len(whole) >= 2, [b.geometry() for b in strip.buttons]
    # the viewport ends where the sideways scroll bar begins: it covers no tile's edge
    assert view.parentWidget().horizontalScrollBar().isVisible()
    for button in (strip.discard_button, strip.done_button, strip.slider):
        assert button.isVisible() and strip.rect().contains(button.geometry()), button


def test_ctrl_c_in_the_terminal_closes_the_window_the_normal_way(scene, monkeypatch, qtbot):
    import os
    import signal

    from ui.app import close_on_interrupt

    window, _ = scene
    window.show()
    asked = []
    monkeypatch.setattr(
        window, "may_replace", lambda quitting=False: asked.append(quitting) or len(asked) > 1
    )
    before = signal.getsignal(signal.SIGINT)
    try:
        close_on_interrupt(window)
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the window is asked
        qtbot.waitUntil(lambda: asked == [True], timeout=5_000)
        assert window.isVisible()  # "Cancel": the picture stays
        os.kill(os.getpid(), signal.SIGINT)
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_item_picked_among_many_shows_its_whole_row_and_the_start_of_its_name(scene):
    window, labels = scene
    doc = window.doc
    h, w = labels.shape
    rows, cols = np.arange(h)[:, None] // 2, np.arange(w)[None, :] // 4
    many = ((rows * (w // 4) + cols) % 1200).astype(np.int32)
    names = [f"a long item name number {i} that goes on past the field" for i in range(1200)]
    doc.set_partition(many, names, "Many items")
    panel = window.items_panel
    for item in (700, 3, 1150):
        doc.select((item,))
        QApplication.processEvents()
        row = next(
            panel.list.item(r)
            for r in range(panel.list.count())
            if panel.list.item(r).data(ITEM_ROLE) == item
        )
        rect, view = panel.list.visualItemRect(row), panel.list.viewport().rect()
        assert view.top() <= rect.top() and rect.bottom() <= view.bottom(), item
        assert panel.name_edit.cursorPosition() == 0  # "a long item…", not "…the field"


def test_escape_cancels_a_drag(scene):
    window, labels = scene
    moves = []
    window.canvas.move_requested.connect(lambda *a: moves.append(a))
    x, y = inner_pixel(labels, 3)
    vp = window.canvas.viewport()
    QTest.mousePress(
        vp,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        view_point(window.canvas, x, y),
    )
    QTest.mouseMove(vp, view_point(window.canvas, x - 30, y))
    assert window.canvas.ghost.isVisible()
    QTest.keyClick(window.canvas, Qt.Key.Key_Escape)
    QTest.mouseRelease(
        vp,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        view_point(window.canvas, x - 30, y),
    )
    assert moves == [] and not window.canvas.ghost.isVisible()


@pytest.mark.parametrize("zoom", [1.0, 0.3])
def test_the_dragged_ghost_covers_the_moved_item_at_any_zoom(scene, zoom):
    window, labels = scene
    canvas = window.canvas
    canvas.set_zoom(zoom)
    ys, xs = np.nonzero(labels == 0)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    x, y = inner_pixel(labels, 0)
    vp = canvas.viewport()
    QTest.mousePress(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(canvas, x, y)
    )
    QTest.mouseMove(vp, view_point(canvas, x - 30, y - 10))
    press = canvas._press
    assert canvas.ghost.isVisible() and press["kind"] == "move"
    # Zoomed out, the ghost is made at about the size it is seen, not at the photo's.
    pixmap = canvas.ghost.pixmap()
    if zoom < 0.5:
        assert pixmap.width() <= (x1 - x0) / 2 and pixmap.height() <= (y1 - y0) / 2
    else:
        assert (pixmap.width(), pixmap.height()) == (x1 - x0, y1 - y0)
    # Either way it covers exactly the item's box, moved by the drag.
    box = canvas.ghost.sceneBoundingRect()
    expected = (x0 + press["dx"], y0 + press["dy"], x1 - x0, y1 - y0)
    assert (box.x(), box.y(), box.width(), box.height()) == pytest.approx(expected, abs=1e-6)
    QTest.keyClick(canvas, Qt.Key.Key_Escape)


def test_dropping_a_photo_file_on_the_canvas_opens_it(window, tmp_path):
    from ui.testing import drop_files

    photo = tmp_path / "dropped.png"
    write_synthetic_photo(photo, 120, 160)
    drop_files(window.canvas, [photo])
    assert window.doc is not None and window.doc.image.shape == (120, 160, 3)
    assert window.doc.project.source == "dropped.png"
    wait_idle(window)
    assert len(window.doc.visible_items()) >= 2


def test_settings_dialog_edits_a_copy_and_returns_the_choice(window, tmp_path):
    from dedit_app.segment.tiny import save_tiny_sam
    from ui.settings_dialog import SettingsDialog

    on_segmentation = SettingsDialog(window.settings, window, tab="Segmentation")
    assert on_segmentation.tabs.tabText(on_segmentation.tabs.currentIndex()) == "Segmentation"
    # The page says whether the chosen backend can load with what is typed there, as typed.
    state = on_segmentation.segmenter_state
    assert state.text().startswith("Ready") and state.property("role") == "ready"
    on_segmentation.segmenter.setCurrentIndex(on_segmentation.segmenter.findData("sam"))
    on_segmentation.sam.edit.setText(str(tmp_path / "sam_vit_h_4b8939.pth"))
    assert "does not exist; download sam_vit_h_4b8939" in state.text()
    assert state.property("role") == "problem"
    save_tiny_sam(tmp_path / "sam_vit_h_4b8939.pth")
    on_segmentation.sam.edit.setText(str(tmp_path / "sam_vit_h_4b8939.pth") + " ")  # re-typed
    assert state.text().startswith("Ready")
    import torch

    if not torch.cuda.is_available():  # the device is on the Model page, and counts here
        on_segmentation.device.setCurrentText("cuda")
        assert "no usable CUDA GPU" in state.text() and state.property("role") == "problem"
        on_segmentation.device.setCurrentText("auto")
        assert state.text().startswith("Ready")
    dialog = SettingsDialog(window.settings, window)
    assert dialog.tabs.currentIndex() == 0
    dialog.steps.setValue(35)
    dialog.candidates.setValue(4)
    dialog.model.edit.setText("/models/my-sdxl")
    assert dialog.low_memory.currentData() == "auto"  # the default
    dialog.low_memory.setCurrentIndex(dialog.low_memory.findData("on"))
    chosen = dialog.result_settings()
    assert (chosen.steps, chosen.candidates, chosen.model) == (35, 4, "/models/my-sdxl")
    assert chosen.low_memory == "on" and not chosen.compile
    assert window.settings.steps != 35  # nothing changes until the window applies it
    window.apply_settings(chosen)
    from ui.settings import EditorSettings
    from ui.testing import private_settings

    stored = EditorSettings.load(private_settings(Path(window.qsettings.fileName()).parent))
    assert stored.steps == 35 and stored.model == "/models/my-sdxl" and stored.low_memory == "on"


def test_settings_shows_every_field_as_given_and_restores_only_the_page_shown(window):
    from dataclasses import replace

    from ui.settings import DEFAULT_MODEL, EditorSettings
    from ui.settings_dialog import SettingsDialog

    custom = replace(
        EditorSettings(), model="/models/mine", device="cpu", precision="float16",
        compile=True, sam_checkpoint="/w/sam.pth", grounding_checkpoint="/w/dino",
        steps=35, guidance=7.5, strength=0.45, edge=40, candidates=4, seed=1234,
        emb_steps=10, model_steps=20, lora_rank=8, low_memory="on",
        recent=["/photos/a.png"], prompts=["a white handbag"],
    )  # fmt: skip
    dialog = SettingsDialog(custom, window, tab="Editing")
    assert dialog.result_settings() == custom  # every field shows what it was given
    dialog.restore.click()  # the Editing page only
    defaults = EditorSettings()
    restored = dialog.result_settings()
    assert (restored.steps, restored.guidance, restored.strength, restored.seed) == (
        defaults.steps,
        defaults.guidance,
        defaults.strength,
        defaults.seed,
    )
    assert restored.candidates == defaults.candidates and restored.edge == defaults.edge
    assert replace(restored, steps=35, guidance=7.5, strength=0.45, edge=40, candidates=4,
                   seed=1234) == custom  # fmt: skip
    dialog.tabs.setCurrentIndex(dialog.tabs.indexOf(dialog.model.parentWidget()))
    dialog.restore.click()
    model_page = dialog.result_settings()
    assert (model_page.model, model_page.device, model_page.compile) == (
        DEFAULT_MODEL,
        "auto",
        False,
    )
    assert model_page.emb_steps == 10 and model_page.recent == ["/photos/a.png"]
    assert model_page.prompts == ["a white handbag"]


def test_settings_says_where_the_model_is_and_runs_found_off_the_ui_thread(
    window, qtbot, monkeypatch, tiny_sdxl_path, tmp_path
):
    """The Model page says whether the model's files are here and where it would run (the
    side thread reads the disk and asks torch, which starts CUDA); it asks again as the
    model is typed and when Device, Precision or Low memory changes, and drops answers
    that come after the dialog closed."""
    import torch

    from dedit_app import slow_device
    from ui import engine
    from ui.settings_dialog import SettingsDialog

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    mend = " ".join(["Mend it."] * 40)  # many lines: more than the dialog opened with
    monkeypatch.setattr(slow_device, "no_gpu_reason", lambda: ("no GPU here", mend))
    monkeypatch.setattr(slow_device, "FULL_SIZE_BYTES", 1)  # the tiny model as full-size
    dialog = SettingsDialog(window.settings, window, side=window.side)
    dialog.show()
    line = dialog.placement
    assert not line.isHidden() and line.text() == "Finding where the model runs…"
    qtbot.waitUntil(lambda: line.property("role") != "hint", timeout=60_000)
    source = dialog.source_state
    dialog.model.edit.setText(str(tmp_path / "my-sdxl"))
    assert source.text() == "Looking for the model…"
    qtbot.waitUntil(lambda: "There is no folder" in source.text(), timeout=10_000)
    assert source.property("role") == "problem"
    dialog.model.edit.setText(str(tiny_sdxl_path))  # the line turns ready as it is typed
    qtbot.waitUntil(lambda: source.property("role") == "ready", timeout=10_000)
    assert source.text().startswith("A local folder: SDXL, its weights in full precision")
    qtbot.waitUntil(lambda: line.property("role") != "hint", timeout=10_000)  # asked again
    # the dialog grows for lines longer than when it opened, none left squeezed
    qtbot.waitUntil(
        lambda: all(g.height() >= g.heightForWidth(g.width()) for g in (line, source)),
        timeout=5_000,
    )
    assert line.text().startswith("Runs on the processor in float32 (no GPU here): preparing")
    assert line.text().endswith(f"minutes. {mend}")
    assert line.property("role") == "problem"
    dialog.device.setCurrentText("cuda")
    assert line.property("role") == "hint"  # asked again
    qtbot.waitUntil(lambda: "no CUDA GPU" in line.text(), timeout=10_000)
    assert line.property("role") == "problem"
    dialog.precision.setCurrentText("float16")
    dialog.reject()  # before the answer: nobody waits for it any more
    assert not window.side.busy
    monkeypatch.setattr(engine, "unavailable", lambda: "no engine")
    no_engine = SettingsDialog(window.settings, window, side=window.side)
    qtbot.waitUntil(lambda: no_engine.placement.isHidden(), timeout=10_000)
    assert no_engine.source_state.isHidden()
    plain = SettingsDialog(window.settings, window)  # no side thread: neither line
    assert plain.placement.isHidden() and plain.source_state.isHidden()


def test_a_gpu_too_small_for_the_model_offers_one_that_fits_in_a_click(
    window, qtbot, monkeypatch, offline_hub_cache
):
    from engine_fixtures import fake_gpu

    from dedit_app.placement import SD15_MODEL
    from ui.settings_dialog import SettingsDialog

    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4060", 8, major=8)
    dialog = SettingsDialog(window.settings, window, side=window.side)
    dialog.model.edit.setText("")  # the default model, SDXL
    qtbot.waitUntil(lambda: dialog.placement.property("role") == "problem", timeout=60_000)
    assert dialog.use_instead.isVisibleTo(dialog)
    assert dialog.use_instead.text() == "Use stable-diffusion-v1-5"
    dialog.use_instead.click()
    assert dialog.model.text() == SD15_MODEL
    assert not dialog.use_instead.isVisibleTo(dialog)  # found again for the new model
    qtbot.waitUntil(lambda: dialog.placement.property("role") == "ready", timeout=10_000)
    assert dialog.placement.text() == "Runs on NVIDIA GeForce RTX 4060 (8 GB) in bfloat16."
    assert not dialog.use_instead.isVisibleTo(dialog)
    assert dialog.result_settings().model == SD15_MODEL
    dialog.reject()


def test_download_now_fetches_a_hub_model_beside_the_work_and_says_how_it_went(
    window, qtbot, monkeypatch, tmp_path
):
    from dedit_app import hub
    from dedit_app.errors import ModelLoadError
    from dedit_app.jobs import Progress
    from ui import engine
    from ui.settings_dialog import SettingsDialog

    said = {"owner/model": ("Not downloaded yet: the first Prepare downloads it.", "note", "")}
    monkeypatch.setattr(
        engine, "model_source", lambda m, d, p: said.get(m, ("A local folder: SDXL.", "ready", ""))
    )
    fetched = []

    def fetch(source, *, variant=None, any_precision=False, cancel=None):
        fetched.append((source, variant, any_precision))
        if source == "owner/gone":
            raise ModelLoadError(f"There is no model {source} on the Hugging Face hub.")
        yield Progress(1, 2, stage="downloading", message=f"Downloading {source}")
        return tmp_path

    monkeypatch.setattr(hub, "fetch", fetch)
    dialog = SettingsDialog(
        window.settings, window, side=window.side, download=window.downloads.start
    )
    dialog.device.setCurrentText("cpu")
    dialog.model.edit.setText("owner/model")
    qtbot.waitUntil(lambda: dialog.download_now.isVisibleTo(dialog), timeout=30_000)
    dialog.download_now.click()
    assert dialog.source_state.text().startswith("Downloading in the background")
    assert not dialog.download_now.isVisibleTo(dialog)
    again = window.downloads.start("owner/model", "cpu", "auto")  # one download per model
    assert again.startswith("Downloading already")
    ended = window.downloads.waiting_for("owner/model")  # what a Prepare meanwhile waits for
    assert ended is not None and window.downloads.waiting_for("owner/other") is None
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=30_000)
    assert ended.is_set() and window.downloads.waiting_for("owner/model") is None
    assert fetched == [("owner/model", None, True)]  # the processor reads the full files
    assert window.message_text() == "owner/model is downloaded: Prepare no longer waits for it."
    dialog.model.edit.setText(str(tmp_path))  # a local folder: nothing to download
    qtbot.waitUntil(lambda: dialog.source_state.text() == "A local folder: SDXL.", timeout=10_000)
    assert not dialog.download_now.isVisibleTo(dialog)
    dialog.reject()
    window.downloads.start("owner/gone", "cpu", "auto")
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=30_000)
    assert window.message_text().startswith("There is no model owner/gone")
    assert window.message_bar.action.text() == "Open settings"
    plain = SettingsDialog(window.settings, window, side=window.side)  # no download to start
    plain.model.edit.setText("owner/model")
    qtbot.waitUntil(
        lambda: (
            plain.source_state.property("role") == "hint" and "Not" in plain.source_state.text()
        ),
        timeout=10_000,
    )
    assert not plain.download_now.isVisibleTo(plain)
    plain.reject()


def test_a_job_notice_stays_above_the_picture_until_dismissed(window):
    text = "Compiling the model failed, so it runs uncompiled (ImportError: file too short)."
    window.jobs.noticed.emit(7, text)
    assert window.message_text() == text and window.message_bar.level == "info"
    assert not window.message_bar._timer.isActive()  # notices that fade would be missed
    window.message_bar.close_button.click()
    assert window.message_text() == ""


def test_closing_while_a_job_runs_asks_first_and_cancel_keeps_it_running(
    window, monkeypatch, tmp_path
):
    import threading

    from PySide6.QtWidgets import QMessageBox

    from ui.testing import write_synthetic_photo
    from ui.worker import JobRequest, JobState

    class Hold:
        def __init__(self) -> None:
            self.release = threading.Event()

        def run(self, ctx, cancel):
            while not self.release.wait(0.01):
                cancel.raise_if_cancelled()

    hold = Hold()
    record = window.jobs.submit(JobRequest("Prepare scene.png", hold, kind="prepare"))
    wait_until(lambda: record.state is JobState.RUNNING, 30, "the job to start")
    Cancel, Close = QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Close
    asked, answers = [], [Cancel, Cancel, Close]

    def answer(parent, title, text, buttons, default):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", answer)
    window.ask_to_save = True
    said = "Still running: Prepare scene.png. Closing stops it, and its work so far is lost."
    assert not window.close()
    assert asked == [said]
    assert window.isVisible() and record.state is JobState.RUNNING
    # Opening another photo in its place would stop it as well: asked the same.
    photo = tmp_path / "other.png"
    write_synthetic_photo(photo)
    assert not window.open_path(photo) and asked[1] == said
    assert record.state is JobState.RUNNING
    assert window.close()  # the third time the answer is "Close": the job is stopped
    assert not window.isVisible() and len(asked) == 3


# ----- keys ------------------------------------------------------------------------------


def test_no_two_commands_share_a_key_and_every_documented_key_works(window):
    import re

    from PySide6.QtGui import QAction

    from ui.actions import shortcut_rows

    # Qt fires neither of two actions that share a key ("ambiguous shortcut"), silently.
    owner: dict[str, str] = {}
    for a in window.findChildren(QAction):
        for seq in a.shortcuts():
            key = seq.toString()
            assert key not in owner, f"{key} is both {owner[key]!r} and {a.text()!r}"
            owner[key] = a.text().replace("&", "")
    # Every key in the EDITOR.md shortcut table is bound, whatever the desktop's own
    # bindings are (on some, Close is Ctrl+F4 alone and Quit has no key at all).
    docs = (Path(__file__).parents[1] / "docs" / "EDITOR.md").read_text(encoding="utf-8")
    table = docs.split("## Shortcuts", 1)[1].split("\n## ", 1)[0]
    cells = [row.split("|")[2] for row in table.splitlines() if row.count("|") == 3]
    key = re.compile(r"(?:(?:Ctrl|Shift|Alt)\+)*(?:F\d+|Tab|Delete|Backspace|Esc|Enter|\S)")
    documented = set()
    for token in " ".join(cells).replace("\\\\", "\\").split():
        token = token.strip("()")
        if token.endswith(",") and not token.endswith("+,"):
            token = token[:-1]  # "Esc, or ..."
        if key.fullmatch(token) and not token.islower() and token not in "/…":
            documented.add(token.replace("Delete", "Del"))
    by_hand = {"Esc", "Enter", "\\", "1", "9"}  # the window's keyPressEvent, not actions
    assert {"Ctrl+W", "Ctrl+Shift+Z", "Ctrl+Y", "Ctrl+,", "M", "Del"} <= documented
    assert documented - by_hand <= set(owner), sorted(documented - by_hand - set(owner))
    assert owner["Ctrl+W"] == "Close picture" and owner["Ctrl+Shift+Z"].startswith("Redo")
    # Help ▸ Keyboard shortcuts names every command that has a key, by its first key.
    listed = dict(shortcut_rows(window))
    assert listed["More results"] == "M" and listed["Close picture"] == "Ctrl+W"
    assert listed["Settings…"] == "Ctrl+,"
    # Hovering teaches the key, in words without the menu's mnemonic.
    assert window.act_rename.toolTip() == "Rename item  (F2)"
    assert window.act_redo.toolTip() == "Redo  (Ctrl+Shift+Z)"
    named = {a.text().replace("&", "") for a in window.findChildren(QAction) if a.shortcuts()}
    assert named <= set(listed)
