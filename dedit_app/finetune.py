"""Per-image fine-tuning: bind every item to its own tokens (D-Edit, DESIGN.md step 4).

Stage 1 trains only the new token embedding rows of every text encoder; stage 2 freezes the
text encoders and trains the UNet's cross-attention ``to_q/to_k/to_v`` weights (the paper's
default) or, with ``lora_rank > 0``, a LoRA on ``to_q/to_k/to_v/to_out.0`` over the whole
UNet. Both stages minimise the noise-prediction MSE at DDPM timesteps drawn uniformly, with
grouped cross-attention (each pixel sees only its item's tokens). The joint variant trains a
target photo and a reference photo together (tokens ``#...`` and ``$...`` in one model) so
an item can later be swapped between them.

Only the original embedding rows are never touched: the new rows are separate trainable
parameters spliced into the embedding lookup during stage 1, which is what the paper's
"restore the original rows after every optimizer step" achieves, without gradients or
optimizer state for the whole 49408-row tables.

The result holds only what was trained (token rows + UNet tensors or LoRA tensors) as a
``dict[str, Tensor]`` plus ``dict[str, str]`` metadata; :func:`store_result` puts it in the
project bundle and :func:`apply_trained` installs it into a freshly loaded model.

    job = finetune(model, [TrainImage(image, labels, names)], FinetuneOptions(), cancel)
    result = run_job(job, on_progress)
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from dedit_app import reference_items
from dedit_app.attention import AttentionContext, RowGroup
from dedit_app.colour_profiles import between
from dedit_app.errors import EditError, ModelLoadError, overflowed
from dedit_app.hostreads import TrailingReads, to_device
from dedit_app.jobs import CancelToken, Job, Progress
from dedit_app.models import DiffusionModel, check_weights_match, no_mixed_precision
from dedit_app.project import content_key, weights_metadata
from dedit_app.recompute import EVERY_BLOCK, Recompute, check_plan, use_recompute
from dedit_app.sampler import MAX_SEED
from dedit_app.tokens import (
    TOKEN_LENGTH,
    add_item_tokens,
    encode_items,
    get_token_rows,
    key_bucket,
    make_token_strings,
    pad_keys,
    prompt_length,
    set_token_rows,
    time_ids,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FinetuneOptions",
    "FinetuneResult",
    "TrainImage",
    "apply_trained",
    "content_key",
    "finetune",
    "finetune_project",
    "store_result",
    "weights_metadata",
]

FORMAT = "dedit-weights"
FORMAT_VERSION = 1
_ADAPTER = "dedit"
_IDLE_DEVICE = "cpu"  # where the low-memory mode parks models a stage does not use
_QKV = re.compile(r"attn2\.to_[qkv]\.(weight|bias)$")


MAX_TOKENS = 32  # tokens per item: its prompt is TOKEN_LENGTH (40) long, words included
MAX_LORA_RANK = 256  # past this a LoRA is as large as the layers it adapts (640, 1280 wide)
MAX_BATCH = 32  # noisy copies per micro-step; the paper's is 2


@dataclass(frozen=True)
class FinetuneOptions:
    """How to prepare a photo. Defaults are the paper's SDXL schedule."""

    emb_steps: int = 500  # stage-1 micro-steps (token embeddings only)
    model_steps: int = 500  # stage-2 micro-steps (UNet cross-attention or LoRA)
    batch_size: int = 2  # noisy copies of the photo per micro-step
    grad_accum: int = 5  # micro-steps per optimizer step
    emb_lr: float = 1e-4  # AdamW learning rate, stage 1
    unet_lr: float = 5e-5  # AdamW learning rate, stage 2
    n_tokens: int = 5  # new tokens per item
    lora_rank: int = 0  # 0: train cross-attention to_q/to_k/to_v; > 0: LoRA of this rank
    lora_alpha: float | None = None  # LoRA scale numerator; None = the rank (scale 1)
    seed: int = 0  # token init, noise, timesteps and LoRA init all follow it
    gradient_checkpointing: bool = False  # low-memory mode: recompute UNet activations
    recompute: Recompute = EVERY_BLOCK  # with it: which UNet blocks, per stage
    offload_idle: bool = False  # low-memory mode: models a stage does not use wait in RAM

    def with_low_memory(self) -> FinetuneOptions:
        """The same options in low-memory mode: UNet activations recomputed, and the models
        a stage does not use parked in RAM (docs/PERFORMANCE.md, "Low-memory mode")."""
        return replace(self, gradient_checkpointing=True, offload_idle=True)

    def check(self) -> None:
        if self.emb_steps < 0 or self.model_steps < 0:
            raise EditError("The number of training steps cannot be negative.")
        if self.emb_steps + self.model_steps == 0:
            raise EditError("Preparing needs at least one training step.")
        if self.batch_size < 1 or self.grad_accum < 1 or self.n_tokens < 1:
            raise EditError("Batch size, gradient accumulation and tokens per item must be >= 1.")
        if self.batch_size > MAX_BATCH:
            raise EditError(f"The batch size must be at most {MAX_BATCH}; got {self.batch_size}.")
        if self.n_tokens > MAX_TOKENS:
            raise EditError(
                f"An item can learn at most {MAX_TOKENS} tokens (its prompt is {TOKEN_LENGTH} "
                f"tokens long, with room for words); got {self.n_tokens}."
            )
        if not 0 <= self.lora_rank <= MAX_LORA_RANK:
            raise EditError(
                f"The LoRA rank must be 0 (off) to {MAX_LORA_RANK}; got {self.lora_rank}."
            )
        for name, rate in (("token", self.emb_lr), ("model", self.unet_lr)):
            if not (math.isfinite(rate) and 0 < rate <= 1):
                raise EditError(
                    f"The {name} learning rate must be a number above 0 and at most 1; got {rate}."
                )
        if not 0 <= self.seed <= MAX_SEED:
            raise EditError(
                f"The seed must be a whole number from 0 to {MAX_SEED}; got {self.seed}."
            )


@dataclass(frozen=True)
class TrainImage:
    """A photo to fine-tune on: ``image (H, W, 3)`` uint8, ``labels (H, W)`` int, one name
    per item id (items may own no pixels). ``colours``: turns its ``(h, w, 3)`` values
    into the target photo's colour space before they are learned (a reference photo
    whose colour profile differs, :func:`dedit_app.colour_profiles.between`); None:
    learned as they are. Keys and the kept item map are of ``image`` as it is."""

    image: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    colours: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False)


@dataclass
class FinetuneResult:
    """What preparing learned. ``tensors``/``metadata`` go to ``project.store_weights``;
    ``item_tokens[i]`` is item i's token string; ``losses`` one value per micro-step."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    item_tokens: list[str]
    reference_tokens: list[str] | None
    losses: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------------------
# Pieces of a training step
# ----------------------------------------------------------------------------------------


class _SplicedEmbedding(torch.nn.Module):
    """An embedding whose rows ``first .. first+n-1`` come from a separate trainable
    parameter; the original table is read only."""

    def __init__(self, base: torch.nn.Embedding, first: int, rows: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.first = first
        self.rows = torch.nn.Parameter(rows)

    @property
    def weight(self) -> torch.Tensor:  # transformers reads .weight for shapes and dtypes
        return self.base.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.base(ids)
        local = ids - self.first
        new = (local >= 0) & (local < self.rows.shape[0])
        picked = self.rows[local.clamp(0, self.rows.shape[0] - 1)].to(out.dtype)
        return torch.where(new[..., None], picked, out)


@dataclass
class _Photo:
    """One photo ready for training: latents, its attention layout, and conditioning."""

    latents: torch.Tensor  # [1, 4, h, w]
    prompts: dict[int, str]
    labels: torch.Tensor  # (h, w) long, latent resolution
    time_ids: torch.Tensor | None  # [1, 6]
    cond: object = None  # Conditioning, fixed in stage 2
    ctx: AttentionContext | None = None  # the attention layout, built at the first step
    pad_to: int = 0  # keys padded to this count (a compiled UNet's static shapes); 0: none


def _photo(model: DiffusionModel, img: TrainImage, strings: list[str]) -> _Photo:
    from dedit_app.imageio import resize_image, resize_labels

    h, w = img.labels.shape
    bh, bw = model.bucket(h, w)
    f = model.vae_scale_factor
    pixels = resize_image(img.image, (bh, bw))
    if img.colours is not None:  # at the training size: a 24 MP reference is not converted
        pixels = img.colours(pixels)
    latents = model.encode_image(pixels)
    small = resize_labels(np.asarray(img.labels, np.int64), (bh // f, bw // f))
    present = sorted(int(i) for i in np.unique(small))
    return _Photo(
        latents=latents,
        prompts={i: strings[i] for i in present},
        labels=torch.from_numpy(np.ascontiguousarray(small)).to(model.device),
        time_ids=time_ids(model, (bh, bw)),
    )


def _train_step(
    model,
    noise_sched,
    photo: _Photo,
    cond,
    batch: int,
    gen: torch.Generator,
    accum: int,
    scaler: torch.amp.GradScaler | None = None,
) -> torch.Tensor:
    """Forward and backward of one photo's micro-step (gradients scaled by ``1/accum``, and by
    ``scaler``'s loss scale when given); returns the loss (0-dim, on the device). A compiled
    UNet whose backward fails to compile (it compiles at the first ``backward()``, past
    :meth:`DiffusionModel.run_unet`'s fallback) costs the job nothing: the step runs again
    on the plain UNet from the same random state, so the result is the plain UNet's, and
    once that succeeds the model goes plain. No gradient has landed by then: the failing
    node is the UNet's, which every trained tensor's gradient passes through. An error the
    plain rerun raises too is not the compiler's: it ends the job, and the model stays
    compiled."""
    step = partial(_forward_backward, model, noise_sched, photo, cond, batch, gen, accum, scaler)
    if not model.compiled:
        return step()
    state = gen.get_state()
    try:
        return step()
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - the plain run below re-raises a real error
        if not model.compiled:  # the forward already fell back: this is not the compiler
            raise
        gen.set_state(state)
        with model.plain_unet():
            loss = step()
        model.stop_compiling(err)
        return loss


def _forward_backward(
    model,
    noise_sched,
    photo: _Photo,
    cond,
    batch: int,
    gen: torch.Generator,
    accum: int,
    scaler: torch.amp.GradScaler | None,
) -> torch.Tensor:
    """The micro-step itself. Both passes run inside the attention context, so
    recomputation under gradient checkpointing sees the same grouping as the forward."""
    lat = photo.latents.repeat(batch, 1, 1, 1)
    # drawn on the host (the same numbers on every device), copied without a sync
    noise = to_device(torch.randn(lat.shape, generator=gen), lat.device).to(lat.dtype)
    t = torch.randint(0, noise_sched.config.num_train_timesteps, (batch,), generator=gen)
    t = to_device(t, lat.device)
    noisy = noise_sched.add_noise(lat, noise, t)
    if noise_sched.config.prediction_type == "v_prediction":
        target = noise_sched.get_velocity(lat, noise, t)
    else:
        target = noise
    extra = None
    if cond.pooled is not None:
        extra = {
            "text_embeds": cond.pooled.expand(batch, -1),
            "time_ids": photo.time_ids.expand(batch, -1),
        }
    if photo.pad_to:
        cond = pad_keys(cond, photo.pad_to)
    if photo.ctx is None:  # one per photo: its per-layer plans are computed once
        groups = [RowGroup(batch, photo.labels, cond.key_items)]
        photo.ctx = AttentionContext(
            tuple(photo.labels.shape), groups, model.device, model.train_attention
        )
    use_autocast = model.dtype != torch.float32
    # Static shapes while training: inductor's backward with a dynamic key count failed at
    # run time on the second photo (a stride it had fixed for the first photo's count), so
    # photos share a graph by padding their keys to a common count instead.
    static = torch._dynamo.config.patch(automatic_dynamic_shapes=False)
    with model.attention.use(photo.ctx), static:
        with torch.autocast(model.device.type, dtype=model.dtype, enabled=use_autocast):
            pred = model.run_unet(
                noisy,
                t,
                encoder_hidden_states=cond.embeds.expand(batch, -1, -1),
                added_cond_kwargs=extra,
                return_dict=False,
            )[0]
        loss = F.mse_loss(pred.float(), target.float())
        share = loss / accum
        (scaler.scale(share) if scaler is not None else share).backward()
    return loss.detach()


def _stage(model, stage, micro_step, updates, steps, job, at, losses) -> Job[int]:
    """``steps`` micro-steps of ``micro_step()`` (returns the summed loss, on the device), an
    optimizer step of ``updates`` (:class:`_Updates`) every ``grad_accum`` and at the end.
    ``job``: ``(ready photos, options, cancel)``; in low-memory mode the stage's blocks of
    ``options.recompute`` recompute. Yields Progress of ``stage`` from ``at = (step,
    total)`` on (first "compiling" when the stage's graph is new) and returns the step count
    after it. Losses are read back a step late (``TrailingReads``) so reading one never
    stalls the GPU's queue: ``losses`` gets every value, and each Progress the newest one
    read with the step it was measured at (none before the first on CUDA; the stage's last
    loss comes in one more Progress after its last step)."""
    ready, options, cancel = job
    accum = options.grad_accum
    step, total = at
    if options.gradient_checkpointing:
        use_recompute(model.unet, options.recompute.of(stage))
    if _compiles_next(model, stage, ready, options):
        yield Progress(step, total, stage="compiling")
    reads = TrailingReads(model.device)
    unread: list[int] = []  # the steps whose losses are on their way back, oldest first
    for micro in range(steps):
        cancel.raise_if_cancelled()
        shown = reads.push(micro_step())
        if (micro + 1) % accum == 0 or micro + 1 == steps:
            updates.step()
        step += 1
        unread.append(step)
        if shown is None:
            yield Progress(step, total, stage=stage)
            continue
        losses.append(float(shown))
        yield Progress(step, total, stage=stage, loss=losses[-1], loss_step=unread.pop(0))
    last = reads.flush()
    if last is not None:
        losses.append(float(last))
        yield Progress(step, total, stage=stage, loss=losses[-1], loss_step=unread.pop(0))
    return step


def _splice_token_rows(model: DiffusionModel, tokens: list[str], spliced: list) -> list:
    """Stage 1's trainable tensors: each text encoder's rows of the new ``tokens`` as a
    parameter of their own (``[n_tokens, C_i]``, spliced into the embedding lookup), so no
    gradient or optimizer state exists for the rest of the table. Appends ``(encoder,
    original embedding)`` to ``spliced`` for the caller to put back."""
    rows = []
    for i, encoder in enumerate(model.text_encoders):
        ids = model.tokenizers[i].convert_tokens_to_ids(tokens)
        first = ids[0]
        if ids != list(range(first, first + len(ids))):
            raise ModelLoadError("The item tokens did not get consecutive ids.")
        start = get_token_rows(model, tokens)[i].to(model.device)
        module = _SplicedEmbedding(encoder.get_input_embeddings(), first, start)
        spliced.append((encoder, module.base))
        encoder.set_input_embeddings(module)
        rows.append(module.rows)
    return rows


def _compiles_next(model, stage: str, ready: list[_Photo], options: FinetuneOptions) -> bool:
    """Whether this stage's first micro-steps compile (see ``DiffusionModel.compiles_next``):
    each stage trains other tensors, and the batch, checkpointing, a LoRA, every latent
    size and every padded key count change the graph. Under the "masked" strategy layouts
    and prompts do not; under "grouped" every photo's layout is a graph of its own."""
    if model.train_attention != "masked":
        return model.compiled
    recomputed = options.recompute.of(stage) if options.gradient_checkpointing else ()
    kind = ("train", stage, options.batch_size, recomputed, options.lora_rank > 0)
    new = [model.compiles_next((*kind, *p.latents.shape[-2:], p.pad_to)) for p in ready]
    return any(new)


class _Updates:
    """A stage's AdamW, and in float16 the loss scaling its gradients need. Autocast runs
    the UNet's backward pass in the model's precision; in float16 (GPUs before Ampere,
    Apple's) the gradients of full-size SDXL's loss, about 1e-5 per latent element at
    1024² before dividing by ``grad_accum``, fall under float16's smallest normal number
    (6e-5) and deeper layers' flush to zero: on the tiny model, with gradients shrunk to
    that size, two thirds of stage 2's were zero and the rest 80 % off float32's. The
    scaler multiplies the loss before the backward pass and divides the gradients before
    the step, lowering the scale and skipping the step when one overflows. bfloat16 has
    float32's range and needs none, so there it does nothing."""

    def __init__(self, params: list[torch.Tensor], lr: float, model: DiffusionModel) -> None:
        fused = model.device.type == "cuda"  # one kernel for all parameters (issue 6)
        self.opt = torch.optim.AdamW(params, lr=lr, fused=fused or None)
        half = model.dtype == torch.float16
        self.scaler = torch.amp.GradScaler(model.device.type, enabled=half)

    def step(self) -> None:
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)


def _unet_targets(model: DiffusionModel) -> list[str]:
    return [n for n, _ in model.unet.named_parameters() if _QKV.search(n)]


# ----------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------


def finetune(
    model: DiffusionModel,
    photos: Sequence[TrainImage],
    options: FinetuneOptions = FinetuneOptions(),
    cancel: CancelToken | None = None,
) -> Job[FinetuneResult]:
    """Fine-tune ``model`` on one photo, or on a target and a reference photo jointly.

    ``photos[0]`` is the target (tokens ``#``), ``photos[1]`` the optional reference
    (tokens ``$``). Yields :class:`Progress` (stage "tokens" or "unet", ``loss``) after every
    micro-step, and stage "compiling" before a stage whose graph a compiled UNet lacks;
    honours ``cancel`` after every micro-step; returns a :class:`FinetuneResult`. The model
    keeps the learned state afterwards (``model.applied`` is the result's weights id); on
    cancel or error it is reset to the base model.
    """
    options.check()
    if not 1 <= len(photos) <= 2:
        raise EditError("Preparing takes one photo, or a photo and one reference photo.")
    for p in photos:
        if p.labels.shape != p.image.shape[:2]:
            raise EditError("The item map and the photo have different sizes.")
        if int(np.max(p.labels)) >= len(p.names):
            raise EditError("The item map uses more items than the project names.")
    if options.gradient_checkpointing:
        check_plan(model.unet, options.recompute)
    missing = no_mixed_precision(model.device, model.dtype)
    if missing:
        raise ModelLoadError(missing)
    cancel = cancel or CancelToken()
    return _finetune(model, list(photos), options, cancel)


def _finetune(model, photos, options, cancel) -> Job[FinetuneResult]:
    from diffusers import DDPMScheduler

    done = False
    spliced: list[tuple[object, torch.nn.Module]] = []
    offloaded: list[torch.nn.Module] = []
    try:
        model.reset()
        strings = [
            make_token_strings(p.names, options.n_tokens, "#" if i == 0 else "$")
            for i, p in enumerate(photos)
        ]
        all_strings = [s for group in strings for s in group]
        tokens = add_item_tokens(model, all_strings, seed=options.seed)
        ready = [_photo(model, p, s) for p, s in zip(photos, strings)]
        if model.compiled:  # photos whose key counts share a bucket share a graph
            for p in ready:
                p.pad_to = key_bucket(sum(prompt_length(model, t) for t in p.prompts.values()))
        if options.offload_idle:  # the latents are all the VAE was needed for
            offloaded += _offload(model, [model.vae])
        noise_sched = DDPMScheduler.from_config(model.scheduler.config)
        gen = torch.Generator().manual_seed(options.seed + 1)
        total = options.emb_steps + options.model_steps
        losses: list[float] = []
        step = 0

        def micro_step(encode: bool, updates: _Updates) -> torch.Tensor:
            """One micro-step over every photo; the summed loss. ``encode``: the prompts
            are encoded anew (stage 1 trains the token rows), else each photo's fixed
            embeddings serve (stage 2)."""
            return sum(
                _train_step(model, noise_sched, p, encode_items(model, p.prompts) if encode
                            else p.cond, options.batch_size, gen, options.grad_accum,
                            updates.scaler)
                for p in ready
            )  # fmt: skip

        # ---- stage 1: the new token rows only -------------------------------------
        if options.emb_steps:
            rows = _splice_token_rows(model, tokens, spliced)
            updates = _Updates(rows, options.emb_lr, model)
            step = yield from _stage(
                model, "tokens", partial(micro_step, True, updates), updates, options.emb_steps,
                (ready, options, cancel), (step, total), losses,
            )  # fmt: skip
            learned = [r.detach().float().cpu() for r in rows]
            for encoder, base in spliced:
                encoder.set_input_embeddings(base)
            spliced.clear()
            set_token_rows(model, tokens, learned)
            del updates

        # ---- stage 2: UNet cross-attention q/k/v, or a LoRA --------------------------
        unet_tensors: dict[str, torch.Tensor] = {}
        alpha = options.lora_alpha if options.lora_alpha is not None else options.lora_rank
        if options.model_steps:
            with torch.no_grad():
                for photo in ready:
                    photo.cond = encode_items(model, photo.prompts).detach()
            if options.offload_idle:  # stage 2 reuses these embeddings
                offloaded += _offload(model, model.text_encoders)
            params = _stage2_params(model, options, alpha)
            updates = _Updates(params, options.unet_lr, model)
            step = yield from _stage(
                model, "unet", partial(micro_step, False, updates), updates, options.model_steps,
                (ready, options, cancel), (step, total), losses,
            )  # fmt: skip
            del updates
            unet_tensors = _finish_stage2(model, options)

        result = _result(model, photos, strings, tokens, unet_tensors, options, alpha, losses)
        model.applied = result.metadata["weights_id"]
        done = True
        return result
    finally:
        for module in offloaded:
            module.to(model.device)
        for encoder, base in spliced:
            encoder.set_input_embeddings(base)
        if options.gradient_checkpointing:
            model.unet.disable_gradient_checkpointing()
        if not done:
            model.reset()


def _offload(model: DiffusionModel, modules: list) -> list:
    """Move idle ``modules`` to the CPU and free their accelerator memory; returns what
    moved (nothing when the model already runs on the CPU). The job moves them back when
    it ends, however it ends."""
    if not _can_offload(model):
        return []
    for module in modules:
        module.to(_IDLE_DEVICE)
    if model.device.type == "cuda":
        torch.cuda.empty_cache()
    return list(modules)


def _can_offload(model: DiffusionModel) -> bool:
    return model.device.type != "cpu"


def _stage2_params(model: DiffusionModel, options: FinetuneOptions, alpha: float) -> list:
    if options.lora_rank > 0:
        from peft import LoraConfig

        config = LoraConfig(
            r=options.lora_rank,
            lora_alpha=alpha,
            init_lora_weights="gaussian",
            target_modules=["to_k", "to_q", "to_v", "to_out.0"],
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed + 2)
            model.unet.add_adapter(config, adapter_name=_ADAPTER)
        params = [p for p in model.unet.parameters() if p.requires_grad]
        for p in params:
            p.data = p.data.float()  # fp32 master weights under autocast
        return params
    names = _unet_targets(model)
    model.save_unet_tensors(names)
    named = dict(model.unet.named_parameters())
    params = []
    for name in names:
        p = named[name]
        p.data = p.data.float()  # fp32 master weights; autocast runs the layer in bf16/fp16
        p.requires_grad_(True)
        params.append(p)
    return params


def _finish_stage2(model: DiffusionModel, options: FinetuneOptions) -> dict[str, torch.Tensor]:
    """Freeze what stage 2 trained, cast it back to the model dtype, and return it."""
    out: dict[str, torch.Tensor] = {}
    if options.lora_rank > 0:
        from peft import get_peft_model_state_dict

        for p in model.unet.parameters():
            p.requires_grad_(False)
        state = get_peft_model_state_dict(model.unet, adapter_name=_ADAPTER)
        return {f"lora.{k}": v.detach().float().cpu().contiguous() for k, v in state.items()}
    named = dict(model.unet.named_parameters())
    for name in _unet_targets(model):
        p = named[name]
        p.requires_grad_(False)
        p.data = p.data.to(model.dtype)
        out[f"unet.{name}"] = p.detach().cpu().contiguous()
    return out


def _result(model, photos, strings, tokens, unet_tensors, options, alpha, losses):
    tensors = {}
    for i, rows in enumerate(get_token_rows(model, tokens)):
        tensors[f"text_encoder{'' if i == 0 else '_2'}.rows"] = rows.contiguous()
    tensors.update(unet_tensors)
    # A loss that overflowed once spreads through AdamW into every later step: a result
    # of NaNs would draw blank edits from then on, so it is refused before it is kept
    if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
        raise overflowed("Preparing", model.dtype, "Prepare again with lower learning rates.")
    metadata = {
        "format": FORMAT,
        "version": str(FORMAT_VERSION),
        "base_model": model.name,
        "source": model.source,
        "fingerprint": model.fingerprint,
        "probe": json.dumps(model.probe),
        "family": model.family,
        "n_tokens": str(options.n_tokens),
        "tokens": json.dumps([s for group in strings for s in group]),
        "items": json.dumps(strings[0]),
        "unet": f"lora-{options.lora_rank}" if options.lora_rank else "attn-qkv",
        "lora_rank": str(options.lora_rank),
        "lora_alpha": str(alpha),
        "emb_steps": str(options.emb_steps),
        "model_steps": str(options.model_steps),
        "seed": str(options.seed),
        "weights_id": uuid.uuid4().hex[:16],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "image_key": content_key(photos[0].image, photos[0].labels),
    }
    reference_tokens = None
    if len(photos) > 1:
        reference_tokens = strings[1]
        metadata["reference_items"] = json.dumps(strings[1])
        metadata["reference_key"] = content_key(photos[1].image, photos[1].labels)
        # its items as learned, so the same photo opened again gets them back
        encoded, kept = reference_items.record(photos[1].image, photos[1].labels, photos[1].names)
        tensors[reference_items.LABELS_TENSOR] = torch.from_numpy(encoded)
        metadata.update(kept)
    return FinetuneResult(tensors, metadata, strings[0], reference_tokens, losses)


# ----------------------------------------------------------------------------------------
# Installing saved weights
# ----------------------------------------------------------------------------------------


def apply_trained(
    model: DiffusionModel, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    """Install learned weights into ``model`` (a loaded base model) without re-training.

    Refuses, with ModelLoadError, weights of another format or prepared on another base
    model. Does nothing when these weights are installed already.
    """
    if metadata.get("format") != FORMAT:
        raise ModelLoadError("The project's weights file is not a D-Edit weights file.")
    if int(metadata.get("version", "0")) > FORMAT_VERSION:
        raise ModelLoadError(
            "The project's weights were written by a newer D-Edit Studio; update it to use them."
        )
    check_weights_match(model, metadata)
    if model.applied and model.applied == metadata.get("weights_id"):
        return
    model.reset()
    try:
        strings = json.loads(metadata["tokens"])
        tokens = add_item_tokens(model, strings, seed=0)
        rows = [
            tensors[f"text_encoder{'' if i == 0 else '_2'}.rows"]
            for i in range(len(model.text_encoders))
        ]
        set_token_rows(model, tokens, rows)
        unet = {k[5:]: v for k, v in tensors.items() if k.startswith("unet.")}
        if unet:
            named = dict(model.unet.named_parameters())
            missing = sorted(set(unet) - set(named))
            if missing:
                raise ModelLoadError(
                    f"The learned weights name UNet tensors this model does not have "
                    f"({missing[0]}); they belong to another model."
                )
            model.save_unet_tensors(list(unet))
            with torch.no_grad():
                for name, value in unet.items():
                    if named[name].shape != value.shape:
                        raise ModelLoadError(
                            f"The learned tensor {name} has shape {tuple(value.shape)}, the model "
                            f"{tuple(named[name].shape)}; the weights belong to another model."
                        )
                    named[name].data = value.to(model.device, model.dtype)
        lora = {k[5:]: v for k, v in tensors.items() if k.startswith("lora.")}
        if lora:
            _apply_lora(model, lora, metadata)
    except ModelLoadError:
        model.reset()
        raise
    except (KeyError, ValueError, RuntimeError) as err:
        model.reset()
        raise ModelLoadError(
            f"The project's learned weights are incomplete or damaged ({err})."
        ) from err
    model.applied = metadata.get("weights_id", "")


def _apply_lora(model: DiffusionModel, lora: dict[str, torch.Tensor], metadata) -> None:
    from peft import LoraConfig, set_peft_model_state_dict

    rank = int(metadata.get("lora_rank", "0"))
    alpha = float(metadata.get("lora_alpha", rank))
    config = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=["to_k", "to_q", "to_v", "to_out.0"]
    )
    model.unet.add_adapter(config, adapter_name=_ADAPTER)
    result = set_peft_model_state_dict(model.unet, lora, adapter_name=_ADAPTER)
    if getattr(result, "unexpected_keys", None):
        raise ModelLoadError("The learned LoRA weights do not fit this model's UNet.")
    model.unet.requires_grad_(False)


# ----------------------------------------------------------------------------------------
# Projects
# ----------------------------------------------------------------------------------------


def finetune_project(
    model: DiffusionModel,
    project,
    reference=None,
    options: FinetuneOptions = FinetuneOptions(),
    cancel: CancelToken | None = None,
) -> Job[FinetuneResult]:
    """:func:`finetune` on a project (and optionally a reference project, jointly).

    A reference whose colour profile differs from the project's is learned in the
    project's colours: a swap then paints its item in the colours it has in the
    reference photo, where the same numbers would show a Display P3 photo's item more
    saturated than an sRGB reference's, or an sRGB photo's duller."""
    photos = [TrainImage(project.image, project.labels, tuple(i.name for i in project.items))]
    if reference is not None:
        photos.append(
            TrainImage(
                reference.image,
                reference.labels,
                tuple(i.name for i in reference.items),
                between(reference.profile, project.profile),
            )
        )
    return finetune(model, photos, options, cancel)


def store_result(project, result: FinetuneResult, write: bool = True, reference=None) -> None:
    """Keep ``result`` in ``project``: item token strings, the training record and the
    weights file (saved at once when the project has a folder and ``write``; else at its
    next save). ``reference``: the reference project it was prepared jointly with, whose
    photo's file name the record keeps for people to read. On failure the project is as
    it was."""
    before_tokens = [item.tokens for item in project.items]
    before_training = project.training
    meta = result.metadata
    training = {k: v for k, v in (project.training or {}).items() if k == "weights"}
    training.update(
        base_model=meta["base_model"],
        source=meta["source"],
        fingerprint=meta["fingerprint"],
        unet=meta["unet"],
        emb_steps=int(meta["emb_steps"]),
        model_steps=int(meta["model_steps"]),
        reference_key=meta.get("reference_key"),
        weights_id=meta["weights_id"],
    )
    if meta.get("reference_key") and reference is not None and reference.source:
        training["reference"] = reference.source
    try:
        for item, tokens in zip(project.items, result.item_tokens):
            item.tokens = tokens
        project.training = training
        project.store_weights(result.tensors, result.metadata, write)
    except BaseException:
        for item, tokens in zip(project.items, before_tokens):
            item.tokens = tokens
        project.training = before_training
        raise
