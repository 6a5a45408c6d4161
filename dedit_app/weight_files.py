"""Which precisions of weights a diffusers model folder holds in full.

Hub repositories such as SDXL base keep two copies of every weight file: the full one
(``unet/diffusion_pytorch_model.safetensors``, about 14 GB for SDXL in all) and a
half-precision one beside it (``unet/diffusion_pytorch_model.fp16.safetensors``, about
7 GB). diffusers calls the second a *variant*. A model that runs in bf16 or fp16 loses
nothing by reading the fp16 copy (bf16 keeps fewer mantissa bits than fp16), so the
editor downloads only that one for a GPU; and whichever copy is already on disk is used
rather than downloading the other. Some repositories publish half-precision copies of only
some parts (a VAE swapped in with its full file alone): each part is then read from its own
best copy, and a download fetches full files only for the parts that lack a half one.

    weight_sets(folder)            # {None, "fp16"}: None is the plain (full) files
    pick_variants(folder, "fp16")  # {"unet": "fp16", "vae": None, ...}: per part, "fp16"
                                   # where it is held in full, else None where that is

Nothing here imports torch: it reads file names only.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

WEIGHT_SUFFIX = ".safetensors"
HALF = "fp16"  # the half-precision variant hub repositories publish
# The parts of a pipeline that carry weights; tokenizers and schedulers are configs only.
WEIGHTED = ("unet", "vae", "text_encoder", "text_encoder_2")
_SHARD = re.compile(r"(.+)-(\d{5})-of-(\d{5})")

__all__ = [
    "HALF",
    "WEIGHTED",
    "WEIGHT_SUFFIX",
    "held_whole",
    "one_variant",
    "part_sets",
    "pick_variants",
    "variant_of",
    "weight_bytes",
    "weight_sets",
]


def _read_name(name: str) -> tuple[str | None, int, int]:
    """``(variant, shard, of)`` from a weight file's name; a single file is shard 1 of 1."""
    stem = name[: -len(WEIGHT_SUFFIX)] if name.endswith(WEIGHT_SUFFIX) else name
    shard = _SHARD.fullmatch(stem)
    base, number, total = shard.groups() if shard else (stem, "1", "1")
    return (base.split(".", 1)[1] if "." in base else None), int(number), int(total)


def variant_of(name: str) -> str | None:
    """The variant a weight file's name says: ``model.fp16.safetensors`` and the shard
    ``diffusion_pytorch_model.fp16-00001-of-00002.safetensors`` are "fp16";
    ``model.safetensors`` is None (the plain, full-precision file)."""
    return _read_name(name)[0]


def _complete_in(component: Path) -> set[str | None]:
    """The variants whose weights ``component`` (a folder such as ``unet/``) holds whole:
    a single file, or every shard of a sharded set. A dangling link (a hub cache whose
    blob is gone) does not count."""
    shards: dict[tuple[str | None, int], set[int]] = defaultdict(set)
    for file in component.glob(f"*{WEIGHT_SUFFIX}"):
        if file.is_file():
            variant, number, total = _read_name(file.name)
            shards[(variant, total)].add(number)
    return {v for (v, total), numbers in shards.items() if numbers >= set(range(1, total + 1))}


def _components(folder: Path) -> list[str]:
    """The weighted parts the model has: those ``model_index.json`` names (so a download
    that has not yet reached a part does not pass for complete), else the folders there."""
    index = folder / "model_index.json"
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = None
    if isinstance(doc, dict):
        named = [c for c in WEIGHTED if isinstance(doc.get(c), list) and doc[c][0] is not None]
        if named:
            return named
    return [c for c in WEIGHTED if (folder / c).is_dir()]


def part_sets(folder: str | Path) -> dict[str, set[str | None]]:
    """Each weighted part of the model in ``folder`` (``unet``, ``vae``, ...) and the
    variants it holds whole; empty when there are no parts."""
    folder = Path(folder)
    return {part: _complete_in(folder / part) for part in _components(folder)}


def weight_sets(folder: str | Path) -> set[str | None]:
    """The variants (None: the plain files) held in full by every weighted part of the
    model in ``folder``; empty when some part has no complete set, or there are no parts."""
    sets = list(part_sets(folder).values())
    return set.intersection(*sets) if sets else set()


def held_whole(folder: str | Path) -> bool:
    """True when every weighted part of the model in ``folder`` holds some variant whole
    (not necessarily the same one: a repository may publish half-precision copies of only
    some parts), so it loads without a download."""
    sets = part_sets(folder)
    return bool(sets) and all(sets.values())


def pick_variants(folder: str | Path, preferred: str | None) -> dict[str, str | None]:
    """The variant to load of each weighted part of ``folder``: ``preferred`` where it is
    there in full, else the plain files, else any complete variant; ``preferred`` where
    nothing is complete (loading then says what is missing)."""
    return {part: _pick(held, preferred) for part, held in part_sets(folder).items()}


def one_variant(variants: dict[str, str | None], default: str | None) -> str | None | dict:
    """``variants`` as one variant when every part takes the same (``default`` when there
    are no parts), else as they are: what a download asks for."""
    kinds = set(variants.values())
    if not kinds:
        return default
    return kinds.pop() if len(kinds) == 1 else dict(variants)


def weight_bytes(folder: str | Path, parts: tuple[str, ...] = WEIGHTED) -> int:
    """Bytes on disk of the weight files of ``parts`` of the model in ``folder`` (a hub
    cache's links count as their blobs; a dangling one, of an unfinished download, as 0)."""
    total = 0
    for part in parts:
        for file in (Path(folder) / part).glob(f"*{WEIGHT_SUFFIX}"):
            try:
                total += file.stat().st_size
            except OSError:
                continue
    return total


def _pick(held: set[str | None], preferred: str | None) -> str | None:
    if preferred in held:
        return preferred
    if None in held:
        return None
    return min(held) if held else preferred
