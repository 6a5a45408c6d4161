"""Label-map edits: coverage, the nearest-pixel rule against brute force, regions, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dedit_app import partition
from dedit_app.errors import ItemError
from dedit_app.partition import (
    Move,
    bounding_window,
    distance_to,
    edit_regions,
    erase,
    fill_from_nearest,
    holds_any,
    item_areas,
    item_bbox,
    merge_items,
    move_item,
    move_items,
    paint,
    present_items,
    relabel_compact,
    remove_item,
    remove_items,
    stroke_mask,
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
