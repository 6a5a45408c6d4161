"""Laying a late edit onto a picture that changed while it ran (a three-way merge).

An edit is made from the picture and item map of the moment it was asked for (``base``).
The editor stays live while it runs, so by the time it lands the designer may have made
other edits, brushed items or renamed them (``onto``). Applying the edit's picture as it
is would throw those changes away; instead the pixels the edit painted, and the item ids it
changed, are laid over ``onto`` and everything else stays ``onto``'s.

What an edit painted is known exactly: its region (``active``), generated freely, and the
soft band of ``edge`` pixels around it, blended; the engine keeps every other pixel
byte-identical. Over ``onto``:

- the region takes the edit's pixels, and the edit's item ids where it changed them; an
  edit that changes the map (a move, a removal) gives its whole region its ids, so a
  moved item's new shape stays whole where a change made meanwhile touched it;
- the soft band takes the edit's pixels where ``onto`` still shows ``base``'s colours, and
  keeps ``onto``'s where they changed meanwhile (a neighbour edited since: the band blended the
  neighbour as it was);
- a *conflict* is a pixel of the region whose item was changed meanwhile, or one deeper
  than ``edge`` inside the region whose colour was (nearer the border it may be a
  neighbour's soft band). The late edit wins there too; callers count conflicts to ask the
  designer first.

Maps are ``(H, W)``; pictures ``(H, W, 3)`` uint8; rows are y (down), columns x (right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedit_app.errors import ItemError
from dedit_app.partition import bounding_window, distance_to

__all__ = ["Laid", "lay_onto"]


@dataclass(frozen=True)
class Laid:
    """A late edit laid onto the current picture."""

    image: np.ndarray  # (H, W, 3) uint8: onto's, with the edit's pixels laid over it
    labels: np.ndarray  # (H, W) int32: onto's (the same array when the edit kept the map)
    drawn: np.ndarray | None  # (H, W) int32: the map ``image`` was made with; None: labels
    conflicts: int  # pixels of the edit's region that were changed meanwhile (see above)


def lay_onto(
    base: tuple[np.ndarray, np.ndarray],
    made: tuple[np.ndarray, np.ndarray | None],
    regions: tuple[np.ndarray, np.ndarray, float],
    onto: tuple[np.ndarray, np.ndarray],
    onto_drawn: np.ndarray | None = None,
) -> Laid:
    """Lay the edit ``base -> made`` onto ``onto``.

    Args:
        base: ``(image, labels)`` the edit was made from.
        made: ``(image, labels)`` of its result; labels None when the edit kept the map.
        regions: ``(active, soft, edge)``: ``(H, W)`` bool maps of the pixels the edit
            generated and of its soft band (the engine's ``EditResult.active``/``.soft``;
            every other pixel of ``made`` is ``base``'s, and its item ids differ from
            ``base``'s only inside ``active``), and the band's width in pixels.
        onto: ``(image, labels)`` on show now.
        onto_drawn: the map ``onto``'s picture was made with when items were reshaped by
            hand since (brush, eraser); default ``onto``'s labels.
    Returns:
        A :class:`Laid`. Laying onto ``base`` itself gives ``made`` back exactly.
    Raises:
        ItemError: the pictures are not all the same size.
    """
    base_image, base_labels = base
    made_image, made_labels = made
    onto_image, onto_labels = onto
    active, soft, edge = regions
    shape = base_labels.shape
    sizes = {
        base_image.shape[:2],
        made_image.shape[:2],
        np.shape(active),
        np.shape(soft),
        onto_image.shape[:2],
        onto_labels.shape,
    }
    if made_labels is not None:
        sizes.add(made_labels.shape)
    if onto_drawn is not None:
        sizes.add(onto_drawn.shape)
    if sizes != {shape}:
        raise ItemError("The edit was made on a picture of another size; make it again.")

    active, soft = np.asarray(active, bool), np.asarray(soft, bool)
    # Everything below touches only the rows and columns around the edit (an edit changes
    # item ids only inside its region): a 24 MP photo with a small edit costs little more
    # than copying the picture once.
    image = onto_image.copy()
    window = bounding_window(active | soft, 0)
    if window is None:
        return Laid(image, onto_labels, None, 0)
    region, band = active[window], soft[window]
    made_map = base_labels[window] if made_labels is None else made_labels[window]
    relabel = made_map != base_labels[window]
    if made_labels is not None:  # a move or removal owns the map of its whole region
        relabel |= region & (made_map != onto_labels[window])
    recoloured = (onto_image[window] != base_image[window]).any(axis=-1)
    reassigned = onto_labels[window] != base_labels[window]
    paint = region | (band & ~recoloured)
    np.copyto(image[window], made_image[window], where=paint[..., None])
    labels = onto_labels
    if relabel.any():
        labels = onto_labels.astype(np.int32, copy=True)
        np.copyto(labels[window], made_map, where=relabel)
    # The map the picture was made with: made's where it painted, onto's drawn elsewhere.
    drawn = None
    if onto_drawn is not None or (paint & (made_map != labels[window])).any():
        drawn = (onto_labels if onto_drawn is None else onto_drawn).astype(np.int32, copy=True)
        np.copyto(drawn[window], made_map, where=paint)
    # A recoloured pixel of the region within ``edge`` of its border may be a neighbour's
    # soft band; deeper in, the edit would paint over a change made meanwhile.
    conflicts = int(np.count_nonzero(region & reassigned))
    inside = region & recoloured & ~reassigned
    if inside.any():
        conflicts += int(np.count_nonzero(inside & (distance_to(~region) > edge)))
    return Laid(image, labels, drawn, conflicts)
