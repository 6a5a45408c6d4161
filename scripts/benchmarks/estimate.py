"""Predicted on the CPU, before any GPU run: what full-size SDXL at 1024^2 will cost.

The full-size architecture (the same constants as the GPU run) is built from fake tensors:
shapes and dtypes without data, so no weights, no GPU and no memory are needed. One guided
edit step, a VAE decode and the preparation's micro-steps then run through the engine's
own code, ours beside the paper's formulation (per-item attention maps; two UNet calls per
edit step), and each call reports:

- FLOPs, from the table of torch's ``FlopCounterMode`` (with the CPU attention kernel
  added, which it lacks, so attention counts as on a GPU);
- the ATen kernels an eager run launches (views and allocations excluded): on a GPU a
  kernel costs a few microseconds of CPU time however small it is, so this is where the
  paper's per-item attention pays and FLOPs do not show it;
- the peak of live tensor bytes the GPU would hold (weights resident in that mode, trained
  tensors, gradients, AdamW state, activations), rounded like the CUDA allocator. The CUDA
  context and the allocator's cache slack come on top.

From these: the least time the H200's bf16 peak allows for the paper's schedule and for a
20-step edit, and the share of that peak issue 6's targets (60 s, 1.0 s) need. Preparing
is predicted in each memory mode (:data:`MODES`); low-memory carries the 24 GB target.
Results and what they mean: docs/PERFORMANCE.md, "Predicted for full-size SDXL".
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

from benchmarks.common import Row, guarded
from benchmarks.dedit_reference import (
    full_sdxl,
    our_step,
    paper_attention,
    paper_step,
    step_inputs,
)
from dedit_app.recompute import EVERY_BLOCK, SDXL_WITHIN_24GB, Recompute, use_recompute

H200_BF16_TFLOPS = 989.0  # NVIDIA's H200 (and H100 SXM) dense bf16 tensor-core peak
# what an 8192^3 bf16 matmul on random data reached on the lent H200s (769-798 TFLOP/s,
# the device library's KINDS.md): the ceiling a real run can be held to
H200_MEASURED_TFLOPS = 790.0
EDIT_STEPS = 20
SCHEDULE = (500, 500)  # the paper's micro-steps per stage
# issue 6's targets; a "24 GB" card (RTX 3090/4090) holds 24 GiB
TARGET_EDIT_S, TARGET_PREPARE_S, TARGET_LOW_MEMORY_GB = 1.0, 60.0, 24.0
_ALLOCATOR_BLOCK = 512  # the CUDA caching allocator rounds every block up to this


class Meter(TorchDispatchMode):
    """Live tensor bytes and their peak, kernels launched and FLOPs, inside the mode.

    Storages made by an op inside the mode are counted until Python frees them;
    :meth:`track` adds tensors that already exist (weights, optimizer state). A storage is
    counted once however many views share it. Works on real and on fake tensors alike.
    FLOPs use torch's own table (``torch.utils.flop_counter``) directly: its
    ``FlopCounterMode`` hooks every module, and those hooks keep the activations that
    gradient checkpointing recomputes alive until the step ends (a low-memory stage-1
    micro-step of full-size SDXL peaked at 11.8 GiB under it, 7.8 GiB without), which would
    hide what the mode saves.
    """

    def __init__(self) -> None:
        super().__init__()
        self._counted = WeakIdKeyDictionary()
        self.live = 0
        self.peak = 0
        self.kernels = 0
        self.flops = 0

    def track(self, tensors: Iterable[torch.Tensor]) -> None:
        for t in tensors:
            self._add(t)

    def _add(self, t: object) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return
        storage = t.untyped_storage()
        if storage in self._counted:
            return
        size = -(-storage.nbytes() // _ALLOCATOR_BLOCK) * _ALLOCATOR_BLOCK
        self._counted[storage] = size
        weakref.finalize(storage, self._free, size)
        self.live += size
        self.peak = max(self.peak, self.live)

    def _free(self, size: int) -> None:
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not (func.is_view or func in _NO_KERNEL or func.namespace == "prim"):
            self.kernels += 1
        formula = _FLOPS.get(func.overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        for t in torch.utils._pytree.tree_leaves(out):
            self._add(t)
        return out


aten = torch.ops.aten
_NO_KERNEL = {aten.empty.memory_format, aten.empty_strided.default, aten._unsafe_view.default,
              aten.lift_fresh.default, aten._local_scalar_dense.default}  # fmt: skip


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def _cpu_attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kw) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


# torch's table counts the GPU's fused attention kernels; the fake model runs the CPU's
_FLOPS = {
    **flop_counter.flop_registry,
    aten._scaled_dot_product_flash_attention_for_cpu: flop_counter.shape_wrapper(
        _cpu_attention_flops
    ),
    aten._scaled_dot_product_flash_attention_for_cpu_backward: flop_counter.shape_wrapper(
        _cpu_attention_backward_flops
    ),
}


class Cost:
    """FLOPs, kernels and peak live bytes of what runs inside ``with Cost(meter)``.
    ``meter`` keeps counting live bytes between calls, so the peak sees the state earlier
    calls left alive (gradients, optimizer state)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def __enter__(self) -> Cost:
        m = self.meter
        m.peak = m.live
        self._start = (m.flops, m.kernels)
        m.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        m = self.meter
        m.__exit__(*exc)
        self.flops = m.flops - self._start[0]
        self.kernels = m.kernels - self._start[1]
        self.peak_mb = m.peak / 2**20


def _tensors(*modules: torch.nn.Module) -> Iterator[torch.Tensor]:
    for m in modules:
        yield from m.parameters()
        yield from m.buffers()


def _lower_bound(flops: float) -> float:
    return flops / (H200_BF16_TFLOPS * 1e12)


def _share_needed(flops: float, target_s: float) -> str:
    """``"X% of it (Y% of the measured rate)"``: the share of the peak that doing
    ``flops`` in ``target_s`` seconds takes."""
    rate = flops / target_s / 1e12
    return (f"{100 * rate / H200_BF16_TFLOPS:.0f}% of it "
            f"({100 * rate / H200_MEASURED_TFLOPS:.0f}% of the {H200_MEASURED_TFLOPS:.0f} "
            f"TFLOP/s a matmul reached there)")  # fmt: skip


def _edit_rows(model, making, size: int, items: int, case: str) -> list[Row]:
    """One guided step both ways and a VAE decode, with every model resident (the editor
    keeps them on the GPU); the whole edit is 20 steps and one decode. ``making``: the
    model's FakeTensorMode, for the calls that make tensors of its size."""
    z, cond, labels, tids = step_inputs(model, (size, size), items, making=making)
    t = torch.tensor(500)
    meter = Meter()
    meter.track(_tensors(model.unet, model.vae, *model.text_encoders))
    meter.track([z, cond.embeds, cond.pooled, tids])
    with Cost(meter) as ours:
        our_step(model, z, t, cond, labels, tids)
    with Cost(meter) as paper:
        paper_step(model, z, t, cond, labels, tids)
    model.edit_attention = "masked"  # what a compiled UNet runs
    try:
        with Cost(meter) as masked:
            our_step(model, z, t, cond, labels, tids)
    finally:
        model.edit_attention = "grouped"
    with Cost(meter) as decode, torch.no_grad():
        model.vae.decode(z.to(model.vae_dtype) / model.vae.config.scaling_factor)
    with making:
        model.reset()
    edit = EDIT_STEPS * ours.flops + decode.flops
    floor = _lower_bound(edit)
    return [
        Row(case, "edit step: ours (one call)", None, ours.peak_mb,
            note=f"{ours.flops / 1e12:.1f} TFLOP, {ours.kernels} kernels"),
        Row(case, "edit step: paper (two calls)", None, paper.peak_mb,
            note=f"{paper.flops / ours.flops:.2f}x our FLOPs, "
                 f"{paper.kernels / ours.kernels:.2f}x our kernels ({paper.kernels})"),
        Row(case, "edit step: ours, masked (compiled)", None, masked.peak_mb,
            note=f"{masked.flops / ours.flops:.2f}x our FLOPs, "
                 f"{masked.kernels / ours.kernels:.2f}x our kernels ({masked.kernels})"),
        Row(case, "VAE decode, one candidate", None, decode.peak_mb,
            note=f"{decode.flops / 1e12:.1f} TFLOP, {decode.kernels} kernels"),
        Row(case, f"whole edit: {EDIT_STEPS} steps + decode", None,
            max(ours.peak_mb, decode.peak_mb),
            note=f"{edit / 1e12:.0f} TFLOP: >= {floor:.2f} s at the H200's "
                 f"{H200_BF16_TFLOPS:.0f} TFLOP/s; {TARGET_EDIT_S:.1f} s needs "
                 f"{_share_needed(edit, TARGET_EDIT_S)}"),
    ]  # fmt: skip


def _stage_cost(meter: Meter, micro_step, opt, paper=None) -> tuple[Cost, float, Cost]:
    """A stage's worst moment: AdamW state from an earlier optimizer step, and gradients
    accumulated over a micro-step, while another micro-step runs. Returns that micro-step's
    cost, the peak MB over the whole sequence, and the paper's micro-step's cost run at the
    same moment (``paper``: a context that makes ``micro_step`` the paper's), or None."""
    with Cost(meter) as first:
        micro_step()
        opt.step()
        opt.zero_grad(set_to_none=True)
        micro_step()
    with Cost(meter) as one:
        micro_step()
    theirs = None
    if paper is not None:
        with paper(), Cost(meter) as theirs:
            micro_step()
    with Cost(meter) as last:
        opt.step()
    peak = max(c.peak_mb for c in (first, one, last))
    return one, peak, theirs


# preparing's memory modes: (the blocks recomputed, or None: no checkpointing; idle models
# parked in RAM). "SDXL plan" recomputes just enough to leave a 24 GB card room.
MODES = {
    "default": (None, False),
    "parked": (None, True),
    "low-memory": (EVERY_BLOCK, True),
    "low-memory, SDXL plan": (SDXL_WITHIN_24GB, True),
}


@dataclass
class PrepareCost:
    """One micro-step of each stage, the peak MB of each stage's worst moment, and the
    paper's stage-2 micro-step at the same moment (``paper``; default mode only)."""

    stage1: Cost
    stage2: Cost
    peak1: float
    peak2: float
    paper: Cost | None


def prepare_cost(model, making, size: int, items: int, mode: str | Recompute) -> PrepareCost:
    """Preparing in one of :data:`MODES`: each stage with what it keeps on the GPU (a
    parking mode moves the VAE off, and the text encoders during stage 2), its trained
    tensors in float32 and fused AdamW's state, as the job runs them on CUDA. "parked"
    is not a switch of the editor (yet): it asks whether parking alone fits 24 GB,
    without the recomputation that checkpointing costs. ``mode`` may also be a plan of
    its own: parked, recomputing its blocks."""
    from diffusers import DDPMScheduler

    from benchmarks.finetune import _photo_and_labels
    from dedit_app.finetune import (
        FinetuneOptions,
        TrainImage,
        _photo,
        _splice_token_rows,
        _stage2_params,
        _train_step,
    )
    from dedit_app.tokens import add_item_tokens, encode_items, make_token_strings

    recompute, parked = (mode, True) if isinstance(mode, Recompute) else MODES[mode]
    checkpointing = recompute is not None
    options = FinetuneOptions(gradient_checkpointing=checkpointing, offload_idle=parked)
    image, labels, names = _photo_and_labels(size, items)
    strings = make_token_strings(names, options.n_tokens)
    with making:
        model.reset()
        tokens = add_item_tokens(model, strings, seed=options.seed)
    photo = _photo(model, TrainImage(image, labels, names), strings)
    noise = DDPMScheduler.from_config(model.scheduler.config)
    gen = torch.Generator().manual_seed(1)
    batch, accum = options.batch_size, options.grad_accum
    spliced: list = []
    if checkpointing:
        use_recompute(model.unet, recompute.tokens)
    try:
        rows = _splice_token_rows(model, tokens, spliced)
        opt = torch.optim.AdamW(rows, lr=options.emb_lr, fused=True)
        meter = Meter()
        meter.track(_tensors(model.unet, *model.text_encoders, *([] if parked else [model.vae])))
        meter.track([photo.latents])

        def stage1():
            _train_step(model, noise, photo, encode_items(model, photo.prompts), batch, gen, accum)

        s1, peak1, _ = _stage_cost(meter, stage1, opt)
        for encoder, base in spliced:
            encoder.set_input_embeddings(base)
        spliced.clear()
        del opt, meter

        with torch.no_grad():
            photo.cond = encode_items(model, photo.prompts).detach()
        if checkpointing:
            use_recompute(model.unet, recompute.unet)
        params = _stage2_params(model, options, 0)
        opt = torch.optim.AdamW(params, lr=options.unet_lr, fused=True)
        meter = Meter()
        idle = [] if parked else [model.vae, *model.text_encoders]
        meter.track(_tensors(model.unet, *idle))
        meter.track([photo.latents, photo.cond.embeds, photo.cond.pooled])

        def stage2():
            _train_step(model, noise, photo, photo.cond, batch, gen, accum)

        paper = None
        if mode == "default":
            paper = partial(paper_attention, model, photo.labels, photo.cond.key_items)
        s2, peak2, theirs = _stage_cost(meter, stage2, opt, paper)
    finally:
        for encoder, base in spliced:
            encoder.set_input_embeddings(base)
        model.unet.disable_gradient_checkpointing()
        with making:
            model.reset()
    return PrepareCost(s1, s2, peak1, peak2, theirs)


def _prepare_rows(model, making, size: int, items: int, case: str, mode: str) -> list[Row]:
    cost = prepare_cost(model, making, size, items, mode)
    s1, s2, peak1, peak2 = cost.stage1, cost.stage2, cost.peak1, cost.peak2
    schedule = SCHEDULE[0] * s1.flops + SCHEDULE[1] * s2.flops
    floor = _lower_bound(schedule)
    gb = max(peak1, peak2) / 1024
    out = [
        Row(case, f"prepare stage 1 ({mode})", None, peak1,
            note=f"{s1.flops / 1e12:.1f} TFLOP, {s1.kernels} kernels per micro-step"),
        Row(case, f"prepare stage 2 ({mode})", None, peak2,
            note=f"{s2.flops / 1e12:.1f} TFLOP, {s2.kernels} kernels per micro-step"),
        Row(case, f"prepare, 2 x 500 steps ({mode})", None, max(peak1, peak2),
            note=f"{schedule / 1e15:.1f} PFLOP: >= {floor:.0f} s at the H200's peak, "
                 f"{TARGET_PREPARE_S:.0f} s needs {_share_needed(schedule, TARGET_PREPARE_S)}; "
                 f"{gb:.1f} GiB of tensors: a {TARGET_LOW_MEMORY_GB:.0f} GB card keeps "
                 f"{TARGET_LOW_MEMORY_GB - gb:.1f} GiB for CUDA's context and cache slack"),
    ]  # fmt: skip
    if cost.paper is not None:
        paper = cost.paper
        out.append(Row(case, "prepare stage 2: paper per-item", None, paper.peak_mb,
                       note=f"{paper.flops / s2.flops:.2f}x our FLOPs, "
                            f"{paper.kernels / s2.kernels:.2f}x our kernels "
                            f"({paper.kernels})"))  # fmt: skip
    return out


def _block_rows(model, making, size: int, items: int, case: str) -> list[Row]:
    """What recomputing each group of transformers saves and costs in stage 2 (the stage
    that peaks), against recomputing nothing, idle models parked: the evidence
    behind ``recompute.SDXL_WITHIN_24GB``. About 75 s per group on the 2-core CPU."""
    unet = model.unet
    groups = sorted({
        n.rsplit(".attentions.", 1)[0] + ".attentions" for n, m in unet.named_modules()
        if ".attentions." in n and hasattr(m, "gradient_checkpointing")
    })  # fmt: skip
    plans = {"nothing": (), **{g: (g,) for g in groups}}
    plans |= {"every transformer": tuple(groups), "every block": None}
    costs = {
        label: prepare_cost(model, making, size, items, Recompute(tokens=(), unet=blocks))
        for label, blocks in plans.items()
    }
    base = costs.pop("nothing")
    rows = [Row(case, "recompute nothing (stage 2)", None, base.peak2,
                note=f"{base.stage2.flops / 1e12:.1f} TFLOP per micro-step")]  # fmt: skip
    for label, cost in costs.items():
        saved = (base.peak2 - cost.peak2) / 1024
        extra = (cost.stage2.flops - base.stage2.flops) / 1e12
        rows.append(Row(case, f"recompute {label} (stage 2)", None, cost.peak2,
                        note=f"saves {saved:.2f} GiB for {extra:+.2f} TFLOP per micro-step "
                             f"({saved / extra:.2f} GiB per TFLOP)"))  # fmt: skip
    return rows


def fake_sdxl():
    """Full-size SDXL (bf16) made of fake tensors, and its FakeTensorMode. Ops on fake
    tensors run fake anywhere; only building needs the mode (factory calls)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        return full_sdxl("cpu", torch.bfloat16), mode


def run(profile: str) -> Iterator[Row]:
    """Nothing here depends on the machine; ``--full`` adds what recomputing each group
    of transformers saves (about 9 more minutes)."""
    model, making = fake_sdxl()
    case, size, items = "SDXL 1024^2 8 items bf16 (fake)", 1024, 8
    yield from guarded("edit", partial(_edit_rows, model, making, size, items, case), case)
    for mode in MODES:
        part = partial(_prepare_rows, model, making, size, items, case, mode)
        yield from guarded(f"prepare {mode}", part, case)
    if profile == "full":
        blocks = partial(_block_rows, model, making, size, items, case)
        yield from guarded("blocks", blocks, case)
