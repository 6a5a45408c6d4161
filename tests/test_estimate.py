"""The cost predictions of ``bench.py estimate``: the meter counts live bytes, FLOPs and
kernels right (checkpointing included), a model of fake tensors costs exactly what the
same model of real tensors costs, and the modes compare as they must."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from benchmarks import estimate
from benchmarks.estimate import Cost, Meter


def _mb(n_bytes: int) -> float:
    return n_bytes / 2**20


def test_meter_counts_a_storage_once_until_it_is_freed():
    meter = Meter()
    with meter:
        x = torch.empty(256, 1024)  # 1 MiB
        view = x[:10].t()
        assert _mb(meter.live) == 1.0
        y = torch.ones(1)  # rounded up like the CUDA allocator: 512 bytes
        assert meter.live == 2**20 + 512
    del x, view
    assert meter.live == 512
    assert _mb(meter.peak) == pytest.approx(1.0, abs=1e-3)
    del y
    assert meter.live == 0


def test_meter_counts_flops_with_torch_table_and_the_cpu_attention_kernel():
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    q = torch.randn(2, 3, 128, 16)
    k = torch.randn(2, 3, 40, 16)
    with Cost(Meter()) as mm:
        a @ b
    with Cost(Meter()) as attention:
        F.scaled_dot_product_attention(q, k, k)
    assert mm.flops == 2 * 64 * 32 * 16
    assert mm.kernels == 1
    assert attention.flops == 4 * 2 * 3 * 128 * 40 * 16  # q k^T and p v


def test_meter_sees_what_checkpointing_saves_and_costs():
    torch.manual_seed(0)
    blocks = [torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.GELU()) for _ in range(8)]
    layers = torch.nn.Sequential(*blocks)
    x = torch.randn(512, 256, requires_grad=True)

    def step(checkpointed: bool):
        h = x
        for layer in layers:
            h = (torch.utils.checkpoint.checkpoint(layer, h, use_reentrant=False)
                 if checkpointed else layer(h))  # fmt: skip
        h.square().mean().backward()

    costs = []
    for checkpointed in (False, True):
        meter = Meter()
        meter.track([*layers.parameters(), x])
        with Cost(meter) as cost:
            step(checkpointed)
        costs.append(cost)
        x.grad = None
        layers.zero_grad(set_to_none=True)
    plain, checkpointed = costs
    assert checkpointed.peak_mb < 0.7 * plain.peak_mb
    assert checkpointed.flops > 1.2 * plain.flops


def _fake_copy(model, mode):
    """``model`` with every weight replaced by a fake tensor of the same shape and dtype."""
    fake = copy.deepcopy(model)
    for module in [fake.unet, fake.vae, *fake.text_encoders]:
        for m in module.modules():
            for name, p in m._parameters.items():
                if p is not None:
                    m._parameters[name] = torch.nn.Parameter(mode.from_tensor(p), p.requires_grad)
            for name, b in m._buffers.items():
                if b is not None:
                    m._buffers[name] = mode.from_tensor(b)
    fake._latent_cache.clear()
    return fake


def _numbers(cost: estimate.PrepareCost):
    steps = [cost.stage1, cost.stage2] + ([cost.paper] if cost.paper else [])
    return [(c.flops, c.kernels) for c in steps], [cost.peak1, cost.peak2]


@pytest.mark.parametrize("mode", ["default", "low-memory"])
def test_a_fake_model_costs_what_the_real_one_costs(tiny_sdxl, mode):
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    making = FakeTensorMode(allow_non_fake_inputs=True)
    fake = _fake_copy(tiny_sdxl, making)
    assert isinstance(next(fake.unet.parameters()), FakeTensor)
    real_work, real_peaks = _numbers(
        estimate.prepare_cost(tiny_sdxl, contextlib.nullcontext(), 256, 4, mode)
    )
    fake_work, fake_peaks = _numbers(estimate.prepare_cost(fake, making, 256, 4, mode))
    assert fake_work == real_work
    assert all(f > 0 and k > 100 for f, k in real_work)
    # a few dozen small tensors differ (32 KB here): nothing at a full-size model's GBs
    assert fake_peaks == pytest.approx(real_peaks, abs=0.1)


def test_the_modes_trade_memory_for_flops_and_the_paper_costs_more_kernels(tiny_sdxl):
    none = contextlib.nullcontext()
    costs = {m: estimate.prepare_cost(tiny_sdxl, none, 256, 4, m) for m in estimate.MODES}
    peak = {m: max(c.peak1, c.peak2) for m, c in costs.items()}
    assert peak["low-memory"] < peak["parked"] < peak["default"]
    # checkpointing recomputes the forward in the backward pass
    assert costs["low-memory"].stage2.flops > 1.2 * costs["default"].stage2.flops
    # a plan recomputes some blocks in stage 2 and none in stage 1: in between
    plan, full, parked = costs["low-memory, SDXL plan"], costs["low-memory"], costs["parked"]
    assert plan.stage1.flops == parked.stage1.flops and plan.peak1 == parked.peak1
    assert parked.stage2.flops < plan.stage2.flops < full.stage2.flops
    assert full.peak2 < plan.peak2 < parked.peak2
    ours, paper = costs["default"].stage2, costs["default"].paper
    assert 0.9 < paper.flops / ours.flops < 1.5  # the same attention work, item by item
    assert paper.kernels > 1.2 * ours.kernels  # ... in many more, smaller calls


def test_the_edit_rows_on_a_fake_model(tiny_sdxl):
    from torch._subclasses.fake_tensor import FakeTensorMode

    making = FakeTensorMode(allow_non_fake_inputs=True)
    rows = estimate._edit_rows(_fake_copy(tiny_sdxl, making), making, 256, 4, "c")
    impls = [r.impl for r in rows]
    assert impls[:2] == ["edit step: ours (one call)", "edit step: paper (two calls)"]
    assert all(r.peak_mb > 0 for r in rows)
    assert "kernels" in rows[1].note and "needs" in rows[-1].note


def test_full_size_sdxl_is_built_from_fake_tensors_without_memory():
    from torch._subclasses.fake_tensor import FakeTensor

    model, _ = estimate.fake_sdxl()
    params = list(model.unet.parameters())
    assert all(isinstance(p, FakeTensor) and p.dtype == torch.bfloat16 for p in params)
    assert sum(p.numel() for p in params) == pytest.approx(2.567e9, rel=1e-3)
    assert torch.get_default_dtype() == torch.float32  # building does not leak bf16
