"""The `dedit` command end to end on the tiny model, and its exit codes and messages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dedit_app.cli import main
from dedit_app.imageio import load_image, save_image
from dedit_app.project import Project

EDGE = 12
STEPS = ["--steps", "2", "--edge", str(EDGE)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    """The D-Edit example photo and reference photo, or generated stand-ins when the example
    is not beside the repository."""
    from conftest import REFERENCE  # the one place that knows where the example lives

    if (REFERENCE / "image.png").exists() and (REFERENCE / "reference_image.png").exists():
        return REFERENCE / "image.png", REFERENCE / "reference_image.png"
    folder = tmp_path_factory.mktemp("photos")
    yy, xx = np.mgrid[0:384, 0:512]
    image = np.zeros((384, 512, 3), np.uint8)
    image[...] = (200, 190, 170)
    image[yy > 260] = (90, 60, 40)
    image[(xx - 300) ** 2 + (yy - 180) ** 2 < 60**2] = (180, 20, 30)
    save_image(folder / "image.png", image)
    save_image(folder / "reference_image.png", image[:, ::-1].copy())
    return folder / "image.png", folder / "reference_image.png"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, photos, tiny_sdxl_path) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    image, reference = photos
    assert main(["segment", str(image), "-o", str(folder / "p.dedit")]) == 0
    assert main(["segment", str(reference), "-o", str(folder / "r.dedit")]) == 0
    code = main([
        "finetune", str(folder / "p.dedit"), "--model", str(tiny_sdxl_path), "--reference",
        str(folder / "r.dedit"), "--emb-steps", "2", "--model-steps", "2", "--grad-accum", "1",
        "--device", "cpu",
    ])  # fmt: skip
    assert code == 0
    return folder


def _expected_hard(project, request):
    from dedit_app.edits import plan_edit
    from dedit_app.partition import edit_regions

    plan = plan_edit(project, request, Project.load(project.folder.parent / "r.dedit"))
    if plan.active is None:
        return np.zeros(project.labels.shape, bool)
    return edit_regions(plan.active, EDGE)[0]


def test_five_edits_end_to_end(prepared, capsys):
    from dedit_app.edits import (
        DuplicateRequest,
        MoveRequest,
        ReconRequest,
        RemoveRequest,
        SwapRequest,
        TextRequest,
    )
    from dedit_app.partition import Move, copy_offset, flip_moves, item_bbox

    project = Project.load(prepared / "p.dedit")

    def box(item):
        return item_bbox(project.labels, item)

    assert project.prepared and project.items[0].tokens.startswith("#")
    big = int(np.argmax(np.bincount(project.labels.ravel())))
    small = int(np.argmin(np.bincount(project.labels.ravel(), minlength=len(project.items)) + 0))
    # the copies are of the item of the smallest box, whose copy has room beside it
    tight = min(
        range(len(project.items)), key=lambda k: np.prod(np.subtract(box(k)[2:], box(k)[:2]))
    )
    ox, oy = copy_offset(box(tight), project.size)
    runs = {
        "recon": ([], ReconRequest()),
        "text": (["--item", str(small), "--prompt", "a white handbag"], TextRequest(small, "x")),
        "swap": (
            ["--item", str(small), "--reference", str(prepared / "r.dedit"), "--ref-item", "0"],
            SwapRequest(small, 0),
        ),
        "move": (
            ["--item", str(small), "--dx", "20", "--dy", "-10", "--scale", "0.8"],
            MoveRequest((Move(small, 20, -10, 0.8),)),
        ),
        "move turned": (
            ["--move", f"{small}:4:0:1:20"],
            MoveRequest((Move(small, 4, 0, 1, angle=20),)),
        ),
        "flip": (["--item", str(small)], MoveRequest(flip_moves({small: box(small)}))),
        "flip vertical": (
            ["--item", str(small), "--vertical"],
            MoveRequest(flip_moves({small: box(small)}, vertical=True)),
        ),
        "flip two": (
            ["--item", str(small), str(big)],
            MoveRequest(flip_moves({small: box(small), big: box(big)})),
        ),
        "duplicate": (["--item", str(tight)], DuplicateRequest((Move(tight, ox, oy),))),
        "duplicate two": (  # the second smaller, turned, on the first
            ["--move", f"{tight}:{ox}:{oy}", "--move", f"{tight}:{ox}:{oy}:0.5:30"],
            DuplicateRequest((Move(tight, ox, oy), Move(tight, ox, oy, 0.5, angle=30))),
        ),
        "remove": (["--item", str(small)], RemoveRequest(small)),
        "remove two": (["--item", str(small), str(big)], RemoveRequest(small, also=(big,))),
    }
    assert small != big and len(project.items) > 2
    for name, (args, request) in runs.items():
        kind = name.split()[0]
        out = prepared / f"{name.replace(' ', '-')}.png"
        code = main(["edit", str(prepared / "p.dedit"), kind, "-o", str(out), *STEPS, *args])
        assert code == 0, capsys.readouterr().err
        result = load_image(out)
        assert result.shape == project.image.shape
        hard = _expected_hard(project, request)
        assert (result[hard] == project.image[hard]).all(), kind
        if kind != "recon":
            assert hard.any()
    # the project itself was not changed by editing
    assert Project.load(prepared / "p.dedit").history == []


def test_a_16_bit_photo_keeps_its_values_where_no_edit_painted(prepared, photos, tmp_path, capsys):
    """`dedit segment` keeps a 16-bit photo's values; `dedit edit` and `dedit export` write
    a PNG or TIFF at 16 bits whose untouched pixels are the file's own."""
    import cv2

    from dedit_app.imageio import eight_bits

    image = load_image(photos[0])
    rng = np.random.default_rng(4)
    fine = rng.integers(-128, 129, image.shape)  # below what 8 bits hold: rounds to image
    deep = np.clip(image.astype(np.int64) * 257 + fine, 0, 65535).astype(np.uint16)
    assert (eight_bits(deep) == image).all()
    assert cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    assert main(["segment", str(tmp_path / "deep.png"), "-o", str(tmp_path / "n.dedit")]) == 0
    np.testing.assert_array_equal(Project.load(tmp_path / "n.dedit").deep, deep)
    assert main(["info", str(tmp_path / "n.dedit")]) == 0
    assert ", 16 bits per channel," in capsys.readouterr().out

    def read16(path: Path) -> np.ndarray:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert pixels.dtype == np.uint16, path
        return pixels[..., ::-1]

    copy = Path(shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit"))
    shutil.copytree(prepared / "r.dedit", tmp_path / "r.dedit")
    project = Project.load(copy)
    np.testing.assert_array_equal(project.image, image)  # prepared on that photo's 8 bits
    project.deep = deep
    project.save()
    item = int(np.argmin(np.bincount(project.labels.ravel())))
    out = tmp_path / "out.png"
    edit = ["edit", str(copy), "remove", "--item", str(item), "--apply", "-o", str(out)]
    assert main([*edit, *STEPS]) == 0, capsys.readouterr().err
    painted = read16(out)
    edited = Project.load(copy).image
    np.testing.assert_array_equal(eight_bits(painted), edited)
    kept = (edited == image).all(axis=2)
    np.testing.assert_array_equal(painted[kept], deep[kept])
    assert not kept.all()  # the edit painted somewhere
    assert main(["export", str(copy), "--before", "1", "-o", str(tmp_path / "b.tif")]) == 0
    np.testing.assert_array_equal(read16(tmp_path / "b.tif"), deep)  # the photo, to the bit
    assert main(["export", str(copy), "-o", str(tmp_path / "now.tif")]) == 0
    np.testing.assert_array_equal(read16(tmp_path / "now.tif"), painted)
    assert main(["export", str(copy), "--8-bit", "-o", str(tmp_path / "small.png")]) == 0
    small = cv2.imread(str(tmp_path / "small.png"), cv2.IMREAD_UNCHANGED)
    assert small.dtype == np.uint8
    np.testing.assert_array_equal(small[..., ::-1], edited)


def test_candidates_and_apply(prepared, tmp_path, capsys):
    import shutil

    copy = shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit")
    shutil.copytree(prepared / "r.dedit", tmp_path / "r.dedit")
    item = int(np.argmin(np.bincount(Project.load(copy).labels.ravel())))
    out = tmp_path / "out.png"
    code = main(
        [
            "edit",
            str(copy),
            "remove",
            "--item",
            str(item),
            "--candidates",
            "2",
            "--apply",
            "-o",
            str(out),
            *STEPS,
        ]
    )
    assert code == 0
    assert out.exists() and (tmp_path / "out-2.png").exists()
    after = Project.load(copy)
    assert len(after.history) == 1 and after.history[0]["kind"] == "remove"
    assert not (after.labels == item).any()
    assert np.array_equal(after.image, load_image(out))
    # A swap applied says which photo its item came from, as the editor's history does.
    other = int(np.argmax(np.bincount(after.labels.ravel())))
    swap = ["edit", str(copy), "swap", "--item", str(other), "--reference"]
    swap += [str(tmp_path / "r.dedit"), "--ref-item", "0", "--apply", "-o", str(out), *STEPS]
    assert main(swap) == 0
    record = Project.load(copy).history[-1]
    ref = Project.load(tmp_path / "r.dedit")
    assert record["kind"] == "swap" and record["reference"] == ref.source
    # and the item's look is said from then on
    capsys.readouterr()
    assert main(["info", str(copy)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "looks like" in line)
    assert row.split()[0] == str(other)
    assert f"looks like “{ref.items[0].name}” from {ref.source}" in row


def test_a_swap_takes_the_reference_photo_itself_with_the_items_it_was_prepared_with(
    prepared, photos, tmp_path, capsys
):
    _, reference_photo = photos
    swap = ["edit", str(prepared / "p.dedit"), "swap", "--item", "0", "--ref-item", "0", *STEPS]
    by_project = [*swap, "--reference", str(prepared / "r.dedit"), "-o", str(tmp_path / "a.png")]
    by_photo = [*swap, "--reference", str(reference_photo), "-o", str(tmp_path / "b.png")]
    assert main(by_project) == 0 and main(by_photo) == 0
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), load_image(tmp_path / "b.png"))
    # another photo: refused in a sentence that says how to prepare them together
    other = tmp_path / "other.png"
    save_image(other, np.full((64, 64, 3), 90, np.uint8))
    capsys.readouterr()
    assert main([*swap, "--reference", str(other), "-o", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err
    assert "was not prepared together with the photo" in err and "dedit finetune" in err
    assert not (tmp_path / "c.png").exists()


def test_finetune_with_a_reference_photo_says_how_to_make_it_a_project(
    prepared, photos, tiny_sdxl_path, capsys
):
    # It said "… is not a D-Edit project: it has no project.json", and no way on.
    _, reference_photo = photos
    project = prepared / "p.dedit"
    before = (project / "project.json").read_bytes()
    args = ["finetune", str(project), "--model", str(tiny_sdxl_path), "--device", "cpu"]
    assert main([*args, "--reference", str(reference_photo)]) == 1
    err = capsys.readouterr().err
    stem = reference_photo.with_suffix(".dedit")
    assert f"{reference_photo} is a photo; prepare with a project of it" in err
    assert f"`dedit segment {reference_photo} -o {stem}`" in err
    assert f"`dedit finetune {project} --reference {stem}`" in err and "loading" not in err
    assert (project / "project.json").read_bytes() == before


def test_a_full_size_model_on_the_processor_is_noted_before_it_loads(
    prepared, tmp_path, monkeypatch, capsys
):
    import torch

    from dedit_app import slow_device

    monkeypatch.setattr(slow_device, "FULL_SIZE_BYTES", 1)  # the tiny model counts as full size
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(slow_device.shutil, "which", lambda name: None)  # no NVIDIA driver
    out = tmp_path / "recon.png"
    assert main(["edit", str(prepared / "p.dedit"), "recon", "-o", str(out), *STEPS]) == 0
    err = capsys.readouterr().err
    assert "note: This computer has no GPU that PyTorch can use" in err and out.exists()
    monkeypatch.setattr(slow_device, "FULL_SIZE_BYTES", 10**12)
    assert main(["edit", str(prepared / "p.dedit"), "recon", "-o", str(out), *STEPS]) == 0
    assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize("flag, low", [([], True), (["--no-low-memory"], False)])
def test_finetune_turns_low_memory_on_where_the_gpu_is_too_small_unless_told_not_to(
    prepared, tmp_path, tiny_sdxl_path, monkeypatch, capsys, flag, low
):
    import shutil

    import dedit_app.finetune
    import dedit_app.recompute

    monkeypatch.setattr(  # as on a 24 GB card (here the tiny model runs on the CPU)
        dedit_app.recompute, "low_memory_reason", lambda family, device: "Preparing in low mode."
    )
    real, used = dedit_app.finetune.finetune_project, []

    def recording(model, project, reference, options, cancel=None):
        used.append((options.gradient_checkpointing, options.offload_idle))
        return real(model, project, reference, options, cancel)

    monkeypatch.setattr(dedit_app.finetune, "finetune_project", recording)
    copy = shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit")
    code = main([
        "finetune", str(copy), "--model", str(tiny_sdxl_path), "--emb-steps", "1",
        "--model-steps", "1", "--grad-accum", "1", "--device", "cpu", *flag,
    ])  # fmt: skip
    assert code == 0 and used == [(low, low)]
    err = capsys.readouterr().err
    assert ("note: Preparing in low mode. --no-low-memory turns it off." in err) == low


def test_check_says_where_the_model_is_and_where_it_runs(
    prepared, tiny_sdxl_path, photos, tmp_path, monkeypatch, capsys
):
    from engine_fixtures import fake_gpu

    from dedit_app import slow_device

    fake_gpu(monkeypatch, "NVIDIA H200", 141, major=9)
    assert main(["check", "--model", str(tiny_sdxl_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"model: {tiny_sdxl_path}"
    assert out[1].startswith("  A local folder: SDXL, its weights in full precision (")
    assert out[2:] == ["runs:", "  Runs on NVIDIA H200 (141 GB) in bfloat16."]
    # a project checks the model it was prepared with
    assert main(["check", str(prepared / "p.dedit"), "--dtype", "fp32"]) == 0
    out = capsys.readouterr().out
    assert f"model: {tiny_sdxl_path}" in out and "in float32." in out
    # what cannot work exits 1, with the option to change; the rules of full-size SDXL
    # apply once the tiny model counts as full-size
    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4090", 24, major=8)
    assert main(["check", "--model", str(tiny_sdxl_path), "--no-low-memory"]) == 0
    assert capsys.readouterr().out.endswith(
        "Runs on NVIDIA GeForce RTX 4090 (24 GB) in bfloat16.\n"
    )
    monkeypatch.setattr(slow_device, "FULL_SIZE_BYTES", 1)
    assert main(["check", "--model", str(tiny_sdxl_path), "--no-low-memory"]) == 1
    assert "with --no-low-memory: leave out --no-low-memory." in capsys.readouterr().out
    assert main(["check", "--model", str(tmp_path / "nowhere")]) == 1
    assert "There is no folder" in capsys.readouterr().out
    assert main(["segment", str(photos[0]), "-o", str(tmp_path / "n.dedit")]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "n.dedit")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"dedit: error: {tmp_path / 'n.dedit'} is not prepared yet, so it names no model: "
        "say which with --model."
    )


def test_a_duplicate_applied_adds_a_copy_that_edits_as_its_item(prepared, tmp_path, capsys):
    from dedit_app.partition import item_bbox

    copy = Path(shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit"))
    project = Project.load(copy)
    boxes = [item_bbox(project.labels, k) for k in range(len(project.items))]
    item = int(np.argmin([(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes]))  # room beside
    n = len(project.items)
    out = tmp_path / "two.png"
    argv = ["edit", str(copy), "duplicate", "--item", str(item), "--apply", "-o", str(out)]
    assert main([*argv, *STEPS]) == 0, capsys.readouterr().err
    edited = Project.load(copy)
    assert len(edited.items) == n + 1 and edited.items[n].name == f"{project.items[item].name} copy"
    assert (edited.labels == n).sum() == (project.labels == item).sum()  # beside it, whole
    assert ((edited.labels == project.labels) | (edited.labels == n)).all()
    np.testing.assert_array_equal(load_image(out), edited.image)
    # the copy is an item like any other: it can be edited before preparing again
    text = ["edit", str(copy), "text", "--item", str(n), "--prompt", "a red *"]
    assert main([*text, "-o", str(tmp_path / "red.png"), *STEPS]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["info", str(copy)]) == 0
    assert f"1 duplicate: {project.items[item].name}  (" in capsys.readouterr().out


def test_export_items_writes_their_cut_out_transparent_around_them(prepared, tmp_path, capsys):
    import cv2

    project = Project.load(prepared / "p.dedit")
    items = [1, 3]
    out = tmp_path / "cut.png"
    assert (
        main(["export", str(prepared / "p.dedit"), "--items", *map(str, items), "-o", str(out)])
        == 0
    )
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    ys, xs = np.nonzero(np.isin(project.labels, items))
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    inside = np.isin(project.labels[box], items)
    np.testing.assert_array_equal(back[..., 3], np.where(inside, 255, 0))
    np.testing.assert_array_equal(back[..., 2::-1][inside], project.image[box][inside])
    capsys.readouterr()
    p = str(prepared / "p.dedit")
    for argv, words in (
        (["--items", "99", "-o", str(tmp_path / "x.png")], "There is no item 99"),
        (["--items", "1", "-o", str(tmp_path / "x.jpg")], "cannot hold a cut-out"),
    ):
        assert main(["export", p, *argv]) == 1
        assert words in capsys.readouterr().err
        assert not list(tmp_path.glob("x.*"))


def test_info(prepared, capsys):
    assert main(["info", str(prepared / "p.dedit")]) == 0
    text = capsys.readouterr().out
    reference = Project.load(prepared / "r.dedit").source
    assert "prepared on tiny-sdxl" in text
    assert f"jointly with the reference photo {reference}" in text
    assert "#" in text and "changed by hand" not in text


def test_info_lists_the_edits_and_export_writes_the_picture_from_before_any(
    prepared, tmp_path, capsys
):
    project = Project.load(prepared / "p.dedit")
    names = [i.name for i in project.items]
    pictures = [project.image]
    edits = [
        {"kind": "text", "item": 0, "prompt": "a white handbag"},
        {"kind": "remove", "item": 1, "also": [2]},
        {"kind": "swap", "item": 0, "reference_item": 3, "reference_name": "cup"},
        {"kind": "move", "moves": [[0, 4.0, 0.0, 1.0, True], [1, -4.0, 0.0, 1.0, True]]},
        {"kind": "move", "moves": [[0, 4.0, 0.0, 1.0, True], [1, 0.0, 3.0, 1.0]]},
        {"kind": "duplicate", "moves": [[1, 9.0, 0.0, 1.0]], "copies": [len(names)]},
        {"kind": "move", "moves": [[2, 0.0, 0.0, 1.0, True, 180.0]]},
    ]
    for n, entry in enumerate(edits):
        image = project.image.copy()
        image[n * 4 : n * 4 + 3] = 40 * n
        project.apply(image, project.labels, entry)
        pictures.append(image)
    folder = tmp_path / "edited.dedit"
    project.save(folder)
    capsys.readouterr()
    assert main(["info", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("7 edits in the history")
    assert lines[at + 1].startswith(f"    1 text: {names[0]} → “a white handbag”  (")
    assert lines[at + 2].startswith(f"    2 remove: {names[1]}, {names[2]}  (")
    assert lines[at + 3].startswith(f"    3 swap: {names[0]} ← “cup”  (")
    assert lines[at + 4].startswith(f"    4 flip: {names[0]}, {names[1]}  (")
    assert lines[at + 5].startswith(f"    5 move: {names[0]}, {names[1]}  (")  # not all flipped
    assert lines[at + 6].startswith(f"    6 duplicate: {names[1]}  (")
    assert lines[at + 7].startswith(f"    7 flip vertically: {names[2]}  (")
    for n in (1, 2, 3):
        out = tmp_path / f"before-{n}.png"
        assert main(["export", str(folder), "--before", str(n), "-o", str(out)]) == 0
        np.testing.assert_array_equal(load_image(out), pictures[n - 1])
    assert main(["export", str(folder), "-o", str(tmp_path / "now.tif")]) == 0
    np.testing.assert_array_equal(load_image(tmp_path / "now.tif"), pictures[-1])
    capsys.readouterr()
    for wrong in ("0", "8"):
        assert main(["export", str(folder), "--before", wrong, "-o", str(tmp_path / "x.png")]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (
            f"dedit: error: There is no edit {wrong} in {folder}; it has edits 1 to 7 (dedit info)."
        )
    assert main(["export", str(folder), "-o", str(folder / "inside.png")]) == 1
    assert "is inside the project" in capsys.readouterr().err
    assert main(["export", str(folder), "-o", str(tmp_path / "x.gif")]) == 1
    assert "has the extension '.gif'; images are saved as .png" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists() and not (folder / "inside.png").exists()


def test_info_says_when_items_were_refined_after_preparing(prepared, tmp_path, capsys):
    project = Project.load(prepared / "p.dedit")
    project.refined = True
    project.save(tmp_path / "refined.dedit")
    assert main(["info", str(tmp_path / "refined.dedit")]) == 0
    assert "items changed by hand since preparing" in capsys.readouterr().out


def test_a_project_whose_weights_file_is_gone_is_described_and_refused_in_words(
    prepared, tmp_path, capsys
):
    shutil.copytree(prepared / "p.dedit", tmp_path / "gone.dedit")
    project = Project.load(tmp_path / "gone.dedit")
    (project.folder / project.training["weights"]).unlink()
    assert main(["info", str(project.folder)]) == 0
    said = capsys.readouterr().out
    assert "learned weights cannot be used" in said and project.training["weights"] in said
    out = tmp_path / "never.png"
    assert main(["edit", str(project.folder), "remove", "--item", "0", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "is missing or damaged; prepare the project again" in err and "\n" not in err
    assert not out.exists()


def test_info_says_when_the_weights_file_is_damaged(prepared, tmp_path, capsys):
    shutil.copytree(prepared / "p.dedit", tmp_path / "bad.dedit")
    project = Project.load(tmp_path / "bad.dedit")
    (project.folder / project.training["weights"]).write_bytes(b"not weights")
    assert main(["info", str(project.folder)]) == 0
    assert "learned weights cannot be used" in capsys.readouterr().out


def test_an_applied_edit_keeps_a_reshape_elsewhere_to_redraw(prepared, tmp_path, capsys):
    from dedit_app.partition import paint

    project = Project.load(prepared / "p.dedit")
    drawn = project.labels
    h, w = drawn.shape
    corner = np.zeros_like(drawn, bool)
    corner[:8, :8] = True
    brushed = int(drawn[h // 2, w // 2])  # the centre item brushed into the top-left corner
    project.labels = paint(drawn, corner, brushed)
    project.drawn = drawn
    folder = project.save(tmp_path / "pending.dedit")
    far = int(project.labels[h - 1, w - 1])  # an item away from the corner
    assert far != brushed and not (project.labels[:16, :16] == far).any()
    out = tmp_path / "far.png"
    argv = ["edit", str(folder), "text", "--item", str(far), "--prompt", "a blue *"]
    assert main([*argv, "-o", str(out), "--apply", "--edge", "2", *STEPS]) == 0
    after = Project.load(folder)
    assert after.drawn is not None  # the corner is still to redraw
    assert (after.drawn[corner] != after.labels[corner]).all()
    assert main(["edit", str(folder), "redraw", "-o", str(tmp_path / "r.png"), *STEPS]) == 0


def test_redraw_paints_what_the_editor_saved_as_reshaped(prepared, tmp_path, capsys):
    from dedit_app.partition import edit_regions, paint

    project = Project.load(prepared / "p.dedit")
    drawn = project.labels
    h, w = drawn.shape
    stripe = np.zeros_like(drawn, bool)
    stripe[:, :6] = True  # the centre item brushed over the left edge
    project.labels = paint(drawn, stripe, int(drawn[h // 2, w // 2]))
    project.drawn = drawn  # as the editor saves items brushed and not yet redrawn
    project.save(tmp_path / "reshaped.dedit")
    assert main(["info", str(tmp_path / "reshaped.dedit")]) == 0
    assert "dedit edit PROJECT redraw" in capsys.readouterr().out
    out = tmp_path / "redrawn.png"
    assert main(["edit", str(tmp_path / "reshaped.dedit"), "redraw", "-o", str(out), *STEPS]) == 0
    changed = drawn != project.labels
    result = load_image(out)
    hard = edit_regions(changed, EDGE)[0]
    assert changed.any() and (result[hard] == project.image[hard]).all()
    assert (result[changed] != project.image[changed]).any()
    # A project with nothing reshaped says so, in one line.
    assert main(["edit", str(prepared / "p.dedit"), "redraw", "-o", str(out), *STEPS]) == 1
    assert "No item was reshaped" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["edit", "{p}", "text", "--item", "0", "-o", "{o}"], "needs --prompt"),
        (["edit", "{p}", "text", "--item", "99", "--prompt", "x", "-o", "{o}"], "no item 99"),
        (["edit", "{p}", "text", "--item", "0", "1", "--prompt", "x", "-o", "{o}"], "one --item"),
        (["edit", "{p}", "move", "--item", "0", "--scale", "0", "-o", "{o}"], "above zero"),
        (["edit", "{p}", "move", "--move", "0:1", "-o", "{o}"], "ITEM:DX:DY"),
        (["edit", "{p}", "move", "--move", "0:1:2:1:5:6", "-o", "{o}"], "SCALE:ANGLE"),
        (["edit", "{p}", "move", "--move", "0:1:2", "--angle", "4", "-o", "{o}"], "not both"),
        (["edit", "{p}", "move", "--item", "0", "--angle", "nan", "-o", "{o}"], "finite"),
        (["edit", "{p}", "move", "--move", "0:1:2", "--dx", "4", "-o", "{o}"], "not both"),
        (["edit", "{p}", "flip", "--item", "0", "0", "-o", "{o}"], "item 0 is named twice"),
        (["edit", "{p}", "flip", "--item", "99", "-o", "{o}"], "no item 99"),
        (["edit", "{p}", "flip", "-o", "{o}"], "flip edit needs --item"),
        (["edit", "{p}", "duplicate", "-o", "{o}"], "duplicate edit needs --item or --move"),
        (["edit", "{p}", "move", "--item", "0", "--vertical", "-o", "{o}"], "goes with the flip"),
        (["edit", "{p}", "duplicate", "--item", "99", "-o", "{o}"], "no item 99"),
        (["edit", "{p}", "duplicate", "--item", "0", "1", "-o", "{o}"], "one --item"),
        (["edit", "{p}", "duplicate", "--move", "0:0:0", "-o", "{o}"], "would cover it whole"),
        (["edit", "{p}", "duplicate", "--move", "0:5:0", "--order", "0", "-o", "{o}"], "--order"),
        (["edit", "{p}", "recon", "-o", "{d}/out.gif"], "must end in .png"),
        (["edit", "{p}", "recon", "-o", "{d}/nowhere/out.png"], "nowhere does not exist"),
        (["edit", "{p}", "recon", "-o", "{p}/image-0123456789abcdef.png"], "inside the project"),
        (["edit", "{p}", "recon", "-o", ""], "output name is empty"),
        (["edit", "{p}", "text", "--item", "0", "--prompt", "*", "-o", "{o}"], "alone is the"),
        (["edit", "{p}", "move", "--item", "0", "--scale", "inf", "-o", "{o}"], "number above"),
        (["segment", "{i}", "-o", "{d}", "--force"], "not a D-Edit project, so --force"),
        (["edit", "{p}", "recon", "--seed", "99999999999999999999", "-o", "{o}"], "seed must"),
        (["edit", "{p}", "recon", "--guidance", "1e308", "-o", "{o}"], "between 0 and 50"),
        (["finetune", "{p}", "--model", "x", "--emb-lr", "nan"], "token learning rate must"),
        (["finetune", "{p}", "--model", "x", "--unet-lr", "-1"], "model learning rate must"),
        (["finetune", "{p}", "--model", "x", "--tokens", "100"], "at most 32 tokens"),
        (["finetune", "{p}", "--model", "x", "--lora", "100000"], "LoRA rank must be 0"),
        (["finetune", "{p}", "--model", "x", "--batch-size", "100000"], "at most 32"),
        (["finetune", "{p}", "--model", "x", "--emb-steps", "-1"], "cannot be negative"),
        (["finetune", "{p}", "--model", "x", "--seed", "99999999999999999999"], "seed must"),
        (["edit", "{d}/missing.dedit", "recon", "-o", "{o}"], "no project"),
        (["segment", "{d}/missing.png", "-o", "{d}/x.dedit"], "does not exist"),
        (["segment", "{i}", "-o", "{p}"], "already exists"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(prepared, photos, capsys, argv, words):
    before = (prepared / "p.dedit" / "project.json").read_bytes()
    fill = {
        "p": str(prepared / "p.dedit"),
        "o": str(prepared / "x.png"),
        "d": str(prepared),
        "i": str(photos[0]),
    }
    assert main([a.format(**fill) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dedit: error: ") and words in err[-1]
    assert (prepared / "p.dedit" / "project.json").read_bytes() == before


def test_an_output_too_large_for_its_format_is_refused_before_the_edit_runs(
    prepared, monkeypatch, capsys
):
    from dedit_app import imageio, models

    monkeypatch.setitem(imageio.SAVE_SIDE_LIMITS, "WEBP", 10)  # smaller than the photo
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model loaded"))
    out = prepared / "too-large.webp"
    assert main(["edit", str(prepared / "p.dedit"), "recon", "-o", str(out)]) == 1
    assert "larger than WebP allows (10 pixels on a side)" in capsys.readouterr().err
    assert not out.exists()


def test_not_prepared_project(tmp_path, photos, capsys):
    assert main(["segment", str(photos[0]), "-o", str(tmp_path / "n.dedit")]) == 0
    assert main(["edit", str(tmp_path / "n.dedit"), "recon", "-o", str(tmp_path / "o.png")]) == 1
    assert "not been prepared" in capsys.readouterr().err


def test_ctrl_c_exits_130_and_keeps_the_project(
    prepared, tiny_sdxl_path, monkeypatch, capsys, tmp_path
):
    import shutil

    import dedit_app.cli as cli

    copy = shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit")
    before = sorted((p.name, p.read_bytes()) for p in copy.iterdir())

    def interrupted(job, on_progress=None):
        next(job)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_job", interrupted)
    code = main(
        [
            "finetune",
            str(copy),
            "--model",
            str(tiny_sdxl_path),
            "--emb-steps",
            "3",
            "--model-steps",
            "0",
            "--device",
            "cpu",
        ]
    )
    assert code == 130
    assert "cancelled" in capsys.readouterr().err
    assert sorted((p.name, p.read_bytes()) for p in copy.iterdir()) == before


def test_usage_errors_exit_2_and_help_has_examples():
    assert main(["edit"]) == 2
    assert main(["bogus-command"]) == 2
    run = subprocess.run(
        [sys.executable, "-m", "dedit_app", "--help"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0
    assert "examples:" in run.stdout and "dedit edit photo.dedit move" in run.stdout


@pytest.mark.parametrize(
    "error, words",
    [
        (
            "cuda",
            "ran out of GPU memory. Close other programs that use the GPU, or add --low-memory",
        ),
        ("ram", "ran out of memory"),
        ("torch ram", "ran out of memory. Close other programs"),
        ("cuda --low-memory", "in low-memory mode ran out of GPU memory. Close other programs "
         "that use the GPU, or use a smaller --model"),
    ],
)  # fmt: skip
def test_out_of_memory_is_one_line_and_keeps_the_project(
    prepared, tiny_sdxl_path, monkeypatch, capsys, tmp_path, error, words
):
    import shutil

    import torch

    import dedit_app.cli as cli

    copy = shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit")
    before = sorted((p.name, p.read_bytes()) for p in copy.iterdir())

    def exhausted(job, on_progress=None):
        next(job)
        if error.startswith("cuda"):
            oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        elif error == "torch ram":  # the processor's allocator, as torch words it
            oom = RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                "can't allocate memory: you tried to allocate 41943040000 bytes"
            )
        else:
            oom = MemoryError()
        # raised inside the job, as a real failure is: its cleanup runs now, not whenever
        # the abandoned generator is collected (perhaps inside a later test's inference mode)
        job.throw(oom)

    monkeypatch.setattr(cli, "run_job", exhausted)
    argv = ["finetune", str(copy), "--model", str(tiny_sdxl_path), "--emb-steps", "3"]
    flags = ["--low-memory"] if "--low-memory" in error else []
    assert main(argv + ["--model-steps", "0", "--device", "cpu", *flags]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dedit: error: `dedit finetune` ") and words in err[-1]
    assert sorted((p.name, p.read_bytes()) for p in copy.iterdir()) == before


def test_a_bug_still_shows_its_traceback(prepared, monkeypatch):
    """Only memory failures are turned into sentences; other RuntimeErrors are bugs."""
    import dedit_app.cli as cli

    def broken(job, on_progress=None):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(cli, "run_job", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["edit", str(prepared / "p.dedit"), "recon", "-o", str(prepared / "bug.png")])


def test_segment_passes_options_to_the_backend_and_it_refuses_unknown_ones(
    photos, tmp_path, monkeypatch, capsys
):
    import dedit_app.segment as segment

    real, built = segment.get_backend, []

    def recording(name, **options):
        built.append((name, options, real(name, **options)))
        return built[-1][2]

    monkeypatch.setattr(segment, "get_backend", recording)
    argv = ["segment", str(photos[0]), "-o", str(tmp_path / "o.dedit")]
    assert main([*argv, "--option", "auto_side=256", "--option", "precompute=false"]) == 0
    name, options, seg = built[-1]
    assert name == "classical" and options == {"auto_side": "256", "precompute": "false"}
    assert seg.config.auto_side == 256 and seg.config.precompute is False
    capsys.readouterr()
    for bad, words in [("colour=3", "no segmentation option colour"), ("colour", "KEY=VALUE")]:
        assert main([*argv, "--force", "--option", bad]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("dedit: error: ") and words in err and "\n" not in err


def test_grounded_sam_with_no_weights_at_all_says_grounding_dino_then_sam(
    photos, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("segment_anything")
    from dedit_app.segment import backend_status

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEDIT_MODEL_DIR", str(tmp_path / "models"))  # no SAM checkpoint there
    monkeypatch.delenv("DEDIT_SAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("DEDIT_GROUNDING_DINO", "dedit-tests/no-such-grounding-dino")
    out = tmp_path / "g.dedit"
    assert main(["segment", str(photos[0]), "-o", str(out), "--backend", "grounded-sam"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"dedit: error: {backend_status('grounded-sam')}"
    dino, sam = err.index("Grounding DINO weights"), err.index("No SAM checkpoint")
    assert dino < sam and not out.exists()


def test_the_sam_sentence_names_the_checkpoint_files_the_search_looks_for(
    photos, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("segment_anything")
    from dedit_app.segment.sam import SAM_URL

    monkeypatch.setenv("DEDIT_MODEL_DIR", str(tmp_path))
    monkeypatch.delenv("DEDIT_SAM_CHECKPOINT", raising=False)
    argv = ["segment", str(photos[0]), "-o", str(tmp_path / "s.dedit"), "--backend", "sam"]
    argv += ["--option", "model_type=vit_l"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "download sam_vit_l_0b3195.pth from" in err and SAM_URL in err
    assert "vit_b" not in err and "vit_h" not in err  # the one type asked for


def test_force_says_what_replacing_a_project_threw_away(prepared, photos, tmp_path, capsys):
    copy = shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit")
    argv = ["edit", str(copy), "recon", "--apply", "-o", str(tmp_path / "r.png"), *STEPS]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["segment", str(photos[0]), "-o", str(copy), "--force"]) == 0
    err = capsys.readouterr().err
    assert f"note: replaced {copy}: its preparation and 1 edit are gone.\n" in err
    after = Project.load(copy)
    assert not after.prepared and after.history == []
    # nothing learned and no edits: nothing to say
    assert main(["segment", str(photos[0]), "-o", str(copy), "--force"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_info_and_segment_count_one_item_and_one_edit_in_the_singular(tmp_path, capsys):
    image = np.full((48, 64, 3), 120, np.uint8)  # one colour: one item
    save_image(tmp_path / "plain.png", image)
    assert main(["segment", str(tmp_path / "plain.png"), "-o", str(tmp_path / "one.dedit")]) == 0
    assert ": 1 item: " in capsys.readouterr().out
    project = Project.load(tmp_path / "one.dedit")
    assert len(project.items) == 1
    project.apply(image, project.labels, {"kind": "recon"}, np.ones(project.labels.shape, bool))
    project.save()
    assert main(["info", str(tmp_path / "one.dedit")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(", 1 item") and "1 edit in the history" in lines
    assert lines[lines.index("1 edit in the history") + 1].startswith("    1 recon: ")


def test_segment_says_what_the_photo_file_held_that_the_project_leaves_out(tmp_path, capsys):
    # A cut-out product shot: the project and every export are opaque, and the user is told.
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[4:20, 8:24] = (200, 30, 40, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut-out.png")
    assert main(["segment", str(tmp_path / "cut-out.png"), "-o", str(tmp_path / "c.dedit")]) == 0
    err = capsys.readouterr().err
    photo = tmp_path / "cut-out.png"
    assert f"note: {photo} has transparent pixels; the editor placed them on white" in err
    assert (Project.load(tmp_path / "c.dedit").image[0, 0] == 255).all()  # on white
    frames = [Image.fromarray(np.full((24, 32, 3), v, np.uint8)) for v in (40, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert main(["segment", str(tmp_path / "anim.gif"), "-o", str(tmp_path / "a.dedit")]) == 0
    assert "anim.gif has 2 frames; the editor took the first.\n" in capsys.readouterr().err


def test_an_unsupported_output_ending_lists_every_ending_that_is_saved(prepared, capsys):
    from dedit_app.imageio import SAVE_FORMATS

    out = prepared / "x.gif"
    assert main(["edit", str(prepared / "p.dedit"), "recon", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert all(ending in err for ending in SAVE_FORMATS)


def test_redraw_with_nothing_reshaped_sends_the_user_to_the_editor(prepared, capsys):
    out = prepared / "nothing.png"
    assert main(["edit", str(prepared / "p.dedit"), "redraw", "-o", str(out), *STEPS]) == 1
    err = capsys.readouterr().err.strip()
    assert "No item was reshaped" in err and "in the editor" in err and "\n" not in err


def test_offline_the_command_line_says_this_computer_is_offline_not_the_editor(
    offline_hub_cache, capsys
):
    from dedit_app.errors import ModelLoadError
    from dedit_app.hub import resolve

    assert main(["check", "--model", "dedit-tests/not-downloaded"]) == 1
    out = capsys.readouterr().out
    assert "is not downloaded and this computer is offline" in out and "editor is" not in out
    # the editor's own wording stays as it was once the command is over
    with pytest.raises(ModelLoadError, match="not downloaded and the editor is offline"):
        resolve("dedit-tests/not-downloaded", what="model", variant=None, local_files_only=False)


def _subcommands():
    import argparse

    from dedit_app.cli import _parser

    parser = _parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


def test_every_option_has_help_and_shows_its_default():
    _, commands = _subcommands()
    for name, command in commands.items():
        assert command.description, name
        for action in command._actions:
            if action.dest == "help":
                continue
            assert action.help, f"dedit {name} {action.dest}"
            if action.default not in (None, False, []):
                assert "%(default" in action.help, f"dedit {name} {action.dest}"


def test_each_command_shows_its_own_examples_and_dedit_help_all(capsys):
    parser, commands = _subcommands()
    every = parser.format_help()
    for name in commands:
        assert main([name, "--help"]) == 0
        text = capsys.readouterr().out
        examples = text.split("examples:\n", 1)[1].splitlines()
        assert examples and all(line.startswith(f"  dedit {name} ") for line in examples)
        assert all(line in every for line in examples)


def test_edit_help_says_how_its_defaults_differ_from_the_editors(capsys):
    pytest.importorskip("PySide6")
    from ui.settings import EditorSettings

    _, commands = _subcommands()
    defaults = {a.dest: a.default for a in commands["edit"]._actions}
    assert main(["edit", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    ours = defaults["candidates"]
    assert f"makes {ours} candidate{'s' if ours != 1 else ''} with seed {defaults['seed']}" in text
    editor = EditorSettings()
    assert editor.seed == -1  # a new random seed per edit
    assert f"the editor makes {editor.candidates} with a new random seed" in text


def test_segment_help_names_the_environment_variables_the_backends_read(capsys):
    import re

    import dedit_app.segment

    folder = Path(dedit_app.segment.__file__).parent
    read = set()
    for source in folder.glob("*.py"):
        read |= set(re.findall(r"environ\.get\(\s*\"(DEDIT_\w+)\"", source.read_text()))
    assert read  # the SAM checkpoint, the model folder, Grounding DINO
    assert main(["segment", "--help"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in read)
    assert "--force" in text and "thrown away" in text


def _interrupting(how):
    """A stand-in for Project._collect_garbage (after project.json was replaced) or for the
    write of project.json (before), that Ctrl-C interrupts: a real SIGINT, or a
    KeyboardInterrupt raised there."""
    import signal

    from dedit_app import project as project_module

    real_gc = project_module.Project._collect_garbage
    real_write = project_module.atomic_write_bytes

    def gc(*args, **kwargs):
        if how == "signal during cleanup":
            signal.raise_signal(signal.SIGINT)
        elif how == "raised during cleanup":
            raise KeyboardInterrupt
        return real_gc(*args, **kwargs)

    def write(path, payload, *args, **kwargs):
        if how == "raised before the write" and path.name == "project.json":
            raise KeyboardInterrupt
        return real_write(path, payload, *args, **kwargs)

    return staticmethod(gc), write


@pytest.mark.parametrize(
    "how", ["signal during cleanup", "raised during cleanup", "raised before the write"]
)
def test_ctrl_c_during_the_save_of_an_applied_edit_is_said_truly(
    prepared, tmp_path, monkeypatch, capsys, how
):
    import signal

    from dedit_app import project as project_module

    copy = shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit")
    before = (copy / "project.json").read_bytes()
    gc, write = _interrupting(how)
    monkeypatch.setattr(project_module.Project, "_collect_garbage", gc)
    monkeypatch.setattr(project_module, "atomic_write_bytes", write)
    argv = ["edit", str(copy), "recon", "--apply", "-o", str(tmp_path / "r.png"), *STEPS]
    handler = signal.getsignal(signal.SIGINT)
    assert main(argv) == 130
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C works as before afterwards
    err = capsys.readouterr().err
    monkeypatch.undo()
    history = Project.load(copy).history
    if how == "raised before the write":
        assert "cancelled; the project is unchanged" in err
        assert (copy / "project.json").read_bytes() == before and history == []
    else:
        assert "the project is unchanged" not in err
        assert f"the save was finished first: {copy} holds the edit." in err
        assert [r["kind"] for r in history] == ["recon"]


def test_ctrl_c_during_the_save_of_a_preparation_waits_for_it(
    prepared, tiny_sdxl_path, tmp_path, monkeypatch, capsys
):
    from dedit_app import project as project_module

    copy = shutil.copytree(prepared / "p.dedit", tmp_path / "p.dedit")
    weights = Project.load(copy).training["weights"]
    gc, _ = _interrupting("signal during cleanup")
    monkeypatch.setattr(project_module.Project, "_collect_garbage", gc)
    code = main([
        "finetune", str(copy), "--model", str(tiny_sdxl_path), "--emb-steps", "1",
        "--model-steps", "1", "--grad-accum", "1", "--device", "cpu",
    ])  # fmt: skip
    assert code == 130
    err = capsys.readouterr().err
    assert f"the save was finished first: {copy} holds the preparation." in err
    assert "unchanged" not in err
    monkeypatch.undo()
    after = Project.load(copy)
    assert after.prepared and after.training["weights"] != weights
    assert (copy / after.training["weights"]).is_file()
