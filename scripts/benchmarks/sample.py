"""Editing speed: one denoising step ours (both guidance branches in one batched UNet call,
grouped cross-attention) vs the paper's (two UNet calls, per-item attention maps), same
inputs (the guided noise predictions must agree); and whole edits through the real sampler
(steps, pasting, decode, full-resolution composite), ours beside the paper's UNet calls;
and the photo's VAE latents, cached per photo vs encoded every edit; and the host's work
at the photo's own resolution (``fullres``).

quick: the tiny SDXL on the CPU (4 items, 256 x 256). full: with a GPU, full-size SDXL,
random weights, 1024 x 1024, 8 items, bf16, the paper's 20 steps; without one, the tiny
model. full adds the speed switches, each as its own whole-edit row: the masked attention
strategy, channels-last weights, previews on, and a compiled UNet (the first edit pays the
compile; the timed edits then alternate layouts and prompts, which must not compile
again); and, as its own part ("tuned compile"), inductor with the flags of diffusers' SDXL
speed tutorial.
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
    our_step,
    paper_step,
    paper_unet_calls,
    rel_err,
    step_inputs,
    tflops_note,
    tiny_model,
)
from benchmarks.fullres import host_rows


def _step_rows(model, size: int, items: int, repeats: int, case: str) -> list[Row]:
    z, cond, labels, tids = step_inputs(model, (size, size), items)
    t = torch.tensor(500, device=model.device)
    ours = our_step(model, z, t, cond, labels, tids)
    theirs = paper_step(model, z, t, cond, labels, tids)
    tol = rel_err(ours.float(), theirs.float())
    s, mb = measure(lambda: our_step(model, z, t, cond, labels, tids), repeats=repeats)
    rs, rmb = measure(lambda: paper_step(model, z, t, cond, labels, tids), repeats=repeats)
    note = f"guided prediction rel err {tol:.1e}"
    note += tflops_note(lambda: our_step(model, z, t, cond, labels, tids), s, model.device)
    rows = with_ratios(
        Row(case, "one step: ours", s, mb, note=note), Row(case, "one step: paper", rs, rmb)
    )
    model.reset()
    return rows


class _Edits:
    """Edit requests on one random photo: ``request(k)`` varies the layout (which item is
    active, where the bands fall) and the prompts (learned tokens or typed text, so the key
    count changes) with ``k``; ``request(0)`` is the reference edit."""

    def __init__(self, model, size: int, items: int, steps: int) -> None:
        from dedit_app.tokens import add_item_tokens, make_token_strings

        model.reset()
        self.strings = make_token_strings([f"item{i}" for i in range(items)])
        add_item_tokens(model, self.strings)
        self.size, self.items, self.steps = size, items, steps
        self.previews = False
        self.image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)

    def request(self, k: int = 0):
        from dedit_app.sampler import SampleRequest, SamplingOptions

        cols = (np.arange(self.size) + k * 16) % self.size
        labels = (cols[None, :].repeat(self.size, 0) * self.items // self.size).astype(np.int32)
        prompts = dict(enumerate(self.strings))
        if k % 2:
            prompts[1] = "a small red ceramic teapot on a wooden table"  # typed: 77 tokens
        options = SamplingOptions(steps=self.steps, previews=self.previews)
        return SampleRequest(labels, prompts, self.image, labels == 1 + k % 2, options)


def _edit(model, request):
    from dedit_app.jobs import run_job
    from dedit_app.sampler import sample

    return run_job(sample(model, request))


def _edit_rows(model, size: int, items: int, steps: int, repeats: int, case: str) -> list[Row]:
    """A whole edit, ``steps`` steps, one candidate, decode and composite: ours beside the
    same sampler with the paper's UNet calls; the pictures must agree."""
    from dedit_app.imageio import resize_labels
    from dedit_app.tokens import encode_items

    edits = _Edits(model, size, items, steps)
    request = edits.request()
    f = model.vae_scale_factor
    small = resize_labels(request.labels.astype(np.int64), (size // f, size // f))
    with torch.no_grad():
        key_items = encode_items(model, dict(request.prompts)).key_items

    def paper():
        with paper_unet_calls(model, torch.from_numpy(small).to(model.device), key_items):
            return _edit(model, request)

    ours_img = _edit(model, request).images[0].astype(int)
    diff = np.abs(ours_img - paper().images[0]).mean()
    s, mb = measure(lambda: _edit(model, request), repeats=repeats)
    rs, rmb = measure(paper, repeats=repeats)
    label = f"edit, {steps} steps"
    note = f"decode + composite included; mean |ours - paper| {diff:.2f} grey levels"
    note += tflops_note(lambda: _edit(model, request), s, model.device)
    rows = with_ratios(
        Row(case, f"{label}: ours", s, mb, note=note),
        Row(case, f"{label}: paper", rs, rmb, note="two UNet calls a step, per-item maps"),
    )  # fmt: skip
    model.reset()
    return rows


def _encode_rows(model, size: int, repeats: int, case: str) -> list[Row]:
    """The photo's VAE latents for an edit: encoded again (what the paper's code does every
    edit) vs taken from the model's per-photo cache (every edit after the first)."""
    image = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)

    def encoded():
        model._latent_cache.clear()
        return model.encode_image(image)

    same = torch.equal(encoded(), model.encode_image(image))
    s, mb = measure(lambda: model.encode_image(image), repeats=repeats)
    rs, rmb = measure(encoded, repeats=repeats)
    model._latent_cache.clear()
    return with_ratios(
        Row(case, "latents: cached (ours)", s, mb,
            note=f"{'identical' if same else 'DIFFERENT'} to a fresh encode"),
        Row(case, "latents: encoded each edit (paper)", rs, rmb),
    )  # fmt: skip


def _decode_rows(model, size: int, repeats: int, case: str) -> list[Row]:
    """The VAE decode every edit ends with (one candidate at the bucket), alone: its share
    of the whole edit says whether compiling the decoder too could pay."""
    f = model.vae_scale_factor
    latents = torch.randn(1, 4, size // f, size // f, generator=torch.Generator().manual_seed(2))
    latents = latents.to(model.device, model.dtype)
    with torch.no_grad():
        s, mb = measure(lambda: model.decode_latents(latents), repeats=repeats)
    return [Row(case, "VAE decode, one candidate", s, mb, note="part of every edit row")]


def _switch_rows(model, size, items, steps, repeats, case, backend, paper) -> Iterator[Row]:
    """Whole edits with each speed switch on, against ours without it (ratio column); each
    row is yielded as soon as it is measured. ``paper``: the paper's whole-edit seconds
    from the "edit" part, if it ran (the compiled row's note then says the ratio)."""
    edits = _Edits(model, size, items, steps)
    base_s, base_mb = measure(lambda: _edit(model, edits.request()), repeats=repeats)
    label = f"edit, {steps} steps"
    yield Row(case, f"{label}: ours (grouped)", base_s, base_mb, 1.0)

    def switched(name, note=""):
        s, mb = measure(lambda: _edit(model, edits.request()), repeats=repeats)
        return Row(case, f"{label}: {name}", s, mb, base_s / s, note)

    model.edit_attention = "masked"
    try:
        yield switched("masked attention")
    finally:
        model.edit_attention = "grouped"
    model.use_channels_last()
    try:
        yield switched("channels-last")
    finally:
        model.use_channels_last(False)
    edits.previews = True  # the editor's default: a latent preview with every step
    try:
        yield switched("previews on", "the editor's default; previews trail one step on CUDA")
    finally:
        edits.previews = False
    yield _compiled_row(
        model, edits, base_s, case, repeats, f"compiled ({backend})", backend, paper=paper
    )


# Inductor flags diffusers' SDXL speed tutorial used (with channels-last weights): 1x1
# convolutions as matmuls, and a search over each kernel's launch parameters.
TUNED = {"conv_1x1_as_mm": True, "coordinate_descent_tuning": True, "epilogue_fusion": False}


def _tuned_rows(model, size, items, steps, repeats, case, backend, paper) -> Iterator[Row]:
    """A compiled edit with :data:`TUNED` inductor flags and channels-last weights, beside
    ours plain (its own part: the flags make the compile much longer)."""
    edits = _Edits(model, size, items, steps)
    base_s, base_mb = measure(lambda: _edit(model, edits.request()), repeats=repeats)
    yield Row(case, f"edit, {steps} steps: ours (grouped)", base_s, base_mb, 1.0)
    options = TUNED if backend == "inductor" else None
    model.use_channels_last()
    try:
        yield _compiled_row(
            model,
            edits,
            base_s,
            case,
            repeats,
            f"compiled ({backend}), tuned",
            backend,
            options,
        )
    finally:
        model.use_channels_last(False)  # fmt: skip


def _compiled_row(
    model, edits, base_s, case, repeats, name, backend, options=None, paper=None
) -> Row:
    """Compile, pay the compile with the first edit, then time edits that each bring
    another layout and prompt set (none may compile again)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model.compile_unet(backend=backend, options=options)
    try:
        t0 = time.perf_counter()
        _edit(model, edits.request(0))
        sync(model.device)
        first = time.perf_counter() - t0
        graphs = counters["stats"]["unique_graphs"]
        turn = iter(range(1, 10**6))  # every timed edit: another layout and prompt set
        s, mb = measure(lambda: _edit(model, edits.request(next(turn))), repeats=repeats)
        again = counters["stats"]["unique_graphs"] - graphs
    finally:
        model.compile_unet(None)
        torch._dynamo.reset()
        model.reset()
    note = (f"first edit {first:.1f} s (compiles); {again} recompiles over {repeats + 1} "
            f"edits with new layouts and prompts")  # fmt: skip
    if paper:
        note += f"; {paper / s:.2f}x the paper's edit"
    return Row(case, f"edit, {edits.steps} steps: {name}", s, mb, base_s / s, note)


def run(profile: str) -> Iterator[Row]:
    if profile == "full" and torch.cuda.is_available():
        model = full_sdxl("cuda", torch.bfloat16)
        case, size, items, steps, backend = "SDXL 1024^2 8 items bf16", 1024, 8, 20, "inductor"
        repeats = 3
        yield from guarded("step", partial(_step_rows, model, size, items, 10, case), case)
    else:
        model = tiny_model()
        case, size, items, backend = "tiny SDXL 256^2 4 items cpu", 256, 4, "eager"
        steps, repeats = (20 if profile == "full" else 4), 2
        yield from guarded("step", partial(_step_rows, model, size, items, 5, case), case)
    edits = partial(_edit_rows, model, size, items, steps, repeats, case)
    paper = None
    for row in guarded("edit", edits, case):
        if row.impl.endswith(": paper"):
            paper = row.seconds
        yield row
    yield from guarded("photo latents", partial(_encode_rows, model, size, repeats, case), case)
    yield from guarded("decode", partial(_decode_rows, model, size, repeats, case), case)
    # the CPU's share at a photo's own resolution (the same on any machine's host)
    host = (4000, 6000, 3, 3) if profile == "full" else (2000, 3000, 2, 2)
    case_host = "host work at full resolution"
    yield from guarded("full-resolution host", partial(host_rows, *host, case_host), case_host)
    if profile == "full":  # on the CPU, the eager backend checks the compiled path only
        switches = partial(_switch_rows, model, size, items, steps, repeats, case, backend, paper)
        yield from guarded("switches", switches, case)
        tuned = partial(_tuned_rows, model, size, items, steps, repeats, case, backend, paper)
        yield from guarded("tuned compile", tuned, case)
