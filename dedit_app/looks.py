"""How each item looks now: the tokens and prompt every edit paints it with.

An item is photographed once and learned as a few tokens. Edits then change how it looks,
and later edits must paint it as it looks *now*, not as it was photographed:

- a text edit gives it a prompt (kept in ``Item.prompt``; ``*`` in it stands for the
  item's tokens);
- a swap gives it the tokens a joint preparation learned for an item of the reference
  photo. The history entry of the swap names that item (``reference_item``) and the
  preparation its tokens came from (``weights_id``); while the project still holds that
  preparation, those tokens stand for the item. Preparing again learns the item from its
  pixels as they are, swapped look included, so older swaps no longer count then; a swap
  that *lands* after such a preparation was not seen by it, and keeps its look when that
  preparation learned the same reference photo (:func:`carry_look`).

- a copy (a duplicate edit) is a new item that looks as its item looked when it was copied:
  its tokens (or the reference's, when that item was swapped), and its typed prompt, which
  the copy's ``Item.prompt`` takes. The entry of the duplicate names the copies
  (``copies``) and their items (``moves``), and counts with the preparation it was made
  with (``weights_id``), as a swap does; preparing again learns each copy on its own.

A move, resize, removal or redraw of a swapped or retyped item paints it with its look, and
``*`` in a prompt typed after a swap stands for the reference item's tokens: "a red *"
makes the swapped-in cup red, not the cup photographed.

History entries are plain JSON, so no format change was needed: older versions ignore the
two keys and paint a swapped item with its own tokens, as they always did.
"""

from __future__ import annotations

from typing import Any

from dedit_app.going_back import standing

__all__ = [
    "carry_look",
    "copy_sources",
    "item_looks",
    "look_names",
    "missing_looks",
    "swapped_items",
]


def swapped_items(project) -> dict[int, dict[str, Any]]:
    """Item id -> the history entry of the swap that gives it its look now (the newest
    swap of it made with the preparation the project holds). Items never swapped, or
    swapped only before the latest preparation (or before versions recorded
    ``weights_id``), or whose swap was gone back before, are left out."""
    weights_id = (project.training or {}).get("weights_id")
    out: dict[int, dict[str, Any]] = {}
    if not weights_id:
        return out
    for record in standing(project.history):
        item = record.get("item")
        if record.get("kind") != "swap" or not isinstance(item, int):
            continue
        if record.get("weights_id") == weights_id and isinstance(record.get("reference_item"), int):
            out[item] = record
        else:  # swapped with an older preparation: learned since as it looks
            out.pop(item, None)
    return out


def carry_look(record: dict[str, Any], training: dict[str, Any] | None) -> None:
    """Bring the history entry of a swap or a duplicate (``record``, as it is applied) up
    to the project's preparation ``training``, in place.

    Such an edit made with an earlier preparation can land after the project was
    prepared again: it was queued behind the preparation, or its results waited in the
    strip for a click. That preparation learned the item as it looked *before* the swap,
    and has no tokens for a copy made after it, so the entry must keep counting:

    - a swap, when it was prepared jointly with the same reference photo
      (``reference_key``, which names its picture and items): it holds tokens for the
      very reference item. Otherwise it has no tokens for that look and the entry stays as
      it is (the item is painted with its own);
    - a duplicate always: the copies look as their items do in the new preparation."""
    now = training or {}
    old = record.get("weights_id")
    if not (old and now.get("weights_id") and old != now["weights_id"]):
        return
    kind = record.get("kind")
    joint = record.get("reference_key") and record["reference_key"] == now.get("reference_key")
    if kind == "duplicate" or (kind == "swap" and joint):
        record["weights_id"] = now["weights_id"]


def copy_sources(record: dict[str, Any]) -> list[tuple[int, int]]:
    """``[(copy id, id of the item copied), ...]`` of a duplicate's history entry; empty
    for any other entry, or one whose lists do not match."""
    copies, moves = record.get("copies"), record.get("moves")
    if record.get("kind") != "duplicate" or not isinstance(copies, list):
        return []
    if not isinstance(moves, list) or len(moves) != len(copies):
        return []
    out = []
    for new, move in zip(copies, moves):
        if isinstance(new, int) and isinstance(move, list) and move and isinstance(move[0], int):
            out.append((new, move[0]))
    return out


def item_looks(project, tokens: list[str], reference_tokens: list[str]) -> tuple[list, list]:
    """``(bases, looks)`` per item, both lists of prompt strings as long as
    ``project.items``:

    - ``bases[k]``: what ``*`` stands for in item k's prompts, its learned tokens
      (``tokens[k]``); after a swap, the reference item's (``reference_tokens[j]``); for a
      copy made since the preparation, its item's base then; "" for an item added after
      the preparation that none of these gives a look (it cannot be edited yet);
    - ``looks[k]``: the prompt item k is painted with when an edit does not retype it:
      its typed prompt with ``*`` replaced by ``bases[k]``, else ``bases[k]``.

    The history is read in order, so a copy looks as its item looked when copied, and a
    swap of the item afterwards leaves the copy as it was.
    """
    n = len(project.items)
    bases = [tokens[k] if k < len(tokens) else "" for k in range(n)]
    weights_id = (project.training or {}).get("weights_id")
    for record in standing(project.history) if weights_id else []:
        current = record.get("weights_id") == weights_id
        item = record.get("item")
        if record.get("kind") == "swap" and isinstance(item, int) and 0 <= item < n:
            j = record.get("reference_item")
            if current and isinstance(j, int) and 0 <= j < len(reference_tokens):
                bases[item] = reference_tokens[j]
            elif not current and item < len(tokens):  # learned since as it looks
                bases[item] = tokens[item]
        for new, old in copy_sources(record) if current else []:
            if 0 <= new < n and 0 <= old < n:
                bases[new] = bases[old]
    looks = list(bases)
    for k, item in enumerate(project.items):
        typed = (item.prompt or "").strip()
        if typed and bases[k]:
            looks[k] = typed.replace("*", bases[k])
    return bases, looks


def missing_looks(project, tokens: list[str], reference_tokens: list[str]) -> list[int]:
    """The items no look is known for: added after the preparation (``tokens``), other
    than by a duplicate, whose copies look as their items. They cannot be edited, nor
    painted beside an edit, until the project is prepared again."""
    bases, _ = item_looks(project, tokens, reference_tokens)
    return [k for k, base in enumerate(bases) if not base]


def look_names(project) -> dict[int, str]:
    """Item id -> a few words for the look a swap gave it, for lists and ``dedit info``:
    "“cup” from kitchen.jpg" (the reference item's name when it was swapped, and the
    reference photo's file name when known)."""
    out = {}
    for k, record in swapped_items(project).items():
        name = str(record.get("reference_name") or f"item {record['reference_item']}")
        source = record.get("reference")
        # quoted: found items are named "orange, bottom-left", which runs into the words
        out[k] = f"“{name}” from {source}" if source else f"“{name}” from the reference"
    return out
