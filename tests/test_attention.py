"""Grouped cross-attention against the paper's per-item formulation, and its processor."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dedit_app.attention import (
    AttentionContext,
    RowGroup,
    grouped_attention,
    layer_labels,
    layer_size,
    make_plan,
    masked_grouped_attention,
)


def per_item_reference(q, k, v, query_items, key_items):
    """The paper's formulation: for every item, softmax of all pixels over that item's keys,
    masked to the item's pixels, summed over items (float64 for a clean reference)."""
    q, k, v = q.double(), k.double(), v.double()
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=torch.float64)
    for item in torch.unique(key_items[key_items >= 0]).tolist():
        keys = key_items == item
        attn = torch.softmax(q @ k[:, :, keys].transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
        mask = (query_items == item).double()[None, None, :, None]
        out += mask * (attn @ v[:, :, keys])
    return out


def _rel_err(a, b):
    return float((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _case(seed, n=96, lengths=(40, 77, 3, 40, 10), order="blocks", padding=0):
    g = torch.Generator().manual_seed(seed)
    key_items = torch.cat([torch.full((n_k,), i) for i, n_k in enumerate(lengths)])
    if order == "shuffled":  # keys of one item not contiguous
        key_items = key_items[torch.randperm(len(key_items), generator=g)]
    key_items = torch.cat([key_items, torch.full((padding,), -1)])
    # item 1 gets no pixels; item 5 has pixels but no keys
    query_items = torch.tensor([0, 2, 3, 4, 5])[torch.randint(0, 5, (n,), generator=g)]
    p = len(key_items)
    q = torch.randn(2, 3, n, 16, generator=g)
    k = torch.randn(2, 3, p, 16, generator=g)
    v = torch.randn(2, 3, p, 16, generator=g)
    return q, k, v, query_items, key_items


@pytest.mark.parametrize("order", ["blocks", "shuffled"])
@pytest.mark.parametrize("padding", [0, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_equals_per_item_formulation(seed, order, padding):
    q, k, v, qi, ki = _case(seed, order=order, padding=padding)
    ref = per_item_reference(q, k, v, qi, ki)
    assert _rel_err(grouped_attention(q, k, v, qi, ki), ref) < 1e-5
    assert _rel_err(masked_grouped_attention(q, k, v, qi, ki), ref) < 1e-5


def test_pixels_without_keys_get_zeros_not_nan():
    q, k, v, qi, ki = _case(3)
    for out in (grouped_attention(q, k, v, qi, ki), masked_grouped_attention(q, k, v, qi, ki)):
        assert torch.isfinite(out).all()
        assert (out[:, :, qi == 5] == 0).all()
    qi_none = torch.full_like(qi, -1)
    assert (grouped_attention(q, k, v, qi_none, ki) == 0).all()


def test_one_item_is_plain_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 50, 8, generator=g) for _ in range(3))
    out = grouped_attention(
        q, k, v, torch.zeros(50, dtype=torch.long), torch.zeros(50, dtype=torch.long)
    )
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), rtol=0, atol=0)


def test_grouped_attention_has_gradients():
    q, k, v, qi, ki = _case(4, n=40)
    q.requires_grad_(True)
    k.requires_grad_(True)
    grouped_attention(q, k, v, qi, ki).square().sum().backward()
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


def test_plan_reuses_contiguous_key_slices():
    plan = make_plan(torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0, 1, 1, 1]))
    assert [(s, c) for s, c, _ in plan.segments] == [(0, 2), (2, 2)]
    assert plan.segments[0][2] == slice(0, 2) and plan.segments[1][2] == slice(2, 5)
    assert plan.perm.tolist() == [1, 3, 0, 2]


@pytest.mark.parametrize(
    ("latent", "n", "expected"),
    [
        ((128, 128), 4096, (64, 64)),
        ((104, 152), 104 * 152, (104, 152)),
        ((104, 152), 52 * 76, (52, 76)),
        ((104, 152), 26 * 38, (26, 38)),
        ((13, 7), 28, (7, 4)),  # odd sides round up, as a stride-2 conv with padding 1
        ((13, 7), 8, (4, 2)),
    ],
)
def test_layer_size_any_aspect_ratio(latent, n, expected):
    assert layer_size(latent, n) == expected


def test_layer_size_rejects_impossible_counts():
    with pytest.raises(ValueError):
        layer_size((64, 64), 1000)


def test_layer_labels_sample_like_the_unet_and_the_paper():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (16, 24), generator=g)
    small = layer_labels(labels, 8 * 12).reshape(8, 12)
    assert torch.equal(small, labels[::2, ::2])
    paper = F.interpolate(labels[None, None].float(), (8, 12)).long()[0, 0]  # nearest
    assert torch.equal(small, paper)
    odd = torch.randint(0, 4, (13, 7), generator=g)
    assert torch.equal(layer_labels(odd, 28).reshape(7, 4), odd[::2, ::2])


# ----- the processor on a UNet -------------------------------------------------------------


def _unet_inputs(model, batch, latent=(24, 32), lengths=(40, 77, 5)):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(batch, 4, *latent, generator=g)
    p = sum(lengths)
    embeds = torch.randn(batch, p, model.cross_attention_dim, generator=g)
    key_items = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    labels = torch.randint(0, len(lengths), latent, generator=g)
    labels[:, :4] = 3  # an item with pixels but no keys
    extra = {
        "text_embeds": torch.randn(batch, 32, generator=g),
        "time_ids": torch.tensor([[192.0, 256, 0, 0, 192, 256]] * batch),
    }
    return z, embeds, key_items, labels, extra


def test_processor_equals_paper_formulation_on_unet(tiny_sdxl):
    z, embeds, key_items, labels, extra = _unet_inputs(tiny_sdxl, 2)
    unet = tiny_sdxl.unet
    ctx = AttentionContext(tuple(labels.shape), [RowGroup(2, labels, key_items)])
    with torch.no_grad(), tiny_sdxl.attention.use(ctx):
        ours = unet(z, 500, embeds, added_cond_kwargs=extra).sample
    # The benchmarks' reference for the paper's per-item attention, checked here.
    from benchmarks.dedit_reference import paper_attention

    with torch.no_grad(), paper_attention(tiny_sdxl, labels, key_items):
        paper = unet(z, 500, embeds, added_cond_kwargs=extra).sample
    assert _rel_err(ours, paper.double()) < 1e-5
    with torch.no_grad():
        plain = unet(z, 500, embeds, added_cond_kwargs=extra).sample
    assert _rel_err(plain, paper.double()) > 1e-3  # the grouping does change the output


def test_single_item_processor_equals_attn_processor_2_0(tiny_sdxl):
    from diffusers.models.attention_processor import AttnProcessor2_0

    z, embeds, _, labels, extra = _unet_inputs(tiny_sdxl, 2, latent=(20, 12))
    ones = torch.zeros_like(labels)
    ctx = AttentionContext(
        tuple(labels.shape), [RowGroup(2, ones, torch.zeros(embeds.shape[1], dtype=torch.long))]
    )
    unet = tiny_sdxl.unet
    with torch.no_grad(), tiny_sdxl.attention.use(ctx):
        grouped = unet(z, 300, embeds, added_cond_kwargs=extra).sample
    saved = dict(unet.attn_processors)
    try:
        unet.set_attn_processor({k: AttnProcessor2_0() for k in saved})
        with torch.no_grad():
            stock = unet(z, 300, embeds, added_cond_kwargs=extra).sample
    finally:
        unet.set_attn_processor(saved)
    torch.testing.assert_close(grouped, stock, rtol=1e-5, atol=1e-6)


def test_batched_guidance_equals_two_calls(tiny_sdxl):
    z, embeds, key_items, labels, extra = _unet_inputs(tiny_sdxl, 1)
    zeros = torch.zeros_like(embeds)
    zero_extra = {
        "text_embeds": torch.zeros_like(extra["text_embeds"]),
        "time_ids": extra["time_ids"],
    }
    unet, att = tiny_sdxl.unet, tiny_sdxl.attention
    both = {k: torch.cat([zero_extra[k], extra[k]]) for k in extra}
    ctx = AttentionContext(tuple(labels.shape), [RowGroup(1), RowGroup(1, labels, key_items)])
    with torch.no_grad():
        with att.use(ctx):
            batched = unet(
                torch.cat([z, z]), 700, torch.cat([zeros, embeds]), added_cond_kwargs=both
            ).sample
        # two calls: plain attention over 77 zero tokens (the paper's unconditional input)
        uncond = unet(
            z, 700, torch.zeros(1, 77, embeds.shape[-1]), added_cond_kwargs=zero_extra
        ).sample
        with att.use(AttentionContext(tuple(labels.shape), [RowGroup(1, labels, key_items)])):
            cond = unet(z, 700, embeds, added_cond_kwargs=extra).sample
    torch.testing.assert_close(batched, torch.cat([uncond, cond]), rtol=1e-5, atol=1e-5)


def test_context_must_cover_the_batch(tiny_sdxl):
    z, embeds, key_items, labels, extra = _unet_inputs(tiny_sdxl, 2)
    ctx = AttentionContext(tuple(labels.shape), [RowGroup(1, labels, key_items)])
    with (
        pytest.raises(ValueError, match="covers 1 rows"),
        torch.no_grad(),
        tiny_sdxl.attention.use(ctx),
    ):
        tiny_sdxl.unet(z, 10, embeds, added_cond_kwargs=extra)
    assert tiny_sdxl.attention.context is None
    with pytest.raises(ValueError):
        AttentionContext((3, 3), [RowGroup(1, torch.zeros(2, 2, dtype=torch.long), key_items)])


def test_unet_with_grouped_attention_compiles_without_graph_breaks(tiny_sdxl):
    """torch.compile traces the whole UNet forward as one graph (plans are built with the
    context, outside the forward), gives the eager result, and reuses the graph for a new
    context with the same item layout (every step of a job, a second preparation)."""
    from torch._dynamo.utils import counters

    z, embeds, key_items, labels, extra = _unet_inputs(tiny_sdxl, 1)
    unet = tiny_sdxl.unet

    def context(lab):
        return AttentionContext(tuple(lab.shape), [RowGroup(1), RowGroup(1, lab, key_items)])

    def call(forward, lab):
        both = {k: torch.cat([v, v]) for k, v in extra.items()}
        with torch.no_grad(), tiny_sdxl.attention.use(context(lab)):
            return forward(
                torch.cat([z, z]), 500, torch.cat([embeds, embeds]), added_cond_kwargs=both
            )[0]

    explained = call(lambda *a, **k: [torch._dynamo.explain(unet.forward)(*a, **k)], labels)
    assert explained.graph_break_count == 0 and explained.graph_count == 1

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(unet.forward, backend="eager")
    eager = call(unet.forward, labels)
    torch.testing.assert_close(call(compiled, labels), eager, rtol=1e-5, atol=1e-5)
    call(compiled, labels.clone())  # a new context, same layout: no new graph
    assert counters["stats"]["unique_graphs"] == 1
    moved = torch.roll(labels, 3, dims=1)  # another layout (an edit): one more graph
    torch.testing.assert_close(
        call(compiled, moved), call(unet.forward, moved), rtol=1e-5, atol=1e-5
    )
    assert counters["stats"]["unique_graphs"] == 2
    torch._dynamo.reset()


def test_masked_strategy_equals_grouped_on_unet(tiny_sdxl):
    """Both strategies give the paper's result through the real processor."""
    z, embeds, key_items, labels, extra = _unet_inputs(tiny_sdxl, 2)

    def run(strategy):
        ctx = AttentionContext(
            tuple(labels.shape), [RowGroup(2, labels, key_items)], strategy=strategy
        )
        with torch.no_grad(), tiny_sdxl.attention.use(ctx):
            return tiny_sdxl.unet(z, 500, embeds, added_cond_kwargs=extra)[0]

    torch.testing.assert_close(run("masked"), run("grouped"), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown attention strategy"):
        AttentionContext(tuple(labels.shape), [RowGroup(2)], strategy="fast")


@pytest.mark.parametrize("strategy", ["grouped", "masked"])
def test_padded_keys_leave_the_unet_output_unchanged(tiny_sdxl, strategy):
    """Keys padded to a bucket (a compiled preparation's static shapes) belong to no item:
    the output is the unpadded one, and gradients reach only the real embeddings."""
    from dedit_app.tokens import Conditioning, key_bucket, pad_keys

    z, embeds, key_items, labels, extra = _unet_inputs(tiny_sdxl, 2)
    embeds.requires_grad_(True)
    cond = Conditioning(embeds[:1], key_items, None, [0, 1, 2])
    padded = pad_keys(cond, key_bucket(embeds.shape[1]))
    assert padded.embeds.shape[1] == 128 and (padded.key_items[122:] == -1).all()

    def run(c):
        ctx = AttentionContext(tuple(labels.shape), [RowGroup(2, labels, c.key_items)],
                               strategy=strategy)  # fmt: skip
        with tiny_sdxl.attention.use(ctx):
            out = tiny_sdxl.unet(z, 500, c.embeds.expand(2, -1, -1), added_cond_kwargs=extra)
        return out[0]

    plain, grown = run(cond), run(padded)
    torch.testing.assert_close(grown, plain, rtol=1e-5, atol=1e-5)  # summation order only
    (g_plain,) = torch.autograd.grad(plain.square().sum(), embeds)
    (g_grown,) = torch.autograd.grad(grown.square().sum(), embeds)
    torch.testing.assert_close(g_grown, g_plain, rtol=1e-4, atol=1e-5)
    assert key_bucket(1) == 128 and key_bucket(160) == 256 and key_bucket(256) == 256
    with pytest.raises(ValueError, match="cannot pad"):
        pad_keys(cond, 100)


def test_masked_strategy_keeps_one_compiled_graph_for_every_edit(tiny_sdxl):
    """With the masked strategy the layout is data: a moved item, another number of items
    and prompts of other lengths (key count marked dynamic) all reuse the first graph, and
    every result matches eager. This is what lets a compiled UNet serve edit after edit."""
    from torch._dynamo.utils import counters

    unet = tiny_sdxl.unet

    def call(forward, lengths, shift=0):
        z, embeds, key_items, labels, extra = _unet_inputs(tiny_sdxl, 1, lengths=lengths)
        labels = torch.roll(labels, shift, dims=1)
        ctx = AttentionContext(
            tuple(labels.shape), [RowGroup(1), RowGroup(1, labels, key_items)], strategy="masked"
        )
        embeds = torch.cat([torch.zeros_like(embeds), embeds])
        if forward is not unet.forward:
            ctx.mark_dynamic_keys()
            torch._dynamo.mark_dynamic(embeds, 1)
        both = {k: torch.cat([v, v]) for k, v in extra.items()}
        with torch.no_grad(), tiny_sdxl.attention.use(ctx):
            return forward(torch.cat([z, z]), 500, embeds, added_cond_kwargs=both)[0]

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(unet.forward, backend="eager")
    for lengths, shift in [((40, 77, 5), 0), ((40, 77, 5), 3), ((40, 40), 0), ((77, 40, 40, 9), 5)]:
        torch.testing.assert_close(
            call(compiled, lengths, shift), call(unet.forward, lengths, shift), rtol=1e-5, atol=1e-5
        )
    assert counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()
