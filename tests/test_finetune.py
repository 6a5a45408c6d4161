"""Fine-tuning: what is trained, that it learns, reproducibility, saving and re-installing."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from dedit_app.errors import Cancelled, EditError, ModelLoadError
from dedit_app.finetune import (
    FinetuneOptions,
    TrainImage,
    apply_trained,
    finetune,
    finetune_project,
    store_result,
    weights_metadata,
)
from dedit_app.jobs import CancelToken, run_job
from dedit_app.models import load_model
from dedit_app.project import Project

QUICK = FinetuneOptions(emb_steps=2, model_steps=2, grad_accum=1, seed=0)
QKV = re.compile(r"attn2\.to_[qkv]\.weight$")


def _photo(tiny_photo):
    image, labels, names = tiny_photo
    return TrainImage(image, labels, names)


def _unet_output(model, seed=0):
    """One UNet evaluation with the first item's learned tokens (compares installed states)."""
    from dedit_app.tokens import encode_items

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, 4, 32, 24, generator=g)
    with torch.no_grad():
        cond = encode_items(
            model, {0: model.tokenizers[0].convert_ids_to_tokens([model.base_vocab[0]])[0]}
        )
        extra = {
            "text_embeds": cond.pooled,
            "time_ids": torch.tensor([[256.0, 192, 0, 0, 256, 192]]),
        }
        return model.unet(z, 400, cond.embeds, added_cond_kwargs=extra).sample


def test_finetuning_lowers_the_training_loss(tiny_sdxl, tiny_photo):
    options = FinetuneOptions(emb_steps=0, model_steps=30, grad_accum=1, unet_lr=3e-3, seed=0)
    losses = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], options)).losses
    assert len(losses) == 30
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < first - 0.03, (first, last)


def test_progress_every_micro_step_with_loss(tiny_sdxl, tiny_photo):
    seen = []
    result = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK), seen.append)
    assert [(p.step, p.total, p.stage) for p in seen] == [
        (1, 4, "tokens"), (2, 4, "tokens"), (3, 4, "unet"), (4, 4, "unet")
    ]  # fmt: skip
    assert all(p.loss is not None and np.isfinite(p.loss) for p in seen)
    assert result.losses == [p.loss for p in seen]
    assert tiny_sdxl.applied == result.metadata["weights_id"]


class _ReadsLikeCuda:
    """``hostreads.TrailingReads`` as it behaves on CUDA (each value a step late), on the CPU."""

    def __init__(self, device):
        self._pending = None

    def push(self, tensor):
        ready, self._pending = self._pending, tensor.detach().cpu()
        return ready

    def flush(self):
        ready, self._pending = self._pending, None
        return ready


def test_losses_read_a_step_late_stay_with_their_step(tiny_sdxl, tiny_photo, monkeypatch):
    """On a GPU each loss arrives a step after it was measured: the loss curve still plots
    every step's own loss at that step, the stage's last one included."""
    import dedit_app.finetune as ft

    def curve(progress):
        return [(p.loss_at, p.loss) for p in progress if p.loss is not None]

    now = []
    run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK), now.append)
    monkeypatch.setattr(ft, "TrailingReads", _ReadsLikeCuda)
    late = []
    result = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK), late.append)
    assert curve(late) == curve(now) == list(zip([1, 2, 3, 4], result.losses))
    assert late[0].loss is None and late[0].step == 1
    assert [p.step for p in late] == [1, 2, 2, 3, 4, 4]  # each stage's last loss follows it


def test_result_holds_only_the_trained_tensors(tiny_sdxl, tiny_photo):
    result = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK))
    n_tokens = 4 * 5
    assert result.tensors["text_encoder.rows"].shape == (n_tokens, 32)
    assert result.tensors["text_encoder_2.rows"].shape == (n_tokens, 32)
    unet_keys = {k for k in result.tensors if k.startswith("unet.")}
    expected = {f"unet.{n}" for n, _ in tiny_sdxl.unet.named_parameters() if QKV.search(n)}
    assert unet_keys == expected and len(expected) == 3 * 7  # 7 cross-attention layers
    assert set(result.tensors) == unet_keys | {"text_encoder.rows", "text_encoder_2.rows"}
    meta = result.metadata
    assert meta["fingerprint"] == tiny_sdxl.fingerprint and meta["unet"] == "attn-qkv"
    assert json.loads(meta["items"])[3] == "#bag3 #bag3_1 #bag3_2 #bag3_3 #bag3_4"
    assert result.item_tokens == json.loads(meta["items"])
    assert all(isinstance(v, str) for v in meta.values())


def test_stage_one_changes_only_the_new_rows(tiny_sdxl, tiny_photo):
    tables = [e.get_input_embeddings().weight.detach().clone() for e in tiny_sdxl.text_encoders]
    unet = {n: p.detach().clone() for n, p in tiny_sdxl.unet.named_parameters()}
    options = FinetuneOptions(emb_steps=3, model_steps=0, grad_accum=1, emb_lr=1e-2, seed=0)
    result = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], options))
    for encoder, before, key in zip(
        tiny_sdxl.text_encoders, tables, ("text_encoder", "text_encoder_2")
    ):
        after = encoder.get_input_embeddings().weight
        assert torch.equal(after[: before.shape[0]], before)  # bit for bit
        torch.testing.assert_close(after[before.shape[0] :], result.tensors[f"{key}.rows"])
    # the rows did move away from their seeded random start
    tiny_sdxl.reset()
    from dedit_app.tokens import add_item_tokens, get_token_rows, make_token_strings

    tokens = add_item_tokens(tiny_sdxl, make_token_strings(_photo(tiny_photo).names), seed=0)
    start = get_token_rows(tiny_sdxl, tokens)[0]
    assert not torch.equal(start, result.tensors["text_encoder.rows"])
    assert all(torch.equal(p, unet[n]) for n, p in tiny_sdxl.unet.named_parameters())
    assert not any(k.startswith("unet.") for k in result.tensors)


def test_stage_two_changes_only_cross_attention_qkv(tiny_sdxl, tiny_photo):
    before = {n: p.detach().clone() for n, p in tiny_sdxl.unet.named_parameters()}
    options = FinetuneOptions(emb_steps=0, model_steps=2, grad_accum=1, unet_lr=1e-3)
    run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], options))
    changed = {n for n, p in tiny_sdxl.unet.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(QKV.search(n) for n in changed)
    assert all(not p.requires_grad for p in tiny_sdxl.unet.parameters())


def test_same_seed_same_tensors(tiny_sdxl, tiny_photo):
    a = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK))
    b = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK))
    assert a.tensors.keys() == b.tensors.keys()
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    assert a.losses == b.losses
    c = run_job(
        finetune(tiny_sdxl, [_photo(tiny_photo)], FinetuneOptions(**{**QUICK.__dict__, "seed": 1}))
    )
    assert not torch.equal(a.tensors["text_encoder.rows"], c.tensors["text_encoder.rows"])


def test_saved_weights_install_into_a_fresh_model(tiny_sdxl, tiny_sdxl_path, tiny_photo, tmp_path):
    image, labels, names = tiny_photo
    project = Project.new(image, labels, list(names))
    project.save(tmp_path / "p.dedit")
    result = run_job(finetune_project(tiny_sdxl, project, options=QUICK))
    trained = _unet_output(tiny_sdxl)
    store_result(project, result)
    loaded = Project.load(tmp_path / "p.dedit")
    assert loaded.prepared and loaded.items[0].tokens == result.item_tokens[0]
    assert weights_metadata(loaded)["weights_id"] == result.metadata["weights_id"]
    tensors, metadata = loaded.load_weights()
    fresh = load_model(tiny_sdxl_path, device="cpu")
    apply_trained(fresh, tensors, metadata)
    assert fresh.applied == metadata["weights_id"]
    torch.testing.assert_close(_unet_output(fresh), trained, rtol=0, atol=0)
    apply_trained(fresh, tensors, metadata)  # already installed: nothing to do
    fresh.reset()
    assert not torch.equal(_unet_output_base(fresh), trained)


def _unet_output_base(model):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, 32, 24, generator=g)
    from dedit_app.tokens import encode_items

    with torch.no_grad():
        cond = encode_items(model, {0: "a photo"})
        extra = {
            "text_embeds": cond.pooled,
            "time_ids": torch.tensor([[256.0, 192, 0, 0, 256, 192]]),
        }
        return model.unet(z, 400, cond.embeds, added_cond_kwargs=extra).sample


def test_lora_variant_round_trip(tiny_sdxl, tiny_sdxl_path, tiny_photo):
    options = FinetuneOptions(emb_steps=1, model_steps=2, grad_accum=1, lora_rank=2, unet_lr=1e-2)
    result = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], options))
    lora = [k for k in result.tensors if k.startswith("lora.")]
    assert lora and not any(k.startswith("unet.") for k in result.tensors)
    assert any(".attn1.to_out.0.lora_A" in k for k in lora)  # the whole UNet, self-attention too
    assert result.metadata["unet"] == "lora-2"
    trained = _unet_output(tiny_sdxl)
    fresh = load_model(tiny_sdxl_path, device="cpu")
    apply_trained(fresh, result.tensors, result.metadata)
    torch.testing.assert_close(_unet_output(fresh), trained)
    fresh.reset()
    assert not getattr(fresh.unet, "peft_config", None)
    assert not any("lora" in n or "base_layer" in n for n, _ in fresh.unet.named_parameters())


def test_joint_preparation_has_both_token_sets(tiny_sdxl, tiny_photo):
    target = _photo(tiny_photo)
    image, labels, _ = tiny_photo
    reference = TrainImage(
        image[:, ::-1].copy(), labels[:, ::-1].copy(), ("sky", "sea", "boat", "sail")
    )
    result = run_job(finetune(tiny_sdxl, [target, reference], QUICK))
    assert result.reference_tokens[2] == "$boat2 $boat2_1 $boat2_2 $boat2_3 $boat2_4"
    assert json.loads(result.metadata["reference_items"]) == result.reference_tokens
    assert "reference_key" in result.metadata
    assert result.tensors["text_encoder.rows"].shape[0] == 2 * 4 * 5


def test_a_joint_preparation_keeps_the_references_items_for_when_it_is_opened_again(
    tiny_sdxl, tiny_sdxl_path, tiny_photo, tmp_path
):
    from dedit_app.reference_items import LABELS_TENSOR, prepared_reference

    image, labels, names = tiny_photo
    ref_image, ref_labels = image[:, ::-1].copy(), labels[:, ::-1].copy()
    ref_names = ("sky", "sea", "boat", "sail")
    project = Project.new(image, labels, list(names))
    reference = TrainImage(ref_image, ref_labels, ref_names)
    result = run_job(finetune(tiny_sdxl, [_photo(tiny_photo), reference], QUICK))
    store_result(project, result)  # no folder: kept until the next save
    for when in ("before the save", "after reopening"):
        kept = prepared_reference(project)
        assert kept is not None, when
        np.testing.assert_array_equal(kept.labels, ref_labels)
        assert kept.names == ref_names and kept.fits(ref_image)
        assert not kept.fits(image) and not kept.fits(ref_image[:, :-1])
        assert prepared_reference(project, of=image) is None  # told before the map is read
        assert prepared_reference(project, of=ref_image) is not None
        project.save(tmp_path / "p.dedit")
        project = Project.load(tmp_path / "p.dedit")
    # the kept map rides in the weights file and is left alone when they are installed
    tensors, metadata = project.load_weights()
    assert tensors[LABELS_TENSOR].dtype == torch.uint8
    fresh = load_model(tiny_sdxl_path, device="cpu")
    apply_trained(fresh, tensors, metadata)
    # prepared alone: nothing kept
    alone = Project.new(image, labels, list(names))
    store_result(alone, run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK)))
    assert (
        prepared_reference(alone) is None
        and prepared_reference(Project.new(image, labels, list(names))) is None
    )


def test_a_reference_in_another_colour_profile_is_learned_in_the_photos_colours(
    tiny_sdxl, tiny_photo, monkeypatch
):
    from image_corpus import p3_like_profile

    from dedit_app.colour_profiles import between
    from dedit_app.imageio import resize_image
    from dedit_app.project import content_key

    image, labels, names = tiny_photo
    ref_image, ref_labels = image[:, ::-1].copy(), labels[:, ::-1].copy()
    p3 = p3_like_profile()
    seen: list[np.ndarray] = []
    encode = tiny_sdxl.encode_image
    monkeypatch.setattr(
        tiny_sdxl, "encode_image", lambda pixels: seen.append(pixels) or encode(pixels)
    )
    size = tiny_sdxl.bucket(*labels.shape)
    # (the photo's profile, the reference's): an sRGB reference swapped into a P3 photo,
    # the other way round, and two photos in the same space, learned as they are
    for mine, theirs in ((p3, None), (None, p3), (p3, p3)):
        project = Project.new(image, labels, list(names), profile=mine)
        reference = Project.new(
            ref_image, ref_labels, ["sky", "sea", "boat", "sail"], profile=theirs
        )
        seen.clear()
        result = run_job(finetune_project(tiny_sdxl, project, reference, QUICK))
        as_learned = resize_image(ref_image, size)
        turn = between(theirs, mine)
        assert (turn is None) == (mine == theirs)
        if turn is not None:
            as_learned = turn(as_learned)
            assert np.abs(as_learned.astype(int) - resize_image(ref_image, size)).max() > 8
        np.testing.assert_array_equal(seen[1], as_learned)
        np.testing.assert_array_equal(seen[0], resize_image(image, size))  # the photo as it is
        # the swap's check and the kept items name the reference's pixels as they are
        assert result.metadata["reference_key"] == content_key(ref_image, ref_labels)
        assert result.metadata["reference_image"] == content_key(ref_image)


def test_weights_from_another_base_model_are_refused(tiny_sdxl, tiny_sdxl_other_path, tiny_photo):
    result = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK))
    other = load_model(tiny_sdxl_other_path, device="cpu")
    with pytest.raises(ModelLoadError, match="prepared on tiny-sdxl"):
        apply_trained(other, result.tensors, result.metadata)
    assert len(other.tokenizers[0]) == other.base_vocab[0]  # nothing was installed


def test_cancel_leaves_model_and_project_unchanged(tiny_sdxl, tiny_photo, tmp_path):
    image, labels, names = tiny_photo
    project = Project.new(image, labels, list(names))
    project.save(tmp_path / "p.dedit")
    before = (tmp_path / "p.dedit" / "project.json").read_bytes()
    cancel = CancelToken()

    def on_progress(p):
        cancel.cancel()

    job = finetune_project(tiny_sdxl, project, options=QUICK, cancel=cancel)
    with pytest.raises(Cancelled):
        run_job(job, on_progress)
    assert len(tiny_sdxl.tokenizers[0]) == tiny_sdxl.base_vocab[0]
    assert tiny_sdxl.applied == ""
    assert not project.prepared and project.items[0].tokens == ""
    assert (tmp_path / "p.dedit" / "project.json").read_bytes() == before


def test_bad_options_are_sentences(tiny_sdxl, tiny_photo):
    with pytest.raises(EditError, match="at least one training step"):
        finetune(tiny_sdxl, [_photo(tiny_photo)], FinetuneOptions(emb_steps=0, model_steps=0))
    with pytest.raises(EditError, match="LoRA rank"):
        finetune(tiny_sdxl, [_photo(tiny_photo)], FinetuneOptions(lora_rank=-1))
    with pytest.raises(EditError, match="not been prepared"):
        image, labels, names = tiny_photo
        weights_metadata(Project.new(image, labels, list(names)))


def test_sd15_prepares_and_edits(tiny_sd15_path, tiny_photo, tmp_path):
    from dedit_app.edits import TextRequest, edit
    from dedit_app.sampler import SamplingOptions

    model = load_model(tiny_sd15_path, device="cpu")
    image, labels, names = tiny_photo
    project = Project.new(image, labels, list(names))
    project.save(tmp_path / "p.dedit")
    result = run_job(finetune_project(model, project, options=QUICK))
    assert (
        set(result.tensors) >= {"text_encoder.rows"} and "text_encoder_2.rows" not in result.tensors
    )
    assert result.metadata["family"] == "sd15"
    store_result(project, result)
    out = edit(
        model,
        Project.load(tmp_path / "p.dedit"),
        TextRequest(3, "a red *", options=SamplingOptions(steps=2)),
    )
    assert out.images[0].shape == image.shape
    assert (out.images[0][out.hard] == image[out.hard]).all()


def test_gradient_checkpointing_trains_the_same(tiny_sdxl, tiny_photo):
    # recomputation during backward must see the same grouped attention as the forward pass
    plain = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK))
    low = FinetuneOptions(**{**QUICK.__dict__, "gradient_checkpointing": True})
    checkpointed = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], low))
    assert not tiny_sdxl.unet.is_gradient_checkpointing
    for key, value in plain.tensors.items():
        torch.testing.assert_close(checkpointed.tensors[key], value, rtol=1e-4, atol=1e-6)


def test_float16_gradients_as_small_as_full_size_sdxls_are_not_lost(
    tiny_sdxl, tiny_sdxl_path, tiny_photo, monkeypatch
):
    """In float16 the UNet's backward runs in float16, where gradients as small as a
    full-size SDXL preparation's flush to zero without loss scaling. A large grad_accum
    shrinks the tiny model's gradients below that line; each stage's first update must
    still see float32's gradients."""
    seen: dict[str, list[torch.Tensor]] = {}
    step = torch.optim.AdamW.step

    def recording(opt, *args, **kwargs):
        grads = [p.grad.detach().float().clone() for g in opt.param_groups for p in g["params"]]
        seen.setdefault(recording.run, []).append(torch.cat([g.ravel() for g in grads]))
        return step(opt, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    options = FinetuneOptions(emb_steps=1, model_steps=1, grad_accum=10_000, seed=0)
    half = load_model(tiny_sdxl_path, device="cpu", dtype="fp16")
    for recording.run, model in [("float32", tiny_sdxl), ("float16", half)]:
        run_job(finetune(model, [_photo(tiny_photo)], options))
    assert [len(seen[k]) for k in ("float32", "float16")] == [2, 2]  # tokens, unet
    for full, halved in zip(seen["float32"], seen["float16"]):
        assert full.abs().max() < 1e-5  # below float16's smallest normal number, 6e-5
        assert (halved == 0).float().mean() < 0.01
        assert (halved - full).norm() / full.norm() < 0.02


def test_half_precision_without_autocast_on_the_device_is_refused_before_anything_runs(
    tiny_sdxl_path, tiny_photo, monkeypatch
):
    """A PyTorch without autocast on the device (MPS before 2.5) would fail preparing in
    half precision at the first layer with a dtype mismatch; it is refused up front with
    the remedy, and float32 still prepares."""
    half = load_model(tiny_sdxl_path, device="cpu", dtype="fp16")
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda kind: kind != "cpu")
    options = FinetuneOptions(emb_steps=1, model_steps=1, seed=0)
    with pytest.raises(ModelLoadError) as err:
        finetune(half, [_photo(tiny_photo)], options)
    message = str(err.value)
    assert "cannot prepare a photo in float16 on the processor" in message
    assert "pip install -U torch" in message and "float32" in message
    assert half.applied == ""
    full = load_model(tiny_sdxl_path, device="cpu", dtype="fp32")
    assert run_job(finetune(full, [_photo(tiny_photo)], options)).tensors


def test_a_preparation_whose_numbers_overflow_keeps_nothing_and_says_so(
    tiny_sdxl, tiny_photo, monkeypatch
):
    """One loss that is not a number spreads through AdamW into every trained tensor: such
    a result would draw blank edits, so it is refused and the model stays the base."""
    from dedit_app import finetune as ft
    from dedit_app.errors import Overflowed

    qkv = {n: p.detach().clone() for n, p in tiny_sdxl.unet.named_parameters() if QKV.search(n)}
    real = ft.F.mse_loss
    monkeypatch.setattr(ft.F, "mse_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(Overflowed) as info:
        run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK))
    assert str(info.value) == (
        "Preparing went wrong: the model's numbers overflowed in float32 and are no longer "
        "numbers, so nothing was kept. Prepare again with lower learning rates."
    )
    assert tiny_sdxl.applied == "" and len(tiny_sdxl.tokenizers[0]) == tiny_sdxl.base_vocab[0]
    after = dict(tiny_sdxl.unet.named_parameters())
    assert all(torch.equal(after[n], value) for n, value in qkv.items())


def _recomputing(unet) -> list[str]:
    return [n for n, m in unet.named_modules() if getattr(m, "gradient_checkpointing", False)]


def test_a_low_memory_plan_recomputes_its_blocks_per_stage_and_trains_the_same(
    tiny_sdxl, tiny_photo
):
    """Low-memory mode recomputes only the blocks its plan names for each stage (the rest
    keep their activations); what is learned does not change."""
    from dedit_app.recompute import Recompute

    plan = Recompute(tokens=(), unet=("down_blocks.1.attentions", "mid_block"))
    low = FinetuneOptions(**{**QUICK.__dict__, "gradient_checkpointing": True, "recompute": plan})
    seen: dict[str, list[str]] = {}

    def look(p):
        seen.setdefault(p.stage, _recomputing(tiny_sdxl.unet))

    plain = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], QUICK))
    partial = run_job(finetune(tiny_sdxl, [_photo(tiny_photo)], low), look)
    assert seen == {
        "tokens": [],
        "unet": ["down_blocks.1.attentions.0", "mid_block", "mid_block.attentions.0"],
    }
    assert _recomputing(tiny_sdxl.unet) == []
    for key, value in plain.tensors.items():
        torch.testing.assert_close(partial.tensors[key], value, rtol=1e-4, atol=1e-6)


def test_a_low_memory_plan_for_another_unet_is_refused_before_preparing(tiny_sdxl, tiny_photo):
    from dedit_app.recompute import Recompute

    plan = Recompute(unet=("down_blocks.2.attentions", "mid_block"))
    low = FinetuneOptions(**{**QUICK.__dict__, "gradient_checkpointing": True, "recompute": plan})
    applied = tiny_sdxl.applied
    with pytest.raises(EditError, match=r"does not have: down_blocks\.2\.attentions\. "):
        finetune(tiny_sdxl, [_photo(tiny_photo)], low)
    assert tiny_sdxl.applied == applied and _recomputing(tiny_sdxl.unet) == []
