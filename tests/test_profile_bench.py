"""`bench.py profile`: a step's time broken down by family of operations, ours beside the
paper's formulation (scripts/benchmarks/profile.py)."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import pytest
import torch
from torch.autograd import DeviceType

from benchmarks import profile
from benchmarks.profile import (
    FUSED,
    OTHER,
    UNATTRIBUTED,
    family,
    kernel_family,
    profile_step,
    summarise,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aten::addmm", "matmul"),
        ("aten::bmm", "matmul"),
        ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
        ("aten::_efficient_attention_backward", "attention"),
        ("aten::_softmax", "attention"),
        ("aten::convolution_backward", "convolution"),
        ("aten::native_group_norm", "normalisation"),
        ("aten::_fused_adamw_", "optimizer"),
        ("aten::copy_", "copies"),
        ("aten::add", OTHER),
        ("aten::silu", OTHER),
    ],
)
def test_ops_fall_into_their_family(name, expected):
    assert family(name) == expected


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        # cuDNN's convolutions are implicit GEMMs: they must not count as matrix products
        ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", "convolution"),
        ("sm90_xmma_dgrad_implicit_gemm_bf16bf16", "convolution"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matmul"),
        ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64>>", "attention"),
        ("triton_tem_fused_addmm_0", "matmul"),
        ("triton_red_fused_native_group_norm_1", "normalisation"),
        ("triton_poi_fused_add_convolution_silu_2", FUSED),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add>", OTHER),
    ],
)
def test_kernels_fall_into_their_family(kernel, expected):
    assert kernel_family(kernel) == expected


def test_a_step_of_matrix_products_is_counted_as_matrix_products(tmp_path):
    a = torch.randn(384, 384)

    def step():
        for _ in range(4):
            a @ a

    trace = tmp_path / "trace.json.gz"
    prof = profile_step(step, torch.device("cpu"), steps=3, trace=trace)
    assert prof.kernels is None  # a CPU launches no kernels
    assert prof.families["matmul"] > 0.8 * prof.busy
    assert sum(prof.families.values()) == pytest.approx(prof.busy)
    assert 0 < prof.busy <= prof.wall * 1.05
    events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
    assert sum(e.get("name") == "aten::mm" for e in events) == 3 * 4


def _entry(key, device, self_device=0.0, self_cpu=0.0, count=1):
    """One entry of ``key_averages()`` as a CUDA run gives it (times in microseconds)."""
    return SimpleNamespace(key=key, device_type=device, self_device_time_total=self_device,
                           self_cpu_time_total=self_cpu, count=count)  # fmt: skip


CPU, CUDA = DeviceType.CPU, DeviceType.CUDA
# Two steps on a GPU: ops with the device time of the kernels they launched themselves (a
# parent op launches none), the kernels and a copy, and one kernel no op claimed.
GPU_RUN = [
    _entry("aten::linear", CPU, 0, self_cpu=40),
    _entry("aten::addmm", CPU, 600_000, self_cpu=30),
    _entry("aten::convolution", CPU, 300_000, self_cpu=20),
    _entry("aten::copy_", CPU, 20_000, self_cpu=10),
    _entry("cudaLaunchKernel", CPU, 0, self_cpu=50, count=6),
    _entry("sm90_xmma_gemm_bf16bf16_bf16f32", CUDA, 600_000, count=2),
    _entry("sm90_xmma_fprop_implicit_gemm_bf16", CUDA, 300_000, count=2),
    _entry("Memcpy HtoD (Pinned -> Device)", CUDA, 20_000, count=2),
    _entry("triton_poi_fused_add_silu_0", CUDA, 80_000, count=2),
]


def test_a_gpu_run_is_counted_per_step_by_the_op_that_launched_each_kernel():
    prof = summarise(GPU_RUN, steps=2, cuda=True, by_kernel=False, wall=2.0)
    assert prof.busy == pytest.approx(0.5)  # 1.0 s of kernels and copies over 2 steps
    assert prof.kernels == 4  # 8 kernels and copies over 2 steps; API calls are no kernels
    assert prof.wall == 1.0
    assert prof.families == pytest.approx(
        {"matmul": 0.3, "convolution": 0.15, "copies": 0.01, UNATTRIBUTED: 0.04}
    )


def test_a_compiled_gpu_run_is_counted_by_kernel_name():
    prof = summarise(GPU_RUN, steps=2, cuda=True, by_kernel=True, wall=2.0)
    assert prof.busy == pytest.approx(0.5)
    assert prof.families == pytest.approx(
        {"matmul": 0.3, "convolution": 0.15, "copies": 0.01, FUSED: 0.04}
    )


@pytest.mark.slow
def test_quick_profile_compares_ours_with_the_paper_and_writes_traces(tmp_path, monkeypatch):
    monkeypatch.setenv("DEDIT_TRACE_DIR", str(tmp_path))
    rows = list(profile.run("quick"))
    assert not [r for r in rows if r.impl.startswith("failed")]
    for part in ("edit step", "micro-step"):
        part_rows = [r for r in rows if r.case.startswith(part)]
        walls = {r.impl: r for r in part_rows if r.impl.endswith(": wall")}
        assert set(walls) == {"ours: wall", "paper: wall"}
        assert walls["paper: wall"].ratio == 1.0
        assert walls["ours: wall"].ratio == pytest.approx(
            walls["paper: wall"].seconds / walls["ours: wall"].seconds
        )
        ours = {r.impl.removeprefix("ours: ") for r in part_rows if r.impl.startswith("ours: ")}
        # the UNet's work: convolutions, projections and the grouped attention all show
        assert {"convolution", "matmul", "attention"} <= ours
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["trace-edit-step.json.gz", "trace-micro-step.json.gz"]
