"""Load the diffusion model the editor works with: SDXL (default) or an SD 1.5 model.

    model = load_model()                                # stabilityai/stable-diffusion-xl-base-1.0
    model = load_model("/models/sdxl", dtype="bf16", vae="madebyollin/sdxl-vae-fp16-fix")
    model = load_model(tiny_folder)                        # tests: same code path

A source is a Hugging Face hub id or a local diffusers folder (``model_index.json`` plus one
subfolder per component). The family is read from the folder: a ``text_encoder_2`` means
SDXL (two text encoders, 1024²), otherwise SD 1.5 (one text encoder, 512²). Weights load from
safetensors only; a folder with only pickle ``.bin`` files is refused with a sentence.

Device and dtype: CUDA in bf16 (fp16 on GPUs without bf16), Apple MPS in fp16, CPU in fp32;
both overridable. The VAE runs in fp32 when the model runs in fp16 and the VAE asks for it
(``force_upcast``; SDXL's VAE overflows in fp16) unless a fp16-safe VAE is given with ``vae=``.

:class:`DiffusionModel` holds the components, the fingerprint that tells which base model
learned weights belong to, and :meth:`DiffusionModel.reset`, which puts the model back to its
loaded state after a project's learned tokens and UNet tensors were installed.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dedit_app.errors import ModelLoadError, overflowed, short_error
from dedit_app.hub import DEFAULT_MODEL, is_hub_id, resolve
from dedit_app.weight_files import HALF, WEIGHT_SUFFIX, WEIGHTED, pick_variants, variant_of

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL",
    "DiffusionModel",
    "check_model_folder",
    "check_weights_match",
    "compile_cache_dir",
    "detect_family",
    "fast_bf16",
    "download_variant",
    "load_model",
    "model_from_components",
    "pick_device",
    "pick_dtype",
]

_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}
# Photos whose VAE latents stay cached: the photo being edited and a reference photo.
_LATENT_CACHE_SIZE = 2


def compile_cache_dir() -> Path:
    """The folder for the editor's compiled kernels (``DEDIT_CACHE_DIR`` overrides): the
    user's cache folder, not inductor's default under the temp folder, so a compile is paid
    once per machine and torch version instead of after every reboot."""
    if os.environ.get("DEDIT_CACHE_DIR"):
        return Path(os.environ["DEDIT_CACHE_DIR"]) / "kernels"
    if sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "dedit-studio" / "kernels"


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple MPS, then CPU."""
    if device is not None:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ModelLoadError(
                f"{device!r} is not a device name (use cpu, cuda or mps)."
            ) from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(
                "The device cuda was asked for, but this computer has no CUDA GPU."
            )
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("The device mps was asked for, but Apple MPS is not available.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """``dtype`` if given ("fp32", "fp16", "bf16" or a torch dtype); else bf16 on CUDA GPUs
    that compute in it (:func:`fast_bf16`; fp16 on older ones), fp16 on MPS, fp32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        key = str(dtype).lower().replace("torch.", "")
        if key not in _DTYPES:
            raise ModelLoadError(
                f"{dtype!r} is not a precision the editor knows (fp32, fp16, bf16)."
            )
        return _DTYPES[key]
    if device.type == "cuda":
        return torch.bfloat16 if fast_bf16(device) else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def no_mixed_precision(
    device: torch.device,
    dtype: torch.dtype,
    full_precision: str = "choose float32 as the precision",
) -> str:
    """Why preparing in ``dtype`` on ``device`` cannot run with this PyTorch, and what to
    do (sentences; ``full_precision`` is the clause that chooses float32 where the user
    is), or "" when it can. Half-precision preparing keeps float32 master weights and runs
    the layers under autocast; a PyTorch without autocast on the device (MPS before 2.5)
    would fail at the first layer with a dtype mismatch that names no remedy."""
    available = getattr(torch.amp, "is_autocast_available", None)  # PyTorch 2.4 on
    if dtype == torch.float32 or (available is not None and available(device.type)):
        return ""
    name = str(dtype).removeprefix("torch.")
    where = {"mps": "Apple's GPU (MPS)", "cpu": "the processor"}.get(device.type, "this GPU")
    return (
        f"This PyTorch ({torch.__version__}) cannot prepare a photo in {name} on {where}: "
        "it has no mixed precision there. Update PyTorch (`python -m pip install -U torch`), "
        f"or {full_precision}."
    )


def fast_bf16(device: torch.device) -> bool:
    """True when the CUDA GPU ``device`` computes in bfloat16 itself (NVIDIA Ampere and
    later, and ROCm). ``torch.cuda.is_bf16_supported()`` also says True on older GPUs,
    where torch emulates it in float32, much slower than float16."""
    if torch.version.hip:
        return True
    return torch.cuda.get_device_properties(device).major >= 8


def detect_family(folder: str | os.PathLike[str]) -> str:
    """``"sdxl"`` when the diffusers folder has a second text encoder, else ``"sd15"``."""
    folder = Path(folder)
    index = folder / "model_index.json"
    if index.is_file():
        try:
            doc = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"{index} is not readable JSON ({err}).") from err
        if doc.get("text_encoder_2") and doc["text_encoder_2"][0] is not None:
            return "sdxl"
        return "sd15"
    return "sdxl" if (folder / "text_encoder_2").is_dir() else "sd15"


# ----------------------------------------------------------------------------------------
# Checking the files (finding them is dedit_app.hub's)
# ----------------------------------------------------------------------------------------


def check_model_folder(folder: str | os.PathLike[str], own_vae: bool = True) -> str:
    """The family ("sdxl", "sd15") of the diffusers model in ``folder``, after checking
    that each part it needs holds safetensors weights (the VAE only when ``own_vae``: a
    replacement VAE comes from elsewhere); raises ModelLoadError saying what is missing.
    Reads file names only."""
    folder = Path(folder)
    family = detect_family(folder)
    for component in ["unet", *(["vae"] if own_vae else []), *_encoders(family)]:
        _require_safetensors(folder, component)
    return family


def _encoders(family: str) -> list[str]:
    """The text encoders' subfolders of a model of ``family``: SDXL has two."""
    return ["text_encoder", "text_encoder_2"] if family == "sdxl" else ["text_encoder"]


def _require_safetensors(folder: Path, component: str) -> None:
    sub = folder / component
    if not sub.is_dir():
        raise ModelLoadError(
            f"{folder} is not a complete diffusers model folder: it has no {component}/ "
            "subfolder (expected model_index.json, unet/, vae/, text_encoder/, tokenizer/)."
        )
    if any(sub.glob(f"*{WEIGHT_SUFFIX}")):
        return
    if any(sub.glob("*.bin")) or any(sub.glob("*.ckpt")) or any(sub.glob("*.pt")):
        raise ModelLoadError(
            f"{sub} holds only PyTorch pickle weights (.bin); the editor loads safetensors only, "
            "because pickle files can run code. Download the .safetensors version of this model."
        )
    raise ModelLoadError(f"{sub} has no weights file (*.safetensors); the download is incomplete.")


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class DiffusionModel:
    """A loaded SDXL or SD 1.5 and what the engine needs to know about it.

    ``text_encoders``/``tokenizers`` hold one (SD 1.5) or two (SDXL) entries in the order of
    the model (SDXL: CLIP ViT-L then OpenCLIP bigG). ``resolution`` is the side of the
    square training size (1024 SDXL, 512 SD 1.5, 256 the tiny test models); buckets have
    about ``resolution**2`` pixels.
    """

    source: str
    name: str
    family: str
    device: torch.device
    dtype: torch.dtype
    vae_dtype: torch.dtype
    unet: Any
    vae: Any
    text_encoders: list[Any]
    tokenizers: list[Any]
    scheduler: Any  # the scheduler the model ships (a template; copy before use)
    fingerprint: str
    probe: list[float]
    base_vocab: list[int] = field(default_factory=list)  # tokenizer sizes: first new token id
    attention: Any = None  # dedit_app.attention.GroupedAttention installed on the UNet
    applied: str = ""  # weights_id of the learned weights installed now ("" = none)
    _base_rows: list[int] = field(default_factory=list, repr=False)  # embedding table sizes
    _pristine_tokenizers: list[Any] = field(default_factory=list, repr=False)
    _saved_unet: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _latent_rgb: torch.Tensor | None = field(default=None, repr=False)
    _compiled_unet: Any = field(default=None, repr=False)
    _latent_cache: dict[tuple, torch.Tensor] = field(default_factory=dict, repr=False)
    _traced: set = field(default_factory=set, repr=False)  # kinds of call compiled so far
    # Why compiling failed, if it did: the model then runs plain (see run_unet).
    compile_error: str = ""
    # The compiled-kernel folder this model set for inductor (None: inductor's own choice).
    kernel_cache: Path | None = None
    # The grouped-attention strategy of an edit (a new layout each time): "grouped" is the
    # fastest eager; compile_unet switches to "masked", whose graph survives every edit.
    edit_attention: str = "grouped"
    # The same for a preparation's micro-steps (one layout per photo).
    train_attention: str = "grouped"

    @property
    def is_sdxl(self) -> bool:
        return self.family == "sdxl"

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet.config.cross_attention_dim)

    def bucket(self, height: int, width: int) -> tuple[int, int]:
        """The generation size ``(h, w)`` for a ``height x width`` photo: about
        ``resolution**2`` pixels, sides multiples of 64, the photo's aspect ratio."""
        from dedit_app.imageio import choose_bucket

        return choose_bucket(height, width, area=self.resolution**2, multiple=64)

    def make_scheduler(self, name: str = "model"):
        """A fresh scheduler: ``"model"`` (what the model ships; SDXL base: Euler),
        ``"euler"``, ``"ddim"`` (the paper's choice for SD), or ``"ddpm"``."""
        from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

        classes = {"euler": EulerDiscreteScheduler, "ddim": DDIMScheduler, "ddpm": DDPMScheduler}
        if name == "model":
            return type(self.scheduler).from_config(self.scheduler.config)
        if name not in classes:
            raise ModelLoadError(
                f"{name!r} is not a sampler the editor knows; use model, euler, ddim or ddpm."
            )
        return classes[name].from_config(self.scheduler.config)

    # ----- running the UNet ---------------------------------------------------------

    @property
    def compiled(self) -> bool:
        """Whether :meth:`run_unet` goes through ``torch.compile``."""
        return self._compiled_unet is not None

    def compile_unet(
        self,
        backend: str | None = "inductor",
        mode: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Run the UNet through ``torch.compile`` from now on (the engine's UNet calls go
        through :meth:`run_unet`). Compiling happens at the first call of a new kind, not
        here: edits and preparations switch to the "masked" attention strategy, whose graph
        does not depend on the items' layout or prompts, so what compiles anew is only a new
        latent size or a new kind of call (see :meth:`compiles_next`).

        ``backend``, ``mode`` and ``options`` (inductor flags; not with ``mode``) go to
        ``torch.compile`` (tests use "eager"); ``backend=None`` goes back to the plain UNet.
        ``cache_dir`` (e.g. :func:`compile_cache_dir`): where inductor keeps its kernels,
        unless the user's ``TORCHINDUCTOR_CACHE_DIR`` says otherwise; the model then owns
        that folder and empties it when compiling fails (see :meth:`stop_compiling`)."""
        self._traced = set()
        if backend is None:
            self._compiled_unet = None
            self.edit_attention = self.train_attention = "grouped"
            return
        self.compile_error = ""
        self.kernel_cache = None
        if backend == "inductor" and cache_dir is not None:
            from torch._inductor.runtime.cache_dir_utils import default_cache_dir

            # Importing diffusers already wrote inductor's default into the environment,
            # so only a folder other than that default is the user's own choice.
            chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
            if chosen is None or Path(chosen) == Path(default_cache_dir()):
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.fspath(cache_dir)
            if Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]) == Path(cache_dir):
                self.kernel_cache = Path(cache_dir)
        # Every latent size (photo aspect ratio) and kind of call is a graph of its own;
        # dynamo's default limit (8) would quietly run the ninth eager.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self._compiled_unet = torch.compile(self.unet, backend=backend, mode=mode, options=options)
        self.edit_attention = self.train_attention = "masked"

    def compiles_next(self, kind: Hashable) -> bool:
        """Whether the next UNet call of ``kind`` compiles first (a minute or more on a GPU),
        so a job can say so before it waits. ``kind`` names what picks a graph: the call's
        latent size and whatever changes what the UNet computes (an edit, or a preparation
        stage with its gradients and checkpointing). True once per kind and
        :meth:`compile_unet`; always False when not compiled."""
        if not self.compiled or kind in self._traced:
            return False
        self._traced.add(kind)
        return True

    def run_unet(self, *args: Any, **kwargs: Any) -> Any:
        """``unet(*args, **kwargs)``, compiled when :meth:`compile_unet` was called.

        A compiler that fails must not fail the user's job: while compiling (no C compiler,
        a kernel cache left damaged by a killed process) or in the code it generated (a
        size or stride check that a later call breaks, as inductor's backward did with a
        changing key count). The plain UNet gives the same result, so the call runs again
        on it, and once that succeeds the model goes back to it for good
        (:meth:`stop_compiling`). An error the plain UNet raises as well is the caller's:
        it propagates, and the model stays compiled. Out of memory is never the compiler's."""
        if self._compiled_unet is None:
            return self.unet(*args, **kwargs)
        try:
            return self._compiled_unet(*args, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - the plain call below re-raises a real error
            if isinstance(err, torch._dynamo.exc.BackendCompilerFailed):
                err = getattr(err, "inner_exception", None) or err.__cause__ or err
            out = self.unet(*args, **kwargs)
            self.stop_compiling(err)
            return out

    @contextlib.contextmanager
    def plain_unet(self) -> Iterator[None]:
        """:meth:`run_unet` calls inside run the plain UNet; compiling resumes after. For
        rerunning work a compiled call failed on before deciding whose failure it was."""
        compiled, self._compiled_unet = self._compiled_unet, None
        try:
            yield
        finally:
            self._compiled_unet = compiled

    def stop_compiling(self, cause: BaseException) -> None:
        """Go back to the plain UNet for good because compiling failed with ``cause``, and
        say so in :attr:`compile_error` (the editor shows it). Also for a failure that
        surfaces later than the forward call: the backward graph compiles at the first
        ``backward()``, and then the error arrives as the compiler raised it."""
        why = (str(cause).strip().splitlines() or [""])[0]
        self.compile_error = (
            f"Compiling the model failed, so it runs uncompiled ({type(cause).__name__}: {why})."
        )
        log.warning("%s", self.compile_error, exc_info=cause)
        self.compile_unet(None)
        if self.kernel_cache is not None:
            # A kernel a killed compile left half-written is the usual cause; the next
            # load compiles from an empty folder instead of failing on it again.
            shutil.rmtree(self.kernel_cache, ignore_errors=True)

    def use_channels_last(self, enabled: bool = True) -> None:
        """Store the UNet's and VAE's conv weights channels-last (NHWC) or back to NCHW.
        Inputs may stay NCHW: convolutions follow the weights' layout. On CUDA tensor cores
        this avoids layout transposes inside cuDNN; measured in ``scripts/bench.py``."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.unet.to(memory_format=fmt)
        self.vae.to(memory_format=fmt)

    # ----- images <-> latents ------------------------------------------------------

    @torch.no_grad()
    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        """``image`` (h, w, 3) uint8 RGB, sides multiples of 8 -> latents ``[1, 4, h/8, w/8]``
        in the model dtype, scaled by the VAE's scaling factor. Uses the posterior mean
        (deterministic), not a sample.

        The VAE is never trained, so the latents of the last few images are kept (keyed by
        their bytes): every edit of a photo, and preparing it, encodes it once."""
        image = np.ascontiguousarray(image)
        key = (hashlib.blake2b(image.data, digest_size=16).hexdigest(), image.shape,
               str(self.device), self.vae_dtype, self.dtype)  # fmt: skip
        cached = self._latent_cache.pop(key, None)
        if cached is None:
            x = torch.from_numpy(image).to(self.device)
            x = x.permute(2, 0, 1)[None].to(self.vae_dtype) / 127.5 - 1.0
            latents = self.vae.encode(x).latent_dist.mean
            shift = getattr(self.vae.config, "shift_factor", None) or 0.0
            cached = ((latents - shift) * self.vae.config.scaling_factor).to(self.dtype)
        self._latent_cache[key] = cached  # most recent last
        while len(self._latent_cache) > _LATENT_CACHE_SIZE:
            self._latent_cache.pop(next(iter(self._latent_cache)))
        return cached.clone()

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Latents ``[B, 4, h, w]`` -> images ``(B, 8h, 8w, 3)`` uint8, decoded in the VAE's
        safe precision, rounded as diffusers' image processor does. Raises
        :class:`~dedit_app.errors.Overflowed` when the decode is not numbers (a VAE that
        overflows in half precision) rather than handing back a blank picture."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        z = latents.to(self.vae_dtype) / self.vae.config.scaling_factor + shift
        x = self.vae.decode(z, return_dict=False)[0]
        x = x.float()
        if not bool(torch.isfinite(x).all()):  # a VAE not safe in half precision
            raise overflowed("Drawing the picture", self.vae_dtype, "Prepare the photo again.")
        x = (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return (x * 255).round().astype(np.uint8)

    def latent_rgb(self) -> torch.Tensor:
        """A ``[5, 3]`` linear map (4 channels + bias) from latents to RGB in [0, 1], fitted
        once to this model's own VAE: cheap step previews without a VAE decode."""
        if self._latent_rgb is None:
            self._latent_rgb = _fit_latent_rgb(self)
        return self._latent_rgb

    # ----- learned state -------------------------------------------------------------

    def save_unet_tensors(self, names: list[str]) -> None:
        """Remember the loaded values of UNet parameters about to be trained or replaced
        (once; later calls keep the first, original copy) so :meth:`reset` can restore them."""
        params = dict(self.unet.named_parameters())
        for name in names:
            if name not in self._saved_unet:
                self._saved_unet[name] = params[name].detach().to("cpu", copy=True)

    def reset(self) -> None:
        """Back to the loaded base model: no item tokens, original UNet tensors, no LoRA."""
        if self._pristine_tokenizers:
            self.tokenizers = [copy.deepcopy(t) for t in self._pristine_tokenizers]
        for encoder, size in zip(self.text_encoders, self._base_rows):
            if encoder.get_input_embeddings().weight.shape[0] != size:
                encoder.resize_token_embeddings(size, mean_resizing=False)
        if getattr(self.unet, "peft_config", None):
            # unload, not just delete: the LoRA wrappers themselves must go, so parameter
            # names (and the processors' layers) are the base model's again
            self.unet.unload_lora()
        if self._saved_unet:
            params = dict(self.unet.named_parameters())
            with torch.no_grad():
                for name, value in self._saved_unet.items():
                    p = params[name]
                    p.data = value.to(p.device, self.dtype)
                    p.requires_grad_(False)
            self._saved_unet.clear()
        self.unet.requires_grad_(False)
        for encoder in self.text_encoders:
            encoder.requires_grad_(False)
        self.applied = ""

    def describe(self) -> str:
        return f"{self.name} ({self.family}, {self.device.type}, {str(self.dtype)[6:]})"


def _fit_latent_rgb(model: DiffusionModel) -> torch.Tensor:
    """Least-squares map latents -> RGB from a synthetic colour chart through the VAE."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    chart = np.stack([xx, yy, 1 - (xx + yy) / 2], axis=-1)
    chart = np.concatenate([chart, 1 - chart[::-1]], axis=1)
    image = (chart * 255).round().astype(np.uint8)
    latents = model.encode_image(image).float()[0]  # [4, h, w]
    small = torch.nn.functional.interpolate(
        torch.from_numpy(chart).permute(2, 0, 1)[None], size=latents.shape[-2:], mode="area"
    )[0]
    x = torch.cat([latents.reshape(latents.shape[0], -1), torch.ones(1, latents[0].numel())]).T
    y = small.reshape(3, -1).T
    return torch.linalg.lstsq(x.cpu(), y).solution  # [5, 3]


# ----------------------------------------------------------------------------------------
# Fingerprints: which base model learned weights belong to
# ----------------------------------------------------------------------------------------

_PROBE_KEYS = {
    "unet": ("conv_in.weight", "attn2.to_k.weight"),
    "text_encoder": ("text_model.embeddings.token_embedding.weight",),
}


def _config_hash(parts: Mapping[str, Mapping[str, Any]]) -> str:
    clean = {
        name: {k: v for k, v in sorted(cfg.items()) if not k.startswith("_")}
        for name, cfg in parts.items()
    }
    blob = json.dumps(clean, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _probe(folder: Path, variants: Mapping[str, str | None]) -> list[float]:
    """A few weight values read straight from the files (independent of the load dtype),
    so two models with the same architecture but different weights are told apart;
    ``variants``: the weight files read of each part."""
    from safetensors import safe_open

    values: list[float] = []
    for component, keys in _PROBE_KEYS.items():
        files = sorted((folder / component).glob(f"*{WEIGHT_SUFFIX}"))
        files = [f for f in files if variant_of(f.name) == variants.get(component)] or files
        for wanted in keys:
            for file in files:
                try:
                    with safe_open(str(file), framework="pt") as f:
                        key = next((k for k in sorted(f.keys()) if k.endswith(wanted)), None)
                        if key is None:
                            continue
                        row = f.get_slice(key)[0:1].float().flatten()[:16]
                        values += [round(float(v), 7) for v in row]
                        break
                except Exception:  # a probe is a convenience; the config hash still applies
                    continue
    return values


def check_weights_match(model: DiffusionModel, metadata: Mapping[str, str]) -> None:
    """Raise ModelLoadError unless learned weights with ``metadata`` were prepared on the
    same base model as ``model`` (same architecture and configuration, same weights)."""
    theirs = metadata.get("fingerprint", "")
    base = metadata.get("base_model", "an unknown model")
    sentence = (
        f"These learned weights were prepared on {base}, but the model loaded now is "
        f"{model.name}; load {base} again, or prepare the project again with {model.name}."
    )
    if theirs != model.fingerprint:
        raise ModelLoadError(sentence)
    try:
        probe = [float(v) for v in json.loads(metadata.get("probe", "[]"))]
    except (ValueError, TypeError):
        probe = []
    if probe and model.probe and len(probe) == len(model.probe):
        a, b = np.asarray(probe), np.asarray(model.probe)
        scale = max(float(np.abs(b).max()), 1e-12)
        # fp16 files of the same model differ from fp32 ones by ~5e-4 relative; fine-tunes
        # move weights by much more.
        if float(np.abs(a - b).max()) > 2e-3 * scale:
            raise ModelLoadError(sentence)


# ----------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------


def load_model(
    source: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    vae: str | os.PathLike[str] | None = None,
    variant: str | None = "auto",
    local_files_only: bool = False,
) -> DiffusionModel:
    """Load SDXL or SD 1.5 from a hub id or a local diffusers folder.

    Args:
        source: hub id (default SDXL base 1.0) or folder.
        device, dtype: see :func:`pick_device` and :func:`pick_dtype`.
        vae: optional replacement VAE (hub id or folder), e.g. the fp16-safe
            ``madebyollin/sdxl-vae-fp16-fix`` the paper uses.
        variant: weight files to read: ``"auto"`` (the default) takes the half-precision
            copy (``*.fp16.safetensors``) for a bf16 or fp16 model and the full files for
            fp32, and whichever of the two is there in full when the other is not, part
            by part, so a GPU downloads SDXL's 7 GB copy and nothing is downloaded twice
            (see :mod:`dedit_app.hub`); ``None`` or ``"fp16"`` read that set only.
        local_files_only: never touch the network (also implied by ``HF_HUB_OFFLINE=1``).
    Raises:
        ModelLoadError: with a sentence saying what to download or where to point the editor.
    """
    from diffusers import AutoencoderKL, SchedulerMixin, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    source = os.fspath(source)
    if Path(source).expanduser().is_dir():  # recorded with what it prepares: from anywhere
        source = str(Path(source).expanduser().resolve())
    _quiet_libraries()
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    if variant == "auto":
        wanted = _variant_for(dt)
        folder = resolve(
            source, what="model", variant=wanted, local_files_only=local_files_only,
            any_precision=True,
        )  # fmt: skip
        variants = pick_variants(folder, wanted)  # each part from its best copy here
    else:
        folder = resolve(source, what="model", variant=variant, local_files_only=local_files_only)
        variants = dict.fromkeys(WEIGHTED, variant)
    encoders = _encoders(check_model_folder(folder, own_vae=vae is None))

    def common(part: str) -> dict[str, Any]:
        return {"use_safetensors": True, "variant": variants.get(part), "local_files_only": True}

    try:
        unet = UNet2DConditionModel.from_pretrained(
            folder, subfolder="unet", torch_dtype=dt, **common("unet")
        )
        text_encoders = []
        for i, sub in enumerate(encoders):
            cls = CLIPTextModelWithProjection if i == 1 else CLIPTextModel
            text_encoders.append(
                cls.from_pretrained(folder, subfolder=sub, dtype=dt, **common(sub))
            )
        tokenizers = [
            CLIPTokenizer.from_pretrained(
                folder, subfolder=sub.replace("text_encoder", "tokenizer")
            )
            for sub in encoders
        ]
        scheduler = _load_scheduler(folder, SchedulerMixin)
        if vae is not None:
            vae_folder = resolve(
                os.fspath(vae), what="vae", variant=None, local_files_only=local_files_only
            )
            vae_sub = "vae" if (vae_folder / "vae").is_dir() else None
            vae_kwargs = {"use_safetensors": True, "local_files_only": True}
        else:
            vae_folder, vae_sub, vae_kwargs = folder, "vae", common("vae")
        vae_config = AutoencoderKL.load_config(vae_folder, subfolder=vae_sub, local_files_only=True)
        # SDXL's VAE overflows in fp16: it runs in fp32 then, unless it is a fp16-safe one.
        force_upcast = bool(vae_config.get("force_upcast", False))
        vae_dtype = torch.float32 if (dt == torch.float16 and force_upcast) else dt
        vae_model = AutoencoderKL.from_pretrained(
            vae_folder, subfolder=vae_sub, torch_dtype=vae_dtype, **vae_kwargs
        )
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise ModelLoadError(
            f"The model in {folder} could not be loaded ({short_error(err)}); the folder may be "
            "incomplete or not a Stable Diffusion / SDXL model in diffusers format."
        ) from err

    unet.to(dev)
    vae_model.to(dev)
    for enc in text_encoders:
        enc.to(dev)
    name = source if is_hub_id(source) and not Path(source).exists() else Path(source).name
    return model_from_components(
        unet, vae_model, text_encoders, tokenizers, scheduler,
        source=source, name=name, probe=_probe(folder, variants),
    )  # fmt: skip


def _variant_for(dtype: torch.dtype) -> str | None:
    # bf16 keeps fewer mantissa bits than fp16, so either loses nothing to fp16 files.
    return HALF if dtype in (torch.float16, torch.bfloat16) else None


def download_variant(
    device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
) -> str | None:
    """The weight files a model run on ``device`` in ``dtype`` (as :func:`load_model`
    takes them) reads first: ``"fp16"`` for half precision, None (full files) for fp32."""
    dev = pick_device(device)
    return _variant_for(pick_dtype(dev, dtype))


def model_from_components(
    unet,
    vae,
    text_encoders: list,
    tokenizers: list,
    scheduler,
    *,
    source: str,
    name: str,
    probe: list[float] | None = None,
) -> DiffusionModel:
    """Wrap already-built components (on their device, in their dtype) as a model: the
    family follows the number of text encoders, the fingerprint the configurations.
    :func:`load_model` ends here; benchmarks use it for full-size random models."""
    family = "sdxl" if len(text_encoders) == 2 else "sd15"
    for m in [unet, vae, *text_encoders]:
        m.requires_grad_(False)
        m.eval()
    parts = {"unet": dict(unet.config)}
    for i, enc in enumerate(text_encoders):
        cfg = enc.config.to_dict()
        keep = ("hidden_size", "num_hidden_layers", "vocab_size", "projection_dim")
        parts[f"text_encoder{'_2' if i else ''}"] = {k: cfg.get(k) for k in keep}
    model = DiffusionModel(
        source=source,
        name=name,
        family=family,
        device=unet.device,
        dtype=unet.dtype,
        vae_dtype=vae.dtype,
        unet=unet,
        vae=vae,
        text_encoders=text_encoders,
        tokenizers=tokenizers,
        scheduler=scheduler,
        fingerprint=f"{family}-{_config_hash(parts)}",
        probe=list(probe or []),
        base_vocab=[len(t) for t in tokenizers],
        _base_rows=[e.get_input_embeddings().weight.shape[0] for e in text_encoders],
        _pristine_tokenizers=[copy.deepcopy(t) for t in tokenizers],
    )
    from dedit_app.attention import install_grouped_attention

    model.attention = install_grouped_attention(unet)
    return model


def _quiet_libraries() -> None:
    """No per-file progress bars or info chatter from the libraries: the editor and the
    command line show their own progress."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _load_scheduler(folder: Path, base: type) -> Any:
    import diffusers

    path = folder / "scheduler" / "scheduler_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(
            f"{path} is missing or unreadable; the model folder is incomplete."
        ) from err
    cls = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        cls = diffusers.EulerDiscreteScheduler
    return cls.from_config(config)
