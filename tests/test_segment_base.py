"""Shared by every segmentation backend: masks -> partition, input checks, names, options."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedit_app.errors import SegmentationError, SegmenterUnavailable
from dedit_app.segment.base import (
    check_box,
    check_points,
    device_problem,
    pick_device,
    unique_names,
)
from dedit_app.segment.masks import (
    partition_from_masks,
    small_fragments,
    upsample_labels,
    upsample_mask,
)


def _rect(shape, x0, y0, x1, y1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_overlap_goes_to_the_higher_score_and_rest_is_background():
    shape = (40, 60)
    a = _rect(shape, 0, 0, 30, 40)  # left half
    b = _rect(shape, 20, 10, 50, 30)  # overlaps a on x 20..30
    seg, sources = partition_from_masks(
        np.stack([a, b]), [0.8, 0.9], ["left", "middle"], min_area=5
    )
    assert seg.names == ["middle", "left", "background"]  # strongest first, background last
    assert sources == [1, 0, -1]
    assert seg.labels[20, 25] == 0  # the overlap went to b (0.9)
    assert seg.labels[5, 25] == 1  # a outside b stays a
    assert (seg.labels[:, 50:] == 2).all()  # uncovered -> background
    assert seg.labels.dtype == np.int32 and seg.labels.shape == shape
    assert np.isnan(seg.scores[2]) and seg.scores[:2] == [0.9, 0.8]


def test_equal_scores_put_the_smaller_mask_on_top():
    shape = (30, 30)
    whole = _rect(shape, 0, 0, 30, 30)
    part = _rect(shape, 10, 10, 20, 20)
    seg, _ = partition_from_masks(
        np.stack([whole, part]), [0.9, 0.9], ["bag", "button"], min_area=4
    )
    assert seg.names[seg.labels[15, 15]] == "button"
    assert seg.names[seg.labels[0, 0]] == "bag"


def test_fragments_join_their_nearest_neighbour_and_empty_items_vanish():
    shape = (40, 40)
    big = _rect(shape, 0, 0, 40, 20)  # top half
    low = _rect(shape, 0, 20, 40, 40)  # bottom half
    sliver = _rect(shape, 0, 18, 40, 22)  # a strip across the border, mostly hidden
    speck = _rect(shape, 30, 5, 32, 7)  # 4 px inside the top half
    seg, _ = partition_from_masks(
        np.stack([big, low, sliver, speck]),
        [0.5, 0.6, 0.4, 0.95],
        ["top", "bottom", "strip", "speck"],
        min_area=10,
    )
    # The speck is smaller than min_area: its pixels went to the item around it.
    assert "speck" not in seg.names
    assert seg.names[seg.labels[6, 31]] == "top"
    # The strip lost everything to stronger masks.
    assert "strip" not in seg.names
    # No uncovered pixel -> no background item.
    assert seg.names == ["bottom", "top"]
    assert set(np.unique(seg.labels)) == {0, 1}


def test_small_named_items_survive_when_asked():
    shape = (50, 50)
    tiny = _rect(shape, 10, 10, 12, 12)
    seg, _ = partition_from_masks(tiny[None], [0.9], ["ring"], min_area=20, keep_small_items=True)
    assert seg.names == ["ring", "background"]
    assert (seg.labels == 0).sum() == 4
    seg, _ = partition_from_masks(tiny[None], [0.9], ["ring"], min_area=20)
    assert seg.names == ["background"]


def test_no_masks_gives_one_background_item():
    seg, sources = partition_from_masks(np.zeros((0, 8, 9), bool), [], [], min_area=3)
    assert seg.names == ["background"] and sources == [-1]
    assert (seg.labels == 0).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 6), st.integers(0, 10_000))
def test_any_masks_give_a_compact_full_partition_without_small_pieces(m, seed):
    rng = np.random.default_rng(seed)
    h, w = 24, 32
    masks = np.zeros((m, h, w), bool)
    for i in range(m):
        x0, y0 = rng.integers(0, w - 2), rng.integers(0, h - 2)
        masks[i, y0 : y0 + rng.integers(1, h), x0 : x0 + rng.integers(1, w)] = True
    min_area = 6
    seg, sources = partition_from_masks(
        masks, rng.random(m), [f"m{i}" for i in range(m)], min_area=min_area
    )
    k = len(seg.names)
    assert len(sources) == k and len(set(seg.names)) == k
    # Every pixel has an item; ids are 0..K-1 and each owns pixels.
    assert seg.labels.min() == 0 and seg.labels.max() == k - 1
    assert (np.bincount(seg.labels.ravel(), minlength=k) > 0).all()
    # No piece below min_area is left (unless the whole picture is one item).
    if k > 1:
        assert not small_fragments(seg.labels, min_area).any()


def test_unique_names_numbers_repeats():
    assert unique_names(["bag", "bag", "wall", "bag", ""]) == [
        "bag",
        "bag 2",
        "wall",
        "bag 3",
        "item",
    ]
    assert unique_names(["bag 2", "bag", "bag"]) == ["bag 2", "bag", "bag 3"]


def test_clicks_outside_the_picture_are_refused():
    pts, lab = check_points([(0, 0), (99.4, 49.4)], None, (50, 100))
    assert lab.tolist() == [1, 1] and pts[1].tolist() == [99, 49]
    with pytest.raises(SegmentationError, match=r"click at \(100, 10\) is outside the picture"):
        check_points([(100, 10)], [1], (50, 100))
    with pytest.raises(SegmentationError, match="outside the picture, which is 100x50"):
        check_points([(5, -3)], [1], (50, 100))
    with pytest.raises(SegmentationError, match="2 clicks but 1 click kinds"):
        check_points([(1, 1), (2, 2)], [1], (50, 100))
    with pytest.raises(SegmentationError, match="marked 1"):
        check_points([(1, 1)], [2], (50, 100))


def test_a_gpu_that_is_not_there_is_a_setup_problem_and_bad_clicks_are_not():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    # The editor offers its settings for the first (the device is chosen there), not for
    # the second (the user clicks again).
    with pytest.raises(SegmenterUnavailable, match="no usable CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(SegmentationError) as err:
        check_points([(5.0, 99.0)], None, (10, 10))
    assert not isinstance(err.value, SegmenterUnavailable)
    assert pick_device("cpu") == "cpu"
    # With torch loaded (the editor loads it ahead) the quick check knows it too, so the
    # Settings page can say so before OK.
    assert "no usable CUDA GPU" in device_problem("cuda:0")
    assert device_problem("cpu") == device_problem(None) == ""


def test_the_quick_device_check_never_imports_torch(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "torch")  # as in a fresh editor's first second
    assert device_problem("cuda") == ""  # "" is "may": the job finds out
    assert "torch" not in sys.modules


def test_boxes_are_ordered_clipped_and_empty_ones_refused():
    assert check_box((30, 40, 10, 5), (50, 100)).tolist() == [10, 5, 30, 40]
    assert check_box((-20, -20, 200, 10), (50, 100)).tolist() == [-0.5, -0.5, 99.5, 10]
    with pytest.raises(SegmentationError, match="is empty"):
        check_box((10, 10, 10, 30), (50, 100))
    with pytest.raises(SegmentationError, match="is empty"):
        check_box((10, 10, 10.5, 10.5), (50, 100))
    with pytest.raises(SegmentationError, match="lies outside the picture"):
        check_box((200, 10, 300, 30), (50, 100))
    with pytest.raises(SegmentationError, match="four finite numbers"):
        check_box((1, 2, 3), (50, 100))


def test_upsampling_keeps_items_and_borders():
    small = np.zeros((10, 10), np.int32)
    small[:, 5:] = 1
    small[4:6, 4:6] = 2
    big = upsample_labels(small, (100, 80))
    assert big.shape == (100, 80) and set(np.unique(big)) == {0, 1, 2}
    assert big[50, 5] == 0 and big[50, 75] == 1 and big[50, 40] == 2
    # Beyond smooth_side the last step is nearest: same items, right size.
    huge = upsample_labels(small, (300, 300), smooth_side=100)
    assert huge.shape == (300, 300) and set(np.unique(huge)) == {0, 1, 2}
    m = upsample_mask(small == 1, (40, 40))
    assert m[:, 25:].all() and not m[:, :15].any()


def test_options_from_the_command_line_are_converted():
    from dedit_app.segment import get_backend
    from dedit_app.segment.base import config_from_options
    from dedit_app.segment.sam import SamAutoConfig

    cfg = config_from_options(SamAutoConfig, {"points_per_side": "16", "pred_iou_thresh": "0.5"})
    assert cfg.points_per_side == 16 and cfg.pred_iou_thresh == 0.5
    seg = get_backend("classical", auto_side="256", precompute="false")
    assert seg.config.auto_side == 256 and seg.config.precompute is False
    with pytest.raises(SegmentationError, match="auto_side must be a whole number; got 'big'"):
        get_backend("classical", auto_side="big")
    with pytest.raises(SegmentationError, match="auto_side must be a whole number; got '25.5'"):
        get_backend("classical", auto_side="25.5")  # not cut down to 25 without a word
    with pytest.raises(SegmentationError, match="option precompute must be true or false"):
        get_backend("classical", precompute="maybe")


def test_options_typed_as_key_value_are_read_for_the_backend():
    from dedit_app.segment import get_backend, parse_options

    options = parse_options(["auto_side=256", " precompute = false", "auto_side=128"])
    assert options == {"auto_side": "128", "precompute": "false"}  # the last one counts
    assert parse_options(["checkpoint=a=b.pth"]) == {"checkpoint": "a=b.pth"}
    assert get_backend("classical", **options).config.auto_side == 128
    for bad in ["auto_side", "=256", "auto side=256"]:
        with pytest.raises(SegmentationError, match="must look like KEY=VALUE"):
            parse_options([bad])
    with pytest.raises(SegmentationError, match="no segmentation options colour, size; the"):
        get_backend("classical", **parse_options(["size=2", "colour=3"]))
