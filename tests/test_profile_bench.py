"""`bench.py profile`: a step's time broken down by family of operations, ours beside the
paper's formulation (scripts/benchmarks/profile.py)."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from benchmarks import profile
from benchmarks.profile import FUSED, OTHER, family, kernel_family, profile_step


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
