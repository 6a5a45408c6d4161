"""SAM backend on a tiny random SAM, loaded from a .pth through the real checkpoint path."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch

from dedit_app.errors import SegmentationError, SegmenterUnavailable
from dedit_app.segment import get_backend, list_backends
from dedit_app.segment.sam import (
    SAM_FILES,
    SAM_URL,
    SamSegmenter,
    find_sam_checkpoint,
    load_sam,
    sam_status,
)
from dedit_app.segment.tiny import TINY_SAM, save_tiny_sam

# Random weights rate their own masks randomly: keep every candidate.
KEEP_ALL = {"pred_iou_thresh": -1e9, "stability_score_thresh": 0.0, "points_per_side": 6}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.pth")


@pytest.fixture
def no_sam_anywhere(monkeypatch, tmp_path):
    """No checkpoint in the environment or the model folder."""
    monkeypatch.delenv("DEDIT_SAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("DEDIT_MODEL_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def _photo(h=90, w=120, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (200, 190, 180)
    img[20:70, 10:60] = (30, 60, 160)
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    return img


def _count_encoder_calls(seg: SamSegmenter) -> list[int]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    seg.model.image_encoder.register_forward_hook(hook)
    return calls


def test_encoder_runs_once_for_many_clicks_and_automatic_items(tiny_checkpoint):
    seg = get_backend("sam", checkpoint=tiny_checkpoint, arch=TINY_SAM, device="cpu", **KEEP_ALL)
    calls = _count_encoder_calls(seg)
    photo = _photo()
    seg.set_image(photo)
    assert calls[0] == 1
    seg.model.mask_threshold = -1e9  # random weights: make every mask non-empty
    for x, y in [(5, 5), (30, 40), (110, 80), (60, 10)]:
        mask = seg.segment_click([(x, y)], [1])
        assert mask.shape == (90, 120) and mask.dtype == bool
    seg.segment_click([(30, 40), (100, 10)], [1, 0], box=(10, 20, 60, 70))
    seg.model.mask_threshold = 0.0
    seg.segment_auto()
    seg.set_image(photo.copy())  # same pixels: the embedding is reused
    assert calls[0] == 1
    seg.set_image(_photo(seed=1))
    assert calls[0] == 2


def test_automatic_items_cover_every_pixel_with_names(tiny_checkpoint):
    seg = SamSegmenter(tiny_checkpoint, arch=TINY_SAM, device="cpu", **KEEP_ALL)
    seg.set_image(_photo(75, 130))
    result = seg.segment_auto()
    k = len(result.names)
    assert result.labels.shape == (75, 130) and result.labels.dtype == np.int32
    assert set(np.unique(result.labels)) == set(range(k))
    assert len(set(result.names)) == k and all(result.names)
    assert len(result.scores) == k


def test_overlapping_candidates_go_through_the_partition(tiny_checkpoint, monkeypatch):
    """The grid's candidates (patched to known masks) are resolved by score, fragments
    merged, and the uncovered rest named background."""
    seg = SamSegmenter(tiny_checkpoint, arch=TINY_SAM, device="cpu", **KEEP_ALL)
    seg.set_image(_photo(60, 80))
    a = np.zeros((60, 80), bool)
    a[:, :40] = True
    b = np.zeros((60, 80), bool)
    b[10:50, 30:60] = True
    speck = np.zeros((60, 80), bool)
    speck[2:3, 70:72] = True

    def fake_grid(cancel):
        yield from ()
        return np.stack([a, b, speck]), np.array([0.9, 0.95, 0.99])

    monkeypatch.setattr(seg, "_grid_masks", fake_grid)
    result = seg.segment_auto()
    assert result.names[-1] == "background" and len(result.names) == 3
    assert result.labels[30, 35] == 0  # the overlap went to b (0.95)
    assert result.labels[30, 5] == 1
    assert result.labels[2, 70] == 2  # the 2-pixel speck became background around it


def test_release_keeps_the_embedding_and_still_answers(tiny_checkpoint):
    seg = SamSegmenter(tiny_checkpoint, arch=TINY_SAM, device="cpu", **KEEP_ALL)
    calls = _count_encoder_calls(seg)
    seg.set_image(_photo())
    seg.release()
    assert seg.model.device.type == "cpu"
    seg.model.mask_threshold = -1e9
    assert seg.segment_click([(10, 10)]).any()
    assert calls[0] == 1


def test_bad_clicks_and_text_are_refused(tiny_checkpoint):
    seg = SamSegmenter(tiny_checkpoint, arch=TINY_SAM, device="cpu")
    with pytest.raises(SegmentationError, match="No picture"):
        seg.segment_click([(1, 1)])
    seg.set_image(_photo())
    with pytest.raises(SegmentationError, match=r"click at \(-3, 5\) is outside"):
        seg.segment_click([(-3, 5)])
    with pytest.raises(SegmentationError, match="is empty"):
        seg.segment_click(None, box=(10, 10, 40, 10))
    with pytest.raises(SegmentationError, match="cannot search for items by text") as err:
        seg.segment_auto("a handbag")
    # Input the user gives again differently, not a setup the settings must mend.
    assert not isinstance(err.value, SegmenterUnavailable)


def test_checkpoint_that_does_not_fit_its_architecture(tiny_checkpoint, tmp_path):
    other = dataclasses.replace(TINY_SAM, decoder_mlp_dim=48)
    with pytest.raises(SegmenterUnavailable) as err:
        load_sam(tiny_checkpoint, arch=other)
    assert "tiny_sam.pth does not match the SAM given architecture" in str(err.value)
    # A published type is checked against the file before building the (large) model.
    with pytest.raises(SegmenterUnavailable) as err:
        load_sam(tiny_checkpoint, model_type="vit_b")
    msg = str(err.value)
    assert "tiny_sam.pth does not match the SAM vit_b architecture" in msg
    assert "32 wide where vit_b has 768" in msg
    # A real vit_l-shaped encoder width named as vit_b says which one it looks like.
    fake = {"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}
    torch.save(fake, tmp_path / "sam_vit_l_0b3195.pth")
    with pytest.raises(SegmenterUnavailable, match="it looks like vit_l"):
        load_sam(tmp_path / "sam_vit_l_0b3195.pth", model_type="vit_b")


def test_unsafe_or_broken_checkpoints_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SegmenterUnavailable, match="could not be read as safe PyTorch weights"):
        load_sam(junk)
    # A pickle that would call an arbitrary function is refused by weights_only=True.
    evil = tmp_path / "evil.pth"
    torch.save({"x": functools.partial(print, "this must never run")}, evil)
    with pytest.raises(SegmenterUnavailable, match="could not be read as safe"):
        load_sam(evil)


def test_missing_checkpoint_says_what_to_download_and_where(no_sam_anywhere):
    with pytest.raises(SegmenterUnavailable) as err:
        get_backend("sam")
    msg = str(err.value)
    assert "sam_vit_b_01ec64.pth" in msg and "dl.fbaipublicfiles.com/segment_anything" in msg
    assert str(no_sam_anywhere) in msg and "DEDIT_SAM_CHECKPOINT" in msg
    info = {b.name: b for b in list_backends()}["sam"]
    assert not info.available and "DEDIT_SAM_CHECKPOINT" in info.reason
    with pytest.raises(SegmenterUnavailable, match="does not exist; download sam_vit_b_01ec64"):
        get_backend("sam", checkpoint=no_sam_anywhere / "nope.pth")
    # A published file that moved away: that same file is the one to download again.
    with pytest.raises(SegmenterUnavailable, match="does not exist; download sam_vit_h_4b8939"):
        get_backend("sam", checkpoint=no_sam_anywhere / "sam_vit_h_4b8939.pth")
    with pytest.raises(SegmenterUnavailable, match="no SAM model type 'vit_x'"):
        find_sam_checkpoint(model_type="vit_x")


def test_the_missing_checkpoint_sentence_follows_the_search_order(no_sam_anywhere):
    from pathlib import Path

    # the order find_sam_checkpoint prefers the published files in, found by trying it
    no_sam_anywhere.mkdir()
    for name in SAM_FILES.values():
        (no_sam_anywhere / name).write_bytes(b"")
    preferred = []
    for _ in SAM_FILES:
        found = find_sam_checkpoint()
        preferred.append(found.name)
        found.unlink()
    assert sorted(preferred) == sorted(SAM_FILES.values())
    with pytest.raises(SegmenterUnavailable) as err:
        find_sam_checkpoint()
    msg = str(err.value)
    assert [msg.index(name) for name in preferred] == sorted(msg.index(n) for n in preferred)
    # where to get them: the folder all of them are in, not one file's address
    assert SAM_URL in msg and not any(SAM_URL + name in msg for name in preferred)
    # the documentation quotes it word for word (with the default model folder)
    docs = (Path(__file__).parents[1] / "docs" / "SEGMENTATION.md").read_text()
    assert msg.replace(str(no_sam_anywhere), "~/.cache/dedit") in docs


def test_arch_and_model_are_not_options_text_can_give(tiny_checkpoint):
    for key in ("arch", "model"):
        with pytest.raises(SegmentationError, match=f"no segmentation option {key}; the options"):
            get_backend("sam", checkpoint=tiny_checkpoint, device="cpu", **{key: "vit_b"})
    with pytest.raises(SegmentationError, match="option colour; the options are checkpoint"):
        get_backend("sam", checkpoint=tiny_checkpoint, arch=TINY_SAM, device="cpu", colour="3")


def test_checkpoint_found_in_the_model_folder(no_sam_anywhere, tiny_checkpoint, monkeypatch):
    no_sam_anywhere.mkdir()
    (no_sam_anywhere / SAM_FILES["vit_b"]).write_bytes(tiny_checkpoint.read_bytes())
    assert find_sam_checkpoint() == no_sam_anywhere / SAM_FILES["vit_b"]
    assert sam_status() == ""
    monkeypatch.setenv("DEDIT_SAM_CHECKPOINT", str(tiny_checkpoint))
    assert find_sam_checkpoint() == tiny_checkpoint
