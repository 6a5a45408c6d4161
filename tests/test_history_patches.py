"""Earlier pictures saved as the box their edit changed: exact, across saves, and checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_project import make_project, saved_unless_renames_fail

from dedit_app import bundle_files
from dedit_app.errors import ProjectError
from dedit_app.picture_patches import box_of, changed_box, crop, paste
from dedit_app.project import PROJECT_FILE, Project


def _edit(project: Project, n: int, states: list) -> None:
    """Apply edit ``n``: a band of rows repainted, and every other one a new item map."""
    image = project.image.copy()
    image[10 * n : 10 * n + 8, 20:60] = (40 * n + 7) % 256
    labels = project.labels
    if n % 2:
        labels = labels.copy()
        labels[:5, :5] = n % 3
    project.apply(image, labels, {"kind": "text", "item": 1, "prompt": f"look {n}"})
    states.append((image, labels))


def _edited(edits: int, h: int = 120, w: int = 160) -> tuple[Project, list]:
    """A new project with ``edits`` edits applied, and ``(image, labels)`` of each state."""
    project = make_project(h=h, w=w)
    states = [(project.image, project.labels)]
    for n in range(edits):
        _edit(project, n, states)
    return project, states


def _assert_holds(project: Project, states: list) -> None:
    """``project`` shows the last of ``states`` and gives back every earlier one exactly."""
    np.testing.assert_array_equal(project.image, states[-1][0])
    assert len(project.history) == len(states) - 1
    for k, record in enumerate(project.history):
        image, labels = project.snapshot(record)
        np.testing.assert_array_equal(image, states[k][0])
        np.testing.assert_array_equal(labels, states[k][1])


def _document(folder) -> dict:
    return json.loads((folder / PROJECT_FILE).read_text(encoding="utf-8"))


def test_a_box_laid_into_the_next_picture_gives_the_earlier_one_back():
    rng = np.random.default_rng(1)
    before = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    after = before.copy()
    after[7:9, 11:30] = 0
    after[20, 12] = 255
    assert changed_box(before, after) == (7, 11, 21, 30)
    box = box_of(before, after)
    np.testing.assert_array_equal(paste(after, crop(before, box), box), before)
    # the same picture: a one-pixel box, since a PNG cannot be empty
    box = box_of(before, before.copy())
    assert box == (0, 0, 1, 1) and np.array_equal(paste(before, crop(before, box), box), before)
    with pytest.raises(ValueError, match="outside"):
        paste(after, crop(before, box), (39, 0, 41, 1))


def test_earlier_pictures_after_the_photo_are_saved_as_boxes_and_come_back_exactly(tmp_path):
    p, states = _edited(4)
    folder = tmp_path / "boxes.dedit"
    p.save(folder)
    doc = _document(folder)
    assert doc["version"] == 2  # an older editor refuses it rather than losing the boxes
    first, *later = doc["history"]
    assert "image" in first and "image_patch" not in first  # the photo itself, whole
    whole = (folder / first["image"]).stat().st_size
    for n, record in enumerate(later, start=1):
        assert "image" not in record
        assert record["image_box"] == [10 * n, 20, 10 * n + 8, 60]  # what edit n changed
        assert (folder / record["image_patch"]).stat().st_size < whole / 5
    _assert_holds(Project.load(folder), states)


def test_the_boxes_hold_across_sessions_and_a_save_elsewhere(tmp_path):
    p, states = _edited(2)
    folder = tmp_path / "a.dedit"
    p.save(folder)
    # another day: opened, edited on, saved again; the boxes saved before still fit
    q = Project.load(folder)
    for n in range(2, 5):
        _edit(q, n, states)
    q.save()
    _assert_holds(Project.load(folder), states)
    Project.load(folder).save(tmp_path / "copy.dedit")
    _assert_holds(Project.load(tmp_path / "copy.dedit"), states)
    # and an edit undone before saving (the history shorter again) saves what is left
    r = Project.load(tmp_path / "copy.dedit")
    r.image, r.labels = r.snapshot(r.history[-1])
    r.history.pop()
    r.save()
    _assert_holds(Project.load(tmp_path / "copy.dedit"), states[:-1])


def test_a_project_with_one_edit_is_saved_as_older_versions_read_it(tmp_path):
    p, states = _edited(1, h=48, w=64)
    p.save(tmp_path / "one.dedit")
    assert _document(tmp_path / "one.dedit")["version"] == 1
    _assert_holds(Project.load(tmp_path / "one.dedit"), states)


@pytest.mark.parametrize(
    ("box", "said"),
    [
        ([21, 20, 29, 60], "cannot be rebuilt from its files"),  # moved down a row
        ([0, 0, 500, 60], "does not fit the picture"),
        (None, "does not fit the picture"),
    ],
)
def test_a_box_altered_in_the_project_file_is_reported_as_damage(tmp_path, box, said):
    p, states = _edited(3)
    folder = tmp_path / "bad.dedit"
    p.save(folder)
    doc = _document(folder)
    doc["history"][1]["image_box"] = box
    (folder / PROJECT_FILE).write_text(json.dumps(doc), encoding="utf-8")
    q = Project.load(folder)  # the photo, items and the picture of now open as before
    np.testing.assert_array_equal(q.image, states[-1][0])
    np.testing.assert_array_equal(q.snapshot(q.history[2])[0], states[2][0])  # after it
    with pytest.raises(ProjectError, match=said):
        q.snapshot(q.history[1])


def test_boxes_found_ahead_of_a_save_are_not_looked_for_again(tmp_path, monkeypatch):
    """The editor writes a save's files on its files thread; the save itself, on the UI
    thread, must not compare the 24 MP pictures again to find the boxes, nor crop and
    hash them again to name their files."""
    from dedit_app import picture_patches

    p, states = _edited(3)
    for record in p.history:  # the editor's arrays are read-only, as here
        for array in record["_before"]:
            array.flags.writeable = False
    p.image.flags.writeable = False
    folder = tmp_path / "ahead.dedit"
    p.make_folder(folder)
    pictures = p.pictures()
    assert [kind for kind, _ in pictures].count("patch") == 2
    Project.write_pictures(folder, pictures)

    def again(*_args):
        raise AssertionError("the save compared or cropped the pictures again")

    monkeypatch.setattr(picture_patches, "changed_box", again)
    monkeypatch.setattr(picture_patches, "crop", again)  # and hashed the crop again
    p.save(folder)
    monkeypatch.undo()
    _assert_holds(Project.load(folder), states)


def test_a_save_interrupted_at_any_rename_leaves_every_earlier_picture(tmp_path, monkeypatch):
    """The picture that was the current one becomes a box at the next save: until the new
    project.json is in place, the old one and the whole picture it names stay."""
    folder = tmp_path / "r.dedit"
    old, states = _edited(2)
    old.save(folder)
    n = 0
    while True:
        new = Project.load(folder)
        more = list(states)
        for k in range(2, 4):
            _edit(new, k, more)
        done = saved_unless_renames_fail(monkeypatch, new.save, n)
        _assert_holds(Project.load(folder), more if done else states)
        if done:
            break
        n += 1
    assert n >= 3  # the picture, its box and project.json were each interrupted once


def _whole(folder) -> list[int]:
    """The edits (numbered from 0) whose earlier picture ``folder`` keeps whole."""
    return [k for k, record in enumerate(_document(folder)["history"]) if "image" in record]


def _repaint_quarter(project: Project, n: int, states: list) -> None:
    """Edit ``n``: a quarter of the picture repainted, at one of four places."""
    h, w = project.labels.shape
    top, left = (n % 2) * h // 2, (n // 2 % 2) * w // 2
    image = project.image.copy()
    image[top : top + h // 2, left : left + w // 2] = (37 * n + 11) % 256
    project.apply(image, project.labels, {"kind": "text", "item": 1, "prompt": f"look {n}"})
    states.append((image, project.labels))


def _reading(monkeypatch) -> tuple[list, list]:
    """``(the files read, the number read when each box was laid in)``, as they come."""
    from dedit_app import picture_patches

    read, at_paste = [], []
    real_read, real_paste = bundle_files.read_png, picture_patches.paste
    monkeypatch.setattr(
        bundle_files, "read_png", lambda path, kind: read.append(path) or real_read(path, kind)
    )
    monkeypatch.setattr(
        picture_patches,
        "paste",
        lambda *args, **kw: at_paste.append(len(read)) or real_paste(*args, **kw),
    )
    return read, at_paste


def test_a_long_history_keeps_a_whole_picture_every_32_edits(tmp_path, monkeypatch):
    """Going back far lays in at most 31 boxes, however many edits came after; saving
    after each edit or once at the end keeps the same pictures whole; going back one
    edit still lays in one box, not a whole picture read from disk."""
    from dedit_app import project as project_module

    p = make_project()
    states = [(p.image, p.labels)]
    for n in range(72):
        _repaint_quarter(p, n, states)
    p.save(tmp_path / "once.dedit")
    assert _whole(tmp_path / "once.dedit") == [0, 32, 64]
    q = make_project()
    for n in range(72):
        _repaint_quarter(q, n, [])
        q.save(tmp_path / "each.dedit")
    assert _whole(tmp_path / "each.dedit") == [0, 32, 64]
    doc = _document(tmp_path / "each.dedit")
    assert all("image_patch" in r for r in doc["history"][1:])  # the whole ones too
    opened = Project.load(tmp_path / "each.dedit")
    _assert_holds(opened, states)
    patches = {r["image_patch"] for r in opened.history[1:]}

    read, at_paste = _reading(monkeypatch)
    opened.snapshot(opened.history[1])  # the farthest from a whole picture
    wholes = [path.name for path in read if path.name == opened.history[32]["image"]]
    assert len([path for path in read if path.name in patches]) == 31 and len(wholes) == 1
    assert len(read) == 33  # and the item map
    # read a few ahead of the box being laid in, not all at once (a box can be as large
    # as the picture): the map and the whole picture first, then boxes up to the one laid
    # in and at most PICTURE_THREADS more
    ahead = project_module.PICTURE_THREADS + 1
    assert len(at_paste) == 31
    assert all(n <= 2 + i + ahead for i, n in enumerate(at_paste)), at_paste

    read.clear()
    opened.snapshot(opened.history[70])  # one edit back: two boxes from the picture on show
    assert [path.name in patches for path in read] == [False, True, True]  # the map, 2 boxes
    read.clear()
    opened.snapshot(opened.history[62])  # before edit 63: two boxes from the whole before 65
    assert opened.history[64]["image"] in {path.name for path in read} and len(read) == 4


def test_a_long_history_saved_without_whole_pictures_gets_one_at_the_next_edit(
    tmp_path, monkeypatch
):
    """A project from before whole pictures were kept now and then: its boxes stay as
    they are, and the next edit saved starts the count again."""
    from dedit_app import project as project_module

    monkeypatch.setattr(project_module, "BOXES_BETWEEN_WHOLE", 1000)
    p = make_project()
    states = [(p.image, p.labels)]
    for n in range(40):
        _repaint_quarter(p, n, states)
    p.save(tmp_path / "old.dedit")
    assert _whole(tmp_path / "old.dedit") == [0]
    monkeypatch.undo()
    q = Project.load(tmp_path / "old.dedit")
    for n in range(40, 42):
        _repaint_quarter(q, n, states)
    q.save()
    assert _whole(tmp_path / "old.dedit") == [0, 40]
    _assert_holds(Project.load(tmp_path / "old.dedit"), states)


def test_the_pictures_ahead_of_a_save_are_each_encoded_once(tmp_path, monkeypatch):
    """An item map no edit changed is named by several entries: written once. The files
    are written on several threads; a failure in one is said as the save's sentence."""

    p, states = _edited(4)
    encoded = []
    real = bundle_files.png_bytes
    monkeypatch.setattr(bundle_files, "png_bytes", lambda a: encoded.append(a) or real(a))
    folder = tmp_path / "once.dedit"
    p.make_folder(folder)
    pictures = p.pictures()
    distinct = {id(a) if kind != "patch" else (id(a[0]), id(a[1])) for kind, a in pictures}
    assert len(distinct) < len(pictures)  # the same map, named again
    Project.write_pictures(folder, pictures)
    assert len(encoded) == len(distinct)
    p.save(folder)
    assert len(encoded) == len(distinct)  # the save found them all written
    _assert_holds(Project.load(folder), states)

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_files, "atomic_write_bytes", full)
    with pytest.raises(ProjectError, match="The disk is full"):
        Project.write_pictures(tmp_path / "other", _edited(2)[0].pictures())
