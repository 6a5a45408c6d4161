"""Small pieces of the sentences the editor and the command line show."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["counted", "edit_words", "free_name"]


def counted(n: int, noun: str) -> str:
    """``"1 item"``, ``"3 items"``: ``n`` and ``noun`` in the singular only for one (nouns
    whose plural adds an s: item, edit, job, result)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def edit_words(record: dict[str, Any], names: list[str]) -> str:
    """One line for an applied edit of a project's history (``record``, as ``project.json``
    keeps it; ``names``: the items' names now, used when the record does not keep their
    names then, ``items_before``): "text: bag → “a white handbag”",
    "swap: bag ← “cup” from kitchen.jpg", "move: bag, cup", "duplicate: cup", "remove: cup",
    "back: to before edit 3"."""
    from dedit_app.project import items_recorded  # not at the top: `dedit --help` stays quick

    then = items_recorded(record)
    if then is not None:
        names = [item.name for item in then]  # an item renamed or found again since

    def name(item: Any) -> str:
        ok = isinstance(item, int) and 0 <= item < len(names)
        return names[item] if ok else f"item {item}"

    kind = str(record.get("kind", "edit"))
    item = record.get("item")
    if kind == "text":
        return f"text: {name(item)} → “{record.get('prompt', '')}”"
    if kind == "swap":
        taken = record.get("reference_name") or f"item {record.get('reference_item')}"
        source = record.get("reference")
        return f"swap: {name(item)} ← “{taken}”" + (f" from {source}" if source else "")
    if kind in ("move", "duplicate"):
        moves = [m for m in record.get("moves") or [] if isinstance(m, list) and m]
        flipped = bool(moves) and all(len(m) > 4 and m[4] is True for m in moves)
        upside = flipped and all(len(m) > 5 and m[5] == 180 for m in moves)  # flip_moves
        verb = "flip vertically" if upside else "flip" if flipped else "move"
        if kind == "duplicate":
            verb = kind
        return f"{verb}: {', '.join(name(m[0]) for m in moves) or '?'}"
    if kind == "remove":
        gone = [item, *(record.get("also") or [])]
        return f"remove: {', '.join(name(k) for k in gone)}"
    if kind == "redraw":
        return f"redraw: {record.get('pixels', '?')} pixels"
    if kind == "back":
        return f"back: to before edit {record.get('before', '?')}"
    if kind == "recon":
        return "recon: the whole picture"
    return kind


def free_name(name: str, taken: set[str]) -> str:
    """``name``, or when ``taken`` holds it, the same with the first free number at its
    end instead of any it has: "bag copy" -> "bag copy 2", "bag copy 2" -> "bag copy 3"."""
    if name not in taken:
        return name
    stem = re.sub(r" \d+$", "", name)
    n = 2
    while f"{stem} {n}" in taken:
        n += 1
    return f"{stem} {n}"
