"""Item tokens and prompt encoding for one (SD 1.5) or two (SDXL) text encoders.

Item ``k`` gets ``n`` new tokens (default 5) in every tokenizer and text encoder, e.g.
``#bag0 #bag0_1 #bag0_2 #bag0_3 #bag0_4`` for an item named "red bag" at index 0. The new
embedding rows start random, drawn from the normal distribution with the embedding table's
mean and std (seeded). Items of a reference photo prepared jointly use the ``$`` prefix, so
both sets live in one model.

Encoding (:func:`encode_items`): each item's prompt is encoded as if on its own (prompts of
one length share one batched call per encoder); a prompt holding learned tokens is padded to
40 tokens, plain text to 77. SDXL concatenates the penultimate
hidden states of both encoders (768 + 1280 = 2048 features) and averages the pooled,
projected embedding of the second encoder over the items; SD 1.5 uses the last hidden state
of its one encoder. The item sequences are concatenated along the token axis, and
``key_items`` records which item each token belongs to (the grouped attention's keys).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dedit_app.errors import ModelLoadError

__all__ = [
    "PLAIN_LENGTH",
    "TOKEN_LENGTH",
    "Conditioning",
    "add_item_tokens",
    "encode_items",
    "encode_prompt",
    "get_token_rows",
    "item_word",
    "key_bucket",
    "make_token_strings",
    "pad_keys",
    "prompt_length",
    "set_token_rows",
    "time_ids",
]

TOKEN_LENGTH = 40  # padded length of prompts made of learned tokens (paper)
PLAIN_LENGTH = 77  # CLIP's full context for typed text
_MAX_WORD = 12


def item_word(name: str) -> str:
    """A safe lowercase word for an item name: the first run of letters of the last word
    before any comma ("item" if there is none).

    ``"Red handbag"`` -> ``"handbag"``, ``"wall-other-merged"`` -> ``"wall"``,
    ``"dark red, top-left"`` -> ``"red"``: the last word is the noun in most labels and the
    part after a comma is a position, which keeps token strings readable.
    """
    words = name.split(",")[0].split()
    letters = re.findall(r"[a-z]+", words[-1].lower()) if words else []
    if not letters:
        letters = re.findall(r"[a-z]+", name.lower())
    return letters[0][:_MAX_WORD] if letters else "item"


def make_token_strings(names: Sequence[str], n_tokens: int = 5, prefix: str = "#") -> list[str]:
    """One token string per item: ``"{prefix}{word}{index}"`` then ``_1`` .. ``_{n-1}``.

    The item index makes every string unique however the names repeat; ``prefix`` keeps a
    reference photo's tokens (``"$"``) apart from the target's (``"#"``).
    """
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be at least 1, got {n_tokens}")
    if prefix not in ("#", "$"):
        raise ValueError(f"prefix must be '#' or '$', got {prefix!r}")
    out = []
    for index, name in enumerate(names):
        head = f"{prefix}{item_word(name)}{index}"
        out.append(" ".join([head] + [f"{head}_{i}" for i in range(1, n_tokens)]))
    return out


def add_item_tokens(model, token_strings: Sequence[str], *, seed: int = 0) -> list[str]:
    """Add every token of ``token_strings`` to each tokenizer and text encoder of ``model``.

    New embedding rows are ``N(mean, std)`` of that encoder's original table, drawn from a
    generator seeded with ``seed``. Returns the new tokens in order. The model must not hold
    item tokens yet (call ``model.reset()`` first).
    """
    tokens = [t for s in token_strings for t in s.split()]
    if len(set(tokens)) != len(tokens):
        raise ValueError("item token strings must be unique")
    gen = torch.Generator().manual_seed(int(seed))
    for tokenizer, encoder, base in zip(model.tokenizers, model.text_encoders, model.base_vocab):
        if len(tokenizer) != base:
            raise ModelLoadError(
                "The model already holds item tokens; it must be reset before new ones are added."
            )
        if tokenizer.add_tokens(tokens) != len(tokens):
            raise ModelLoadError(
                "Some item tokens are already words of the model's vocabulary; rename the items."
            )
        rows_now = encoder.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows_now:
            encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        table = encoder.get_input_embeddings().weight
        std, mean = torch.std_mean(table[:base].detach().float())
        rows = torch.randn(len(tokens), table.shape[1], generator=gen) * std + mean
        ids = tokenizer.convert_tokens_to_ids(tokens)
        with torch.no_grad():
            table[ids] = rows.to(table.device, table.dtype)
    return tokens


def _new_ids(model, index: int, tokens: Sequence[str]) -> list[int]:
    return model.tokenizers[index].convert_tokens_to_ids(list(tokens))


def get_token_rows(model, tokens: Sequence[str]) -> list[torch.Tensor]:
    """The embedding rows of ``tokens``, one ``[n, dim]`` float32 CPU tensor per encoder."""
    out = []
    for i, encoder in enumerate(model.text_encoders):
        table = encoder.get_input_embeddings().weight
        out.append(table[_new_ids(model, i, tokens)].detach().float().cpu())
    return out


def set_token_rows(model, tokens: Sequence[str], rows: Sequence[torch.Tensor]) -> None:
    """Write learned rows (one ``[n, dim]`` tensor per encoder) for ``tokens``."""
    for i, (encoder, r) in enumerate(zip(model.text_encoders, rows)):
        table = encoder.get_input_embeddings().weight
        if r.shape != (len(tokens), table.shape[1]):
            raise ModelLoadError(
                f"The learned token rows for text encoder {i + 1} have shape {tuple(r.shape)}, "
                f"but this model needs ({len(tokens)}, {table.shape[1]}); the weights belong to "
                "another model."
            )
        with torch.no_grad():
            table[_new_ids(model, i, tokens)] = r.to(table.device, table.dtype)


def prompt_length(model, prompt: str) -> int:
    """40 when ``prompt`` holds a learned item token, else 77 (DESIGN.md, step 2)."""
    base = model.base_vocab[0]
    ids = model.tokenizers[0](prompt, truncation=True, max_length=PLAIN_LENGTH).input_ids
    return TOKEN_LENGTH if any(i >= base for i in ids) else PLAIN_LENGTH


def encode_prompt(model, prompt: str, length: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode one prompt padded/truncated to ``length`` tokens.

    Returns ``(hidden [1, length, C], pooled [1, Cp] or None)``: SDXL: penultimate hidden
    states of both encoders concatenated and the second encoder's projected pooled output;
    SD 1.5: the last hidden state and None. Gradients flow when enabled by the caller.
    """
    return _encode_batch(model, [prompt], length)


def _encode_batch(
    model, prompts: Sequence[str], length: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`encode_prompt` for several prompts of one ``length`` in one call per text
    encoder: ``(hidden [K, length, C], pooled [K, Cp] or None)``."""
    hidden, pooled = [], None
    for i, (tokenizer, encoder) in enumerate(zip(model.tokenizers, model.text_encoders)):
        ids = tokenizer(
            list(prompts), padding="max_length", max_length=length, truncation=True,
            return_tensors="pt",
        ).input_ids.to(model.device)  # fmt: skip
        if model.is_sdxl:
            out = encoder(ids, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            if i == 1:
                pooled = out.text_embeds
        else:
            hidden.append(encoder(ids)[0])
    return torch.cat(hidden, dim=-1), pooled


@dataclass
class Conditioning:
    """The conditional input of the UNet for a set of items.

    ``embeds [1, P, C]``: the items' encoded prompts one after another; ``key_items [P]``
    long (CPU): the item index of each token; ``pooled [1, Cp]`` (SDXL) averaged over the
    items, else None; ``items``: the item indices, in order.
    """

    embeds: torch.Tensor
    key_items: torch.Tensor
    pooled: torch.Tensor | None
    items: list[int]

    def detach(self) -> Conditioning:
        pooled = None if self.pooled is None else self.pooled.detach()
        return Conditioning(self.embeds.detach(), self.key_items, pooled, self.items)


def key_bucket(keys: int) -> int:
    """The padded key count for ``keys`` keys: the next power of two, at least 128, so a
    compiled UNet with static shapes meets few key counts (1-3 items of learned tokens:
    128, 4-6: 256, 7-12: 512, ...)."""
    return max(128, 1 << max(0, keys - 1).bit_length())


def pad_keys(cond: Conditioning, size: int) -> Conditioning:
    """``cond`` with ``size - P`` padding keys appended: zero embeddings whose item is -1,
    which no query attends to (grouped and masked attention exclude them), so the UNet's
    result is unchanged. Gradients flow through ``embeds`` as before."""
    extra = size - cond.embeds.shape[1]
    if extra < 0:
        raise ValueError(f"cannot pad {cond.embeds.shape[1]} keys down to {size}")
    if extra == 0:
        return cond
    embeds = F.pad(cond.embeds, (0, 0, 0, extra))
    key_items = torch.cat([cond.key_items, cond.key_items.new_full((extra,), -1)])
    return Conditioning(embeds, key_items, cond.pooled, cond.items)


def encode_items(model, prompts: dict[int, str]) -> Conditioning:
    """Encode each item's prompt (``{item index: prompt}``) and concatenate them.

    Learned-token prompts are encoded at 40 tokens, plain text at 77. Items not listed get
    no keys (their pixels, if any, attend to nothing).
    """
    if not prompts:
        raise ValueError("encode_items needs at least one item prompt")
    items = sorted(prompts)
    lengths = {item: prompt_length(model, prompts[item]) for item in items}
    # one encoder call per prompt length (learned 40, typed 77), not one per item
    hidden, pooled = {}, {}
    for length in sorted(set(lengths.values())):
        same = [item for item in items if lengths[item] == length]
        h, p = _encode_batch(model, [prompts[item] for item in same], length)
        for k, item in enumerate(same):
            hidden[item] = h[k]
            pooled[item] = None if p is None else p[k]
    embeds = torch.cat([hidden[item] for item in items])[None]
    keys = torch.cat([torch.full((lengths[item],), item, dtype=torch.long) for item in items])
    mean_pooled = None
    if pooled[items[0]] is not None:
        mean_pooled = torch.stack([pooled[item] for item in items]).mean(dim=0, keepdim=True)
    return Conditioning(embeds, keys, mean_pooled, items)


def time_ids(model, size: tuple[int, int], batch: int = 1) -> torch.Tensor | None:
    """SDXL's micro-conditioning for a generation of ``size = (h, w)``: original size = crop
    target = ``(h, w)``, crop corner ``(0, 0)``. ``[batch, 6]`` in the model dtype; None for
    SD 1.5."""
    if not model.is_sdxl:
        return None
    h, w = int(size[0]), int(size[1])
    ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=model.dtype, device=model.device)
    return ids.repeat(batch, 1)
