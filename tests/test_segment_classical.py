"""The weights-free default backend: automatic items, GrabCut clicks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from dedit_app.errors import SegmentationError
from dedit_app.imageio import load_image
from dedit_app.segment import get_backend
from dedit_app.segment.classical import ClassicalSegmenter


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def scene():
    """A 180x240 picture: cream wall, blue box, red disk, white table strip; with noise."""
    rng = np.random.default_rng(0)
    h, w = 180, 240
    img = np.empty((h, w, 3), np.float64)
    img[:] = (222, 212, 198)
    yy, xx = np.mgrid[0:h, 0:w]
    regions = {
        "table": yy >= 140,
        "box": (xx >= 30) & (xx < 100) & (yy >= 60) & (yy < 140),
        "disk": (xx - 170) ** 2 + (yy - 70) ** 2 < 35**2,
    }
    img[regions["table"]] = (248, 248, 246)
    img[regions["box"]] = (40, 60, 150)
    img[regions["disk"]] = (190, 50, 35)
    img += rng.normal(0, 4, img.shape)
    regions["wall"] = ~(regions["table"] | regions["box"] | regions["disk"])
    return np.clip(img, 0, 255).astype(np.uint8), regions


@pytest.fixture(scope="module")
def scene_segmenter(scene):
    seg = get_backend("classical")
    seg.set_image(scene[0])
    return seg


def test_automatic_items_match_the_scene(scene, scene_segmenter):
    image, regions = scene
    result = scene_segmenter.segment_auto()
    labels = result.labels
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32
    k = len(result.names)
    assert set(np.unique(labels)) == set(range(k))
    # Each region is (almost) exactly one item, and different regions are different items.
    owners = []
    for name, region in regions.items():
        ids, counts = np.unique(labels[region], return_counts=True)
        owner = ids[counts.argmax()]
        assert _iou(labels == owner, region) > 0.9, name
        owners.append(owner)
    assert len(set(owners)) == 4
    names = {regions_name: result.names[o] for regions_name, o in zip(regions, owners)}
    assert names["box"].startswith("blue") and names["disk"].startswith("red")


def test_click_and_box_find_the_object(scene, scene_segmenter):
    _, regions = scene
    disk = scene_segmenter.segment_click([(170, 70)], [1])
    assert disk.shape == regions["disk"].shape and disk.dtype == bool
    assert _iou(disk, regions["disk"]) > 0.85
    boxed = scene_segmenter.segment_click(None, box=(25, 55, 105, 145))
    assert _iou(boxed, regions["box"]) > 0.85
    # A negative click keeps its pixel out of the answer.
    both = scene_segmenter.segment_click([(60, 100), (60, 30)], [1, 0])
    assert both[100, 60] and not both[30, 60]


def test_bad_input_is_refused_with_a_sentence(scene_segmenter):
    with pytest.raises(SegmentationError, match="outside the picture, which is 240x180"):
        scene_segmenter.segment_click([(240, 10)], [1])
    with pytest.raises(SegmentationError, match="is empty"):
        scene_segmenter.segment_click(None, box=(50, 50, 50, 90))
    with pytest.raises(SegmentationError, match="Click on the item"):
        scene_segmenter.segment_click([(10, 10)], [0])
    with pytest.raises(SegmentationError, match="cannot search for items by text"):
        scene_segmenter.segment_auto("handbag")
    fresh = ClassicalSegmenter()
    with pytest.raises(SegmentationError, match="No picture"):
        fresh.segment_click([(1, 1)])
    with pytest.raises(SegmentationError, match="No picture"):
        fresh.segment_auto()
    with pytest.raises(SegmentationError, match="RGB photo"):
        fresh.set_image(np.zeros((10, 10), np.uint8))


def test_a_flat_picture_is_one_item():
    seg = get_backend("classical")
    seg.set_image(np.full((40, 50, 3), 128, np.uint8))
    result = seg.segment_auto()
    assert len(result.names) == 1 and (result.labels == 0).all()


@pytest.mark.reference
def test_default_backend_on_the_example_photo(reference_dir, reference_labels):
    """The D-Edit authors' photo: every pixel covered, a sensible number of items, and the
    handbag, table and wall each found as one item (compared with the authors' own
    hand-refined partition: 0 handbag, 1 table, 2 person, 3 wall)."""
    image = load_image(reference_dir / "image.png")
    seg = get_backend()  # the default
    assert seg.name == "classical"
    seg.set_image(image)
    result = seg.segment_auto()
    labels = result.labels
    assert labels.shape == image.shape[:2]
    k = len(result.names)
    assert 3 <= k <= 30
    assert (np.bincount(labels.ravel(), minlength=k) > 0).all()
    assert labels.min() == 0 and labels.max() == k - 1

    ref = reference_labels["edited"]
    for item in (0, 1, 3):  # handbag, table, wall
        region = ref == item
        ids, counts = np.unique(labels[region], return_counts=True)
        assert _iou(labels == ids[counts.argmax()], region) > 0.85, item
    # The person may be several items (dress halves, hands), but none leaks out of them.
    person = ref == 2
    inside = [i for i in range(k) if (person & (labels == i)).sum() > 0.8 * (labels == i).sum()]
    assert np.isin(labels[person], inside).mean() > 0.9

    bag = ref == 0
    assert _iou(seg.segment_click([(350, 650)], [1]), bag) > 0.8
    assert _iou(seg.segment_click(None, box=(160, 470, 590, 870)), bag) > 0.8
