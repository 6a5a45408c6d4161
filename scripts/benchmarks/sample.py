"""Editing speed: one denoising step ours (both guidance branches in one batched UNet call,
grouped cross-attention) vs the paper's (two UNet calls, per-item attention maps), same
inputs (the guided noise predictions must agree); and one whole edit (the real sampler:
steps, pasting, decode, full-resolution composite).

quick: the tiny SDXL on the CPU (4 items, 256 x 256). full (with a GPU): full-size SDXL,
random weights, 1024 x 1024, 8 items, bf16, the paper's 20 steps.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import Row, measure, with_ratios
from benchmarks.dedit_reference import (
    achieved_tflops,
    full_sdxl,
    matmul_peak_tflops,
    our_step,
    paper_step,
    rel_err,
    step_inputs,
    tiny_model,
)


def _step_rows(model, size: int, items: int, repeats: int, case: str) -> list[Row]:
    z, cond, labels, tids = step_inputs(model, (size, size), items)
    t = torch.tensor(500, device=model.device)
    ours = our_step(model, z, t, cond, labels, tids)
    theirs = paper_step(model, z, t, cond, labels, tids)
    tol = rel_err(ours.float(), theirs.float())
    s, mb = measure(lambda: our_step(model, z, t, cond, labels, tids), repeats=repeats)
    rs, rmb = measure(lambda: paper_step(model, z, t, cond, labels, tids), repeats=repeats)
    note = f"guided prediction rel err {tol:.1e}"
    if model.device.type == "cuda":
        achieved = achieved_tflops(lambda: our_step(model, z, t, cond, labels, tids), s)
        if achieved is not None:
            note += f"; {achieved:.0f} TFLOP/s of {matmul_peak_tflops():.0f} measured matmul peak"
    rows = with_ratios(
        Row(case, "one step: ours", s, mb, note=note), Row(case, "one step: paper", rs, rmb)
    )
    model.reset()
    return rows


def _edit_rows(model, size: int, items: int, steps: int, repeats: int, case: str) -> list[Row]:
    """A whole edit through the real sampler: ``steps`` steps, one candidate, decode and
    composite included; the active region is one item."""
    from dedit_app.jobs import run_job
    from dedit_app.sampler import SampleRequest, SamplingOptions, sample
    from dedit_app.tokens import add_item_tokens, make_token_strings

    model.reset()
    strings = make_token_strings([f"item{i}" for i in range(items)])
    add_item_tokens(model, strings)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    labels = (np.arange(size)[None, :].repeat(size, 0) * items // size).astype(np.int32)
    request = SampleRequest(labels, dict(enumerate(strings)), image, labels == 1,
                            SamplingOptions(steps=steps, previews=False))  # fmt: skip
    s, mb = measure(lambda: run_job(sample(model, request)), repeats=repeats)
    model.reset()
    return [Row(case, f"edit, {steps} steps: ours", s, mb, note="decode + composite included")]


def run(profile: str) -> list[Row]:
    if profile == "full" and torch.cuda.is_available():
        model = full_sdxl("cuda", torch.bfloat16)
        case = "SDXL 1024^2 8 items bf16"
        return _step_rows(model, 1024, 8, 10, case) + _edit_rows(model, 1024, 8, 20, 3, case)
    model = tiny_model()
    case = "tiny SDXL 256^2 4 items cpu"
    rows = _step_rows(model, 256, 4, 5, case)
    rows += _edit_rows(model, 256, 4, 20 if profile == "full" else 4, 2, case)
    return rows
