"""A full-size model that would run on the processor is named as slow before a click
starts hours of work; a GPU, a small model, or a model that cannot load here at all (its
own error says why) gives no warning. Weight files are sparse: their size is on disk in
name only."""

from __future__ import annotations

import json

import pytest
import torch

from dedit_app import slow_device
from dedit_app.slow_device import FULL_SIZE_BYTES, processor_warning, unet_bytes


def model(folder, unet_bytes: int):
    """A diffusers-looking folder whose UNet weights are ``unet_bytes`` long."""
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(
        json.dumps({"unet": ["diffusers", "UNet2DConditionModel"]}), encoding="utf-8"
    )
    with open(folder / "unet" / "diffusion_pytorch_model.safetensors", "wb") as f:
        f.truncate(unet_bytes)
    return folder


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache (the real one is never read), offline."""
    import huggingface_hub.constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_a_full_size_model_on_the_processor_takes_hours(tmp_path, no_gpu):
    big = str(model(tmp_path / "sdxl", 3 * FULL_SIZE_BYTES))
    assert unet_bytes(big) == 3 * FULL_SIZE_BYTES
    found = processor_warning(big, "auto")
    assert "no GPU that PyTorch can use" in found and "takes hours" in found
    chosen = processor_warning(big, "cpu")
    assert chosen.startswith("The model is set to run on the processor")


def test_a_gpu_or_a_small_model_gives_no_warning(tmp_path, monkeypatch, no_gpu):
    big = str(model(tmp_path / "sdxl", 3 * FULL_SIZE_BYTES))
    small = str(model(tmp_path / "tiny", FULL_SIZE_BYTES // 100))
    assert processor_warning(small, "auto") == "" and processor_warning(small, "cpu") == ""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert processor_warning(big, "auto") == "" and processor_warning(big, "cuda") == ""
    assert processor_warning(big, "cpu") != ""  # chosen by hand, still the processor


def test_a_model_that_cannot_load_here_is_left_to_its_own_error(tmp_path, no_gpu, hub_cache):
    big = str(model(tmp_path / "sdxl", 3 * FULL_SIZE_BYTES))
    assert processor_warning(big, "cuda") == ""  # no CUDA: loading says so
    assert processor_warning(str(tmp_path / "nowhere"), "auto") == ""
    assert processor_warning("owner/not-cached", "auto") == ""  # offline: not downloaded


def test_hub_models_are_measured_in_the_cache_or_taken_as_full_size(hub_cache, monkeypatch, no_gpu):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_cache / "models--owner--small"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    model(repo / "snapshots" / commit, FULL_SIZE_BYTES // 100)
    assert unet_bytes("owner/small") == FULL_SIZE_BYTES // 100
    assert processor_warning("owner/small", "auto") == ""
    monkeypatch.setattr(slow_device, "FULL_SIZE_BYTES", FULL_SIZE_BYTES // 1000)
    assert "takes hours" in processor_warning("owner/small", "auto")  # offline, cached
    # Online, a hub model not downloaded yet is a published one: full size.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert unet_bytes("owner/published") is None
    assert "takes hours" in processor_warning("owner/published", "auto")
