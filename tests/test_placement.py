"""Settings ▸ Model says where the model would run before anything loads: the GPU's name,
memory and precision, or the processor, or why the chosen device or precision cannot work
here. CUDA is faked through torch's own queries, so every case runs on any machine."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch

from dedit_app.models import pick_dtype
from dedit_app.placement import describe_placement
from dedit_app.recompute import LOW_MEMORY_BELOW


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no NVIDIA driver either


def fake_gpu(monkeypatch, name: str, gib: int, major: int) -> None:
    """Make torch see one CUDA GPU ``name`` of ``gib`` GiB and compute capability
    ``major``.x (8: Ampere, with bfloat16 of its own)."""
    props = SimpleNamespace(name=name, total_memory=gib * 2**30 - 2**20, major=major)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.version, "hip", None)


def test_the_processor_is_named_with_how_slow_it_is(no_gpu):
    found = describe_placement("auto", "auto")
    assert not found.ok
    assert found.text == (
        "Runs on the processor in float32 (this computer has no GPU that PyTorch can use): "
        "preparing a photo with SDXL takes hours there and each edit minutes."
    )
    chosen = describe_placement("cpu", "float16")
    assert chosen.text.startswith("Runs on the processor in float16:")  # chosen: no "why"
    assert not chosen.ok


def test_an_nvidia_gpu_under_a_processor_only_pytorch_says_how_to_use_it(no_gpu, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    found = describe_placement("auto", "auto")
    assert found.text.startswith(
        "Runs on the processor in float32 (this computer has an NVIDIA GPU, but this PyTorch "
        "is built for the processor only): preparing"
    )
    assert found.text.endswith("install PyTorch's CUDA build (pytorch.org lists the pip line) "
                               "into the editor's Python environment.")  # fmt: skip
    assert not found.ok


def test_a_device_that_is_not_there_says_so_and_what_to_choose(no_gpu):
    for device, says in [("cuda", "no CUDA GPU"), ("mps", "Apple MPS is not available")]:
        found = describe_placement(device, "auto")
        assert says in found.text and found.text.endswith("Choose auto in Device.")
        assert not found.ok


def test_a_large_gpu_is_named_with_its_memory_and_precision(monkeypatch):
    fake_gpu(monkeypatch, "NVIDIA H200", 141, major=9)
    found = describe_placement("auto", "auto", low_memory="off")
    assert found == found.__class__("Runs on NVIDIA H200 (141 GB) in bfloat16.", ok=True)
    assert describe_placement("cuda", "float32").text == "Runs on NVIDIA H200 (141 GB) in float32."


def test_a_gpu_under_the_low_memory_line_says_what_preparing_sdxl_needs(monkeypatch):
    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4090", 24, major=8)
    assert LOW_MEMORY_BELOW > 24 * 2**30
    for low_memory in ("auto", "on"):
        found = describe_placement("auto", "auto", low_memory)
        assert found.ok
        assert found.text.startswith("Runs on NVIDIA GeForce RTX 4090 (24 GB) in bfloat16.")
        assert "under 28 GB uses low-memory mode" in found.text
    off = describe_placement("auto", "auto", "off")
    assert not off.ok
    assert "runs out of memory with Low memory off: choose Automatic or On" in off.text


def test_a_gpu_before_ampere_runs_float16_and_warns_of_emulated_bfloat16(monkeypatch):
    """torch.cuda.is_bf16_supported() says True on a T4 (it emulates bfloat16 there in
    float32): the automatic precision must not take it."""
    fake_gpu(monkeypatch, "Tesla T4", 16, major=7)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_dtype(torch.device("cuda")) == torch.float16
    auto = describe_placement("auto", "auto")
    assert auto.ok and "Runs on Tesla T4 (16 GB) in float16." in auto.text
    chosen = describe_placement("auto", "bfloat16")
    assert not chosen.ok
    assert "only by emulating it" in chosen.text and "choose auto (float16 here)" in chosen.text
    fake_gpu(monkeypatch, "NVIDIA A10", 24, major=8)
    assert pick_dtype(torch.device("cuda")) == torch.bfloat16
