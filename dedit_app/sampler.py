"""Masked sampling with grouped cross-attention (D-Edit, DESIGN.md step 5).

Each edit generates in the model's *bucket* (about one megapixel for SDXL, the photo's
aspect ratio) and is composited back at the photo's own resolution:

1. Regions at full resolution: ``active`` (generated freely), ``soft`` (the band of ``edge``
   pixels just outside it, :func:`dedit_app.partition.edit_regions`) and ``hard`` (the rest).
2. Regions at latent resolution, conservatively (:func:`latent_regions`): a latent cell is
   hard only if every pixel under it is hard, active if any pixel under it is active, soft
   otherwise. So no active pixel is ever frozen and no frozen cell touches an active pixel.
3. From noise, every step runs the unconditional (zero embeddings, plain attention) and the
   conditional branch (grouped attention) in **one** batched UNet call. After the scheduler
   step, which leaves the latents at the *next* timestep, the original latents noised to that
   next timestep with one fixed noise draw (clean after the last step) are pasted into the
   hard cells always and into the soft cells while ``step <= strength * steps``.
4. Decode, then composite at full resolution (:func:`dedit_app.imageio.composite`): every
   hard pixel is copied from the input byte for byte; the soft band fades from the input to
   the generated picture (``feather``), the active region is generated.

Several candidates (seed, seed+1, ...) run batched. Cancelling stops at the next step and
skips the VAE decode.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from dedit_app.attention import AttentionContext, RowGroup
from dedit_app.errors import EditError, overflowed
from dedit_app.hostreads import TrailingReads
from dedit_app.jobs import CancelToken, Job, Progress
from dedit_app.models import DiffusionModel
from dedit_app.partition import present_items
from dedit_app.tokens import encode_items, time_ids

__all__ = [
    "SampleRequest",
    "SampleResult",
    "SamplingOptions",
    "latent_regions",
    "sample",
    "warm_up",
]


MAX_GUIDANCE = 50.0  # far past any useful scale; larger ones only overflow
MAX_SEED = 2**32 - 1  # a seed (plus one per candidate) as torch's generators take it


@dataclass(frozen=True)
class SamplingOptions:
    """How an edit is rendered. Defaults follow the paper's recommendations."""

    steps: int = 20  # denoising steps (paper: 20)
    guidance: float = 3.0  # classifier-free guidance scale (paper: 3); <= 1 turns it off
    strength: float = 0.6  # soft band follows the original while step <= strength*steps (0.4-0.8)
    edge: float = 24.0  # soft band width in full-resolution pixels (paper: 20-30)
    candidates: int = 1  # pictures per edit; candidate c uses seed + c
    seed: int = 0
    scheduler: str = "model"  # what the model ships (SDXL base: Euler), or euler, ddim, ddpm
    batch: int = 4  # candidates per UNet call (each call holds 2x for guidance)
    previews: bool = True  # cheap latent->RGB preview with every step's progress
    feather: bool = True  # fade the soft band from input to generated when compositing

    def check(self) -> None:
        if not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise EditError(f"The number of steps must be between 1 and 1000; got {self.steps}.")
        if not math.isfinite(self.guidance) or not 0 <= self.guidance <= MAX_GUIDANCE:
            raise EditError(
                f"The guidance must be between 0 and {MAX_GUIDANCE:g} (3 to 8 is usual); "
                f"got {self.guidance}."
            )
        if not 0 <= self.seed <= MAX_SEED - self.candidates:
            raise EditError(
                f"The seed must be a whole number from 0 to {MAX_SEED - self.candidates}; "
                f"got {self.seed}."
            )
        if not 0.0 <= self.strength <= 1.0:
            raise EditError(f"The strength must be between 0 and 1; got {self.strength}.")
        if not math.isfinite(self.edge) or self.edge < 0:
            raise EditError(f"The soft edge must be zero or more pixels; got {self.edge}.")
        if not 1 <= self.candidates <= 64:
            raise EditError(f"Ask for 1 to 64 candidates; got {self.candidates}.")
        if self.batch < 1:
            raise EditError(f"The candidate batch must be at least 1; got {self.batch}.")


@dataclass(frozen=True)
class SampleRequest:
    """One rendering job.

    ``labels`` ``(H, W)`` int: the item of every pixel (the attention layout, after any
    move/remove). ``prompts``: ``{item: prompt}`` for the items to condition on (learned
    token strings or typed text). ``image`` ``(H, W, 3)`` uint8: the photo to keep outside
    the active region (None: nothing to keep, everything is generated). ``active``
    ``(H, W)`` bool (None: the whole picture).
    """

    labels: np.ndarray
    prompts: Mapping[int, str]
    image: np.ndarray | None = None
    active: np.ndarray | None = None
    options: SamplingOptions = SamplingOptions()


@dataclass
class SampleResult:
    """Candidates at full resolution with the regions used (all ``(H, W)``)."""

    images: list[np.ndarray]
    seeds: list[int]
    active: np.ndarray
    soft: np.ndarray
    hard: np.ndarray
    bucket: tuple[int, int]
    latents: torch.Tensor  # [C, 4, h, w] final latents, before decoding


def _cell_bounds(size: int, cells: int) -> list[tuple[int, int]]:
    """Pixel rows ``[r0, r1)`` under each of ``cells`` equal cells of a ``size``-pixel side:
    every pixel a cell overlaps, so a cell is never empty even when enlarging."""
    return [
        (int(math.floor(i * size / cells)), max(int(math.ceil((i + 1) * size / cells)), 1))
        for i in range(cells)
    ]


def _reduce_cells(mask: np.ndarray, shape: tuple[int, int], op) -> np.ndarray:
    rows = np.stack([op(mask[a:b], axis=0) for a, b in _cell_bounds(mask.shape[0], shape[0])])
    return np.stack(
        [op(rows[:, a:b], axis=1) for a, b in _cell_bounds(mask.shape[1], shape[1])], axis=1
    )


def latent_regions(
    active: np.ndarray, hard: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-resolution regions -> latent cells ``shape = (h, w)``, conservatively.

    Returns ``(active, soft, hard)`` bool ``(h, w)``: hard iff every pixel under the cell is
    hard; active iff any pixel under it is active; soft otherwise. Disjoint and covering.
    """
    cell_hard = _reduce_cells(np.asarray(hard, bool), shape, np.all)
    cell_active = _reduce_cells(np.asarray(active, bool), shape, np.any)
    cell_hard &= ~cell_active
    return cell_active, ~cell_active & ~cell_hard, cell_hard


def sample(
    model: DiffusionModel, request: SampleRequest, cancel: CancelToken | None = None
) -> Job[SampleResult]:
    """Render ``request`` with ``model`` (which holds the learned tokens it refers to).

    Yields Progress (stage "sampling", ``step/total`` over all steps of all candidate
    batches, ``preview`` a small RGB image of the first candidate of the batch when
    ``options.previews``, a step late on CUDA; stage "compiling" first when a compiled UNet
    has not run an edit of this latent size and batch yet); returns a
    :class:`SampleResult`. Raises EditError for bad input before any heavy work, Cancelled
    when cancelled (no decoding is done then).
    """
    opts = request.options
    opts.check()
    labels = np.asarray(request.labels)
    if labels.ndim != 2:
        raise EditError("The item map must be a 2-D array.")
    if request.image is not None and request.image.shape[:2] != labels.shape:
        raise EditError("The item map and the photo have different sizes.")
    if not request.prompts:
        raise EditError("There is no item prompt to render.")
    active = (
        np.ones(labels.shape, bool) if request.active is None else np.asarray(request.active, bool)
    )
    if active.shape != labels.shape:
        raise EditError("The active region and the photo have different sizes.")
    if request.image is None and not active.all():
        raise EditError("Without a photo to keep, the whole picture must be generated.")
    return _sample(model, request, labels, active, cancel or CancelToken())


def _sample(model, request, labels, active, cancel) -> Job[SampleResult]:
    from dedit_app.imageio import composite, feather_weights, resize_image, resize_labels
    from dedit_app.partition import edit_regions

    opts: SamplingOptions = request.options
    height, width = labels.shape
    hard, soft = edit_regions(active, opts.edge)
    bh, bw = model.bucket(height, width)
    f = model.vae_scale_factor
    lh, lw = bh // f, bw // f
    dev, dt = model.device, model.dtype

    with torch.no_grad():
        cond = encode_items(model, dict(request.prompts))
    # sample first, then widen: widening the whole map first copied 192 MB at 24 MP
    small = resize_labels(np.asarray(labels), (lh, lw)).astype(np.int64)
    latent_labels = torch.from_numpy(np.ascontiguousarray(small)).to(dev)
    tids = time_ids(model, (bh, bw))
    original = None
    if request.image is not None and not active.all():
        original = model.encode_image(resize_image(request.image, (bh, bw)))
        _, cell_soft, cell_hard = latent_regions(active, hard, (lh, lw))
        soft_l = torch.from_numpy(cell_soft).to(dev, dt)[None, None]
        hard_l = torch.from_numpy(cell_hard).to(dev, dt)[None, None]

    guided = opts.guidance > 1.0
    seeds = [opts.seed + c for c in range(opts.candidates)]
    batches = [seeds[i : i + opts.batch] for i in range(0, len(seeds), opts.batch)]
    steps_per_batch = len(_timesteps(model, opts))
    total = steps_per_batch * len(batches)
    done = 0
    finals = []
    for batch_seeds in batches:
        b = len(batch_seeds)
        scheduler = model.make_scheduler(opts.scheduler)
        scheduler.set_timesteps(opts.steps, device=dev)
        timesteps = scheduler.timesteps
        shape = (1, model.unet.config.in_channels, lh, lw)
        gens = [torch.Generator().manual_seed(s) for s in batch_seeds]
        z = torch.cat([torch.randn(shape, generator=g, dtype=dt) for g in gens]).to(dev)
        paste_noise = None
        if original is not None:
            paste_noise = torch.cat([torch.randn(shape, generator=g, dtype=dt) for g in gens])
            paste_noise = paste_noise.to(dev)
        z = z * scheduler.init_noise_sigma

        groups = [RowGroup(b, latent_labels, cond.key_items)]
        embeds = cond.embeds.expand(b, -1, -1)
        extra = None
        if cond.pooled is not None:
            pooled = cond.pooled.expand(b, -1)
            extra = {"text_embeds": pooled, "time_ids": tids.expand(b, -1)}
        if guided:
            groups.insert(0, RowGroup(b))
            embeds = torch.cat([torch.zeros_like(embeds), embeds])
            if extra is not None:
                extra = {
                    "text_embeds": torch.cat([torch.zeros_like(pooled), pooled]),
                    "time_ids": tids.expand(2 * b, -1),
                }
        ctx = AttentionContext((lh, lw), groups, model.device, model.edit_attention)
        if model.compiled:  # prompts of any length reuse the compiled graph
            ctx.mark_dynamic_keys()
            torch._dynamo.mark_dynamic(embeds, 1)
        # stochastic schedulers (DDPM, ancestral) draw each candidate's step noise from its
        # own generator, so a candidate's recorded seed makes it again alone (PNDM takes
        # none)
        accepts = inspect.signature(scheduler.step).parameters
        step_kwargs = {"generator": gens} if "generator" in accepts else {}

        # what picks the compiled graph: batch rows and latent size (layout and prompts
        # are tensor data under the masked strategy)
        if model.compiles_next(("edit", len(groups), b, lh, lw)):
            yield Progress(done, total, stage="compiling")
        n = len(timesteps)
        # Paste targets for every step, made before the loop: a scheduler's add_noise looks
        # its timestep up with a device-to-host read, which inside the loop would make the
        # CPU wait for the GPU each step instead of queueing the next step's kernels.
        targets = []
        if original is not None:
            targets = [scheduler.add_noise(original, paste_noise, timesteps[j : j + 1])
                       for j in range(1, n)] + [original.expand_as(z)]  # fmt: skip
        previews = TrailingReads(model.device) if opts.previews else None
        for i, t in enumerate(timesteps):
            cancel.raise_if_cancelled()
            with torch.no_grad(), model.attention.use(ctx):
                zin = torch.cat([z, z]) if guided else z
                zin = scheduler.scale_model_input(zin, t)
                pred = model.run_unet(
                    zin, t, encoder_hidden_states=embeds, added_cond_kwargs=extra, return_dict=False
                )[0]
                if guided:
                    uncond, text = pred.chunk(2)
                    pred = uncond + opts.guidance * (text - uncond)
                out = scheduler.step(pred, t, z, **step_kwargs, return_dict=True)
                z = out.prev_sample
                if original is not None:
                    mask = hard_l + soft_l if i <= opts.strength * n else hard_l
                    z = mask * targets[i] + (1 - mask) * z
            done += 1
            preview = None
            if previews is not None:
                x0 = getattr(out, "pred_original_sample", None)
                # a step late on CUDA, so reading it back never stalls the GPU's queue
                shown = previews.push(_preview(model, (x0 if x0 is not None else z)[0]))
                preview = None if shown is None else shown.numpy()
            yield Progress(done, total, stage="sampling", preview=preview)
        finals.append(z)

    cancel.raise_if_cancelled()
    latents = torch.cat(finals)
    if not bool(torch.isfinite(latents).all()):  # decoded, they would be a blank picture
        raise overflowed("The edit", model.dtype, "Prepare the photo again.")
    images = []
    feather = feather_weights(hard, opts.edge) if (opts.feather and hard.any()) else None
    for i in range(0, latents.shape[0], opts.batch):
        for gen_img in model.decode_latents(latents[i : i + opts.batch]):
            if request.image is None:
                images.append(resize_image(gen_img, (height, width)))
            else:
                images.append(composite(request.image, gen_img, hard, feather))
    return SampleResult(images, seeds, active, soft, hard, (bh, bw), latents.detach().cpu())


def warm_up(
    model: DiffusionModel,
    image: np.ndarray,
    labels: np.ndarray,
    options: SamplingOptions,
    cancel: CancelToken | None = None,
) -> Job[None]:
    """Compile a compiled model's edit graph for this photo now, so its first edit answers
    at once instead of waiting for the compiler: one step of an edit of ``image`` ``(H, W,
    3)`` with ``labels`` ``(H, W)`` and the candidate batch and guidance of ``options``
    (which pick the graph; layouts and prompts do not), result thrown away. Yields its
    progress (stage "compiling" when it compiles); nothing happens when the model is not
    compiled."""
    if not model.compiled:
        return
    items = [int(i) for i in present_items(labels)]
    opts = dataclasses.replace(options, steps=1, previews=False)
    prompts = dict.fromkeys(items, "a photo")
    request = SampleRequest(labels, prompts, image, labels == items[0], opts)
    yield from sample(model, request, cancel)


def _timesteps(model: DiffusionModel, opts: SamplingOptions) -> torch.Tensor:
    scheduler = model.make_scheduler(opts.scheduler)
    scheduler.set_timesteps(opts.steps)
    return scheduler.timesteps


def _preview(model: DiffusionModel, latents: torch.Tensor) -> torch.Tensor:
    """``[4, h, w]`` latents -> ``(h, w, 3)`` uint8 through the fitted linear map, on the
    latents' device."""
    m = model.latent_rgb().to(latents.device)
    x = latents.float().permute(1, 2, 0) @ m[:-1] + m[-1]
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)
