"""Recovery copies: unsaved work is copied aside, survives an editor that dies, comes back
at the next start and saves where it belongs; saved or discarded work leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6.QtWidgets import QMessageBox  # noqa: E402

pytest.importorskip("pytestqt")

import torch  # noqa: E402
from editor_fixtures import (  # noqa: E402
    assert_holds_history,
    land_edits,
    tight_undo_budget,
    undo_arrays,
)

from dedit_app import spill  # noqa: E402
from dedit_app.project import Project  # noqa: E402
from ui import recovery  # noqa: E402
from ui.recovery import RECOVERY_FILE, find_copies  # noqa: E402
from ui.testing import make_window, wait_idle, write_synthetic_photo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def copy_now(window) -> Path:
    assert window.recovery.write()
    wait_idle(window)
    slot = window.recovery.slot
    assert slot is not None and (slot / "project.json").is_file()
    return slot


def test_unsaved_work_is_copied_and_the_copy_goes_when_it_is_saved(scene, tmp_path, monkeypatch):
    window, labels = scene
    doc = window.doc
    threads, original = [], recovery.write_copy

    def write_copy(*args):
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(recovery, "write_copy", write_copy)
    doc.set_prompt(2, "a white handbag")
    assert window.recovery._timer.isActive()  # a copy follows within delay_ms
    slot = copy_now(window)
    assert len(threads) == 1 and threads[0].startswith("dedit-files")  # the window never waits
    copy = Project.load(slot)
    np.testing.assert_array_equal(copy.image, doc.image)
    np.testing.assert_array_equal(copy.labels, labels)
    assert copy.items[2].prompt == "a white handbag"
    meta = json.loads((slot / RECOVERY_FILE).read_text())
    assert meta["home"] is None and meta["source"] == "scene.png"
    assert doc.project.folder is None and doc.dirty  # the document itself is untouched
    assert not window.recovery.write()  # nothing changed since the copy

    assert window.files.save_project(tmp_path / "kept.dedit")
    wait_idle(window)
    assert not doc.dirty and not slot.exists()


def crash_with_a_prompt_unsaved(tmp_path) -> tuple[Path, Path]:
    """Run an editor in a process of its own that saves ``scene.dedit``, retypes the bag's
    prompt, keeps a recovery copy and exits without closing its window (as a crash
    would), so its lock is left by a process that is gone. Returns (the editors' settings
    folder, the project)."""
    shared = tmp_path / "editor"
    photo, project = tmp_path / "scene.png", tmp_path / "scene.dedit"
    crashing = textwrap.dedent(
        f"""
        import os
        from ui.testing import make_window, wait_idle, write_synthetic_photo
        w = make_window({str(shared)!r})
        labels = write_synthetic_photo({str(photo)!r})
        w.open_path({str(photo)!r}); wait_idle(w)
        w.doc.set_partition(labels, ["wall", "table", "bag", "ball"], "Known items")
        assert w.files.save_project({str(project)!r}); wait_idle(w)
        w.doc.set_prompt(2, "a white handbag")
        assert w.recovery.write(); wait_idle(w)
        os._exit(0)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    subprocess.run([sys.executable, "-c", crashing], cwd=REPO, env=env, check=True, timeout=300)
    assert Project.load(project).items[2].prompt == ""  # the prompt was never saved
    return shared, project


def test_an_editor_that_dies_leaves_its_work_to_the_next_one(qtbot, tmp_path):
    shared, project = crash_with_a_prompt_unsaved(tmp_path)
    window = make_window(shared)
    qtbot.addWidget(window)
    try:
        window.recovery.offer()
        assert "closed before “scene.dedit” was saved" in window.message_text()
        menu = [a.text() for a in window.restore_menu.actions() if not a.isSeparator()]
        assert window.restore_menu.isEnabled() and menu[1:] == ["Discard…"]
        assert menu[0].startswith("scene.dedit (")
        assert len(window.start_page.restore_buttons) == 1  # the empty window lists it too
        window.message_bar.action.click()
        wait_idle(window)
        doc = window.doc
        assert doc.items[2].prompt == "a white handbag"
        assert doc.dirty and doc.folder == project
        assert window.windowTitle().startswith("scene.dedit •")
        assert window.pages.currentWidget() is window.canvas
        slot = window.recovery.slot
        assert doc.project.folder == slot  # it still reads its pictures from the copy
        # the restored work goes on being copied there, every copy, for a second crash
        for item, prompt in ((1, "a marble table"), (3, "a tennis ball")):
            doc.set_prompt(item, prompt)
            copy_now(window)
            assert Project.load(slot).items[item].prompt == prompt
        assert window.message_text().startswith("Restored")  # no failed copy said

        assert window.files.save()  # Save goes to the project the work came from
        wait_idle(window)
        assert Project.load(project).items[2].prompt == "a white handbag"
        assert doc.project.folder == project and not doc.dirty
        assert not slot.exists() and not window.restore_menu.isEnabled()
    finally:
        window.close()


def test_restored_work_is_not_saved_over_a_project_saved_since_by_another_program(qtbot, tmp_path):
    shared, project = crash_with_a_prompt_unsaved(tmp_path)
    other = Project.load(project)  # `dedit edit --apply`, or another window, saves it
    other.items[3].prompt = "a tennis ball"
    other.save()
    window = make_window(shared)
    qtbot.addWidget(window)
    try:
        window.recovery.offer()
        window.message_bar.action.click()
        wait_idle(window)
        assert not window.files.save()
        wait_idle(window)
        assert "was changed by another program" in window.message_text()
        assert Project.load(project).items[3].prompt == "a tennis ball"  # its work stays
        assert window.doc.dirty and window.recovery.slot.exists()  # and so does this
        assert window.files.save_project(tmp_path / "both.dedit")  # another name keeps both
        wait_idle(window)
        assert Project.load(tmp_path / "both.dedit").items[2].prompt == "a white handbag"
    finally:
        window.close()


def test_an_edit_that_lands_is_copied_within_seconds(scene):
    window, _labels = scene
    doc = window.doc
    doc.set_prompt(1, "a marble table")
    timer = window.recovery._timer
    assert timer.isActive() and timer.remainingTime() > recovery.EDIT_DELAY_MS  # a minute
    edited = doc.image.copy()
    edited[0] = 255
    doc.apply_result(edited, doc.labels, {"kind": "recon"}, "Edit")
    # Qt's coarse timers may fire (and report) up to 5 % late
    assert 0 < timer.remainingTime() <= recovery.EDIT_DELAY_MS * 1.1
    slot = copy_now(window)
    np.testing.assert_array_equal(Project.load(slot).image, edited)


def test_a_copy_made_after_undo_moved_earlier_pictures_to_files_holds_them_all(scene, tmp_path):
    window, _labels = scene
    doc = window.doc
    tight_undo_budget(doc, tmp_path / "scratch")
    states = land_edits(doc, 4)
    assert any(spill.file_backed(a) for a in undo_arrays(doc) if a is not None)
    assert_holds_history(Project.load(copy_now(window)), states, 4)


def test_a_running_editors_copy_is_not_offered(scene, qtbot, tmp_path):
    window, _labels = scene
    window.doc.set_prompt(1, "a marble table")
    slot = copy_now(window)
    other = make_window(tmp_path / "settings")  # the same recovery folder
    qtbot.addWidget(other)
    try:
        other.recovery.offer()
        assert other.recovery.found == [] and other.message_text() == ""
        assert slot.exists()
    finally:
        other.close()


def test_learned_weights_not_yet_saved_are_copied_once(scene):
    window, _labels = scene
    doc = window.doc
    tensors = {"unet.to_k": torch.arange(6.0).reshape(2, 3)}
    doc.project.store_weights(tensors, {"model": "tiny"}, write=False)
    doc.mark_dirty()
    timer = window.recovery._timer
    assert timer.isActive() and timer.interval() <= 1000  # minutes of preparing: copied soon
    slot = copy_now(window)
    copy = Project.load(slot)
    loaded, metadata = copy.load_weights()
    torch.testing.assert_close(loaded["unet.to_k"], tensors["unet.to_k"])
    assert metadata["model"] == "tiny"
    weights = slot / copy.training["weights"]
    written = weights.stat().st_mtime_ns

    doc.rename(0, "plaster wall")
    slot = copy_now(window)
    again = Project.load(slot)
    assert again.items[0].name == "plaster wall"
    assert again.training["weights"] == weights.name and weights.stat().st_mtime_ns == written
    assert doc.project.pending_weights is not None  # still the document's to save


def test_opening_another_picture_or_closing_discards_the_copy(scene, tmp_path):
    window, _labels = scene
    window.doc.set_prompt(2, "a red bag")
    slot = copy_now(window)
    other = tmp_path / "other.png"
    write_synthetic_photo(other, 120, 160)
    assert window.open_path(other)  # the changes were discarded (no question in tests)
    wait_idle(window)
    assert not slot.exists()

    window.doc.set_prompt(0, "a brick wall")
    slot = copy_now(window)
    lock = slot.with_suffix(".lock")
    assert lock.exists()
    window.close()
    assert not slot.exists() and not lock.exists()


def test_a_copy_that_cannot_be_written_is_said_once_and_nothing_is_lost(scene):
    window, _labels = scene
    window.recovery.root.parent.mkdir(parents=True, exist_ok=True)
    window.recovery.root.write_text("not a folder")
    window.doc.set_prompt(2, "a green bag")
    assert not window.recovery.write()
    assert "No recovery copy of your unsaved work could be kept" in window.message_text()
    assert window.doc.items[2].prompt == "a green bag" and window.doc.dirty
    window.dismiss_message()
    window.doc.set_prompt(2, "a blue bag")
    assert not window.recovery.write()
    assert window.message_text() == ""  # not every minute


def test_a_damaged_copy_is_explained_and_kept(scene, qtbot, tmp_path):
    window, _labels = scene
    window.doc.set_prompt(2, "a white handbag")
    slot = copy_now(window)
    window.recovery._lock.unlock()  # as if its editor had stopped
    (slot / "project.json").write_text("{ not json")
    other = make_window(tmp_path / "settings")
    qtbot.addWidget(other)
    try:
        other.recovery.offer()
        assert len(other.recovery.found) == 1
        assert not other.recovery.restore(other.recovery.found[0])
        assert f"The recovery copy in {slot} could not be opened" in other.message_text()
        assert other.recovery.found == [] and other.doc is None and slot.exists()
    finally:
        other.close()


def test_a_slot_without_a_complete_copy_is_cleared(tmp_path):
    root = tmp_path / "recovery"
    (root / "20261123-101010-abcdef.dedit").mkdir(parents=True)
    assert find_copies(root) == []
    assert list(root.iterdir()) == []


def test_a_copy_can_be_discarded_without_opening_it_after_a_question(
    scene, qtbot, tmp_path, monkeypatch
):
    window, _labels = scene
    window.doc.set_prompt(2, "a white handbag")
    slot = copy_now(window)
    window.recovery._lock.unlock()  # as if its editor had stopped
    other = make_window(tmp_path / "settings")
    qtbot.addWidget(other)
    asked, answers = [], [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Discard]

    def question(_parent, _title, text, *_buttons):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    try:
        other.recovery.offer()
        page = other.start_page
        assert other.pages.currentWidget() is page and len(page.discard_buttons) == 1
        other.ask_to_save = True  # the question is the point here
        page.discard_buttons[0].click()
        wait_idle(other)
        assert "“scene.png” kept at" in asked[0] and "for good" in asked[0]
        assert slot.exists() and len(other.recovery.found) == 1  # Cancel keeps it

        page.discard_buttons[0].click()
        wait_idle(other)
        assert len(asked) == 2 and not slot.exists()
        assert not slot.with_suffix(".lock").exists()
        assert other.recovery.found == [] and page.discard_buttons == []
        assert not other.restore_menu.isEnabled()
        assert "Discarded the unsaved work on “scene.png”" in other.message_text()
        assert window.doc.items[2].prompt == "a white handbag"  # its own editor's work stays
    finally:
        other.close()
