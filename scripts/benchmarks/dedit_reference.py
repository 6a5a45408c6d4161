"""Shared by the engine benchmarks: the paper's formulation, and the models to run it on.

- :class:`PaperCrossAttention`: D-Edit's cross-attention as the reference code computes it:
  per item, keys/values from that item's own encoder states, a full softmax map of *all*
  pixels over them, masked to the item's pixels, summed over items.
- :func:`paper_step` / :func:`our_step`: one denoising step's UNet work the paper's way (two
  UNet calls: plain unconditional, per-item conditional) and ours (one batched call);
  :func:`paper_unet_calls` runs a whole edit through the real sampler the paper's way.
- :func:`tiny_model` (CPU) and :func:`full_sdxl` (the published SDXL base configurations as
  constants, random weights, built on the GPU: timings are real with no download).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from benchmarks.common import scratch_folder
from dedit_app.attention import AttentionContext, RowGroup, layer_labels

# ---- the published SDXL base 1.0 configurations (architecture only) -----------------------
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "attention_head_dim": (5, 10, 20),
    "transformer_layers_per_block": (1, 2, 10),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
}
CLIP_L = {  # text_encoder: CLIP ViT-L/14 text tower
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "projection_dim": 768, "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
}  # fmt: skip
CLIP_BIGG = {  # text_encoder_2: OpenCLIP ViT-bigG/14 text tower, with projection
    "vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
    "num_attention_heads": 20, "max_position_embeddings": 77, "hidden_act": "gelu",
    "projection_dim": 1280, "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
}  # fmt: skip
SDXL_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}
SDXL_SCHEDULER = {
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "steps_offset": 1,
    "timestep_spacing": "leading",
}  # fmt: skip


def tiny_model(folder: Path | None = None):
    """The tiny random SDXL of the tests, on the CPU in fp32."""
    from dedit_app.models import load_model
    from dedit_app.tiny_models import save_tiny_sdxl

    folder = folder or scratch_folder("dedit-bench-")
    return load_model(save_tiny_sdxl(folder / "tiny-sdxl"), device="cpu")


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def full_sdxl(device: str = "cuda", dtype: torch.dtype = torch.bfloat16):
    """Full-size SDXL base architecture with random weights, built directly on ``device``
    in ``dtype`` (under a FakeTensorMode: shapes only, no memory, a few seconds)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from dedit_app.models import model_from_components
    from dedit_app.tiny_models import write_clip_tokenizer

    folder = scratch_folder("dedit-sdxl-tok-")
    write_clip_tokenizer(folder / "t1", vocab_size=49408)
    write_clip_tokenizer(folder / "t2", vocab_size=49408, pad_token="!")
    torch.manual_seed(0)
    # Built in ``dtype`` directly: no float32 copy to cast, and under a FakeTensorMode
    # (benchmarks.estimate) a cast would have to swap every parameter, which fake tensors refuse.
    with torch.device(device), _default_dtype(dtype):
        unet = UNet2DConditionModel(**SDXL_UNET)
        vae = AutoencoderKL(**SDXL_VAE)  # bf16 is safe for this VAE (fp32 range)
        te1 = CLIPTextModel(CLIPTextConfig(**CLIP_L))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG))
    tokenizers = [
        CLIPTokenizer.from_pretrained(folder / "t1"),
        CLIPTokenizer.from_pretrained(folder / "t2"),
    ]
    scheduler = EulerDiscreteScheduler.from_config(SDXL_SCHEDULER)
    return model_from_components(
        unet, vae, [te1, te2], tokenizers, scheduler, source="random", name="sdxl-random"
    )


# ---- the paper's cross-attention -----------------------------------------------------------


class PaperCrossAttention:
    """Per item: ``softmax(q k_i^T) v_i`` over all pixels, masked to item i's pixels, summed
    (the reference code's ``ca_forward_decom``, on a diffusers Attention)."""

    def __init__(self, labels: torch.Tensor, segments: list[tuple[int, int, int]]) -> None:
        self.labels = labels
        self.segments = segments

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw
    ):
        b, n, _ = hidden_states.shape
        heads = attn.heads
        q = attn.to_q(hidden_states)
        d = q.shape[-1] // heads
        q = q.view(b, n, heads, d).transpose(1, 2)
        items = layer_labels(self.labels, n)
        out = 0
        for item, start, stop in self.segments:
            e = encoder_hidden_states[:, start:stop]
            k = attn.to_k(e).view(b, -1, heads, d).transpose(1, 2)
            v = attn.to_v(e).view(b, -1, heads, d).transpose(1, 2)
            a = torch.softmax((q @ k.transpose(-1, -2)) * attn.scale, dim=-1)
            a = a.masked_fill((items != item)[None, None, :, None], 0)
            out = out + a @ v
        out = out.transpose(1, 2).reshape(b, n, heads * d).to(q.dtype)
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def segments_of(key_items: torch.Tensor) -> list[tuple[int, int, int]]:
    """``[(item, start, stop)]`` of the consecutive key runs of a Conditioning."""
    runs, start = [], 0
    values = key_items.tolist()
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            runs.append((values[start], start, i))
            start = i
    return runs


@contextlib.contextmanager
def paper_attention(model, labels: torch.Tensor, key_items: torch.Tensor):
    """Temporarily replace the grouped processors by the paper's per-item ones."""
    unet = model.unet
    saved = dict(unet.attn_processors)
    proc = PaperCrossAttention(labels, segments_of(key_items))
    unet.set_attn_processor(
        {k: proc if k.endswith("attn2.processor") else v for k, v in saved.items()}
    )
    try:
        yield
    finally:
        unet.set_attn_processor(saved)


@contextlib.contextmanager
def plain_attention(model):
    """The stock diffusers processor everywhere (the paper's unconditional call)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet = model.unet
    saved = dict(unet.attn_processors)
    unet.set_attn_processor({k: AttnProcessor2_0() for k in saved})
    try:
        yield
    finally:
        unet.set_attn_processor(saved)


# ---- one denoising step, both ways ------------------------------------------------------------


def step_inputs(
    model, size: tuple[int, int], n_items: int, batch: int = 1, seed: int = 0, making=None
):
    """Latents, conditioning and a label map for a ``size`` bucket with ``n_items`` items
    of learned tokens (fresh random tokens; the model is reset first). ``making``: the
    context the embedding tables grow in (the estimate's FakeTensorMode), if any."""
    from dedit_app.tokens import add_item_tokens, encode_items, make_token_strings, time_ids

    strings = make_token_strings([f"item{i}" for i in range(n_items)])
    with making or contextlib.nullcontext():
        model.reset()
        add_item_tokens(model, strings, seed=seed)
    with torch.no_grad():
        cond = encode_items(model, dict(enumerate(strings)))
    f = model.vae_scale_factor
    lh, lw = size[0] // f, size[1] // f
    g = torch.Generator().manual_seed(seed)
    # items as vertical bands, so every item owns pixels at every UNet level
    labels = (torch.arange(lw)[None, :].expand(lh, lw) * n_items // lw).contiguous()
    z = torch.randn(batch, 4, lh, lw, generator=g).to(model.device, model.dtype)
    return z, cond, labels.to(model.device), time_ids(model, size)


def our_step(model, z, t, cond, labels, tids, guidance: float = 3.0):
    """Ours: both guidance branches in one batched UNet call, grouped cross-attention."""
    b = z.shape[0]
    embeds = cond.embeds.expand(b, -1, -1)
    pooled = cond.pooled.expand(b, -1)
    extra = {
        "text_embeds": torch.cat([torch.zeros_like(pooled), pooled]),
        "time_ids": tids.expand(2 * b, -1),
    }
    groups = [RowGroup(b), RowGroup(b, labels, cond.key_items)]
    ctx = AttentionContext(tuple(labels.shape), groups, z.device, model.edit_attention)
    with torch.no_grad(), model.attention.use(ctx):
        pred = model.run_unet(torch.cat([z, z]), t, torch.cat([torch.zeros_like(embeds), embeds]),
                              added_cond_kwargs=extra, return_dict=False)[0]  # fmt: skip
    uncond, text = pred.chunk(2)
    return uncond + guidance * (text - uncond)


def paper_step(model, z, t, cond, labels, tids, guidance: float = 3.0):
    """The paper's: an unconditional UNet call (77 zero tokens, stock attention), then a
    conditional one with per-item attention maps."""
    b = z.shape[0]
    zeros = torch.zeros(b, 77, cond.embeds.shape[-1], device=z.device, dtype=z.dtype)
    pooled = cond.pooled.expand(b, -1)
    uncond_extra = {"text_embeds": torch.zeros_like(pooled), "time_ids": tids.expand(b, -1)}
    cond_extra = {"text_embeds": pooled, "time_ids": tids.expand(b, -1)}
    embeds = cond.embeds.expand(b, -1, -1)
    with torch.no_grad():
        with plain_attention(model):
            uncond = model.unet(z, t, zeros, added_cond_kwargs=uncond_extra, return_dict=False)[0]
        with paper_attention(model, labels, cond.key_items):
            text = model.unet(z, t, embeds, added_cond_kwargs=cond_extra, return_dict=False)[0]
    return uncond + guidance * (text - uncond)


@contextlib.contextmanager
def paper_unet_calls(model, latent_labels: torch.Tensor, key_items: torch.Tensor):
    """Make the engine's batched guided UNet call (``model.run_unet`` with the
    unconditional rows first) run the paper's way: two UNet calls, the unconditional one on
    77 zero tokens with stock attention, the conditional one with per-item attention maps.
    So a whole edit through the real sampler (pasting, decode, composite) can be timed
    both ways."""

    def run(z, t, encoder_hidden_states, added_cond_kwargs, return_dict=False):
        b = z.shape[0] // 2
        embeds = encoder_hidden_states[b:]
        zeros = torch.zeros(b, 77, embeds.shape[-1], device=z.device, dtype=embeds.dtype)
        halves = [{k: v[:b] for k, v in added_cond_kwargs.items()},
                  {k: v[b:] for k, v in added_cond_kwargs.items()}]  # fmt: skip
        with plain_attention(model):
            uncond = model.unet(z[:b], t, zeros, added_cond_kwargs=halves[0], return_dict=False)
        with paper_attention(model, latent_labels, key_items):
            text = model.unet(z[b:], t, embeds, added_cond_kwargs=halves[1], return_dict=False)
        return (torch.cat([uncond[0], text[0]]),)

    model.run_unet = run  # an instance attribute shadows the method
    try:
        yield
    finally:
        del model.run_unet


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def achieved_tflops(fn, seconds: float) -> float | None:
    """FLOPs of one call of ``fn`` (counted by torch) / ``seconds``, in TFLOP/s."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / seconds / 1e12
    except Exception:
        return None


def tflops_note(fn, seconds: float, device: torch.device) -> str:
    """``"; N TFLOP/s of P measured matmul peak"`` for one call of ``fn`` taking
    ``seconds`` on a CUDA ``device``; "" elsewhere (no peak to compare with)."""
    if device.type != "cuda":
        return ""
    achieved = achieved_tflops(fn, seconds)
    if achieved is None:
        return ""
    return f"; {achieved:.0f} TFLOP/s of {matmul_peak_tflops():.0f} measured matmul peak"


def matmul_peak_tflops(dtype: torch.dtype = torch.bfloat16, n: int = 8192) -> float:
    """The GPU's measured dense matmul rate (the denominator for achieved TFLOP/s)."""
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * 20 / (start.elapsed_time(end) / 1e3) / 1e12
