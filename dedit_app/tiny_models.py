"""Tiny random SDXL and SD 1.5 models in diffusers format, built offline.

They have the real architectures (UNet with cross-attention at two resolutions, a VAE that
downsamples by 8, CLIP text encoders, the schedulers the real models ship) at toy sizes, so
tests, benchmarks, UI tests and screenshots exercise exactly the code path of a real model
(:func:`dedit_app.models.load_model` on a folder) in seconds on a CPU. Their pictures are noise.

The tokenizers are written as ``vocab.json`` + ``merges.txt`` like the published CLIP
tokenizers: byte-level BPE over the 256 byte symbols plus a few merges, so any text encodes
(one token per letter where no merge applies). Weights are safetensors only.

    folder = save_tiny_sdxl("/tmp/tiny-sdxl")      # 256 x 256 images, latents 32 x 32
    folder = save_tiny_sd15("/tmp/tiny-sd15")
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

__all__ = [
    "TINY_RESOLUTION",
    "save_tiny_model",
    "save_tiny_sd15",
    "save_tiny_sdxl",
    "tiny_photo",
    "write_clip_tokenizer",
]

TINY_RESOLUTION = 256  # UNet sample_size 32 x VAE factor 8
_TEXT_HIDDEN = 32  # each CLIP encoder; SDXL's cross-attention width is the sum (64)

# A few merges so common words become one token (the rest spell out letter by letter).
_WORDS = ("a", "photo", "of", "bag", "handbag", "white", "red", "table", "person", "wall", "cat")

_SDXL_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}
_SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters (byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes)}


def _merges_for(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """Left-to-right merges that build each word (with its end-of-word mark) from letters."""
    merges: list[tuple[str, str]] = []
    for word in words:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            if pair not in merges:
                merges.append(pair)
            symbols = [symbols[0] + symbols[1]] + symbols[2:]
    return merges


def write_clip_tokenizer(
    folder: str | Path, *, pad_token: str = "<|endoftext|>", vocab_size: int | None = None
) -> int:
    """Write a small CLIP tokenizer (vocab.json, merges.txt, configs) into ``folder``.

    Returns the vocabulary size. ``pad_token`` is ``"<|endoftext|>"`` for SDXL's first
    tokenizer and SD 1.5, ``"!"`` for SDXL's second (as the published models do).
    ``vocab_size`` pads the vocabulary with unreachable entries up to that size (49408 for
    the published CLIP size, so start/end tokens get their real ids 49406/49407).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges = _merges_for(_WORDS)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    while vocab_size is not None and len(vocab) < vocab_size - 2:
        vocab[f"<|unused{len(vocab)}|>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
    }
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=1), encoding="utf-8")
    return len(vocab)


def _text_config(vocab_size: int, projection: bool):  # -> CLIPTextConfig
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=_TEXT_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=_TEXT_HIDDEN,
        # The real end-of-text id, so pooling picks the end-of-text position even after new
        # tokens are added (the legacy id 2 of the published configs would pick the largest id).
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        architectures=["CLIPTextModelWithProjection" if projection else "CLIPTextModel"],
    )


def _unet(sdxl: bool):  # -> UNet2DConditionModel
    from diffusers import UNet2DConditionModel

    extra = (
        {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            # pooled text (32) + 6 time ids x 8
            "projection_class_embeddings_input_dim": _TEXT_HIDDEN + 6 * 8,
            "use_linear_projection": True,
        }
        if sdxl
        else {}
    )
    return UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        # Cross-attention at both resolutions (32x32 and 16x16 latents) so label maps are
        # resized to more than one layer size.
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4),  # diffusers' name for the number of heads
        transformer_layers_per_block=1,
        cross_attention_dim=2 * _TEXT_HIDDEN if sdxl else _TEXT_HIDDEN,
        norm_num_groups=32,
        **extra,
    )


def _vae(sdxl: bool):  # -> AutoencoderKL
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # 3 downsamples: factor 8, as the real VAE
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=TINY_RESOLUTION,
        scaling_factor=0.13025 if sdxl else 0.18215,
        force_upcast=sdxl,
    )


def save_tiny_model(folder: str | Path, family: str = "sdxl", seed: int = 0) -> Path:
    """Build a tiny random model of ``family`` ("sdxl" or "sd15") and save it in diffusers
    format (model_index.json, one subfolder per component, safetensors) into ``folder``.

    Deterministic for a given ``seed``. Overwrites ``folder``'s model files.
    """
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        PNDMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from dedit_app.models import _quiet_libraries

    _quiet_libraries()
    if family not in ("sdxl", "sd15"):
        raise ValueError(f"family must be 'sdxl' or 'sd15', got {family!r}")
    sdxl = family == "sdxl"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / ".tokenizers"
    vocab_size = write_clip_tokenizer(staging / "tokenizer")
    if sdxl:
        write_clip_tokenizer(staging / "tokenizer_2", pad_token="!")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = _unet(sdxl)
        vae = _vae(sdxl)
        text_encoder = CLIPTextModel(_text_config(vocab_size, projection=False))
        text_encoder_2 = (
            CLIPTextModelWithProjection(_text_config(vocab_size, True)) if sdxl else None
        )
    tokenizer = CLIPTokenizer.from_pretrained(staging / "tokenizer")
    if sdxl:
        pipe = StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=CLIPTokenizer.from_pretrained(staging / "tokenizer_2"),
            unet=unet,
            scheduler=EulerDiscreteScheduler.from_config(_SDXL_SCHEDULER),
        )
    else:
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=PNDMScheduler.from_config(_SD15_SCHEDULER),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.save_pretrained(folder, safe_serialization=True)
    # Replace the saved tokenizers by the written vocab/merges files: the layout of the
    # published repositories, which is what loading must handle.
    for name in ("tokenizer", "tokenizer_2") if sdxl else ("tokenizer",):
        shutil.rmtree(folder / name, ignore_errors=True)
        shutil.move(str(staging / name), str(folder / name))
    shutil.rmtree(staging, ignore_errors=True)
    return folder


def save_tiny_sdxl(folder: str | Path, seed: int = 0) -> Path:
    """A tiny random SDXL (two text encoders, 256 x 256 images) in diffusers format."""
    return save_tiny_model(folder, "sdxl", seed)


def save_tiny_sd15(folder: str | Path, seed: int = 0) -> Path:
    """A tiny random SD 1.5 (one text encoder, 256 x 256 images) in diffusers format."""
    return save_tiny_model(folder, "sd15", seed)


def tiny_photo():  # -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]
    """A 300 x 200 (H x W) picture with four items, for tests and checks: ``image``
    (300, 200, 3) uint8 (smooth gradients), ``labels`` (300, 200) int32 (a wall, a table
    on the right, a floor along the bottom, a bag), and the four names."""
    import numpy as np

    yy, xx = np.mgrid[0:300, 0:200]
    image = np.stack([xx * 255 // 199, yy * 255 // 299, (xx + yy) % 256], -1).astype(np.uint8)
    labels = np.zeros((300, 200), np.int32)
    labels[:, 100:] = 1
    labels[220:, :] = 2
    labels[50:120, 30:90] = 3
    return image, labels, ("wall", "table", "floor", "red bag")
