"""Model loading: families, devices, precision, errors a user can meet, fingerprints."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dedit_app.errors import ModelLoadError
from dedit_app.models import (
    check_weights_match,
    detect_family,
    load_model,
    pick_device,
    pick_dtype,
)


def test_tiny_sdxl_loads_as_sdxl(tiny_sdxl, tiny_sdxl_path):
    m = tiny_sdxl
    assert detect_family(tiny_sdxl_path) == "sdxl"
    assert m.family == "sdxl" and m.is_sdxl
    assert len(m.text_encoders) == 2 and len(m.tokenizers) == 2
    assert m.device.type == "cpu" and m.dtype == torch.float32 and m.vae_dtype == torch.float32
    assert m.resolution == 256 and m.vae_scale_factor == 8
    assert type(m.scheduler).__name__ == "EulerDiscreteScheduler"
    # grouped processors on cross-attention only; self-attention keeps diffusers' default
    procs = m.unet.attn_processors
    assert m.attention.layers and all(k.endswith("attn2.processor") for k in m.attention.layers)
    assert all(type(v).__name__ == "AttnProcessor2_0" for k, v in procs.items() if "attn1" in k)


def test_tiny_sd15_loads_as_sd15(tiny_sd15_path):
    m = load_model(tiny_sd15_path, device="cpu")
    assert detect_family(tiny_sd15_path) == "sd15"
    assert m.family == "sd15" and len(m.text_encoders) == 1
    assert type(m.scheduler).__name__ == "PNDMScheduler"
    assert m.bucket(300, 200) == (320, 192)  # ~256^2 pixels, multiples of 64, 3:2


def test_a_model_folder_named_relative_to_here_is_recorded_from_anywhere(
    tiny_sdxl_path, monkeypatch
):
    """A project prepared with ``--model models/tiny-sdxl`` must edit from another folder."""
    monkeypatch.chdir(tiny_sdxl_path.parent)
    model = load_model(tiny_sdxl_path.name, device="cpu")
    assert model.source == str(tiny_sdxl_path.resolve())


def test_encode_decode_shapes(tiny_sdxl):
    image = np.full((256, 192, 3), 120, np.uint8)
    z = tiny_sdxl.encode_image(image)
    assert z.shape == (1, 4, 32, 24) and z.dtype == torch.float32
    out = tiny_sdxl.decode_latents(z)
    assert out.shape == (1, 256, 192, 3) and out.dtype == np.uint8
    assert tiny_sdxl.latent_rgb().shape == (5, 3)


def test_photo_latents_are_encoded_once_per_photo(tiny_sdxl, monkeypatch):
    """Edits of one photo (and preparing it) share one VAE encode; another photo, or one
    changed pixel, is encoded anew; the photo and a reference photo both stay cached."""
    calls = []
    encode = tiny_sdxl.vae.encode
    monkeypatch.setattr(tiny_sdxl.vae, "encode", lambda x: calls.append(1) or encode(x))
    rng = np.random.default_rng(3)
    photo, reference = (rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2))
    first = tiny_sdxl.encode_image(photo)
    first.add_(1.0)  # a caller changing its copy must not change the cache
    again = tiny_sdxl.encode_image(photo.copy())
    assert len(calls) == 1
    torch.testing.assert_close(again + 1.0, first)
    tiny_sdxl.encode_image(reference)
    tiny_sdxl.encode_image(photo)
    assert len(calls) == 2
    touched = photo.copy()
    touched[0, 0, 0] ^= 1
    tiny_sdxl.encode_image(touched)  # a third photo: the least recent (reference) goes
    assert len(calls) == 3
    tiny_sdxl.encode_image(photo)
    tiny_sdxl.encode_image(reference)
    assert len(calls) == 4


def test_pick_dtype_defaults_and_overrides():
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("mps")) == torch.float16
    assert pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    assert pick_dtype(torch.device("cpu"), torch.float16) == torch.float16
    with pytest.raises(ModelLoadError, match="precision"):
        pick_dtype(torch.device("cpu"), "fp8")
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            pick_device("cuda")


def test_hub_id_offline_says_what_to_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_model("nobody-here/not-a-cached-model", device="cpu")
    text = str(err.value)
    assert "not downloaded" in text and "hf download nobody-here/not-a-cached-model" in text
    assert "local diffusers folder" in text


def test_missing_folder_and_non_model_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="no folder"):
        load_model(tmp_path / "nothing" / "here", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no unet/ subfolder"):
        load_model(tmp_path / "empty", device="cpu")
    (tmp_path / "file.safetensors").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="diffusers model folder"):
        load_model(tmp_path / "file.safetensors", device="cpu")


def test_pickle_only_folder_is_refused(tiny_sdxl_path, tmp_path):
    folder = shutil.copytree(tiny_sdxl_path, tmp_path / "bin-model")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(ModelLoadError, match="safetensors only"):
        load_model(folder, device="cpu")


def test_damaged_config_is_a_sentence(tiny_sdxl_path, tmp_path):
    folder = shutil.copytree(tiny_sdxl_path, tmp_path / "broken")
    (folder / "unet" / "config.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        load_model(folder, device="cpu")


def test_fingerprint_tells_base_models_apart(tiny_sdxl, tiny_sdxl_path, tiny_sdxl_other_path):
    again = load_model(tiny_sdxl_path, device="cpu")
    other = load_model(tiny_sdxl_other_path, device="cpu")
    assert again.fingerprint == tiny_sdxl.fingerprint and again.probe == tiny_sdxl.probe
    # same architecture and configs, other weights: told apart by the weight probe
    assert other.fingerprint == tiny_sdxl.fingerprint and other.probe != tiny_sdxl.probe
    meta = {
        "fingerprint": tiny_sdxl.fingerprint,
        "probe": json.dumps(tiny_sdxl.probe),
        "base_model": "tiny-sdxl",
    }
    check_weights_match(again, meta)
    # the probe survives a half-precision load of the same files
    check_weights_match(load_model(tiny_sdxl_path, device="cpu", dtype="bf16"), meta)
    with pytest.raises(ModelLoadError, match="prepared on tiny-sdxl"):
        check_weights_match(other, meta)
    with pytest.raises(ModelLoadError, match="prepare the project again"):
        check_weights_match(again, {**meta, "fingerprint": "sd15-000000000000"})


def test_reset_restores_base_state(tiny_sdxl):
    from dedit_app.tokens import add_item_tokens, make_token_strings

    base_len = len(tiny_sdxl.tokenizers[0])
    table = tiny_sdxl.text_encoders[0].get_input_embeddings().weight.detach().clone()
    name = next(n for n, _ in tiny_sdxl.unet.named_parameters() if n.endswith("attn2.to_q.weight"))
    param = dict(tiny_sdxl.unet.named_parameters())[name]
    before = param.detach().clone()
    add_item_tokens(tiny_sdxl, make_token_strings(["a", "b"]))
    tiny_sdxl.save_unet_tensors([name])
    with torch.no_grad():
        param.add_(1.0)
    tiny_sdxl.reset()
    assert len(tiny_sdxl.tokenizers[0]) == base_len
    assert torch.equal(tiny_sdxl.text_encoders[0].get_input_embeddings().weight, table)
    assert torch.equal(dict(tiny_sdxl.unet.named_parameters())[name], before)


def test_vae_override_from_a_folder(tiny_sdxl_path, tiny_sd15_path):
    # a VAE folder given on its own (as madebyollin/sdxl-vae-fp16-fix is) or as a model
    # folder with a vae/ subfolder; here the SD 1.5 VAE, recognisable by its scaling factor
    m = load_model(tiny_sdxl_path, device="cpu", vae=tiny_sd15_path / "vae")
    assert m.vae.config.scaling_factor == pytest.approx(0.18215)
    m = load_model(tiny_sdxl_path, device="cpu", vae=tiny_sd15_path)
    assert m.vae.config.scaling_factor == pytest.approx(0.18215)


# ----- which precision of weights is read ------------------------------------------------


def half_copy(
    source, target, *, keep_full: bool, parts=("unet", "vae", "text_encoder", "text_encoder_2")
):
    """``source``'s weight files of ``parts`` as the ``*.fp16.safetensors`` copies hub
    repositories publish, written into ``target`` (a copy of ``source`` unless it
    exists), with or without the full files beside them."""
    from safetensors.torch import load_file, save_file

    if not target.exists():
        shutil.copytree(source, target)
    for part in parts:
        for file in sorted((source / part).glob("*.safetensors")):
            if ".fp16." in file.name:
                continue
            tensors = {
                k: v.half() if v.is_floating_point() else v for k, v in load_file(file).items()
            }
            half = file.name.replace(".safetensors", ".fp16.safetensors")
            save_file(tensors, target / part / half)
            if not keep_full:
                (target / part / file.name).unlink()
    return target


def meta_of(model, base: str) -> dict:
    return {"fingerprint": model.fingerprint, "probe": json.dumps(model.probe), "base_model": base}


def test_a_half_precision_only_folder_loads_in_full_precision(tiny_sdxl, tiny_sdxl_path, tmp_path):
    folder = half_copy(tiny_sdxl_path, tmp_path / "half", keep_full=False)
    model = load_model(folder, device="cpu")
    assert model.dtype == torch.float32
    # the same base model: projects prepared on the full files open with these
    check_weights_match(model, meta_of(tiny_sdxl, "tiny-sdxl"))
    ours = dict(model.unet.named_parameters())
    for name, value in tiny_sdxl.unet.named_parameters():
        assert torch.allclose(ours[name], value.half().float()), name
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        load_model(folder, device="cpu", variant=None)  # asked for the full files only


def test_a_model_with_half_copies_of_some_parts_reads_each_part_from_its_own(
    tiny_sdxl, tiny_sdxl_path, tmp_path
):
    """A half-precision UNet beside full encoders and VAE (a repository that publishes
    half copies of some parts only) loads in either precision without a second set."""
    folder = half_copy(tiny_sdxl_path, tmp_path / "mixed", keep_full=False, parts=("unet",))
    for dtype in (None, "bf16"):
        model = load_model(folder, device="cpu", dtype=dtype)
        check_weights_match(model, meta_of(tiny_sdxl, "tiny-sdxl"))  # the same base model
    full = load_model(folder, device="cpu")
    ours = dict(full.unet.named_parameters())
    for name, value in tiny_sdxl.unet.named_parameters():
        assert torch.allclose(ours[name], value.half().float()), name  # the half file, widened
    encoder = dict(full.text_encoders[0].named_parameters())
    for name, value in tiny_sdxl.text_encoders[0].named_parameters():
        assert torch.equal(encoder[name], value), name  # the full file, as it is


def test_the_precision_the_model_runs_in_picks_the_files(
    tiny_sdxl, tiny_sdxl_path, tiny_sdxl_other_path, tmp_path
):
    # Full files of one model with half copies of another's weights beside them, so which
    # set was read shows in the weights.
    folder = shutil.copytree(tiny_sdxl_path, tmp_path / "both")
    half_copy(tiny_sdxl_other_path, folder, keep_full=True)
    other = load_model(tiny_sdxl_other_path, device="cpu")
    full = load_model(folder, device="cpu")
    assert full.probe == tiny_sdxl.probe
    half = load_model(folder, device="cpu", dtype="bf16")
    check_weights_match(half, meta_of(other, "tiny-sdxl-other"))
    with pytest.raises(ModelLoadError, match="prepared on tiny-sdxl"):
        check_weights_match(half, meta_of(tiny_sdxl, "tiny-sdxl"))
