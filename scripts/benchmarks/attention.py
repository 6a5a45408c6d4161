"""Grouped cross-attention at SDXL's layer shapes: ours beside the paper's per-item maps.

Cases: SDXL's 64x64 level (10 heads of 64, N=4096) and 32x32 level (20 heads of 64, N=1024),
batch 2 (the two rows of a training micro-step or a guided call), 8 items of 40 tokens each.
Implementations: ``grouped`` (ours: pixels sorted by item, one SDPA per item on its own
keys), ``fused-mask`` (one SDPA call with an [N, P] boolean mask), ``paper per-item`` (for
every item a full N x 40 softmax map, masked and summed, as the reference code does).
Each is checked against the paper's result (max relative error, float32).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import partial

import torch

from benchmarks.common import Row, guarded, measure, with_ratios
from dedit_app.attention import grouped_attention, make_plan, masked_grouped_attention


def paper_per_item(q, k, v, query_items, key_items):
    """The reference code's formulation: one full softmax map per item, masked, summed."""
    out = 0
    scale = 1 / math.sqrt(q.shape[-1])
    for item in range(int(key_items.max()) + 1):
        keys = key_items == item
        attn = torch.softmax((q @ k[:, :, keys].transpose(-1, -2)) * scale, dim=-1)
        attn = attn.masked_fill((query_items != item)[None, None, :, None], 0)
        out = out + attn @ v[:, :, keys]
    return out


def _case(side: int, heads: int, items: int, tokens: int, device, dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, p = side * side, items * tokens
    q = torch.randn(2, heads, n, 64, generator=g).to(device, dtype)
    k = torch.randn(2, heads, p, 64, generator=g).to(device, dtype)
    v = torch.randn(2, heads, p, 64, generator=g).to(device, dtype)
    # items as irregular blobs: a random label per 4x4 block
    blocks = torch.randint(0, items, (side // 4, side // 4), generator=g)
    query_items = blocks.repeat_interleave(4, 0).repeat_interleave(4, 1).reshape(-1).to(device)
    key_items = torch.arange(items).repeat_interleave(tokens).to(device)
    return q, k, v, query_items, key_items


def _case_rows(case: str, q, k, v, qi, ki, repeats: int) -> list[Row]:
    ref_out = paper_per_item(q.float(), k.float(), v.float(), qi, ki)
    plan = make_plan(qi, ki)  # built once per label map and layer size, as in the UNet
    impls = {
        "grouped (ours)": lambda: grouped_attention(q, k, v, plan=plan),
        "fused-mask": lambda: masked_grouped_attention(q, k, v, qi, ki),
    }
    ref_s, ref_mb = measure(lambda: paper_per_item(q, k, v, qi, ki), repeats=repeats)
    reference = Row(case, "paper per-item", ref_s, ref_mb)
    rows = []
    for impl, fn in impls.items():
        err = _rel_err(fn(), ref_out)
        s, mb = measure(fn, repeats=repeats)
        rows.append(
            with_ratios(Row(case, impl, s, mb, note=f"max rel err {err:.1e}"), reference)[0]
        )
    return rows + [reference]


def run(profile: str) -> Iterator[Row]:
    cuda = torch.cuda.is_available() and profile == "full"
    device = torch.device("cuda" if cuda else "cpu")
    dtypes = [torch.float32] + ([torch.bfloat16] if cuda else [])
    repeats = 3 if profile == "quick" else 10
    for dtype in dtypes:
        for name, side, heads in (("64x64 level", 64, 10), ("32x32 level", 32, 20)):
            case = f"{name} 8 items {str(dtype)[6:]}"
            part = partial(_level_rows, case, side, heads, device, dtype, repeats)
            yield from guarded(case, part)  # named by its case: --only 64x64


def _level_rows(case, side, heads, device, dtype, repeats) -> list[Row]:
    return _case_rows(case, *_case(side, heads, 8, 40, device, dtype), repeats=repeats)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max())
