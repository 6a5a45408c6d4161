"""Whether a model would run on the processor, where preparing a photo with SDXL takes
hours instead of minutes: the editor asks before it starts such a preparation and says so
at the first edit; the command line prints it as a note.

Answered without loading the model, so it is quick enough for a click: the device comes
from torch's own checks (the editor has loaded torch ahead by then), the model's size
from its UNet's weight files on disk. By the estimate in docs/PERFORMANCE.md, preparing
SDXL at 1024 x 1024 is about 30,000 TFLOP and one edit about 290. Issue 6's targets on a
recent GPU are a minute and a second; a processor that sustains 1 TFLOP/s (a fast desktop)
needs over eight hours and about five minutes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dedit_app.errors import ModelLoadError
from dedit_app.hub import cached_folder, is_hub_id, offline
from dedit_app.weight_files import weight_bytes

# Smaller UNets are not worth a warning: the tests' tiny ones are a few MB, while SD 1.5's
# is 1.7 GB (0.9 GB in half precision) and SDXL's 10 GB (5 GB).
FULL_SIZE_BYTES = 200_000_000

__all__ = [
    "FULL_SIZE_BYTES",
    "is_small",
    "no_gpu_reason",
    "on_processor",
    "processor_warning",
    "unet_bytes",
]


def unet_bytes(source: str) -> int | None:
    """Bytes of the UNet weight files of ``source`` (a diffusers folder, or a hub id whose
    weights are in the Hugging Face cache), or None when they are not on this machine."""
    path = Path(source).expanduser()
    folder = path if path.is_dir() else cached_folder(source) if is_hub_id(source) else None
    return None if folder is None else weight_bytes(folder, ("unet",))


def is_small(source: str) -> bool:
    """True when the UNet of ``source`` is on this machine and far below SD 1.5's size
    (a test's tiny model): quick anywhere, so no speed or memory rule applies to it."""
    size = unet_bytes(source.strip()) if source.strip() else None
    return size is not None and size < FULL_SIZE_BYTES


def on_processor(device: str | None) -> bool:
    """True when a model asked to run on ``device`` ("auto" or None: the best there is)
    would run on the CPU. A device that is not there counts as False: loading it says
    why in its own sentence."""
    from dedit_app.models import pick_device

    try:
        return pick_device(None if device in (None, "", "auto") else device).type == "cpu"
    except ModelLoadError:
        return False


def no_gpu_reason() -> tuple[str, str]:
    """Why torch finds no GPU to use here, as ``(reason, remedy)``: a clause to go inside a
    sentence (its first letter as in mid-sentence), and a sentence or "" when there is
    nothing to mend. An NVIDIA driver's ``nvidia-smi`` on the path says a GPU is there:
    then this PyTorch is built for the processor only (what pip installs from PyPI on
    Windows), or CUDA_VISIBLE_DEVICES hides it, or CUDA could not start (most often a
    driver older than this PyTorch's CUDA). AMD's ``rocm-smi`` with a PyTorch not built
    for ROCm asks for that build."""
    import torch

    nvidia = shutil.which("nvidia-smi") is not None
    if not nvidia and shutil.which("rocm-smi") is not None and torch.version.hip is None:
        return (
            "this computer has an AMD GPU, but this PyTorch is not built for ROCm",
            "To use the GPU, install PyTorch's ROCm build (pytorch.org lists the pip line) "
            "into the editor's Python environment.",
        )
    if not nvidia:
        return "this computer has no GPU that PyTorch can use", ""
    if torch.version.cuda is None and torch.version.hip is None:
        return (
            "this computer has an NVIDIA GPU, but this PyTorch is built for the processor only",
            "To use the GPU, install PyTorch's CUDA build (pytorch.org lists the pip line) "
            "into the editor's Python environment.",
        )
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and (hidden.strip() == "" or hidden.strip().startswith("-")):
        return (
            f"CUDA_VISIBLE_DEVICES={hidden.strip()!r} hides this computer's NVIDIA GPU from "
            "PyTorch",
            "To use the GPU, unset that environment variable before starting the editor.",
        )
    return (
        f"PyTorch {torch.__version__} could not start this computer's NVIDIA GPU",
        f"Most often its driver is older than this PyTorch's CUDA {torch.version.cuda} "
        "needs: update the NVIDIA driver.",
    )


def processor_warning(source: str, device: str | None) -> str:
    """A sentence saying that preparing and editing with ``source`` on ``device`` would be
    slow because it runs on the processor, or "" when it would not: a GPU is there, the
    model is small, or it cannot load here at all (a missing folder; a hub model not
    downloaded while offline), which its own error says when it is tried."""
    size = unet_bytes(source)
    if size is None and (offline() or not is_hub_id(source)):
        return ""
    if size is not None and size < FULL_SIZE_BYTES:
        return ""
    if not on_processor(device):
        return ""
    remedy = ""
    if device == "cpu":
        why = "The model is set to run on the processor, not a GPU"
    else:
        reason, remedy = no_gpu_reason()
        why = f"{reason[0].upper()}{reason[1:]}, so the model runs on the processor"
    said = (
        f"{why}: preparing a photo takes hours there (minutes on a recent GPU), and each "
        "edit takes minutes."
    )
    return f"{said} {remedy}" if remedy else said
