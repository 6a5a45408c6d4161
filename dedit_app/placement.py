"""Where a model would run with the device and precision chosen in Settings, said before
anything loads: the GPU's name and memory and the precision ("Runs on NVIDIA GeForce RTX
4090 (24 GB) in bfloat16"), or that it runs on the processor, or why the choice cannot
work on this computer (cuda chosen without a CUDA GPU; bfloat16 on a GPU without it).

It asks torch, which starts CUDA on the first call (a second or more), so the editor asks
it on a side thread; later calls are quick. It loads no model: what SDXL needs comes from
:mod:`dedit_app.recompute` and the size warnings from :mod:`dedit_app.slow_device`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dedit_app import slow_device
from dedit_app.errors import ModelLoadError
from dedit_app.models import fast_bf16, pick_device, pick_dtype
from dedit_app.recompute import LOW_MEMORY_BELOW

__all__ = ["Placement", "describe_placement"]


@dataclass(frozen=True)
class Placement:
    """What the user reads about where the model runs."""

    text: str  # one to three sentences
    ok: bool  # False: it cannot run as chosen, or so slowly that the user should know first


def describe_placement(
    device: str | None, precision: str | None, low_memory: str = "auto"
) -> Placement:
    """Where a model run on ``device`` ("auto" or None: the best there is; "cuda", "mps",
    "cpu") in ``precision`` ("auto" or None: the device's best; "bfloat16", "float16",
    "float32") would run, with what preparing SDXL there asks of ``low_memory`` (Settings'
    "auto" | "on" | "off")."""
    chosen = None if device in (None, "", "auto") else device
    try:
        dev = pick_device(chosen)
        dtype = pick_dtype(dev, None if precision in (None, "", "auto") else precision)
    except ModelLoadError as err:
        return Placement(f"{err} Choose auto in Device.", ok=False)
    name = str(dtype).removeprefix("torch.")
    if dev.type == "cpu":
        reason, remedy = ("", "") if chosen else slow_device.no_gpu_reason()
        why = f" ({reason})" if reason else ""
        said = (
            f"Runs on the processor in {name}{why}: preparing a photo with SDXL takes hours "
            "there and each edit minutes."
        )
        return Placement(f"{said} {remedy}" if remedy else said, ok=False)
    if dev.type == "mps":
        return Placement(f"Runs on Apple's GPU (MPS) in {name}.", ok=True)
    return _on_cuda(dev, dtype, name, low_memory)


def _on_cuda(dev: torch.device, dtype: torch.dtype, name: str, low_memory: str) -> Placement:
    props = torch.cuda.get_device_properties(dev)
    text = f"Runs on {props.name} ({props.total_memory / 2**30:.0f} GB) in {name}."
    if dtype == torch.bfloat16 and not fast_bf16(dev):
        # before Ampere torch emulates it in float32, without the half-precision units
        return Placement(
            f"{text} This GPU computes bfloat16 only by emulating it, much slower than "
            "float16: choose auto (float16 here) in Precision.",
            ok=False,
        )
    if props.total_memory >= LOW_MEMORY_BELOW:
        return Placement(text, ok=True)
    below = f"Preparing SDXL on a GPU under {LOW_MEMORY_BELOW // 2**30} GB"
    if low_memory == "off":
        return Placement(
            f"{text} {below} runs out of memory with Low memory off: choose Automatic or On "
            "in Settings > Preparing.",
            ok=False,
        )
    said = f"{text} {below} uses low-memory mode: slower, and it learns the same."
    return Placement(said, ok=True)
