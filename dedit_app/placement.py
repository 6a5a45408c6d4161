"""What Settings ▸ Model says before anything loads: where the model's files are
(:func:`describe_source`: a local folder, the Hugging Face cache, still to download, or
why it cannot be found) and where it would run with the device and precision chosen
(:func:`describe_placement`: the GPU's name, memory and precision, "Runs on NVIDIA GeForce
RTX 4090 (24 GB) in bfloat16"; the processor; or why the choice cannot work on this
computer, such as cuda chosen without a CUDA GPU or bfloat16 on a GPU without it).

Asking torch starts CUDA on the first call (a second or more), so the editor asks on a
side thread; later calls are quick. No model is loaded: the files are judged by their
names and sizes (:mod:`dedit_app.weight_files`), what SDXL needs comes from
:mod:`dedit_app.recompute`, and why no GPU is found from :mod:`dedit_app.slow_device`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dedit_app import slow_device
from dedit_app.errors import ModelLoadError
from dedit_app.hub import DEFAULT_MODEL, cached_folder, is_hub_id, offline, resolve, size_text
from dedit_app.models import (
    check_model_folder,
    detect_family,
    download_variant,
    fast_bf16,
    no_mixed_precision,
    pick_device,
    pick_dtype,
)
from dedit_app.recompute import (
    LOW_MEMORY_BELOW,
    SDXL_EDIT_NEEDS,
    SDXL_PREPARE_NEEDS,
    gpu_memory,
)
from dedit_app.weight_files import HALF, part_sets, weight_bytes, weight_sets

__all__ = [
    "COMMAND_LINE",
    "EDITOR",
    "SD15_MODEL",
    "Verdict",
    "Wording",
    "describe_placement",
    "describe_runs",
    "describe_source",
    "model_family",
]

# A Stable Diffusion 1.5 in diffusers format with safetensors weights, for GPUs too small
# for SDXL
SD15_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
# What the models the editor names are, before they are downloaded: family, and the GB of
# the weights it loads in half and in full precision as the hub publishes them
_KNOWN = {DEFAULT_MODEL: ("sdxl", 7, 14), SD15_MODEL: ("sd15", 2, 4)}


@dataclass(frozen=True)
class Verdict:
    """What the user reads about the model, and how it stands."""

    text: str  # one to three sentences
    # "ready": nothing to do; "note": it works, and something will take time (a download);
    # "problem": it cannot work as chosen, or so slowly that the user should know first
    state: str
    model: str = ""  # a model to choose instead (a hub id), when that is the remedy

    @property
    def ok(self) -> bool:
        return self.state != "problem"


@dataclass(frozen=True)
class Wording:
    """How a verdict names what the user changes: the editor's Settings fields
    (:data:`EDITOR`) or the ``dedit`` command's options (:data:`COMMAND_LINE`)."""

    any_device: str  # a sentence: go back to the best device there is
    any_precision: str  # a sentence: go back to the device's best precision
    auto_precision: str  # a clause, "{}" for the precision auto picks there
    low_memory_off: str  # how Low memory was turned off, after "with"
    low_memory_on: str  # a clause: turn it back on
    small_model: str  # a clause: choose a Stable Diffusion 1.5 model
    full_precision: str  # a clause: choose float32
    first_prepare: str  # what downloads a model not downloaded yet


EDITOR = Wording(
    any_device="Choose auto in Device.",
    any_precision="Choose auto in Precision.",
    auto_precision="choose auto ({} here) in Precision",
    low_memory_off="Low memory off",
    low_memory_on="choose Automatic or On in Settings > Preparing",
    small_model="choose a Stable Diffusion 1.5 model in Model",
    full_precision="choose float32 in Precision",
    first_prepare="the first Prepare",
)
COMMAND_LINE = Wording(
    any_device="Leave out --device to use the best there is.",
    any_precision="Leave out --dtype to use the device's best.",
    auto_precision="leave out --dtype ({} here)",
    low_memory_off="--no-low-memory",
    low_memory_on="leave out --no-low-memory",
    small_model="use a Stable Diffusion 1.5 model with --model",
    full_precision="use --dtype fp32",
    first_prepare="the first `dedit finetune`",
)


def describe_source(
    source: str,
    device: str | None = None,
    precision: str | None = None,
    wording: Wording = EDITOR,
) -> Verdict:
    """Where the files of model ``source`` (a hub id or a local diffusers folder; "" is
    the default model) are, or why they cannot be used. ``device`` and ``precision`` (as
    in :func:`describe_placement`) choose which copy of the weights a download fetches,
    named in the offline sentence's ``hf download`` line. Reads file names and sizes and
    the Hugging Face cache; never the network."""
    source = source.strip() or DEFAULT_MODEL
    if Path(source).expanduser().exists() or not is_hub_id(source):
        try:
            folder = resolve(source, what="model", variant=None, local_files_only=True)
            said = f"A local folder: {_contents(folder)}."
        except ModelLoadError as err:
            return Verdict(str(err), "problem")
        return Verdict(said, "ready")
    folder = cached_folder(source)
    variant = _variant(device, precision)
    if folder is None and not offline():
        big = ""
        if source in _KNOWN:
            _, half, full = _KNOWN[source]
            big = (
                f" (about {half} GB in half precision, what a GPU reads)"
                if variant == HALF
                else f" (about {full} GB in full precision, what the processor reads)"
            )
        return Verdict(
            f"Not downloaded yet: {wording.first_prepare} downloads it from the Hugging Face "
            f"hub{big}, "
            "and it stays in the cache.",
            "note",
        )
    try:
        if folder is None:  # offline: the sentence says how to download it once online
            folder = resolve(
                source, what="model", variant=variant,
                local_files_only=True, any_precision=True,
            )  # fmt: skip
        said = f"In the Hugging Face cache: {_contents(folder)}."
    except ModelLoadError as err:
        return Verdict(str(err), "problem")
    return Verdict(said, "ready")


def _contents(folder: Path) -> str:
    """The model in ``folder`` and its complete sets of weights, as in "SDXL, its weights
    in half precision (6.9 GB)"; raises ModelLoadError when a part lacks weights or no one
    precision is complete in every part (an unfinished download)."""
    family = check_model_folder(folder)
    sets = part_sets(folder)
    unfinished = [part for part, held in sets.items() if not held]
    if unfinished:
        raise ModelLoadError(
            f"{folder} has weights, but not all of those of {', '.join(unfinished)}; the "
            "download may be unfinished."
        )
    common = weight_sets(folder)
    if common:
        precision = " and ".join(_precision(v) for v in sorted(common, key=str)) + " precision"
    else:  # half copies of only some parts: each part is read in its own
        precision = ", ".join(f"{p} {_precision(min(h, key=str))}" for p, h in sets.items())
        precision = f"mixed precision ({precision})"
    kind = {"sdxl": "SDXL", "sd15": "Stable Diffusion 1.x"}[family]
    return f"{kind}, its weights in {precision} ({size_text(weight_bytes(folder))})"


def _gb(n: int) -> str:
    return f"{n / 2**30:g} GB"


def _precision(variant: str | None) -> str:
    return {None: "full", HALF: "half"}.get(variant, str(variant))


def _variant(device: str | None, precision: str | None) -> str | None:
    """The weights a download for this device and precision fetches; half precision
    when the device is not there (its own line says so)."""
    try:
        return download_variant(_chosen(device), _chosen(precision))
    except ModelLoadError:
        return HALF


def _chosen(value: str | None) -> str | None:
    """A Settings choice as the engine takes it: None for "auto" (the best there is)."""
    return None if value in (None, "", "auto") else value


def model_family(source: str) -> str | None:
    """The family of model ``source``, "sdxl" or "sd15", when its files say so without
    the network (a local folder, the Hugging Face cache; the default model is SDXL, and
    :data:`SD15_MODEL` SD 1.5, downloaded or not), else None."""
    source = source.strip() or DEFAULT_MODEL
    path = Path(source).expanduser()
    folder = path if path.is_dir() else cached_folder(source) if is_hub_id(source) else None
    if folder is None:
        return _KNOWN[source][0] if source in _KNOWN else None
    try:
        return detect_family(folder)
    except ModelLoadError:
        return None


def describe_runs(
    source: str,
    device: str | None,
    precision: str | None,
    low_memory: str = "auto",
    wording: Wording = EDITOR,
) -> Verdict:
    """:func:`describe_placement` for model ``source`` (a hub id or a local folder), with
    its family and whether it is small read from its files (:func:`model_family`,
    :func:`dedit_app.slow_device.is_small`)."""
    family, small = model_family(source), slow_device.is_small(source)
    return describe_placement(device, precision, low_memory, family, wording, small)


def describe_placement(
    device: str | None,
    precision: str | None,
    low_memory: str = "auto",
    family: str | None = None,
    wording: Wording = EDITOR,
    small: bool = False,
) -> Verdict:
    """Where a model run on ``device`` ("auto" or None: the best there is; "cuda", "mps",
    "cpu") in ``precision`` ("auto" or None: the device's best; "bfloat16", "float16",
    "float32") would run, with what preparing SDXL there asks of ``low_memory`` (Settings'
    "auto" | "on" | "off") and whether SDXL fits that GPU at all. ``family`` ("sdxl",
    "sd15", None: not known, taken as SDXL) drops what SDXL alone needs for SD 1.5.
    ``wording`` names the remedies in the editor's fields or the command line's options.
    ``small`` (:func:`dedit_app.slow_device.is_small`: a tiny model, such as the tests')
    drops what full-size models need of speed and memory: it runs quickly anywhere."""
    chosen = _chosen(device)
    try:
        dev = pick_device(chosen)
    except ModelLoadError as err:
        return Verdict(f"{err} {wording.any_device}", "problem")
    try:
        dtype = pick_dtype(dev, _chosen(precision))
    except ModelLoadError as err:  # a precision typed on the command line
        return Verdict(f"{err} {wording.any_precision}", "problem")
    name = str(dtype).removeprefix("torch.")
    if dev.type == "cpu" and small:
        return Verdict(
            f"Runs on the processor in {name}; this model is small, so that is quick.", "ready"
        )
    if dev.type == "cpu":
        reason, remedy = ("", "") if chosen else slow_device.no_gpu_reason()
        why = f" ({reason})" if reason else ""
        kind = "Stable Diffusion 1.5" if family == "sd15" else "SDXL"
        said = (
            f"Runs on the processor in {name}{why}: preparing a photo with {kind} takes "
            "hours there and each edit minutes."
        )
        return Verdict(f"{said} {remedy}" if remedy else said, "problem")
    missing = no_mixed_precision(dev, dtype, wording.full_precision)
    if missing:  # editing would run, but preparing fails at its first layer
        return Verdict(missing, "problem")
    total = gpu_memory(dev)
    if dev.type == "mps":
        if total is None:  # a torch that cannot say how much Apple's GPU may use
            return Verdict(f"Runs on Apple's GPU (MPS) in {name}.", "ready")
        text = (
            f"Runs on Apple's GPU (MPS, about {total / 2**30:.0f} GB of the memory it shares "
            f"with the processor) in {name}."
        )
        return _fits(text, total, low_memory, family, wording, small)
    props = torch.cuda.get_device_properties(dev)
    text = f"Runs on {props.name} ({total / 2**30:.0f} GB) in {name}."
    if dtype == torch.bfloat16 and not fast_bf16(dev) and not small:
        # before Ampere torch emulates it in float32, without the half-precision units
        return Verdict(
            f"{text} This GPU computes bfloat16 only by emulating it, much slower than "
            f"float16: {wording.auto_precision.format('float16')}.",
            "problem",
        )
    return _fits(text, total, low_memory, family, wording, small)


def _fits(
    text: str, total: int, low_memory: str, family: str | None, wording: Wording, small: bool
) -> Verdict:
    """``text`` (where it runs), and what preparing SDXL asks of a GPU that can hold
    ``total`` bytes of tensors: low-memory mode, or a smaller model."""
    if family == "sd15" or small or total >= LOW_MEMORY_BELOW:
        return Verdict(text, "ready")
    if total < SDXL_PREPARE_NEEDS:
        edits = "" if total >= SDXL_EDIT_NEEDS else f", and each edit about {_gb(SDXL_EDIT_NEEDS)}"
        return Verdict(
            f"{text} Preparing a photo with SDXL is predicted to need about "
            f"{_gb(SDXL_PREPARE_NEEDS)} of GPU memory even in low-memory mode{edits}, so it "
            f"will most likely run out of memory here: {wording.small_model} (such as "
            f"{SD15_MODEL}).",
            "problem",
            model=SD15_MODEL,
        )
    below = f"Preparing SDXL on a GPU under {LOW_MEMORY_BELOW // 2**30} GB"
    if low_memory == "off":
        return Verdict(
            f"{text} {below} runs out of memory with {wording.low_memory_off}: "
            f"{wording.low_memory_on}.",
            "problem",
        )
    said = f"{text} {below} uses low-memory mode: slower, and it learns the same."
    return Verdict(said, "ready")
