"""Label-map edits: coverage, the nearest-pixel rule against brute force, regions, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from dedit_app import partition
from dedit_app.errors import ItemError
from dedit_app.partition import (
    Move,
    bounding_window,
    copy_items,
    copy_offset,
    distance_to,
    edit_regions,
    erase,
    fill_from_nearest,
    flip_moves,
    group_moves,
    holds_any,
    item_areas,
    item_bbox,
    merge_items,
    merge_many,
    move_item,
    move_items,
    paint,
    present_items,
    relabel_compact,
    remove_item,
    remove_items,
    stroke_mask,
    stroke_window,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def label_maps(max_items: int = 4, max_side: int = 14):
    return st.integers(1, max_items).flatmap(
        lambda k: arrays(
            np.int32,
            st.tuples(st.integers(2, max_side), st.integers(2, max_side)),
            elements=st.integers(0, k),
        )
    )


def brute_nearest_sq(holes: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """Squared distance from each hole pixel to its nearest donor pixel, by full search."""
    hy, hx = np.nonzero(holes)
    dy, dx = np.nonzero(donors)
    d2 = (hy[:, None] - dy[None, :]) ** 2 + (hx[:, None] - dx[None, :]) ** 2
    return d2.min(axis=1)


def assert_nearest_rule(
    before: np.ndarray, after: np.ndarray, holes: np.ndarray, donors: np.ndarray
):
    """Each hole took the label of a donor pixel at the minimum distance (ties allowed)."""
    best = brute_nearest_sq(holes, donors)
    dy, dx = np.nonzero(donors)
    for (y, x), b in zip(np.argwhere(holes), best):
        d2 = (dy - y) ** 2 + (dx - x) ** 2
        winners = set(before[dy[d2 == b], dx[d2 == b]].tolist())
        assert after[y, x] in winners, (y, x, after[y, x], winners)


@SETTINGS
@given(label_maps(), st.data())
def test_remove_covers_and_uses_nearest_other_item(labels, data):
    present = np.unique(labels)
    if len(present) < 2:
        return
    item = int(data.draw(st.sampled_from(present.tolist())))
    out = remove_item(labels, item)
    holes = labels == item
    assert out.shape == labels.shape and out.dtype == np.int32
    assert not (out == item).any()
    np.testing.assert_array_equal(out[~holes], labels[~holes])
    assert_nearest_rule(labels, out, holes, ~holes)
    assert labels[holes].min() == item  # input untouched


@SETTINGS
@given(label_maps(), st.data())
def test_move_puts_item_on_top_and_fills_vacated_from_unmoved(labels, data):
    present = np.unique(labels)
    if len(present) < 2:
        return
    item = int(data.draw(st.sampled_from(present.tolist())))
    h, w = labels.shape
    dx = data.draw(st.integers(-w + 1, w - 1))
    dy = data.draw(st.integers(-h + 1, h - 1))
    src = labels == item
    expected = np.zeros_like(src)
    ys, xs = np.nonzero(src)
    ty, tx = ys + dy, xs + dx
    keep = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
    expected[ty[keep], tx[keep]] = True
    if not expected.any():
        with pytest.raises(ItemError, match="entirely outside"):
            move_item(labels, item, dx, dy)
        return
    out = move_item(labels, item, dx, dy)
    untouched = ~src & ~expected
    np.testing.assert_array_equal(out[untouched], labels[untouched])
    holes = src & ~expected
    donors = ~src & ~expected
    if holes.any() and donors.any():
        np.testing.assert_array_equal(out == item, expected)
        assert_nearest_rule(labels, out, holes, donors)
    else:
        # The moved item hides every other item: it is all that is left to fill from.
        np.testing.assert_array_equal(out == item, expected | holes)


@SETTINGS
@given(label_maps(max_items=5, max_side=16), st.data())
def test_move_several_items_respects_stacking_order(labels, data):
    present = np.unique(labels).tolist()
    if len(present) < 3:
        return
    a, b = data.draw(st.permutations(present))[:2]
    moves = [Move(a, 1, 0), Move(b, 0, 1)]
    try:
        out = move_items(labels, moves, order=[a, b])
    except ItemError:
        return  # both pushed off, or no unmoved item left to fill from
    shifted_b = np.zeros(labels.shape, bool)
    shifted_b[1:, :] = (labels == b)[:-1, :]
    # b is on top: wherever b's new shape lies, b wins, including over a.
    assert (out[shifted_b] == b).all()
    shifted_a = np.zeros(labels.shape, bool)
    shifted_a[:, 1:] = (labels == a)[:, :-1]
    vacated = np.isin(labels, [a, b]) & ~(shifted_a | shifted_b)
    if vacated.any() and not (~np.isin(labels, [a, b]) & ~shifted_a & ~shifted_b).any():
        return  # no unmoved item visible: the fallback, tested in the single-item test
    np.testing.assert_array_equal(out == a, shifted_a & ~shifted_b)


def test_move_scale_about_bbox_centre():
    labels = np.zeros((40, 40), np.int32)
    labels[10:20, 10:20] = 1  # 10x10 square, centre (14.5, 14.5)
    out = move_item(labels, 1, 0, 0, scale=2.0)
    x0, y0, x1, y1 = item_bbox(out, 1)
    assert (x0 + x1) / 2 == pytest.approx(14.5, abs=0.5)
    assert (y0 + y1) / 2 == pytest.approx(14.5, abs=0.5)
    assert 19 <= x1 - x0 + 1 <= 21 and (out == 1).sum() == pytest.approx(400, rel=0.1)
    half = move_item(labels, 1, 0, 0, scale=0.5)
    assert (half == 1).sum() == pytest.approx(25, abs=6)
    assert (half == 0).sum() + (half == 1).sum() == half.size


@SETTINGS
@given(label_maps(max_items=5), st.data())
def test_flip_mirrors_the_items_as_one_group_about_the_middle_of_their_box(labels, data):
    present = np.unique(labels).tolist()
    items = data.draw(st.lists(st.sampled_from(present), min_size=1, unique=True))
    vertical = data.draw(st.booleans())
    boxes = {i: item_bbox(labels, i) for i in items}
    edges = np.array(list(boxes.values()))
    left, top = edges[:, :2].min(axis=0)
    right, bottom = edges[:, 2:].max(axis=0)
    out = move_items(labels, flip_moves(boxes, vertical))  # a mirror never leaves the picture
    h, w = labels.shape
    covered = np.zeros((h, w), bool)
    for i in items:
        # pixel x goes to left + right - x: the group's columns, read backwards (top to
        # bottom: y to top + bottom - y, its rows)
        mirrored = np.zeros((h, w), bool)
        if vertical:
            mirrored[top : bottom + 1] = (labels == i)[top : bottom + 1][::-1]
        else:
            mirrored[:, left : right + 1] = (labels == i)[:, left : right + 1][:, ::-1]
        assert (out[mirrored] == i).all()
        covered |= mirrored
    holes = holds_any(labels, items) & ~covered
    if (~covered & ~holds_any(labels, items)).any():  # an item that stays fills the holes
        assert not holds_any(out, items)[holes].any()
    np.testing.assert_array_equal(out[~covered & ~holes], labels[~covered & ~holes])
    assert set(np.unique(out)) <= set(present)


@pytest.mark.parametrize(("scale", "angle"), [(0.5, 0.0), (1.0, 90.0), (1.5, -30.0)])
def test_a_group_scales_and_turns_rigidly_about_the_middle_of_its_box(scale, angle):
    labels = np.zeros((200, 200), np.int32)
    labels[60:80, 50:70] = 1  # centre (59.5, 69.5)
    labels[110:150, 120:140] = 2  # centre (129.5, 129.5); the group's box 50-139, 60-149
    boxes = {k: item_bbox(labels, k) for k in (1, 2)}
    moves = group_moves(boxes, dx=3, dy=-2, scale=scale, angle=angle)
    out = move_items(labels, moves)
    middle = np.array([94.5, 104.5])
    t = np.radians(angle)
    linear = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    for k, (x0, y0, x1, y1) in boxes.items():
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        expected = linear @ (centre - middle) + middle + (3, -2)
        ys, xs = np.nonzero(out == k)
        assert (xs.mean(), ys.mean()) == pytest.approx(tuple(expected), abs=1.0)
    # the distance between the two scales with the group
    a, b = (np.argwhere(out == k).mean(axis=0) for k in (1, 2))
    assert np.hypot(*(a - b)) == pytest.approx(scale * np.hypot(60, 70), rel=0.02)
    # one item alone is its own plain move
    assert group_moves({1: boxes[1]}, 3, -2, scale, angle) == (Move(1, 3, -2, scale, False, angle),)


def test_flip_twice_gives_the_item_its_shape_back_and_flip_needs_an_item():
    labels = np.zeros((20, 30), np.int32)
    labels[4:16, 5:9] = 1  # an L: a post with a foot to the right
    labels[13:16, 9:20] = 1
    labels[:, 24:] = 2
    once = move_items(labels, flip_moves({1: item_bbox(labels, 1)}))
    assert item_bbox(once, 1) == item_bbox(labels, 1)  # same box, foot now to the left
    assert (once[4:13, 16:20] == 1).all() and not (once[4:13, 5:9] == 1).any()
    twice = move_items(once, flip_moves({1: item_bbox(once, 1)}))
    np.testing.assert_array_equal(twice == 1, labels == 1)
    # flipped with a move: mirrored, then shifted, as one Move says
    shifted = move_items(labels, [Move(1, dx=3, dy=-2, flip=True)])
    np.testing.assert_array_equal(np.roll(once == 1, (-2, 3), axis=(0, 1)), shifted == 1)
    with pytest.raises(ItemError, match="Choose at least one item to flip"):
        flip_moves({})


def test_a_quarter_turn_is_clockwise_as_seen_about_the_box_centre():
    labels = np.zeros((21, 21), np.int32)
    labels[5:16, 9:12] = 1  # a post, 11 tall and 3 wide
    labels[5:8, 12:16] = 1  # with a flag at its top, to the right: box x 9-15, y 5-15
    turned = move_items(labels, [Move(1, angle=90)])
    # clockwise as the picture is seen (rows down): np.rot90 with k=-1, about the box's
    # centre (12, 10), so the turned box is x 7-17, y 7-13
    expected = np.zeros_like(labels, dtype=bool)
    expected[7:14, 7:18] = np.rot90(labels[5:16, 9:16] == 1, k=-1)
    np.testing.assert_array_equal(turned == 1, expected)
    # the post lies across, and its top, with the flag, has turned to the right
    assert (turned[7:10, 7:18] == 1).all() and (turned[10:14, 15:18] == 1).all()
    back = move_items(turned, [Move(1, angle=-90)])
    np.testing.assert_array_equal(back == 1, labels == 1)
    np.testing.assert_array_equal(move_items(labels, [Move(1, angle=360)]), labels)
    with pytest.raises(ItemError, match="angle for item 1 must be a finite"):
        move_items(labels, [Move(1, angle=float("inf"))])


def test_a_tilt_keeps_the_area_and_the_centre():
    labels = np.zeros((120, 120), np.int32)
    labels[30:90, 50:70] = 1
    tilted = move_items(labels, [Move(1, dx=5, angle=15)])
    ys, xs = np.nonzero(tilted == 1)
    assert (tilted == 1).sum() == pytest.approx(60 * 20, rel=0.03)
    assert xs.mean() == pytest.approx(59.5 + 5, abs=0.5)
    assert ys.mean() == pytest.approx(59.5, abs=0.5)
    assert xs.max() - xs.min() > 30  # leaning: wider than the upright 20


@SETTINGS
@given(label_maps(), st.data())
def test_copies_leave_every_other_pixel_and_lie_where_the_move_takes_the_item(labels, data):
    present = [int(k) for k in np.unique(labels)]
    item = data.draw(st.sampled_from(present))
    h, w = labels.shape
    dx, dy = data.draw(st.integers(-w + 1, w - 1)), data.draw(st.integers(-h + 1, h - 1))
    first = int(labels.max()) + 1
    # the copy is the item's mask shifted by whole pixels, clipped at the border
    mask = labels == item
    moved = np.zeros_like(mask)
    moved[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    assume(moved.any())
    out = copy_items(labels, [Move(item, dx, dy)], first)
    np.testing.assert_array_equal(out == first, moved)
    np.testing.assert_array_equal(out[~moved], labels[~moved])  # nothing else changes


def test_later_copies_lie_on_top_and_every_copy_is_taken_from_the_map_before():
    labels = np.zeros((10, 20), np.int32)
    labels[2:5, 2:5] = 1
    out = copy_items(labels, [Move(1, dx=4), Move(1, dx=6, flip=True)], 2)
    assert (out[2:5, 6:8] == 2).all() and (out[2:5, 8:11] == 3).all()
    assert (out[2:5, 2:5] == 1).all()  # the item stays
    with pytest.raises(ItemError, match="ids must follow the items; 1 is taken"):
        copy_items(labels, [Move(1, dx=4)], 1)
    with pytest.raises(ItemError, match="entirely outside the picture"):
        copy_items(labels, [Move(1, dx=40)], 2)


def test_a_copy_goes_beside_its_item_where_there_is_room():
    shape = (100, 200)  # (H, W)
    assert copy_offset((10, 10, 49, 39), shape) == (44, 0)  # right, with a 4-pixel gap
    assert copy_offset((150, 10, 189, 39), shape) == (-44, 0)  # no room right: left
    assert copy_offset((0, 10, 149, 39), shape) == (0, 38)  # too wide: below
    assert copy_offset((0, 50, 149, 89), shape) == (0, -48)  # nor below: above
    # no side with room enough: the most room there is, so the copy still shows in part
    assert copy_offset((20, 0, 189, 99), shape) == (-20, 0)
    assert copy_offset((0, 0, 199, 99), shape) == (0, 0)


@pytest.mark.parametrize("scale", [0, -1, float("nan")])
def test_bad_scale_is_refused(scale):
    labels = np.zeros((8, 8), np.int32)
    labels[2:4, 2:4] = 1
    with pytest.raises(ItemError, match="scale"):
        move_item(labels, 1, 0, 0, scale=scale)


def test_unknown_item_is_refused_with_range():
    labels = np.zeros((8, 8), np.int32)
    labels[:, 4:] = 1
    with pytest.raises(ItemError, match="no item 5.*0 to 1"):
        remove_item(labels, 5)
    with pytest.raises(ItemError, match="no item -1"):
        move_item(labels, -1, 1, 1)


@SETTINGS
@given(label_maps(), st.data())
def test_removing_several_items_gives_their_pixels_only_to_items_that_stay(labels, data):
    present = np.unique(labels).tolist()
    if len(present) < 3:
        return
    items = data.draw(st.lists(st.sampled_from(present), min_size=2, max_size=len(present) - 1,
                               unique=True))  # fmt: skip
    out = remove_items(labels, items)
    holes = np.isin(labels, items)
    assert not np.isin(out, items).any()
    np.testing.assert_array_equal(out[~holes], labels[~holes])
    assert_nearest_rule(labels, out, holes, ~holes)


def test_an_item_shrunk_below_a_pixel_across_keeps_one_pixel_there():
    labels = np.zeros((40, 400), np.int32)
    labels[6:8, 252:348] = 1  # a 96 x 2 line: at scale 0.1 it is 9.6 x 0.2 pixels
    line = move_item(labels, 1, 0, 0, 0.1)
    x0, y0, x1, y1 = item_bbox(line, 1)
    assert (y1 - y0 + 1, x1 - x0 + 1) in {(1, 9), (1, 10), (1, 11)}
    assert abs((x0 + x1) / 2 - 299.5) <= 1 and y0 in (6, 7)
    speck = np.zeros((30, 30), np.int32)
    speck[10:13, 10:12] = 1  # 2 x 3 at scale 0.3333, shifted half a pixel
    moved = move_item(speck, 1, 0.5, 0.5, 0.3333)
    assert (moved == 1).sum() == 1
    with pytest.raises(ItemError, match="entirely outside the picture"):
        move_item(speck, 1, 100, 0, 0.3333)


def test_removing_the_only_item_is_refused():
    with pytest.raises(ItemError, match="whole picture"):
        remove_item(np.zeros((5, 5), np.int32), 0)
    halves = np.repeat([[0, 1]], 5, axis=0).repeat(3, axis=1).astype(np.int32)
    with pytest.raises(ItemError, match="Those items cover the whole picture"):
        remove_items(halves, [0, 1])


@SETTINGS
@given(
    arrays(bool, st.tuples(st.integers(1, 16), st.integers(1, 16))),
    st.floats(0, 6, allow_nan=False),
)
def test_regions_disjoint_cover_and_band_width(active, edge):
    hard, soft = edit_regions(active, edge)
    total = active.astype(int) + hard.astype(int) + soft.astype(int)
    assert (total == 1).all()
    if not active.any():
        assert not soft.any()
        return
    d2_soft = brute_nearest_sq(soft, active) if soft.any() else np.array([])
    d2_hard = brute_nearest_sq(hard, active) if hard.any() else np.array([])
    assert (d2_soft <= edge**2 + 1e-6).all()
    assert (d2_hard > edge**2 - 1e-6).all()


@SETTINGS
@given(st.integers(1, 60), st.integers(1, 60), st.data(), st.floats(0, 9, allow_nan=False))
def test_regions_of_a_small_region_match_the_whole_frame(h, w, data, edge):
    # The soft band is found in a window around the region: it must be the band the whole
    # frame's distances give, wherever the region sits (edges and corners included).
    y0 = data.draw(st.integers(0, h - 1))
    x0 = data.draw(st.integers(0, w - 1))
    y1 = data.draw(st.integers(y0 + 1, h))
    x1 = data.draw(st.integers(x0 + 1, w))
    active = np.zeros((h, w), bool)
    active[y0:y1, x0:x1] = True
    active[y0, x0] = data.draw(st.booleans())  # not always a rectangle
    hard, soft = edit_regions(active, edge)
    expected = (distance_to(active) <= edge) & ~active
    np.testing.assert_array_equal(soft, expected)
    np.testing.assert_array_equal(hard, ~active & ~expected)


def test_bounding_window_grows_by_the_margin_and_stops_at_the_edges():
    mask = np.zeros((10, 12), bool)
    assert bounding_window(mask, 3) is None
    mask[1, 4] = mask[5, 6] = True
    assert bounding_window(mask, 0) == (slice(1, 6), slice(4, 7))
    assert bounding_window(mask, 2) == (slice(0, 8), slice(2, 9))
    assert bounding_window(mask, 50) == (slice(0, 10), slice(0, 12))


def test_regions_reject_negative_edge():
    with pytest.raises(ItemError, match="edge"):
        edit_regions(np.ones((3, 3), bool), -1)


@SETTINGS
@given(label_maps(), st.data())
def test_fill_from_nearest_with_restricted_donors(labels, data):
    h, w = labels.shape
    holes = data.draw(arrays(bool, (h, w)))
    donors = data.draw(arrays(bool, (h, w))) & ~holes
    if holes.any() and not donors.any():
        with pytest.raises(ItemError):
            fill_from_nearest(labels, holes, donors)
        return
    out = fill_from_nearest(labels, holes, donors)
    np.testing.assert_array_equal(out[~holes], labels[~holes])
    if holes.any():
        assert_nearest_rule(labels, out, holes, donors)


def test_fill_from_nearest_reaches_donors_far_beyond_its_first_window():
    # The distances are measured in a window around the holes that grows until it holds
    # every hole's nearest donor: here the donors lie 300 px away, past three growths.
    labels = np.zeros((420, 460), np.int32)
    labels[:40, :30] = 1  # the only donors: two items in one corner
    labels[:40, 30:60] = 2
    holes = np.zeros(labels.shape, bool)
    holes[340:400, 380:440] = True
    labels[holes] = 3
    donors = (labels == 1) | (labels == 2)
    out = fill_from_nearest(labels, holes, donors)
    np.testing.assert_array_equal(out[~holes], labels[~holes])
    assert (out[holes] == 2).all()  # item 2 is the nearer of the two to every hole pixel
    sparse = holes & (np.indices(holes.shape).sum(0) % 7 == 0)  # a brute-force sample
    assert_nearest_rule(labels, out, sparse, donors)


@SETTINGS
@given(label_maps())
def test_present_items_and_holds_any_answer_like_numpy(labels):
    np.testing.assert_array_equal(present_items(labels), np.unique(labels))
    np.testing.assert_array_equal(present_items(labels + 70_000), np.unique(labels) + 70_000)
    np.testing.assert_array_equal(present_items(labels - 2), np.unique(labels) - 2)
    items = np.unique(labels)[::2].tolist()
    np.testing.assert_array_equal(holds_any(labels, items), np.isin(labels, items))
    assert not holds_any(labels, []).any()


@SETTINGS
@given(label_maps(), st.integers(1, 40), st.integers(0, 9))
def test_item_areas_count_like_bincount_band_by_band(labels, band, extra):
    expected = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1 + extra)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(partition, "_EXACT_BAND", band)  # bands of one row or a few
        got = item_areas(labels, int(labels.max()) + 1 + extra)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_item_areas_stay_exact_past_float32s_integers():
    # One item of 16 810 000 pixels: more than a float32 bin can count exactly (2**24).
    labels = np.zeros((4100, 4100), np.int32)
    labels[0, 0] = 1
    np.testing.assert_array_equal(item_areas(labels, 3), [4100 * 4100 - 1, 1, 0])


def test_brush_eraser_merge_and_compact():
    labels = np.zeros((20, 20), np.int32)
    labels[:, 10:] = 1
    stroke = stroke_mask(labels.shape, [(2, 5), (8, 5)], radius=2)
    assert stroke[5, 2] and stroke[5, 8] and stroke[5, 5] and not stroke[15, 5]
    painted = paint(labels, stroke, 2)  # one past the largest id: a new item
    assert (painted[stroke] == 2).all() and (painted[~stroke] == labels[~stroke]).all()
    erased = erase(painted, stroke_mask(labels.shape, [(5, 5)], 20), 2)
    assert not (erased == 2).any() and set(np.unique(erased)) == {0, 1}
    merged = merge_items(labels, 1, 0)
    assert (merged == 1).all()
    compact, kept = relabel_compact(merged)
    assert kept == [1] and (compact == 0).all()
    with pytest.raises(ItemError, match="itself"):
        merge_items(labels, 1, 1)
    with pytest.raises(ItemError, match="brush size"):
        stroke_mask(labels.shape, [(1, 1)], 0)


def test_functions_never_modify_their_input():
    labels = np.zeros((10, 10), np.int32)
    labels[2:5, 2:5] = 1
    labels[6:, 6:] = 2
    before = labels.copy()
    remove_item(labels, 1)
    move_item(labels, 1, 3, 3, 1.5)
    merge_items(labels, 0, 2)
    erase(labels, np.ones_like(labels, bool), 2)
    np.testing.assert_array_equal(labels, before)


@pytest.mark.reference
def test_remove_matches_published_result(reference_labels):
    out = remove_item(reference_labels["edited"], 0)
    agree = (out == reference_labels["removed_item0"]).mean()
    assert agree >= 0.999, agree


@pytest.mark.reference
def test_move_matches_published_result(reference_labels):
    edited = reference_labels["edited"]
    # Theirs: scale 0.5 anchored at the top-left corner (x' = 0.5 x), then shift (200, 140).
    # Ours scales about the bbox centre c: x' = 0.5 (x - c) + c + dx, so dx = 200 - 0.5 c.
    x0, y0, x1, y1 = item_bbox(edited, 0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    out = move_item(edited, 0, 200 - 0.5 * cx, 140 - 0.5 * cy, scale=0.5)
    agree = (out == reference_labels["moved_item0"]).mean()
    assert agree >= 0.995, agree


# ----- the stroke's window, one-pass merge: the same answers as the whole-map formulation ---


def _whole_canvas_stroke(shape, points, radius):
    """stroke_mask as it was: every stroke drawn on a canvas the size of the picture."""
    canvas = np.zeros(shape, dtype=np.uint8)
    pts = [(round(x * 16), round(y * 16)) for x, y in points]
    r = max(round(radius * 16), 1)
    for p in pts:
        cv2.circle(canvas, p, r, 1, thickness=-1, lineType=cv2.LINE_8, shift=4)
    for a, b in zip(pts, pts[1:]):
        thick = max(int(round(2 * radius)), 1)
        cv2.line(canvas, a, b, 1, thickness=thick, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def _whole_map_fill(labels, holes, donors):
    """fill_from_nearest as it was: the masks of the whole picture."""
    out = labels.astype(np.int32).copy()
    if not holes.any():
        return out
    margin = 64
    while True:
        window = bounding_window(holes, margin)
        near = donors[window]
        if near.any():
            reach = float(distance_to(near)[holes[window]].max())
            if reach <= margin or near.shape == labels.shape:
                break
        margin *= 4
    crop = bounding_window(holes, int(np.ceil(reach)) + 1)
    idx = ndimage.distance_transform_edt(~donors[crop], return_distances=False, return_indices=True)
    crop_holes = holes[crop]
    out[crop][crop_holes] = out[crop][idx[0][crop_holes], idx[1][crop_holes]]
    return out


def _blocky_map(rng, h, w, k):
    """Items as blocks (so they touch the borders and each other along long edges)."""
    small = rng.integers(0, k, (int(rng.integers(1, 6)), int(rng.integers(1, 6)))).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int32)


def _random_stroke(rng, h, w):
    n = int(rng.integers(0, 6))  # none: an empty stroke
    # around and past the picture's edges, sometimes on exact quarter pixels
    pts = [(float(rng.uniform(-25, w + 25)), float(rng.uniform(-25, h + 25))) for _ in range(n)]
    if rng.random() < 0.3:
        pts = [(round(x * 4) / 4, round(y * 4) / 4) for x, y in pts]
    radius = float(
        rng.choice([0.3, 0.5, 0.74, 1.0, 1.5, 2.5, 3.0, 7.3, 12.0, rng.uniform(0.05, 30)])
    )
    return pts, radius


def _whole(shape, window, part):
    out = np.zeros(shape, bool)
    if window is not None:
        out[window] = part
    return out


def test_stroke_window_holds_every_pixel_of_the_stroke_and_drawing_there_is_exact():
    rng = np.random.default_rng(7)
    for _ in range(600):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        pts, radius = _random_stroke(rng, h, w)
        expected = _whole_canvas_stroke((h, w), pts, radius)
        window = stroke_window((h, w), pts, radius)
        if window is None:
            assert not expected.any()
            continue
        np.testing.assert_array_equal(
            _whole((h, w), window, stroke_mask((h, w), pts, radius, window)), expected
        )
        np.testing.assert_array_equal(stroke_mask((h, w), pts, radius), expected)
        # any other window is that part of the whole mask too
        other = (slice(h // 3, h), slice(0, max(w // 2, 1)))
        np.testing.assert_array_equal(stroke_mask((h, w), pts, radius, other), expected[other])


def test_a_stroke_drawn_in_its_window_of_a_large_picture_is_exact():
    # Far from the origin, sub-pixel points: the moved shapes rasterise exactly the same.
    rng = np.random.default_rng(8)
    h, w = 1500, 3000
    for _ in range(40):
        start = rng.uniform([-40, -40], [w + 40, h + 40])
        pts = [tuple(map(float, start + rng.normal(0, 50, 2).cumsum())) for _ in range(8)]
        radius = float(rng.uniform(0.1, 50))
        window = stroke_window((h, w), pts, radius)
        got = _whole((h, w), window, stroke_mask((h, w), pts, radius, window))
        np.testing.assert_array_equal(got, _whole_canvas_stroke((h, w), pts, radius))


def test_no_point_or_a_stroke_off_the_picture_has_no_window():
    assert stroke_window((10, 10), [], 3) is None
    assert stroke_window((10, 10), [(-30.0, 5.0)], 3) is None
    assert stroke_window((10, 10), [(5.0, 40.0), (9.0, 40.0)], 3) is None
    assert stroke_mask((10, 10), [], 3, (slice(0, 4), slice(2, 5))).shape == (4, 3)
    with pytest.raises(ItemError, match="brush size"):
        stroke_window((10, 10), [], 0)


def test_windowed_paint_and_erase_give_the_whole_map_answer():
    rng = np.random.default_rng(9)
    for _ in range(800):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        labels = _blocky_map(rng, h, w, int(rng.integers(1, 5)))
        pts, radius = _random_stroke(rng, h, w)
        whole = _whole_canvas_stroke((h, w), pts, radius)
        window = stroke_window((h, w), pts, radius)
        part = whole[window] if window is not None else np.zeros((0, 0), bool)
        window = window or (slice(0, 0), slice(0, 0))
        item = int(rng.integers(0, labels.max() + 2))
        expected = labels.copy()
        expected[whole] = item
        for checked in (False, True):
            got = paint(labels, part, item, window=window, checked=checked)
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(paint(labels, whole, item), expected)
        item = int(rng.choice(np.unique(labels)))
        holes = whole & (labels == item)
        if holes.any() and (labels == item).all():
            for checked in (False, True):
                with pytest.raises(ItemError, match="covers the whole picture"):
                    erase(labels, part, item, window=window, checked=checked)
            continue
        expected = _whole_map_fill(labels, holes, labels != item)
        for checked in (False, True):
            got = erase(labels, part, item, window=window, checked=checked)
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(erase(labels, whole, item), expected)
        np.testing.assert_array_equal(fill_from_nearest(labels, holes, labels != item), expected)


def test_a_windowed_erase_finds_the_nearest_item_far_outside_its_window():
    # Erasing inside a large item: the nearest other item lies hundreds of pixels away,
    # past several growths of the window the fill looks in; ties between two items too.
    labels = np.zeros((500, 700), np.int32)
    labels[:, :20] = 1
    labels[:, 680:] = 2
    labels[:15, 300:400] = 3
    pts = [(350.0, 400.0), (352.5, 250.0)]
    window = stroke_window(labels.shape, pts, 9.5)
    part = stroke_mask(labels.shape, pts, 9.5, window)
    whole = _whole(labels.shape, window, part)
    expected = _whole_map_fill(labels, whole, labels != 0)
    np.testing.assert_array_equal(erase(labels, part, 0, window=window, checked=True), expected)
    np.testing.assert_array_equal(erase(labels, whole, 0), expected)


def test_the_fill_grown_to_its_reach_gives_the_fill_grown_four_times_over():
    # A large item with a few small others about it, holes deep inside it: the windows
    # grow, to the reach found, where they grew four times before; the same answer.
    rng = np.random.default_rng(13)
    for _ in range(25):
        h, w = (int(v) for v in rng.integers(150, 500, 2))
        labels = np.zeros((h, w), np.int32)
        for k in range(1, int(rng.integers(2, 5))):
            y, x = int(rng.integers(0, h - 10)), int(rng.integers(0, w - 10))
            labels[y : y + int(rng.integers(2, 30)), x : x + int(rng.integers(2, 30))] = k
        holes = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(holes, centre, int(rng.integers(1, 120)), 1, -1)
        holes = holes.astype(bool) & (labels == 0)
        donors = labels != 0
        expected = _whole_map_fill(labels, holes, donors)
        np.testing.assert_array_equal(fill_from_nearest(labels, holes, donors), expected)


def test_merge_many_is_merge_items_in_turn_refusals_included():
    rng = np.random.default_rng(10)
    for _ in range(1500):
        k = int(rng.integers(1, 8))
        labels = rng.integers(0, k, tuple(int(v) for v in rng.integers(1, 12, 2))).astype(np.int32)
        keep = int(rng.integers(-1, k + 1))
        others = [int(v) for v in rng.integers(-1, k + 2, int(rng.integers(0, 5)))]
        try:
            expected = labels
            for other in others:
                expected = merge_items(expected, keep, other)
        except ItemError as err:
            expected = str(err)
        spare = int(rng.integers(0, 3))  # a document counts its empty last items too
        for areas in (None, item_areas(labels, int(labels.max()) + 1 + spare)):
            try:
                got = merge_many(labels, keep, others, areas)
            except ItemError as err:
                got = str(err)
            if isinstance(expected, str) or isinstance(got, str):
                assert got == expected
            else:
                np.testing.assert_array_equal(got, expected)
                assert got.dtype == np.int32 and got is not labels


def test_merge_many_relabels_band_by_band_like_a_lookup_over_the_whole_map(monkeypatch):
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 300, (37, 41)).astype(np.int32)  # past uint8's ids
    monkeypatch.setattr(partition, "_LUT_PIXELS", 100)  # bands that split rows
    others = [5, 299, 17, 200]
    lut = np.arange(300, dtype=np.int32)
    lut[others] = 3
    np.testing.assert_array_equal(merge_many(labels, 3, others), lut[labels])


def test_item_bbox_without_the_checks_gives_the_same_box_and_refusals():
    rng = np.random.default_rng(12)
    for _ in range(200):
        labels = rng.integers(0, 4, tuple(int(v) for v in rng.integers(1, 15, 2))).astype(np.int32)
        for item in range(-1, 6):
            try:
                expected = item_bbox(labels, item)
            except ItemError as err:
                expected = str(err)
            try:
                got = item_bbox(labels, item, checked=True)
            except ItemError as err:
                got = str(err)
            assert got == expected


def test_windowed_edits_never_modify_their_input():
    labels = np.zeros((30, 30), np.int32)
    labels[5:12, 5:12] = 1
    labels[20:, 20:] = 2
    before = labels.copy()
    pts = [(8.0, 8.0), (25.0, 25.0)]
    window = stroke_window(labels.shape, pts, 3)
    part = stroke_mask(labels.shape, pts, 3, window)
    paint(labels, part, 1, window=window, checked=True)
    erase(labels, part, 1, window=window, checked=True)
    merge_many(labels, 0, [1, 2], item_areas(labels))
    np.testing.assert_array_equal(labels, before)
