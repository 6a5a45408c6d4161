"""Which UNet blocks gradient checkpointing recomputes while preparing (low-memory mode).

A block that is recomputed keeps only its inputs in the forward pass and runs its forward
again in the backward pass. In SDXL's UNet, while preparing, that trade is linear: each
transformer block saves about 1 GiB of activations at 1024^2, batch 2, per TFLOP of
recomputation, and a ResNet block far less (docs/PERFORMANCE.md, "Which blocks to
recompute"). So recomputing everything is the most memory can shrink, and recomputing
just enough to fit a card is the least time it costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dedit_app.errors import EditError

__all__ = [
    "EVERY_BLOCK",
    "LOW_MEMORY_BELOW",
    "SDXL_EDIT_NEEDS",
    "SDXL_PREPARE_NEEDS",
    "SDXL_WITHIN_24GB",
    "Recompute",
    "check_plan",
    "gpu_memory",
    "low_memory_reason",
    "use_recompute",
]

# Full-size SDXL prepares at 1024^2, batch 2, in 23.6 GiB of tensors without low-memory
# mode (predicted by `scripts/bench.py estimate`); with CUDA's context, cuBLAS's workspace
# and the allocator's slack that wants a card of about 28 GiB. Below that, a GPU prepares
# SDXL in low-memory mode (12.4 GiB predicted) unless the user chose otherwise.
LOW_MEMORY_BELOW = 28 * 2**30
# Under these, SDXL at 1024^2 is predicted not to fit a CUDA GPU at all: preparing in
# low-memory mode peaks at 12.4 GiB of tensors and an edit at 8.0 (its VAE decode), in
# bf16, and CUDA's context and the allocator's slack add about 1.5 GiB. The GPU run
# should confirm these with LOW_MEMORY_BELOW.
SDXL_PREPARE_NEEDS = 14 * 2**30
SDXL_EDIT_NEEDS = int(9.5 * 2**30)


@dataclass(frozen=True)
class Recompute:
    """The blocks each preparation stage recomputes: UNet module names ("up_blocks.1"
    covers its ResNets and every module under it that recomputes, "mid_block.attentions.0"
    one transformer); ``None``: every block diffusers can recompute; ``()``: none."""

    tokens: tuple[str, ...] | None = None  # stage 1: the items' token rows
    unet: tuple[str, ...] | None = None  # stage 2: cross-attention q/k/v or a LoRA

    def of(self, stage: str) -> tuple[str, ...] | None:
        """The blocks of ``stage`` ("tokens" or "unet")."""
        return self.tokens if stage == "tokens" else self.unet


EVERY_BLOCK = Recompute()

# Full-size SDXL at 1024^2, batch 2, idle models parked (predicted by `scripts/bench.py
# estimate`): stage 1 peaks at 16.7 GiB of tensors with nothing recomputed and stage 2 at
# 22.0 GiB. Recomputing the transformers that give the most memory per FLOP, up to 4.3
# GiB, brings stage 2 to 17.7 GiB for 14 % more arithmetic there (EVERY_BLOCK: 12.4 GiB
# for 35 % more in both stages). Unproven on a GPU, so not yet the low-memory default.
SDXL_WITHIN_24GB = Recompute(
    tokens=(),
    unet=(
        "down_blocks.1.attentions",
        "mid_block.attentions",
        "up_blocks.1.attentions",
        "up_blocks.0.attentions.0",
    ),
)


def gpu_memory(device: torch.device) -> int | None:
    """Bytes the GPU ``device`` can hold tensors in: a CUDA GPU's own memory, or for
    Apple's GPU the share of the memory it shares with the processor that Metal
    recommends it keep in use (``torch.mps.recommended_max_memory``, about two thirds to
    three quarters of it; past that macOS starts to swap). None for the processor, and for
    Apple's GPU under a torch without that query."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "mps" and hasattr(torch.mps, "recommended_max_memory"):
        return int(torch.mps.recommended_max_memory())
    return None


def low_memory_reason(family: str, device: torch.device) -> str:
    """Why a model of ``family`` ("sdxl", "sd15") preparing on ``device`` should do so in
    low-memory mode, as sentences for the user (the caller adds where to change it), or
    "" when it fits without. Only SDXL on a GPU with less than :data:`LOW_MEMORY_BELOW`
    of memory (:func:`gpu_memory`) needs it: SD 1.5 fits any such GPU, and the
    processor's memory is not asked. The tensors are the same size on Apple's GPU, so
    the same line holds there."""
    total = gpu_memory(device) if family == "sdxl" else None
    if total is None or total >= LOW_MEMORY_BELOW:
        return ""
    has = (
        f"Apple's GPU can use about {total / 2**30:.0f} GB"
        if device.type == "mps"
        else f"this GPU has {total / 2**30:.0f} GB"
    )
    return (
        f"Preparing in low-memory mode: {has}, and SDXL needs about "
        f"{LOW_MEMORY_BELOW // 2**30} GB without it. It is slower and learns the same."
    )


def check_plan(unet: torch.nn.Module, plan: Recompute) -> None:
    """Raise EditError when ``plan`` names a block this diffusers ``unet`` does not have
    (a plan written for another architecture): before preparing starts, not at stage 2."""
    names = [n for n, m in unet.named_modules() if hasattr(m, "gradient_checkpointing")]
    wanted = [*(plan.tokens or ()), *(plan.unet or ())]
    unknown = sorted({b for b in wanted if not any(_covers(b, n) for n in names)})
    if unknown:
        raise EditError(
            "The low-memory plan names UNet blocks this model does not have: "
            f"{', '.join(unknown)}. Use the plan that recomputes every block instead."
        )


def use_recompute(unet: torch.nn.Module, blocks: tuple[str, ...] | None) -> None:
    """Turn gradient checkpointing on for ``blocks`` of a diffusers ``unet`` and off for
    the rest (see :class:`Recompute`; names are checked by :func:`check_plan`)."""
    unet.enable_gradient_checkpointing()  # gives every block the checkpoint function
    if blocks is None:
        return
    for name, module in unet.named_modules():
        if hasattr(module, "gradient_checkpointing"):
            module.gradient_checkpointing = any(_covers(b, name) for b in blocks)


def _covers(block: str, name: str) -> bool:
    return name == block or name.startswith(block + ".")
