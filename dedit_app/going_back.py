"""Going back to the picture from before an earlier edit, as an edit of its own.

Undo holds only the steps made since a project was opened; its saved history keeps the
picture and item map from before every applied edit (:meth:`Project.snapshot`). Going
back to before edit N makes that picture, map and the items as they were then the
project's state again, *appended* to the history as one more edit (kind ``"back"``,
``"before": N``). Nothing is thrown away: the edits after N stay in the history, and
going back to before the "back" entry itself returns to where it started. That is what a
designer expects from "never lose my work", and it is why this is not a truncating undo.

Edit numbers are 1-based, as ``dedit info`` lists them; 1 is the photo before any edit.

The items as they were (names and typed prompts) are recorded with each edit from this
version on (``items_before``). An entry saved before that keeps today's items, plus a
plain "item k" for any id the earlier map uses that today's list no longer has. Learned
token strings belong to the preparation, which going back does not undo.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dedit_app.errors import EditError
from dedit_app.project import Item, Project, items_recorded

__all__ = ["WayBack", "back_before", "no_such_edit", "picture_before", "set_aside", "standing"]


@dataclass(frozen=True)
class WayBack:
    """The state before an edit, ready for :meth:`Project.apply`."""

    image: np.ndarray  # (H, W, 3) uint8, the picture before that edit
    labels: np.ndarray  # (H, W) int32, its item map
    items: list[Item]  # the items then, with today's learned tokens
    entry: dict[str, Any]  # the history entry of going back


def no_such_edit(number: int, edits: int, where: str) -> EditError:
    """The sentence for an edit ``number`` (1-based) that ``where`` does not have."""
    if edits > 1:
        have = f"it has edits 1 to {edits}"
    else:
        have = "it has one edit" if edits else "it has none"
    return EditError(f"There is no edit {number} in {where}; {have} (dedit info).")


def picture_before(
    project: Project, number: int, where: str = "this project"
) -> tuple[np.ndarray, np.ndarray]:
    """``(image, labels)`` from before edit ``number`` (1-based; ``dedit info`` order).

    Reads the earlier picture from the project folder when it is not held in memory
    (a second for 24 MP: callers choose the thread). Raises EditError for a number the
    history does not have and ProjectError when the picture's files are missing or
    damaged."""
    edits = len(project.history)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= edits:
        raise no_such_edit(number, edits, where)
    return project.snapshot(project.history[number - 1])


def back_before(project: Project, number: int, where: str = "this project") -> WayBack:
    """The project as it was before its edit ``number``, as :func:`picture_before` reads
    it, with its items then; the project is not changed."""
    image, labels = picture_before(project, number, where)
    items = _items_then(project.history[number - 1], project.items, int(labels.max()) + 1)
    entry = {"kind": "back", "before": number}
    return WayBack(image, labels, items, entry)


def _items_then(record: dict[str, Any], now: list[Item], needed: int) -> list[Item]:
    """The items before ``record``'s edit, each keeping today's learned tokens; at least
    ``needed`` of them, so that every id of the earlier map names one."""
    tokens = [item.tokens for item in now]
    items = items_recorded(record)
    if items is None:  # saved before versions recorded them
        items = [replace(item) for item in now]
    items += [Item(f"item {k}") for k in range(len(items), needed)]
    return [replace(it, tokens=tokens[k] if k < len(tokens) else "") for k, it in enumerate(items)]


def standing(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of ``history`` whose effect the picture shows now, oldest first:
    going back to before edit N sets aside edits N and later (up to the going back,
    which stands), and going back to before a going back brings them back again."""
    before: list[list[dict[str, Any]]] = []  # before[k]: what stood before entry k
    now: list[dict[str, Any]] = []
    for record in history:
        before.append(now)
        target = record.get("before") if record.get("kind") == "back" else None
        if isinstance(target, int) and not isinstance(target, bool) and 1 <= target <= len(before):
            now = [*before[target - 1], record]
        else:
            now = [*now, record]
    return now


def set_aside(history: list[dict[str, Any]]) -> list[bool]:
    """Per entry of ``history``: True when going back set it aside (:func:`standing`)."""
    stands = {id(record) for record in standing(history)}
    return [id(record) not in stands for record in history]
