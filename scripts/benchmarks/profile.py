"""Where a step's time goes: torch's profiler over one guided edit step and one stage-2
micro-step, ours beside the paper's formulation (and, with --full, our edit step compiled
beside the same step in eager mode).

The totals in ``sample`` and ``finetune`` say how fast; this says why, so the first GPU
run can tell what to change next. For each implementation:

- a ``wall`` row: the step's median wall time, timed apart from the profiler (whose own
  cost per op would inflate it), with how much of it the device was busy. On a GPU that is
  the kernels' summed time, and the rest is time the GPU waited for the CPU to queue work:
  a step that is launch-bound shows a low share there. It also gives the kernels (and
  copies) per step, to set against ``estimate``'s count. On the CPU the "device" is the
  time spent inside torch's ops; the rest is Python.
- one row per family of operations (matrix products, convolutions, fused attention,
  normalisation, copies, the optimizer, the rest), with its device time per step, its share
  of the busy time, and the reference's time over ours. Families are named by the op that
  launched the kernels, so the paper's attention maps (``q @ k^T``, softmax, masking)
  count as matrix products, attention and the rest: they are computed op by op.

With ``DEDIT_TRACE_DIR`` set (``gpu_bench.sh`` sets it to ``$OUT``), one gzipped Chrome
trace per part of ours goes there, for chrome://tracing or ui.perfetto.dev.

quick: the tiny SDXL on the CPU, 256 x 256, 4 items. full: with a GPU, full-size SDXL,
random weights, 1024 x 1024, 8 items, bf16, and the compiled part (inductor); without one,
the tiny model, and the compiled part with the ``eager`` backend (checks the code path).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity

from benchmarks.common import Row, guarded, measure, sync
from benchmarks.dedit_reference import full_sdxl, our_step, paper_step, step_inputs, tiny_model
from benchmarks.finetune import micro_steps

# First match wins, so attention kernels named after a matrix product stay attention.
FAMILIES = (
    ("attention", ("attention", "sdpa", "softmax", "flash", "fmha")),
    # cuDNN names its convolution kernels by pass: fprop, dgrad, wgrad (implicit GEMMs)
    ("convolution", ("conv", "fprop", "dgrad", "wgrad", "implicit")),
    ("matmul", ("mm", "matmul", "linear", "gemm")),
    ("normalisation", ("norm",)),
    ("optimizer", ("adam", "foreach")),
    ("copies", ("copy", "cat", "index", "gather", "scatter", "clone", "contiguous", "fill",
                "zero", "memcpy", "memset")),
)  # fmt: skip
OTHER = "other"  # elementwise ops, reductions, ...
UNATTRIBUTED = "no op"  # kernels the profiler tied to no op
FUSED = "fused by inductor"


def family(op: str) -> str:
    """The family of an op or kernel name, e.g. ``aten::addmm`` -> "matmul",
    ``aten::_scaled_dot_product_flash_attention`` -> "attention"."""
    name = op.lower()
    for fam, words in FAMILIES:
        if any(w in name for w in words):
            return fam
    return OTHER


def kernel_family(kernel: str) -> str:
    """The family of a GPU kernel by its own name, for compiled code, whose kernels no
    aten op launches: inductor's generated kernels are templates (``triton_tem_``: matrix
    products) or fusions of several ops, which count as one family of their own unless
    they normalise; library kernels go by :func:`family`."""
    name = kernel.lower()
    if name.startswith("triton_tem"):
        return "matmul"
    if name.startswith("triton_"):
        return "normalisation" if "norm" in name else FUSED
    return family(kernel)


@dataclass
class Profile:
    """One profiled step (per-step averages): the device's busy seconds, seconds per
    family, the kernels and copies launched (None on the CPU, which launches none), and
    the wall seconds under the profiler (which adds its own cost to every op)."""

    busy: float
    families: dict[str, float]
    kernels: float | None
    wall: float


def profile_step(fn: Callable[[], object], device: torch.device, steps: int,
                 trace: Path | None = None, by_kernel: bool = False) -> Profile:  # fmt: skip
    """Profile ``steps`` calls of ``fn`` (already warm) on ``device``; write a gzipped
    Chrome trace to ``trace`` if given. ``by_kernel``: on a GPU, name families by each
    kernel's own name (:func:`kernel_family`) instead of the op that launched it."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(device)
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        wall = time.perf_counter() - start
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    return summarise(prof.key_averages(), steps, cuda, by_kernel, wall)


def summarise(events, steps: int, cuda: bool, by_kernel: bool, wall: float) -> Profile:
    """A :class:`Profile` per step from a profiler's ``key_averages()`` over ``steps``
    steps that took ``wall`` seconds. On CUDA the entries are ops (CPU) and kernels and
    copies (device); an op's self device time is what the kernels it launched itself took
    (its children's are theirs), and the device entries give the busy total and the count.
    Device time no op claims becomes its own family. On the CPU, ops' self CPU time."""
    ops = [e for e in events if e.device_type == DeviceType.CPU]
    fams: dict[str, float] = defaultdict(float)
    if cuda:
        gpu = [e for e in events if e.device_type != DeviceType.CPU]
        busy = sum(e.self_device_time_total for e in gpu)
        kernels: float | None = sum(e.count for e in gpu) / steps
        for e in gpu if by_kernel else ops:
            name = kernel_family(e.key) if by_kernel else family(e.key)
            fams[name] += e.self_device_time_total
        left = busy - sum(fams.values())
        if left > 0.01 * busy:
            fams[UNATTRIBUTED] += left
    else:
        for e in ops:
            fams[family(e.key)] += e.self_cpu_time_total
        busy, kernels = sum(fams.values()), None
    per = 1e-6 / steps  # the profiler counts microseconds
    fams = {k: v * per for k, v in fams.items() if v > 0}
    return Profile(busy * per, fams, kernels, wall / steps)


def _rows(case: str, runs: list[tuple[str, Callable[[], object]]], device: torch.device,
          repeats: int, steps: int, trace: str, by_kernel: bool = False) -> list[Row]:  # fmt: skip
    """Rows for each ``(label, fn)``; the last one is the reference of the ratios. ``trace``:
    the file name of the first one's trace, written if ``DEDIT_TRACE_DIR`` is set."""
    measured = []
    folder = os.environ.get("DEDIT_TRACE_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    for i, (label, fn) in enumerate(runs):
        wall, mb = measure(fn, repeats=repeats)
        path = Path(folder) / trace if (folder and i == 0) else None
        measured.append((label, wall, mb, profile_step(fn, device, steps, path, by_kernel)))
    _, ref_wall, _, ref = measured[-1]
    cuda = device.type == "cuda"
    rows = []
    for label, wall, mb, prof in measured:
        if cuda:  # kernel times do not include the profiler's cost; the wall time does not
            note = f"GPU busy {prof.busy * 1e3:.1f} ms, {prof.busy / wall:.0%} of wall"
        else:  # both include it, so the share is taken under the profiler
            note = f"inside torch ops {prof.busy / prof.wall:.0%} of the time"
        if prof.kernels is not None:
            note += f"; {prof.kernels:,.0f} kernels and copies per step"
        rows.append(Row(case, f"{label}: wall", wall, mb, ref_wall / wall, note))
        order = sorted(prof.families, key=prof.families.get, reverse=True)
        for fam in order:
            s = prof.families[fam]
            theirs = ref.families.get(fam)
            ratio = theirs / s if theirs else None
            rows.append(Row(case, f"{label}: {fam}", s, None, ratio,
                            f"{s / prof.busy:.0%} of busy"))  # fmt: skip
    return rows


def _edit_step_rows(model, size, items, repeats, steps, case) -> list[Row]:
    z, cond, labels, tids = step_inputs(model, (size, size), items)
    t = torch.tensor(500, device=model.device)
    runs = [("ours", lambda: our_step(model, z, t, cond, labels, tids)),
            ("paper", lambda: paper_step(model, z, t, cond, labels, tids))]  # fmt: skip
    try:
        return _rows(case, runs, model.device, repeats, steps, "trace-edit-step.json.gz")
    finally:
        model.reset()


def _micro_step_rows(model, size, items, repeats, steps, case) -> list[Row]:
    ours, paper, _ = micro_steps(model, size, items)
    try:
        return _rows(case, [("ours", ours), ("paper", paper)], model.device, repeats, steps,
                     "trace-micro-step.json.gz")  # fmt: skip
    finally:
        model.reset()


def _compiled_rows(model, size, items, repeats, steps, case, backend) -> list[Row]:
    """Our edit step through a compiled UNet (the "masked" strategy it implies), beside
    the same step on the plain UNet; the first call pays the compile."""
    z, cond, labels, tids = step_inputs(model, (size, size), items)
    t = torch.tensor(500, device=model.device)
    torch._dynamo.reset()
    model.compile_unet(backend=backend)
    try:
        step = partial(our_step, model, z, t, cond, labels, tids)
        step()  # compiles

        def plain():
            with model.plain_unet():
                return step()

        runs = [(f"compiled ({backend})", step), ("plain", plain)]
        trace = "trace-compiled-step.json.gz"
        return _rows(case, runs, model.device, repeats, steps, trace, by_kernel=True)
    finally:
        model.compile_unet(None)
        torch._dynamo.reset()
        model.reset()


def run(profile: str) -> Iterator[Row]:
    if profile == "full" and torch.cuda.is_available():
        model = full_sdxl("cuda", torch.bfloat16)
        name, size, items, backend = "SDXL 1024^2 8 items", 1024, 8, "inductor"
        repeats, steps = 5, 3
    else:
        model = tiny_model()
        name, size, items, backend = "tiny 256^2 4 items", 256, 4, "eager"
        repeats, steps = 3, 2
    common = (model, size, items, repeats, steps)
    case = f"edit step, {name}"
    yield from guarded("profile edit step", partial(_edit_step_rows, *common, case), case)
    case = f"micro-step, {name}"
    yield from guarded("profile micro-step", partial(_micro_step_rows, *common, case), case)
    if profile == "full":
        case = f"compiled step, {name}"
        compiled = partial(_compiled_rows, *common, case, backend)
        yield from guarded("profile compiled step", compiled, case)
