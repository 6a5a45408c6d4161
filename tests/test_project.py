"""The project bundle: exact round trip, atomic saves (kill -9 included), clear errors."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_fixtures import held_for

from dedit_app import atomic, bundle_files, folder_lock
from dedit_app.errors import ProjectError
from dedit_app.project import PROJECT_FILE, Item, Project


def make_project(seed: int = 0, h: int = 48, w: int = 64, k: int = 3) -> Project:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, k, (h, w)).astype(np.int32)
    p = Project.new(image, labels, [f"thing {i}" for i in range(k)], source="photo.jpg")
    p.items[1].prompt = "a white handbag ✓"
    p.items[2].tokens = "#thing2 #thing2_1"
    p.settings = {"steps": 20, "guidance": 3.0, "edge": 24}
    return p


def assert_same(a: Project, b: Project) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.labels.dtype == b.labels.dtype == np.int32
    assert a.items == b.items
    assert a.settings == b.settings
    assert a.source == b.source


def test_round_trip_is_exact(tmp_path):
    p = make_project()
    p.labels[0, 0] = 2
    p.save(tmp_path / "a.dedit")
    q = Project.load(tmp_path / "a.dedit")
    assert_same(p, q)
    doc = json.loads((tmp_path / "a.dedit" / PROJECT_FILE).read_text())
    assert doc["version"] == 1 and doc["size"] == [48, 64]


def test_a_save_clears_its_own_leftover_temporaries_and_no_others(tmp_path):
    folder = tmp_path / "a.dedit"
    p = make_project()
    p.save(folder)
    # As an interrupted save leaves them, and as an export into the folder writes its file.
    picture = Path(atomic.make_temp(folder / "image-0123456789abcdef.png"))
    document = Path(atomic.make_temp(folder / PROJECT_FILE))
    export = Path(atomic.make_temp(folder / "poster.png"))
    running = Path(atomic.make_temp(folder / "labels-0123456789abcdef.png"))
    died = time.time() - 2 * folder_lock.STALE  # left by a save that died a while ago
    for path in (picture, document, export):
        os.utime(path, (died, died))
    p.save(folder)
    assert not picture.exists() and not document.exists()
    assert export.exists()  # the export goes on writing; it is not ours to delete
    assert running.exists()  # just written: another program's save may be under way


def test_two_programs_saving_one_project_lose_nothing_and_the_second_is_told(tmp_path):
    """The editor and ``dedit edit --apply`` on one project: the second save finds a
    project.json it did not read and refuses in words instead of overwriting it, and
    neither save deletes the files the other names."""
    folder = make_project().save(tmp_path / "shared.dedit")
    editor, command = Project.load(folder), Project.load(folder)
    edited = command.image.copy()
    edited[:4] = 0
    command.apply(edited, command.labels, {"kind": "recon"})
    command.save()
    editor.rename(0, "renamed in the editor")
    with pytest.raises(ProjectError, match="changed by another program .* save under another"):
        editor.save()
    after = Project.load(folder)  # the command's edit, whole
    np.testing.assert_array_equal(after.image, edited)
    assert len(after.history) == 1 and after.items[0].name == "thing 0"
    editor.save(tmp_path / "both.dedit")  # the editor's version is kept elsewhere
    assert Project.load(tmp_path / "both.dedit").items[0].name == "renamed in the editor"


def test_a_save_waits_for_another_save_of_the_folder_and_then_says_so(tmp_path, monkeypatch):
    folder = make_project().save(tmp_path / "busy.dedit")
    p = Project.load(folder)
    (folder / folder_lock.LOCK_FILE).write_text("4242\n")  # another save, under way
    monkeypatch.setattr(folder_lock, "WAIT", 0.2)
    with pytest.raises(ProjectError, match="being saved by another program"):
        p.save()
    old = time.time() - 2 * folder_lock.STALE  # left by a save that died
    os.utime(folder / folder_lock.LOCK_FILE, (old, old))
    p.rename(0, "saved")
    p.save()
    assert Project.load(folder).items[0].name == "saved"
    assert not (folder / folder_lock.LOCK_FILE).exists()


def test_many_items_survive_16_bit_labels(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3000, (40, 40)).astype(np.int32)
    labels.flat[0] = 2999
    p = Project.new(np.zeros((40, 40, 3), np.uint8), labels, [str(i) for i in range(3000)])
    q = Project.load(p.save(tmp_path / "many.dedit"))
    np.testing.assert_array_equal(q.labels, labels)


def test_weights_round_trip_and_pending_until_first_save(tmp_path):
    p = make_project()
    tensors = {"emb.1": torch.randn(3, 8), "unet.q": torch.randn(4, 4, dtype=torch.float16)}
    assert not p.has_weights
    p.store_weights(tensors, {"base": "tiny-sdxl", "n_tokens": "5"})
    assert not (tmp_path / "w.dedit").exists()
    assert p.has_weights and not p.prepared
    p.training = {"base": "tiny-sdxl"}
    p.save(tmp_path / "w.dedit")
    assert p.prepared
    q = Project.load(tmp_path / "w.dedit")
    loaded, meta = q.load_weights()
    assert meta == {"base": "tiny-sdxl", "n_tokens": "5"}
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype
    # A second store replaces the first and the old file is deleted.
    old = q.training["weights"]
    q.store_weights({"emb.1": torch.zeros(1)}, {"base": "tiny-sdxl"})
    assert not (tmp_path / "w.dedit" / old).exists()
    assert Project.load(tmp_path / "w.dedit").load_weights()[0]["emb.1"].shape == (1,)


def test_a_weights_file_from_another_preparation_is_refused_in_a_sentence(tmp_path):
    from dedit_app.project import weights_metadata

    made = []
    for name, weights_id in (("a.dedit", "aaaa"), ("b.dedit", "bbbb")):
        p = make_project()
        p.training = {"weights_id": weights_id}
        p.store_weights({"emb.1": torch.randn(3, 8)}, {"weights_id": weights_id})
        p.save(tmp_path / name)
        made.append(tmp_path / name / p.training["weights"])
    a = Project.load(tmp_path / "a.dedit")
    assert a.load_weights()[1]["weights_id"] == "aaaa"
    shutil.copyfile(made[1], made[0])  # b's weights under a's name
    a = Project.load(tmp_path / "a.dedit")
    for read in (a.load_weights, lambda: weights_metadata(a)):
        with pytest.raises(ProjectError, match="is not this project's .*another preparation"):
            read()


def test_a_saved_preparation_prepared_again_reads_the_new_weights_before_the_save(tmp_path):
    # The editor keeps a new preparation of a project with unsaved changes until the save;
    # the old file, which its weights_id no longer names, was read instead: "not this
    # project's", so the project read as not prepared and the reference's items were lost.
    from dedit_app.project import weights_metadata
    from dedit_app.reference_items import LABELS_TENSOR, prepared_reference, record

    p = make_project()
    p.training = {"weights_id": "aaaa"}
    p.store_weights({"emb.1": torch.zeros(2)}, {"weights_id": "aaaa"})
    p.save(tmp_path / "p.dedit")
    p = Project.load(tmp_path / "p.dedit")
    ref_image = np.full((6, 10, 3), 70, np.uint8)
    ref_labels = np.zeros((6, 10), np.int32)
    ref_labels[:, 5:] = 1
    encoded, kept = record(ref_image, ref_labels, ("sky", "sea"))
    p.training = {**p.training, "weights_id": "bbbb"}  # as finetune.store_result does
    tensors = {"emb.1": torch.ones(2), LABELS_TENSOR: torch.from_numpy(encoded)}
    p.store_weights(tensors, {"weights_id": "bbbb", **kept}, write=False)
    assert weights_metadata(p)["weights_id"] == "bbbb"
    found = prepared_reference(p)
    assert found is not None and found.names == ("sky", "sea") and found.fits(ref_image)
    np.testing.assert_array_equal(found.labels, ref_labels)


def test_saved_files_get_normal_permissions(tmp_path):
    """Temp files start owner-only; a saved project must be readable like any other file."""
    import os

    from dedit_app.atomic import FILE_MODE

    p = make_project()
    p.store_weights({"emb.1": torch.zeros(2)}, {"base": "tiny-sdxl"})
    p.save(tmp_path / "m.dedit")
    files = list((tmp_path / "m.dedit").iterdir())
    assert {f.suffix for f in files} == {".json", ".png", ".safetensors"}
    for f in files:
        assert os.stat(f).st_mode & 0o777 == FILE_MODE, f.name


def test_weights_that_cannot_be_written_are_a_sentence_and_the_project_stays(tmp_path, monkeypatch):
    """safetensors reports a full disk in its own error type, not an OSError."""
    import safetensors.torch
    from safetensors import SafetensorError

    p = make_project()
    folder = p.save(tmp_path / "full.dedit")
    before = (folder / PROJECT_FILE).read_bytes()

    def full_disk(*_args, **_kwargs):
        raise SafetensorError("Error while serializing: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(ProjectError, match="^The disk is full: could not save to .*weights-"):
        p.store_weights({"emb.1": torch.zeros(2)}, {"base": "tiny-sdxl"})
    assert (folder / PROJECT_FILE).read_bytes() == before
    assert not [f for f in folder.iterdir() if "weights" in f.name]


def test_a_read_only_project_folder_is_told_before_preparing(tmp_path, monkeypatch):
    from dedit_app import project as project_module

    p = Project.load(make_project().save(tmp_path / "ro.dedit"))
    p.check_writable()  # writable: says nothing, leaves nothing

    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(project_module, "make_temp", read_only)
    with pytest.raises(ProjectError, match="^No permission to write .*ro.dedit"):
        p.check_writable()
    assert sorted(f.name for f in p.folder.iterdir() if f.name.startswith(".")) == []


def test_job_copy_is_independent_of_later_document_changes(tmp_path):
    p = make_project()
    job = p.job_copy()
    p.rename(0, "changed")
    p.settings["seed"] = 99
    assert job.items[0].name != "changed" and "seed" not in job.settings
    assert job.image is p.image  # arrays are shared, never copied per job


def test_a_copy_with_history_saves_elsewhere_and_leaves_the_project_as_it_was(tmp_path):
    p = make_project()
    p.store_weights({"emb.1": torch.ones(4)}, {"base": "tiny-sdxl"})
    p.save(tmp_path / "home.dedit")
    before = p.image
    edited = p.image.copy()
    edited[:5] = 0
    p.apply(edited, p.labels.copy(), {"kind": "text", "item": 1, "prompt": "red"})
    copy = p.job_copy(history=True)
    copy.save(tmp_path / "elsewhere.dedit")
    assert p.folder == tmp_path / "home.dedit"
    assert p.history[0]["_before"][0] is before  # still in memory, not a file name
    q = Project.load(tmp_path / "elsewhere.dedit")
    np.testing.assert_array_equal(q.snapshot(q.history[0])[0], before)
    # the weights are linked, not copied: a gigabyte for SDXL, and never changed in place
    name = p.training["weights"]
    linked = (tmp_path / "elsewhere.dedit" / name).stat()
    assert linked.st_ino == (tmp_path / "home.dedit" / name).stat().st_ino
    torch.testing.assert_close(q.load_weights()[0]["emb.1"], torch.ones(4))


def test_save_as_copies_the_weights_where_links_are_not_possible(tmp_path, monkeypatch):
    p = make_project()
    p.store_weights({"emb.1": torch.arange(3.0)}, {"base": "tiny-sdxl"})
    p.save(tmp_path / "a.dedit")

    def no_links(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    p.save(tmp_path / "b.dedit")
    name = p.training["weights"]
    a, b = (tmp_path / "a.dedit" / name), (tmp_path / "b.dedit" / name)
    assert a.stat().st_ino != b.stat().st_ino and a.read_bytes() == b.read_bytes()


def test_content_names_are_remembered_only_for_pictures_nothing_can_change(monkeypatch):
    from dedit_app import project as project_module

    hashed = []
    sha256 = project_module.hashlib.sha256

    def counting(*args):
        hashed.append(1)
        return sha256(*args)

    monkeypatch.setattr(project_module.hashlib, "sha256", counting)
    name = bundle_files.content_name
    frozen = np.arange(12, dtype=np.int32).reshape(3, 4).copy()
    frozen.flags.writeable = False
    first = name("labels", frozen)
    assert name("labels", frozen) == first and len(hashed) == 1  # remembered
    assert name("labels", frozen.astype(np.uint16)) == first  # the name is the content's

    writable = np.arange(12, dtype=np.int32).reshape(3, 4)
    view = writable[:, :]
    view.flags.writeable = False  # read-only, but its base can still change it
    before = name("labels", view)
    writable[0, 0] = 7
    assert name("labels", view) != before
    n = len(hashed)
    name("labels", writable)
    name("labels", writable)
    assert len(hashed) == n + 2  # a writable array is hashed every time


def test_a_project_whose_weights_file_is_gone_opens_and_saves_elsewhere_unprepared(tmp_path):
    """The photo, items and history are the user's work: a deleted weights file must not
    lock them away. The project opens, says to prepare again where the weights are
    needed, and a save elsewhere keeps everything but the preparation."""
    p = make_project()
    p.rename(1, "bag")
    p.store_weights({"emb.1": torch.ones(4)}, {"base": "tiny-sdxl"})
    p.save(tmp_path / "w.dedit")
    (tmp_path / "w.dedit" / p.training["weights"]).unlink()
    q = Project.load(tmp_path / "w.dedit")
    assert q.items[1].name == "bag"
    np.testing.assert_array_equal(q.image, p.image)
    with pytest.raises(ProjectError, match="weights file .* is missing; prepare the project again"):
        q.load_weights()
    q.save(tmp_path / "elsewhere.dedit")
    assert not q.prepared
    r = Project.load(tmp_path / "elsewhere.dedit")
    assert not r.prepared and r.items[1].name == "bag"
    np.testing.assert_array_equal(r.labels, p.labels)


def test_items_with_null_or_empty_texts_open_with_sensible_names(tmp_path):
    folder = make_project().save(tmp_path / "n.dedit")
    doc = json.loads((folder / PROJECT_FILE).read_text())
    doc["items"][0] = {"name": None, "prompt": None}
    doc["items"][1]["name"] = "  "
    (folder / PROJECT_FILE).write_text(json.dumps(doc))
    items = Project.load(folder).items
    assert [i.name for i in items[:2]] == ["item 0", "item 1"] and items[0].prompt == ""


def test_unprepared_project_says_so(tmp_path):
    p = make_project()
    p.save(tmp_path / "u.dedit")
    with pytest.raises(ProjectError, match="not been prepared"):
        Project.load(tmp_path / "u.dedit").load_weights()


def test_a_spilled_picture_is_the_same_bytes_mapped_read_only_and_names_itself_once(
    tmp_path, monkeypatch
):
    """dedit_app.spill: the editor moves pictures held for undo out of RAM this way."""
    from dedit_app import project as project_module
    from dedit_app import spill

    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    labels = np.arange(48 * 64, dtype=np.int32).reshape(48, 64) % 5
    image.flags.writeable = labels.flags.writeable = False
    name = bundle_files.content_name("image", image)
    mapped, mapped_labels = spill.spill(image, tmp_path), spill.spill(labels, tmp_path)
    for old, new in ((image, mapped), (labels, mapped_labels)):
        np.testing.assert_array_equal(new, old)
        assert new.dtype == old.dtype and not new.flags.writeable and spill.file_backed(new)
        assert np.asarray(new) is new  # the document goes by identity: checks keep it
    if os.name == "posix":
        assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing to clean up
    hashed = []
    sha256 = project_module.hashlib.sha256
    monkeypatch.setattr(project_module.hashlib, "sha256", lambda *a: hashed.append(1) or sha256(*a))
    bundle_files.share_names(image, mapped)
    assert bundle_files.content_name("image", mapped) == name and hashed == []

    # A project whose history holds spilled pictures saves them like any others.
    p = Project.new(image, labels, ["a", "b", "c", "d", "e"])
    p.apply(np.zeros_like(image), labels, {"kind": "recon"})
    p.history[0]["_before"] = (mapped, mapped_labels)
    p.save(tmp_path / "s.dedit")
    before = Project.load(tmp_path / "s.dedit").snapshot(p.history[0])
    np.testing.assert_array_equal(before[0], image)
    np.testing.assert_array_equal(before[1], labels)


def test_a_picture_that_cannot_be_spilled_is_none_and_leaves_no_file(tmp_path, monkeypatch):
    from dedit_app import spill

    blocked = tmp_path / "a file, not a folder"
    blocked.write_bytes(b"")
    assert spill.spill(np.zeros((4, 4), np.int32), blocked) is None

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spill.np, "save", full)
    assert spill.spill(np.zeros((4, 4), np.int32), tmp_path / "scratch") is None
    assert list((tmp_path / "scratch").iterdir()) == []
    monkeypatch.undo()

    # Nor is a disk filled up to the last gigabytes for undo's sake.
    usage = shutil.disk_usage(tmp_path)
    nearly_full = usage._replace(free=spill.KEEP_FREE + 8)
    monkeypatch.setattr(spill.shutil, "disk_usage", lambda _path: nearly_full)
    assert spill.spill(np.zeros((4, 4), np.int32), tmp_path / "scratch") is None
    assert spill.spill(np.zeros((2,), np.int32), tmp_path / "scratch") is not None


def test_spill_files_a_run_left_behind_are_swept_once_stale(tmp_path):
    from dedit_app import spill

    old, fresh = tmp_path / "undo-old.npy", tmp_path / "undo-fresh.npy"
    for path in (old, fresh):
        np.save(path, np.zeros(3), allow_pickle=False)
    past = time.time() - 2 * spill.STALE_S
    os.utime(old, (past, past))
    spill.sweep(tmp_path)
    assert not old.exists() and fresh.exists()  # a fresh one may be another editor's


def test_history_snapshots_survive_save_and_load(tmp_path):
    p = make_project()
    first_image, first_labels = p.image.copy(), p.labels.copy()
    edited = p.image.copy()
    edited[:10] = 255
    p.apply(edited, p.labels.copy(), {"kind": "text", "item": 1, "prompt": "red"})
    p.save(tmp_path / "h.dedit")
    q = Project.load(tmp_path / "h.dedit")
    np.testing.assert_array_equal(q.image, edited)
    assert q.history[0]["kind"] == "text"
    assert q.items[1].prompt == "red"  # the item looks as typed (`dedit edit --apply`)
    assert [i.prompt for i in q.items if i is not q.items[1]] == [
        i.prompt for i in make_project().items if i.name != q.items[1].name
    ]
    img, lab = q.snapshot(q.history[0])
    np.testing.assert_array_equal(img, first_image)
    np.testing.assert_array_equal(lab, first_labels)
    # "Save as" elsewhere carries the snapshots along.
    q.save(tmp_path / "copy.dedit")
    r = Project.load(tmp_path / "copy.dedit")
    np.testing.assert_array_equal(r.snapshot(r.history[0])[0], first_image)


def test_the_map_a_reshaped_picture_was_made_with_is_kept_until_an_edit(tmp_path):
    p = make_project()
    assert p.drawn is None
    p.save(tmp_path / "r.dedit")
    assert "drawn" not in json.loads((tmp_path / "r.dedit" / PROJECT_FILE).read_text())
    # Items reshaped by hand: the picture was made with the old map, which is saved.
    drawn, p.labels = p.labels, p.labels.copy()
    p.labels[:8] = 0
    p.drawn = drawn
    p.save()
    q = Project.load(tmp_path / "r.dedit")
    np.testing.assert_array_equal(q.drawn, drawn)
    assert q.drawn.dtype == np.int32
    np.testing.assert_array_equal(q.labels, p.labels)
    # Applying an edit makes the picture from the current map: nothing left to redraw,
    # and the next save deletes the file.
    named = (
        tmp_path
        / "r.dedit"
        / json.loads((tmp_path / "r.dedit" / PROJECT_FILE).read_text())["drawn"]
    )
    assert named.is_file()
    q.apply(q.image.copy(), q.labels, {"kind": "redraw"})
    assert q.drawn is None
    q.save()
    assert "drawn" not in json.loads((tmp_path / "r.dedit" / PROJECT_FILE).read_text())
    assert not named.exists()
    # A map of the wrong size is refused as the others are.
    q.drawn = np.zeros((3, 3), np.int32)
    with pytest.raises(ProjectError, match="made with is not the picture's size"):
        q.validate()


def test_pictures_written_ahead_are_what_the_save_then_names(tmp_path):
    p = make_project()
    edited = p.image.copy()
    edited[:10] = 255
    relabelled = p.labels.copy()
    relabelled[:10] = 0
    p.apply(edited, relabelled, {"kind": "text", "item": 1, "prompt": "red"})
    target = tmp_path / "ahead.dedit"
    p.make_folder(target)
    pictures = p.pictures()  # image, labels, and the earlier picture history holds
    assert [kind for kind, _ in pictures] == ["image", "labels", "image", "labels"]
    Project.write_pictures(target, pictures)
    written = {f.name: f.stat().st_mtime_ns for f in target.iterdir()}
    assert len(written) == 4 and PROJECT_FILE not in written
    p.save(target)
    doc = json.loads((target / PROJECT_FILE).read_text())
    named = {doc["image"], doc["labels"], doc["history"][0]["image"], doc["history"][0]["labels"]}
    assert named == set(written)  # the save found each one written, and wrote it no more
    assert {f.name: f.stat().st_mtime_ns for f in target.iterdir() if f.name in named} == written
    assert Project.peek_size(target) == (48, 64)
    doc.pop("size")
    (target / PROJECT_FILE).write_text(json.dumps(doc))
    assert Project.peek_size(target) is None  # it cannot tell; loading still works
    np.testing.assert_array_equal(Project.load(target).image, edited)


def test_a_save_refuses_to_write_into_something_that_is_not_a_project(tmp_path):
    foreign = tmp_path / "notes.dedit"
    foreign.mkdir()
    (foreign / PROJECT_FILE).write_text('{"format": "something else"}')
    with pytest.raises(ProjectError, match="is not a D-Edit project file"):
        make_project().make_folder(foreign)
    with pytest.raises(ProjectError, match="There is no project at"):
        Project.peek_size(tmp_path / "nowhere.dedit")


def test_newer_version_is_refused_with_a_sentence(tmp_path):
    folder = make_project().save(tmp_path / "n.dedit")
    doc = json.loads((folder / PROJECT_FILE).read_text())
    doc["version"] = 99
    (folder / PROJECT_FILE).write_text(json.dumps(doc))
    with pytest.raises(ProjectError, match="newer D-Edit Studio.*format 99.*Update"):
        Project.load(folder)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / PROJECT_FILE).unlink(), "has no project.json"),
        (lambda f: (f / PROJECT_FILE).write_text("{not json"), "project.json is damaged"),
        (lambda f: (f / PROJECT_FILE).write_bytes(b"\xff\xfe\x00"), "not a text file"),
        (lambda f: (f / PROJECT_FILE).write_text('{"format": "x"}'), "not a D-Edit project"),
        (lambda f: next(f.glob("labels-*.png")).unlink(), r"labels-.*\.png is missing"),
        (lambda f: next(f.glob("image-*.png")).write_bytes(b"\x89PNG broken"), "not a readable"),
        (lambda f: _swap_png(f), "checksum"),
        (lambda f: _drop_items(f), "does not match its files"),
        (lambda f: _point_outside(f), "not a file name of a project"),
        (lambda f: _point_outside(f, "../other.dedit/image-0123456789abcdef.png"), "not a file"),
        (lambda f: _set(f, "history", {"a": 1}), "entry 'history' is not a list"),
        (lambda f: _set(f, "items", "x"), "entry 'items' is not a list"),
        (lambda f: _set(f, "settings", [1]), "entry 'settings' is not a set of named values"),
        (lambda f: _set(f, "items", [1, 2]), "an entry of 'items' is not a record"),
        (lambda f: (f / PROJECT_FILE).write_text('{"a": "b'), r"damaged: Unterminated .* \(line"),
    ],
)
def test_damaged_bundles_fail_naming_the_file(tmp_path, damage, message):
    folder = make_project().save(tmp_path / "d.dedit")
    damage(folder)
    with pytest.raises(ProjectError, match=message):
        Project.load(folder)


def _swap_png(folder: Path) -> None:
    import cv2

    path = next(folder.glob("image-*.png"))
    cv2.imwrite(str(path), np.zeros((48, 64, 3), np.uint8))


def _drop_items(folder: Path) -> None:
    doc = json.loads((folder / PROJECT_FILE).read_text())
    doc["items"] = doc["items"][:1]
    (folder / PROJECT_FILE).write_text(json.dumps(doc))


def _point_outside(folder: Path, name: str = "../../secret.png") -> None:
    _set(folder, "image", name)


def _set(folder: Path, key: str, value) -> None:
    doc = json.loads((folder / PROJECT_FILE).read_text())
    doc[key] = value
    (folder / PROJECT_FILE).write_text(json.dumps(doc))


def test_a_project_file_with_a_bom_as_notepad_saves_it_opens(tmp_path):
    folder = make_project().save(tmp_path / "bom.dedit")
    text = (folder / PROJECT_FILE).read_text(encoding="utf-8")
    (folder / PROJECT_FILE).write_text(text, encoding="utf-8-sig")
    assert Project.load(folder).items[1].prompt == "a white handbag ✓"


def test_missing_folder_and_unsaved_project(tmp_path):
    with pytest.raises(ProjectError, match="no project at"):
        Project.load(tmp_path / "nowhere.dedit")
    with pytest.raises(ProjectError, match="Choose a folder"):
        make_project().save()


def test_invalid_documents_are_refused_before_writing(tmp_path):
    p = make_project()
    p.labels = p.labels[:10]
    with pytest.raises(ProjectError, match="item map is 64x10 but the image is 64x48"):
        p.save(tmp_path / "x.dedit")
    assert not (tmp_path / "x.dedit" / PROJECT_FILE).exists()
    with pytest.raises(ProjectError, match="uses item 5"):
        Project.new(np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 5), ["a"])


def test_a_file_another_program_holds_for_a_moment_is_saved_after_a_retry(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "BUSY_RETRIES", (0.0, 0.0, 0.0))  # as on Windows, no pauses
    folder = tmp_path / "f.dedit"
    p = make_project()
    p.save(folder)
    p.items[0].name = "renamed"
    failed = held_for(2, monkeypatch)
    p.save()
    assert len(failed) == 2 and Project.load(folder).items[0].name == "renamed"


def test_a_file_another_program_keeps_open_says_so_and_keeps_the_previous_save(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(atomic, "BUSY_RETRIES", (0.0, 0.0))
    folder = tmp_path / "f.dedit"
    p = make_project()
    p.save(folder)
    p.items[0].name = "renamed"
    failed = held_for(99, monkeypatch, winerror=32)
    with pytest.raises(ProjectError) as info:
        p.save()
    assert len(failed) == 3  # the first try and two retries
    assert str(info.value).startswith("Another program has ")
    assert str(info.value).endswith(" open, so it could not be saved; close it there and save "
                                    "again. The previous save is unchanged.")  # fmt: skip
    monkeypatch.undo()
    assert Project.load(folder).items[0].name == "thing 0"
    assert not [f for f in folder.iterdir() if f.name.endswith(".tmp")]
    # without retries (not Windows) a PermissionError is a real one, said as such
    monkeypatch.setattr(atomic, "BUSY_RETRIES", ())
    held_for(1, monkeypatch)
    with pytest.raises(ProjectError, match="No permission to write .*unchanged"):
        p.save()


def test_full_disk_keeps_previous_save(tmp_path, monkeypatch):
    folder = tmp_path / "f.dedit"
    p = make_project()
    p.save(folder)
    p.items[0].name = "renamed"
    p.image = 255 - p.image

    real = atomic.atomic_writer

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    for target in ("image-", "project.json"):
        calls = []

        def writer(path, _target=target, _calls=calls):
            _calls.append(path)
            if Path(path).name.startswith(_target):
                return full(path)
            return real(path)

        monkeypatch.setattr(atomic, "atomic_writer", writer)
        with pytest.raises(ProjectError, match="disk is full.*previous save is unchanged"):
            p.save()
        monkeypatch.setattr(atomic, "atomic_writer", real)
        q = Project.load(folder)
        assert q.items[0].name == "thing 0"
        np.testing.assert_array_equal(q.image, make_project().image)


def saved_unless_renames_fail(monkeypatch, save, n: int) -> bool:
    """Run ``save()`` with its ``n``-th file rename (0: the first) failing as a crash
    would; True when it saved (it had fewer renames than that)."""
    real_replace, count = os.replace, [0]

    def failing_replace(src, dst):
        if count[0] == n:
            raise OSError(errno.EIO, "simulated crash")
        count[0] += 1
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    try:
        save()
        return True
    except ProjectError:
        return False
    finally:
        monkeypatch.setattr(os, "replace", real_replace)


def test_interrupted_at_every_rename_leaves_a_loadable_project(tmp_path, monkeypatch):
    """Fail the n-th rename of a save for every n: the folder always loads, old or new."""
    folder = tmp_path / "r.dedit"
    old = make_project(seed=1)
    old.save(folder)
    n = 0
    while True:
        new = make_project(seed=2, k=4)
        done = saved_unless_renames_fail(monkeypatch, lambda new=new: new.save(folder), n)
        loaded = Project.load(folder)
        assert_same(loaded, new if done else old)
        if done:
            break
        n += 1
    assert n >= 2  # image, labels and project.json were each interrupted once


CHILD = textwrap.dedent(
    """
    import sys, numpy as np
    from dedit_app.project import Project
    folder = sys.argv[1]
    i = 0
    while True:
        rng = np.random.default_rng(i)
        side = 64 + (i % 5) * 16
        img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        lab = rng.integers(0, 3, (side, side)).astype(np.int32)
        p = Project.new(img, lab, ["a", "b", "c"])
        p.settings = {"version": i}
        p.save(folder)
        print(i, flush=True)
        i += 1
    """
)


def test_kill_9_during_saves_never_corrupts(tmp_path):
    folder = tmp_path / "k.dedit"
    rng = np.random.default_rng(0)
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(folder)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one complete save exists
        time.sleep(float(rng.uniform(0.0, 0.3)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        loaded = Project.load(folder)  # must not raise
        i = loaded.settings["version"]
        expected = np.random.default_rng(i).integers(0, 256, loaded.image.shape, dtype=np.uint8)
        np.testing.assert_array_equal(loaded.image, expected)


def test_item_lookup_and_rename():
    p = make_project()
    p.rename(0, "  bag ")
    assert p.items[0] == Item("bag")
    with pytest.raises(ProjectError, match="no item 7.*0 to 2"):
        p.item(7)
    with pytest.raises(ProjectError, match="cannot be empty"):
        p.rename(1, "   ")


def test_only_a_prepared_project_can_be_marked_refined(tmp_path):
    project = Project.new(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.int32), ["all"])
    assert not project.refined
    with pytest.raises(ProjectError, match="Only a prepared project"):
        project.refined = True


def test_the_photo_before_the_first_edit_is_in_memory_or_in_its_file(tmp_path):
    from dedit_app.bundle_files import read_picture

    p = make_project()
    original = p.image
    assert p.first_picture() is original  # nothing applied: the picture itself
    for value in (10, 20):
        p.apply(np.full_like(original, value), p.labels, {"kind": "text", "item": 1})
    assert p.first_picture() is original  # before every edit, not the last
    p.save(tmp_path / "p.dedit")
    loaded = Project.load(tmp_path / "p.dedit")
    path = loaded.first_picture()
    assert isinstance(path, Path) and path.parent == tmp_path / "p.dedit"
    assert np.array_equal(read_picture(path), original)
    path.write_bytes(path.read_bytes()[:-40])  # cut short: damaged
    with pytest.raises(ProjectError, match="damaged"):
        read_picture(path)
