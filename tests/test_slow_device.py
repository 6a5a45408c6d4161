"""A full-size model that would run on the processor is named as slow before a click
starts hours of work; a GPU, a small model, or a model that cannot load here at all (its
own error says why) gives no warning. Weight files are sparse: their size is on disk in
name only."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from engine_fixtures import hub_snapshot

from dedit_app import slow_device
from dedit_app.slow_device import FULL_SIZE_BYTES, no_gpu_reason, processor_warning, unet_bytes


def model(folder, unet_bytes: int):
    """A diffusers-looking folder whose UNet weights are ``unet_bytes`` long."""
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(
        json.dumps({"unet": ["diffusers", "UNet2DConditionModel"]}), encoding="utf-8"
    )
    with open(folder / "unet" / "diffusion_pytorch_model.safetensors", "wb") as f:
        f.truncate(unet_bytes)
    return folder


def driver(monkeypatch, present: bool, amd: bool = False) -> None:
    """Whether an NVIDIA driver's ``nvidia-smi`` (and AMD's ``rocm-smi``, with ``amd``) is
    on the path, as far as the code asks."""
    which = shutil.which
    tools = {
        "nvidia-smi": "/usr/bin/nvidia-smi" if present else None,
        "rocm-smi": "/opt/rocm/bin/rocm-smi" if amd else None,
    }
    monkeypatch.setattr(shutil, "which", lambda name: tools[name] if name in tools else which(name))


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


def test_a_model_that_cannot_load_here_is_left_to_its_own_error(
    tmp_path, no_gpu, offline_hub_cache
):
    big = str(model(tmp_path / "sdxl", 3 * FULL_SIZE_BYTES))
    assert processor_warning(big, "cuda") == ""  # no CUDA: loading says so
    assert processor_warning(str(tmp_path / "nowhere"), "auto") == ""
    assert processor_warning("owner/not-cached", "auto") == ""  # offline: not downloaded


def test_hub_models_are_measured_in_the_cache_or_taken_as_full_size(
    offline_hub_cache, monkeypatch, no_gpu
):
    model(hub_snapshot(offline_hub_cache, "owner/small"), FULL_SIZE_BYTES // 100)
    assert unet_bytes("owner/small") == FULL_SIZE_BYTES // 100
    assert processor_warning("owner/small", "auto") == ""
    monkeypatch.setattr(slow_device, "FULL_SIZE_BYTES", FULL_SIZE_BYTES // 1000)
    assert "takes hours" in processor_warning("owner/small", "auto")  # offline, cached
    # Online, a hub model not downloaded yet is a published one: full size.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert unet_bytes("owner/published") is None
    assert "takes hours" in processor_warning("owner/published", "auto")


@pytest.mark.parametrize(
    ("cuda", "hip", "hidden", "reason", "remedy"),
    [
        (None, None, None, "built for the processor only", "install PyTorch's CUDA build"),
        ("13.0", None, "", "CUDA_VISIBLE_DEVICES='' hides", "unset that environment variable"),
        ("13.0", None, "-1", "CUDA_VISIBLE_DEVICES='-1' hides", "unset that environment"),
        ("13.0", None, None, "could not start this computer's NVIDIA GPU", "CUDA 13.0 needs"),
        ("13.0", None, "0", "could not start", "update the NVIDIA driver"),  # not hidden
    ],
)
def test_an_nvidia_gpu_that_pytorch_cannot_use_says_what_to_mend(
    cuda, hip, hidden, reason, remedy, tmp_path, monkeypatch, no_gpu
):
    """nvidia-smi says a GPU is there; torch finds none: PyPI's processor-only build (on
    Windows), a hiding CUDA_VISIBLE_DEVICES, or a driver too old for torch's CUDA."""
    driver(monkeypatch, present=True)
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.version, "hip", hip)
    if hidden is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
    said, mend = no_gpu_reason()
    assert reason in said and remedy in mend
    big = str(model(tmp_path / "sdxl", 3 * FULL_SIZE_BYTES))
    warning = processor_warning(big, "auto")
    assert warning.startswith(said[0].upper() + said[1:] + ", so the model runs on the processor")
    assert warning.endswith(mend) and "takes hours" in warning
    assert not processor_warning(big, "cpu").endswith(mend)  # chosen: nothing to mend


def test_an_amd_gpu_under_a_pytorch_without_rocm_asks_for_that_build(monkeypatch, no_gpu):
    driver(monkeypatch, present=False, amd=True)
    monkeypatch.setattr(torch.version, "hip", None)
    reason, remedy = no_gpu_reason()
    assert "an AMD GPU, but this PyTorch is not built for ROCm" in reason
    assert "install PyTorch's ROCm build" in remedy
    monkeypatch.setattr(torch.version, "hip", "6.4")  # a ROCm build that found nothing
    assert no_gpu_reason() == ("this computer has no GPU that PyTorch can use", "")


def test_no_driver_means_no_gpu_and_nothing_to_mend(monkeypatch, no_gpu):
    monkeypatch.setattr(torch.version, "cuda", None)
    assert no_gpu_reason() == ("this computer has no GPU that PyTorch can use", "")
