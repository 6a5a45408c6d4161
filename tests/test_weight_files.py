"""Which precisions of weights a model folder holds in full, read from file names only:
the plain (full) files, the half-precision ``fp16`` copies hub repositories publish beside
them, sharded sets, parts a download has not reached yet, and broken cache links."""

from __future__ import annotations

import json
import os

import pytest

from dedit_app.weight_files import (
    held_whole,
    one_variant,
    part_sets,
    pick_variants,
    variant_of,
    weight_sets,
)

PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def model_folder(tmp_path, files: dict[str, list[str]], index=PARTS):
    """A folder with ``model_index.json`` naming ``index`` and empty weight files."""
    doc = {part: ["diffusers", "Thing"] for part in index}
    (tmp_path / "model_index.json").write_text(json.dumps(doc), encoding="utf-8")
    for part, names in files.items():
        (tmp_path / part).mkdir(exist_ok=True)
        for name in names:
            (tmp_path / part / name).write_bytes(b"")
    return tmp_path


def every_part(*names: str) -> dict[str, list[str]]:
    return {part: list(names) for part in PARTS}


def each(variant) -> dict:
    """``pick_variants``' answer when every part takes ``variant``."""
    return dict.fromkeys(PARTS, variant)


def test_file_names_say_their_variant():
    assert variant_of("model.safetensors") is None
    assert variant_of("diffusion_pytorch_model.safetensors") is None
    assert variant_of("model.fp16.safetensors") == "fp16"
    assert variant_of("diffusion_pytorch_model.fp16-00002-of-00003.safetensors") == "fp16"
    assert variant_of("diffusion_pytorch_model-00001-of-00002.safetensors") is None


def test_both_precisions_held_in_full_are_both_usable(tmp_path):
    folder = model_folder(tmp_path, every_part("m.safetensors", "m.fp16.safetensors"))
    assert weight_sets(folder) == {None, "fp16"}
    assert pick_variants(folder, "fp16") == each("fp16")
    assert pick_variants(folder, None) == each(None)
    assert held_whole(folder)


def test_a_half_precision_only_folder_is_used_for_full_precision_too(tmp_path):
    folder = model_folder(tmp_path, every_part("m.fp16.safetensors"))
    assert weight_sets(folder) == {"fp16"}
    assert pick_variants(folder, None) == each("fp16")  # read and widened, not downloaded


def test_a_half_copy_of_only_some_parts_is_read_where_it_is(tmp_path):
    files = every_part("m.safetensors")
    files["unet"].append("m.fp16.safetensors")  # only the UNet has a half copy
    folder = model_folder(tmp_path, files)
    assert weight_sets(folder) == {None}  # no one precision in every part...
    assert held_whole(folder)  # ...and yet every part is whole: it loads as it is
    picked = pick_variants(folder, "fp16")
    assert picked == {**each(None), "unet": "fp16"}
    assert one_variant(picked, "fp16") == picked  # a download asks part by part
    assert one_variant(pick_variants(folder, None), "fp16") is None  # one for all
    assert one_variant({}, "fp16") == "fp16"


def test_a_swapped_in_vae_with_only_its_full_file_keeps_the_half_copies(tmp_path):
    files = every_part("m.fp16.safetensors")
    files["vae"] = ["m.safetensors"]
    folder = model_folder(tmp_path, files)
    assert part_sets(folder) == {**dict.fromkeys(PARTS, {"fp16"}), "vae": {None}}
    assert pick_variants(folder, "fp16") == {**each("fp16"), "vae": None}
    assert pick_variants(folder, None) == {**each("fp16"), "vae": None}  # none full: widened


def test_a_part_the_download_has_not_reached_leaves_the_set_incomplete(tmp_path):
    files = every_part("m.fp16.safetensors")
    del files["text_encoder_2"]  # named by model_index.json, no folder yet
    folder = model_folder(tmp_path, files)
    assert weight_sets(folder) == set() and not held_whole(folder)
    assert pick_variants(folder, "fp16") == each("fp16")  # loading then says what is missing


def test_sharded_sets_count_only_with_every_shard(tmp_path):
    files = every_part("m.safetensors")
    files["unet"] = [
        "d.fp16-00001-of-00002.safetensors",
        "d.fp16-00002-of-00002.safetensors",
        "d-00001-of-00003.safetensors",
        "d-00003-of-00003.safetensors",  # the second of three is missing
    ]
    files["vae"].append("m.fp16.safetensors")
    files["text_encoder"].append("m.fp16.safetensors")
    files["text_encoder_2"].append("m.fp16.safetensors")
    assert weight_sets(model_folder(tmp_path, files)) == {"fp16"}


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights on Windows")
def test_a_cache_link_whose_file_is_gone_does_not_count(tmp_path):
    folder = model_folder(tmp_path, every_part("m.safetensors"))
    for part in PARTS:
        (folder / part / "m.fp16.safetensors").symlink_to(tmp_path / "blobs" / f"gone-{part}")
    assert weight_sets(folder) == {None}


def test_without_an_index_the_folders_present_are_the_parts(tmp_path):
    folder = model_folder(tmp_path, {"unet": ["m.safetensors"], "vae": ["m.safetensors"]})
    (folder / "model_index.json").unlink()
    assert weight_sets(folder) == {None}
    assert weight_sets(tmp_path / "nowhere") == set() and not held_whole(tmp_path / "nowhere")
