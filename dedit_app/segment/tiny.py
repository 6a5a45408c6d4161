"""Tiny random SAM and Grounding DINO checkpoints, built offline from the packages' own
model classes, for tests and benchmarks.

They are written in the published formats (a SAM ``.pth`` state dict; a Grounding DINO
``save_pretrained`` folder with a BERT tokenizer made from a written vocabulary) so that
loading them exercises exactly the code that loads real weights. Their outputs are random.
"""

from __future__ import annotations

from pathlib import Path

from dedit_app.segment.sam import SamArch, build_sam

__all__ = ["TINY_SAM", "TINY_VOCAB", "save_tiny_grounding_dino", "save_tiny_sam"]

# 64 px input, 8 px patches -> an 8 x 8 embedding, 32 x 32 low-res masks.
TINY_SAM = SamArch(
    encoder_embed_dim=32,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    image_size=64,
    patch_size=8,
    window_size=4,
    prompt_embed_dim=32,
    mask_in_chans=4,
    decoder_depth=2,
    decoder_mlp_dim=64,
    decoder_num_heads=2,
    iou_head_depth=2,
    iou_head_hidden_dim=32,
)

TINY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",",
    "a", "the", "handbag", "bag", "table", "person", "wall", "red", "blue", "dress",
    "hand", "##s", "##bag",
]  # fmt: skip


def save_tiny_sam(path: str | Path, arch: SamArch = TINY_SAM, seed: int = 0) -> Path:
    """Write a random SAM of ``arch`` as a ``.pth`` state dict (tensors only)."""
    import torch

    torch.manual_seed(seed)
    path = Path(path)
    torch.save(build_sam(arch).state_dict(), path)
    return path


def save_tiny_grounding_dino(folder: str | Path, seed: int = 0, num_queries: int = 8) -> Path:
    """Write a random Grounding DINO (Swin + BERT, a few thousand parameters) and its
    processor into ``folder`` with ``save_pretrained``."""
    import torch
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
        tokenizer=BertTokenizer(str(vocab)),
    )
    config = GroundingDinoConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,  # the box-head weight tying needs at least two layers
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        num_queries=num_queries,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
        use_timm_backbone=False,
        backbone_config=SwinConfig(
            window_size=7,
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            image_size=96,
            out_indices=[2, 3, 4],
        ),
        max_text_len=32,
        text_config={
            "model_type": "bert",
            "vocab_size": len(TINY_VOCAB),
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 8,
            "max_position_embeddings": 64,
        },
    )
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
