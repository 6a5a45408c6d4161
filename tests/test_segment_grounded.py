"""Grounding DINO + SAM on tiny random models saved with save_pretrained / torch.save and
loaded back through the same from_pretrained / checkpoint paths as the published ones."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from dedit_app.errors import SegmentationError, SegmenterUnavailable
from dedit_app.segment import backend_status, get_backend, list_backends
from dedit_app.segment.base import installed
from dedit_app.segment.grounded import GroundedSamSegmenter, grounded_status, split_phrases
from dedit_app.segment.tiny import TINY_SAM, save_tiny_grounding_dino, save_tiny_sam


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("grounded")
    return save_tiny_grounding_dino(root / "dino"), save_tiny_sam(root / "sam.pth")


def _backend(tiny_models, **options) -> GroundedSamSegmenter:
    dino, sam = tiny_models
    return get_backend(
        "grounded-sam", model=dino, checkpoint=sam, sam_arch=TINY_SAM, device="cpu", **options
    )


def _photo(h=80, w=100):
    rng = np.random.default_rng(3)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_split_phrases():
    assert split_phrases("Handbag. table.  person") == ["handbag", "table", "person"]
    assert split_phrases(" red   dress ;\nwall..") == ["red dress", "wall"]
    assert split_phrases(" . ") == []


def test_text_gives_items_named_by_its_phrases(tiny_models):
    seg = _backend(tiny_models, box_threshold=0.0)  # random scores: keep every box
    seg.set_image(_photo())
    result = seg.segment_auto("handbag. table. person")
    k = len(result.names)
    assert result.labels.shape == (80, 100) and set(np.unique(result.labels)) == set(range(k))
    base = {n.rsplit(" ", 1)[0] if n[-1].isdigit() else n for n in result.names}
    assert base <= {"handbag", "table", "person", "background"}
    assert len(base - {"background"}) >= 1


def test_detections_become_named_items(tiny_models, monkeypatch):
    """With the detector's output fixed (slot 0 sure of "table" on the left half, slot 1 of
    "red dress" on the right, slot 2 a weaker duplicate of slot 0, the rest unsure), the
    items are exactly the table and the dress, named by the user's phrases."""
    seg = _backend(tiny_models, box_threshold=0.5)
    seg.set_image(_photo())
    text = "table. red dress"
    ids = seg.processor(text="table. red dress.", return_tensors="pt")["input_ids"][0].tolist()
    tok = seg.processor.tokenizer
    table_pos = ids.index(tok.convert_tokens_to_ids("table"))
    dress_pos = ids.index(tok.convert_tokens_to_ids("dress"))
    q, length = seg.detector.config.num_queries, seg.detector.config.max_text_len
    logits = torch.full((1, q, length), -9.0)
    logits[0, 0, table_pos] = 6.0
    logits[0, 1, dress_pos] = 5.0
    logits[0, 2, table_pos] = 3.0
    boxes = torch.full((1, q, 4), 0.5)
    boxes[0, 0] = torch.tensor([0.25, 0.5, 0.5, 1.0])  # cx, cy, w, h: the left half
    boxes[0, 1] = torch.tensor([0.75, 0.5, 0.5, 1.0])
    boxes[0, 2] = torch.tensor([0.26, 0.5, 0.48, 0.98])
    monkeypatch.setattr(
        seg.detector, "forward", lambda **_: types.SimpleNamespace(logits=logits, pred_boxes=boxes)
    )
    found_boxes, scores, names = seg.detect(["table", "red dress"])
    assert names == ["table", "red dress"]  # the duplicate was removed
    assert np.allclose(found_boxes[0], [0, 0, 50, 79])
    assert scores[0] > scores[1] > 0.5

    def box_masks(b, size):
        masks = np.zeros((len(b), *size), bool)
        for i, (x0, y0, x1, y1) in enumerate(np.round(b).astype(int)):
            masks[i, y0 : y1 + 1, x0 : x1 + 1] = True
        return masks, np.ones(len(b))

    monkeypatch.setattr(seg.sam, "masks_for_boxes", box_masks)
    result = seg.segment_auto(text)
    assert result.names == ["table", "red dress"]
    assert (result.labels[:, :45] == 0).all() and (result.labels[:, 55:] == 1).all()


def test_text_that_finds_nothing_is_reported_and_changes_nothing(tiny_models):
    seg = _backend(tiny_models, box_threshold=0.999999)  # no random score gets this high
    seg.set_image(_photo())
    with pytest.raises(SegmentationError, match='Nothing in the picture matched "handbag"'):
        seg.segment_auto("handbag")
    # Boxes whose masks are all empty are "nothing found" too.
    seg.box_threshold = 0.0
    seg.sam.model.mask_threshold = 1e9
    with pytest.raises(SegmentationError, match="items were left as they were"):
        seg.segment_auto("table")
    seg.sam.model.mask_threshold = 0.0
    # The segmenter is still usable afterwards.
    assert seg.segment_auto("table").labels.shape == (80, 100)


def test_no_text_means_sam_automatic_and_clicks_use_sam(tiny_models):
    seg = _backend(tiny_models, pred_iou_thresh=-1e9, stability_score_thresh=0.0, points_per_side=6)
    calls = [0]
    seg.sam.model.image_encoder.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    seg.set_image(_photo())
    result = seg.segment_auto(None)
    assert result.labels.shape == (80, 100)
    seg.sam.model.mask_threshold = -1e9
    assert seg.segment_click([(10, 10)]).all()
    with pytest.raises(SegmentationError, match="outside the picture"):
        seg.segment_click([(100, 10)])
    assert calls[0] == 1


def test_missing_detector_weights_say_how_to_get_them(tiny_models, tmp_path, monkeypatch):
    _, sam = tiny_models
    missing = tmp_path / "no-such-model"
    with pytest.raises(SegmenterUnavailable) as err:
        get_backend(
            "grounded-sam",
            model=str(missing),
            checkpoint=sam,
            sam_arch=TINY_SAM,
            device="cpu",
            local_files_only=True,
        )
    assert "has no model in it" in str(err.value) and str(missing) in str(err.value)
    assert 'hf download IDEA-Research/grounding-dino-tiny --exclude "*.bin"' in str(err.value)
    # A hub id that is not in the cache, offline.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reason = grounded_status(model="dedit-tests/no-such-grounding-dino")
    assert "not on this machine" in reason
    assert "hf download dedit-tests/no-such-grounding-dino" in reason
    assert "Settings > Segmentation > Grounding DINO" in reason
    # With the SAM checkpoint missing too, both are said at once.
    both = grounded_status(model="dedit-tests/no-such-grounding-dino", checkpoint="/nope/sam.pth")
    assert "not on this machine" in both and "/nope/sam.pth" in both
    with pytest.raises(SegmenterUnavailable, match="not on this machine"):
        get_backend(
            "grounded-sam",
            model="dedit-tests/no-such-grounding-dino",
            checkpoint=sam,
            sam_arch=TINY_SAM,
            device="cpu",
        )
    monkeypatch.setenv("DEDIT_GROUNDING_DINO", str(missing))
    info = {b.name: b for b in list_backends()}["grounded-sam"]
    assert not info.available and str(missing) in info.reason


def test_building_with_both_weights_missing_says_grounding_dino_then_sam(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEDIT_MODEL_DIR", str(tmp_path))
    monkeypatch.delenv("DEDIT_SAM_CHECKPOINT", raising=False)
    dino = "dedit-tests/no-such-grounding-dino"
    for sam in ({"checkpoint": str(tmp_path / "sam.pth")}, {}):  # named, or searched for
        with pytest.raises(SegmenterUnavailable) as err:
            get_backend("grounded-sam", model=dino, device="cpu", **sam)
        said = str(err.value)
        assert said == grounded_status(model=dino, **sam)  # as the editor is told beforehand
        assert said.index("Grounding DINO weights") < said.index("SAM checkpoint")


def test_grounded_options_given_as_text_are_converted_or_refused(tiny_models):
    seg = _backend(tiny_models, box_threshold="0.25", nms_thresh="0.4", local_files_only="yes")
    assert (seg.box_threshold, seg.nms_thresh) == (0.25, 0.4)
    with pytest.raises(SegmentationError, match="box_threshold must be a number; got 'high'"):
        _backend(tiny_models, box_threshold="high")
    with pytest.raises(SegmentationError, match="local_files_only must be true or false"):
        _backend(tiny_models, local_files_only="maybe")
    # an unknown option is refused with every option the backend takes, its own and SAM's
    with pytest.raises(SegmentationError) as err:
        _backend(tiny_models, colour="3")
    said = str(err.value)
    assert "no segmentation option colour" in said
    assert all(k in said for k in ("model", "box_threshold", "checkpoint", "points_per_side"))
    dino, sam = tiny_models
    with pytest.raises(SegmentationError, match="no segmentation option sam_arch"):
        get_backend("grounded-sam", model=dino, checkpoint=sam, sam_arch="tiny", device="cpu")


def test_registry_lists_every_backend_and_classical_needs_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("DEDIT_MODEL_DIR", str(tmp_path))
    monkeypatch.delenv("DEDIT_SAM_CHECKPOINT", raising=False)
    infos = list_backends()
    assert [b.name for b in infos] == ["classical", "sam", "grounded-sam"]
    by_name = {b.name: b for b in infos}
    assert by_name["classical"].available and by_name["classical"].reason == ""
    assert not by_name["sam"].available and by_name["sam"].reason
    assert all(b.title and b.needs for b in infos)
    assert get_backend().name == "classical"
    with pytest.raises(SegmenterUnavailable, match="no segmentation backend called 'magic'"):
        get_backend("magic")
    with pytest.raises(SegmentationError, match="no segmentation option colour; the options are"):
        get_backend("classical", colour=3)


def test_checking_the_backends_is_quick_it_imports_neither_torch_nor_transformers(tmp_path):
    # The Settings dialog and Find items ask on the UI thread; importing torch and
    # transformers' Grounding DINO there froze the editor for 9 s on a 2-core machine.
    code = (
        "import sys\n"
        "from dedit_app.segment import backend_status, list_backends\n"
        "list_backends()\n"
        f"backend_status('grounded-sam', model={str(tmp_path)!r}, checkpoint='x.pth')\n"
        "print(*[m for m in ('torch', 'transformers', 'segment_anything') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert installed("transformers", "models", "grounding_dino")
    assert not installed("transformers", "models", "no_such_model")
    assert not installed("dedit_no_such_package")


def test_backend_status_says_why_in_a_sentence_and_never_raises(monkeypatch, tmp_path):
    assert backend_status("classical") == ""
    assert "no segmentation backend called 'magic'" in backend_status("magic")
    missing = tmp_path / "sam_vit_l_0b3195.pth"
    reason = backend_status("grounded-sam", model=tmp_path, checkpoint=missing)
    assert "has no model in it" in reason and str(tmp_path) in reason
    (tmp_path / "config.json").write_text("{}")  # the Grounding DINO folder now has a model
    reason = backend_status("grounded-sam", model=tmp_path, checkpoint=missing)
    assert "does not exist; download sam_vit_l_0b3195" in reason

    def broken(**_options):
        raise RuntimeError("a half-installed package")

    from dedit_app.segment import registry

    title, needs, _status, build = registry._BACKENDS["sam"]
    monkeypatch.setitem(registry._BACKENDS, "sam", (title, needs, broken, build))
    reason = backend_status("sam")
    assert reason.startswith("Checking whether Segment Anything (SAM) can run failed")
    assert "a half-installed package" in reason
    assert not {b.name: b for b in list_backends()}["sam"].available
