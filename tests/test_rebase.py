"""Laying an edit made from an older picture onto the current one (dedit_app.rebase)."""

from __future__ import annotations

import numpy as np
import pytest

from dedit_app import partition
from dedit_app.errors import ItemError
from dedit_app.rebase import lay_onto

EDGE = 2


def scene(h: int = 40, w: int = 60, seed: int = 0):
    """A noisy picture and four items in quarters."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = np.zeros((h, w), np.int32)
    labels[: h // 2, w // 2 :] = 1
    labels[h // 2 :, : w // 2] = 2
    labels[h // 2 :, w // 2 :] = 3
    return image, labels


def repaint(image, active, value):
    """What an edit of ``active`` makes: the region painted ``value``, its soft band
    ``value // 2``, every other pixel as it was; and its regions for :func:`lay_onto`."""
    hard, soft = partition.edit_regions(active, EDGE)
    made = image.copy()
    made[soft] = value // 2
    made[active] = value
    return made, (active, soft, EDGE)


def test_laid_onto_its_own_base_it_is_the_edit_exactly():
    image, labels = scene()
    moved = partition.paint(labels, labels == 2, 3)
    made, regions = repaint(image, (labels == 1) | (moved != labels), 8)
    laid = lay_onto((image, labels), (made, moved), regions, (image, labels))
    np.testing.assert_array_equal(laid.image, made)
    np.testing.assert_array_equal(laid.labels, moved)
    assert laid.conflicts == 0


def test_changes_made_meanwhile_elsewhere_stay_and_the_edit_joins_them():
    image, labels = scene()
    late, regions = repaint(image, labels == 1, 8)  # asked for first, lands last
    onto, _ = repaint(image, labels == 2, 200)  # landed meanwhile
    brushed = labels.copy()
    brushed[30:, 5:10] = 0  # and a stroke moved some of item 2 into item 0
    inputs = [a.copy() for a in (image, labels, late, onto, brushed)]
    laid = lay_onto((image, labels), (late, None), regions, (onto, brushed))
    for before, after in zip(inputs, (image, labels, late, onto, brushed), strict=True):
        np.testing.assert_array_equal(before, after)  # the inputs are left as they were
    np.testing.assert_array_equal(laid.image[labels == 1], late[labels == 1])
    away = partition.edit_regions(labels == 1, EDGE)[0]
    np.testing.assert_array_equal(laid.image[away], onto[away])
    np.testing.assert_array_equal(laid.labels, brushed)
    # Told nothing else, the current map is the one its picture was drawn with.
    assert laid.drawn is None and laid.labels is brushed
    assert laid.conflicts == 0


def test_a_neighbour_edited_meanwhile_keeps_its_pixels_in_the_soft_band():
    image, labels = scene()
    late, regions = repaint(image, labels == 1, 8)
    onto, (_, onto_soft, _) = repaint(image, labels == 3, 200)  # right below item 1
    laid = lay_onto((image, labels), (late, None), regions, (onto, labels))
    _, soft, _ = regions
    # Item 3's new pixels (and its band's) in item 1's band stay; the band takes the edit's
    # pixels where the picture is as it was.
    neighbour = soft & (onto != image).any(axis=-1)
    assert (neighbour & (labels == 3)).any()
    np.testing.assert_array_equal(laid.image[neighbour], onto[neighbour])
    np.testing.assert_array_equal(laid.image[soft & ~neighbour], late[soft & ~neighbour])
    # Item 3's own band reaches into item 1 by EDGE pixels: no conflict, the edit wins.
    spilled = onto_soft & (labels == 1)
    assert spilled.any() and laid.conflicts == 0
    np.testing.assert_array_equal(laid.image[spilled], late[spilled])


def test_the_map_drawn_meanwhile_is_kept_outside_the_edit():
    image, labels = scene()
    brushed = labels.copy()
    brushed[0:5, 0:5] = 1  # reshaped by hand, not redrawn yet
    late, regions = repaint(image, labels == 3, 8)
    laid = lay_onto((image, labels), (late, None), regions, (image, brushed), labels)
    np.testing.assert_array_equal(laid.drawn, labels)  # still to be redrawn: (0:5, 0:5)
    np.testing.assert_array_equal(laid.labels, brushed)


def test_changes_inside_the_edit_are_conflicts_and_the_late_edit_wins_there():
    image, labels = scene()
    late, regions = repaint(image, labels == 1, 8)
    onto = image.copy()
    onto[5:9, 40:50] = 1  # 40 pixels deep inside item 1 painted meanwhile
    onto[0:4, 0:10] = 1  # and 40 of item 0, away from the edit
    relabelled = labels.copy()
    relabelled[10:12, 50:55] = 0  # 10 pixels of item 1 brushed into item 0
    laid = lay_onto((image, labels), (late, None), regions, (onto, relabelled))
    assert laid.conflicts == 40 + 10
    np.testing.assert_array_equal(laid.image[labels == 1], late[labels == 1])
    np.testing.assert_array_equal(laid.image[0:4, 0:10], onto[0:4, 0:10])


def test_a_moved_item_takes_its_new_ids_over_the_current_map():
    image, labels = scene()
    moved = labels.copy()
    moved[0:10, 0:10] = 3  # item 3 moved into item 0's corner
    late, regions = repaint(image, moved != labels, 50)
    onto_labels = labels.copy()
    onto_labels[35:, 35:] = 2  # item 3 partly brushed into item 2 meanwhile
    laid = lay_onto((image, labels), (late, moved), regions, (image, onto_labels))
    expected = onto_labels.copy()
    expected[moved != labels] = 3
    np.testing.assert_array_equal(laid.labels, expected)
    assert laid.conflicts == 0


def test_pictures_of_another_size_are_refused_in_a_sentence():
    image, labels = scene()
    other, other_labels = scene(20, 30)
    late, regions = repaint(image, labels == 1, 8)
    with pytest.raises(ItemError, match="another size"):
        lay_onto((image, labels), (late, None), regions, (other, other_labels))


def test_an_edit_that_painted_nothing_leaves_the_current_picture():
    image, labels = scene()
    onto, _ = repaint(image, labels == 2, 1)
    nothing = np.zeros(labels.shape, bool)
    laid = lay_onto((image, labels), (image.copy(), None), (nothing, nothing, EDGE), (onto, labels))
    np.testing.assert_array_equal(laid.image, onto)
    assert laid.conflicts == 0 and laid.image is not onto


def test_a_late_move_of_an_item_removed_meanwhile_keeps_its_whole_new_shape():
    """The move's new place overlaps its old one, which the removal gave to neighbours:
    there too the late move's map wins, as its pixels do."""
    image, labels = scene()
    moved = partition.move_item(labels, 1, -8, 4)  # item 1, the top-right quarter
    made, regions = repaint(image, (moved == 1) | (labels == 1), 8)
    removed = partition.remove_item(labels, 1)  # landed meanwhile
    onto, _ = repaint(image, labels == 1, 200)
    laid = lay_onto((image, labels), (made, moved), regions, (onto, removed))
    np.testing.assert_array_equal(laid.labels == 1, moved == 1)
    assert laid.drawn is None  # the picture is drawn with the map as it is
    assert laid.conflicts > 0  # changed meanwhile: the editor asks first
