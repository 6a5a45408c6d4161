"""Fine-tuning speed: a stage-2 micro-step with grouped attention vs the paper's per-item
attention maps, same inputs, same noise and timesteps (losses and gradients must agree);
and the real preparation job timed per micro-step, plain and with each memory or speed
switch (low-memory mode, channels-last weights, a compiled UNet).

quick: the tiny SDXL on the CPU. full (with a GPU): full-size SDXL architecture, random
weights, a 1024 x 1024 photo with 8 items, bf16; the paper's schedule (500 + 500 micro-steps
of batch 2) is projected from the measured per-step times, and the low-memory mode's peak
VRAM is measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial

import numpy as np
import torch

from benchmarks.common import Row, guarded, measure, sync, with_ratios
from benchmarks.dedit_reference import (
    full_sdxl,
    paper_attention,
    rel_err,
    tflops_note,
    tiny_model,
)


def _photo_and_labels(size: int, items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    cols = np.arange(size)[None, :].repeat(size, 0)
    labels = (cols * items // size).astype(np.int32)
    return image, labels, tuple(f"item{i}" for i in range(items))


def micro_steps(model, size: int, items: int):
    """One stage-2 micro-step (batch 2, forward and backward) on a random photo of
    ``items`` vertical bands, three ways: ``(ours, paper, masked)``, each a callable that
    runs one micro-step from the same noise and timesteps and returns ``(loss on the host,
    the first trained tensor's gradient)``. ``masked`` is ours with the strategy a compiled
    UNet uses. The model is reset first; reset it again when done."""
    from diffusers import DDPMScheduler

    from dedit_app.finetune import FinetuneOptions, TrainImage, _photo, _stage2_params, _train_step
    from dedit_app.tokens import add_item_tokens, encode_items, make_token_strings

    image, labels, names = _photo_and_labels(size, items)
    model.reset()
    strings = make_token_strings(names)
    add_item_tokens(model, strings)
    photo = _photo(model, TrainImage(image, labels, names), strings)
    with torch.no_grad():
        photo.cond = encode_items(model, photo.prompts).detach()
    params = _stage2_params(model, FinetuneOptions(), 0)
    noise = DDPMScheduler.from_config(model.scheduler.config)

    def step():
        gen = torch.Generator().manual_seed(0)
        loss = _train_step(model, noise, photo, photo.cond, 2, gen, 1)
        grad = params[0].grad.detach().clone()
        for p in params:
            p.grad = None
        return loss.cpu(), grad

    def paper():
        with paper_attention(model, photo.labels, photo.cond.key_items):
            return step()

    def masked():  # the strategy of a compiled UNet: one graph for every photo
        photo.ctx, model.train_attention = None, "masked"
        try:
            return step()
        finally:
            photo.ctx, model.train_attention = None, "grouped"

    return step, paper, masked


def _micro_step_rows(model, size: int, items: int, repeats: int, case: str) -> list[Row]:
    step, paper, masked = micro_steps(model, size, items)
    (l_ours, g_ours), (l_paper, g_paper) = step(), paper()
    note = f"loss rel err {rel_err(l_ours, l_paper):.1e}, grad {rel_err(g_ours, g_paper):.1e}"
    l_mask, g_mask = masked()
    mask_note = f"loss rel err {rel_err(l_mask, l_paper):.1e}, grad {rel_err(g_mask, g_paper):.1e}"
    s, mb = measure(step, repeats=repeats)
    note += tflops_note(step, s, model.device)
    ms, mmb = measure(masked, repeats=repeats)
    rs, rmb = measure(paper, repeats=repeats)
    grouped, reference = with_ratios(
        Row(case, "grouped (ours)", s, mb, note=note), Row(case, "paper per-item", rs, rmb)
    )
    masked_row = with_ratios(Row(case, "masked (ours, compiled)", ms, mmb, note=mask_note),
                             Row(case, "paper", rs, rmb))[0]  # fmt: skip
    rows = [grouped, masked_row, reference]
    model.reset()
    return rows


def _encode_rows(model, items: int, repeats: int, case: str) -> list[Row]:
    """Encoding the items' prompts (every stage-1 micro-step and every edit does it): ours,
    prompts of one length in one call per encoder, vs the paper's one call per item."""
    from dedit_app.tokens import add_item_tokens, encode_items, encode_prompt, make_token_strings

    model.reset()
    strings = make_token_strings([f"item{i}" for i in range(items)])
    add_item_tokens(model, strings)
    prompts = dict(enumerate(strings))

    def paper():
        parts = [encode_prompt(model, prompts[k], 40) for k in sorted(prompts)]
        return torch.cat([h for h, _ in parts], dim=1)

    with torch.no_grad():
        err = rel_err(encode_items(model, prompts).embeds.float(), paper().float())
        s, mb = measure(lambda: encode_items(model, prompts), repeats=repeats)
        rs, rmb = measure(paper, repeats=repeats)
    model.reset()
    return with_ratios(
        Row(case, f"encode {items} prompts: batched", s, mb, note=f"rel err {err:.1e}"),
        Row(case, f"encode {items} prompts: per item", rs, rmb),
    )


def _timed_job(model, photo, options) -> tuple[np.ndarray, list[str]]:
    """Seconds between the progress events of one preparation, and their stages."""
    from dedit_app.finetune import finetune

    stamps, stages = [time.perf_counter()], []
    for p in finetune(model, [photo], options):
        sync(model.device)
        stamps.append(time.perf_counter())
        stages.append(p.stage)
    return np.diff(stamps), stages


def _job_rows(
    model, size: int, items: int, steps: int, case: str, mode: str, paper: float | None = None
) -> list[Row]:
    """The real preparation job: median seconds per micro-step of each stage.

    ``mode``: "default"; "low-memory" (gradient checkpointing, idle models in RAM; its
    peak VRAM is the 24 GB target); "low-memory (SDXL plan)" (recomputing only
    ``recompute.SDXL_WITHIN_24GB``'s blocks); "channels-last"; "compiled (BACKEND)" (the first
    micro-step of each stage pays the compile, reported apart from the step times; then a
    second photo with another layout, which must not compile again). ``paper``: the
    paper's per-item micro-step seconds from the "micro-step" part, if it ran; the note
    then compares the paper schedule against it (stage 1 costed like stage 2: both are a
    UNet forward and backward at the same size).
    """
    from torch._dynamo.utils import counters

    from dedit_app.finetune import FinetuneOptions, TrainImage
    from dedit_app.recompute import EVERY_BLOCK, SDXL_WITHIN_24GB

    image, labels, names = _photo_and_labels(size, items)
    low = mode.startswith("low-memory")
    options = FinetuneOptions(
        emb_steps=steps, model_steps=steps, gradient_checkpointing=low, offload_idle=low,
        recompute=SDXL_WITHIN_24GB if "plan" in mode else EVERY_BLOCK,
    )  # fmt: skip
    compiled = mode.startswith("compiled")
    if mode == "channels-last":
        model.use_channels_last()
    if compiled:
        torch._dynamo.reset()
        counters.clear()
        model.compile_unet(backend=mode.split("(")[1].rstrip(")"))
    cuda = model.device.type == "cuda"
    try:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        dt, stages = _timed_job(model, TrainImage(image, labels, names), options)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        # what a 24 GB card must hold: the allocator's reserve, not only live tensors
        reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
        if compiled:
            graphs = counters["stats"]["unique_graphs"]
            image2, labels2, names2 = _photo_and_labels(size, items - 1, seed=1)
            _timed_job(model, TrainImage(image2, labels2, names2), options)
            again = counters["stats"]["unique_graphs"] - graphs
    finally:
        model.use_channels_last(False)
        model.compile_unet(None)
    dt = dt[[s != "compiling" for s in stages]]
    stages = [s for s in stages if s != "compiling"]
    per, first = {}, {}
    for st in ("tokens", "unet"):
        times = dt[[s == st for s in stages]]
        per[st], first[st] = float(np.median(times[1:])), float(times[0])
    projected = 500 * per["tokens"] + 500 * per["unet"]
    note = f"paper schedule 2 x 500 steps projected: {projected:.0f} s"
    if reserved is not None:
        note += f"; {reserved:.1f} GiB reserved by the allocator at its peak"
    if paper:
        note += f" ({1000 * paper / projected:.2f}x the paper's {1000 * paper:.0f} s)"
    if compiled:
        paid = first["tokens"] - per["tokens"] + first["unet"] - per["unet"]
        note += (f" + {paid:.0f} s compiling (once per stage, photo size and key bucket); "
                 f"a second photo, {items - 1} items: {again} recompiles")  # fmt: skip
    model.reset()
    return [
        Row(case, f"ours stage 1 ({mode})", per["tokens"], peak, note="per micro-step, batch 2"),
        Row(case, f"ours stage 2 ({mode})", per["unet"], peak, note=note),
    ]


def _paper_seconds(rows: Iterator[Row]):
    """Pass ``rows`` on; return the paper per-item micro-step's seconds among them."""
    paper = None
    for row in rows:
        if row.impl == "paper per-item":
            paper = row.seconds
        yield row
    return paper


def run(profile: str) -> Iterator[Row]:
    if profile == "full" and torch.cuda.is_available():
        model = full_sdxl("cuda", torch.bfloat16)
        case, size, items, steps = "SDXL 1024^2 8 items bf16", 1024, 8, 6
        paper = yield from _paper_seconds(
            guarded("micro-step", partial(_micro_step_rows, model, size, items, 5, case), case)
        )
        yield from guarded("encode", partial(_encode_rows, model, items, 10, case), case)
        modes = ["default", "low-memory", "low-memory (SDXL plan)", "channels-last",
                 "compiled (inductor)"]  # fmt: skip
    else:
        model = tiny_model()
        case, size, items, steps = "tiny SDXL 256^2 4 items cpu", 256, 4, 4
        repeats = 5 if profile == "full" else 3
        micro = partial(_micro_step_rows, model, size, items, repeats, case)
        paper = yield from _paper_seconds(guarded("micro-step", micro, case))
        yield from guarded("encode", partial(_encode_rows, model, 8, 5, case), case)
        modes = ["default"]
        if profile == "full":  # eager backend on the CPU: checks the compiled path only
            modes += ["low-memory", "low-memory (SDXL plan)", "channels-last", "compiled (eager)"]
    for mode in modes:
        job = partial(_job_rows, model, size, items, steps, case, mode, paper)
        yield from guarded(f"job {mode}", job, case)
