"""Masked sampling: peer equivalence with diffusers, regions, pasting, candidates, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dedit_app.errors import Cancelled, EditError
from dedit_app.jobs import CancelToken, run_job
from dedit_app.sampler import SampleRequest, SamplingOptions, latent_regions, sample

PROMPTS = {0: "a wall", 1: "a table", 2: "a floor", 3: "a red bag"}


def test_peer_equivalence_with_stable_diffusion_xl_pipeline(tiny_sdxl, tiny_sdxl_path):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_path, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    kw = {"num_inference_steps": 3, "guidance_scale": 3.0, "height": 256, "width": 256}
    theirs_latents = pipe(
        "a photo of a cat", generator=torch.Generator().manual_seed(5), output_type="latent", **kw
    ).images
    theirs = pipe(
        "a photo of a cat", generator=torch.Generator().manual_seed(5), output_type="np", **kw
    ).images[0]
    request = SampleRequest(
        labels=np.zeros((256, 256), np.int32),
        prompts={0: "a photo of a cat"},
        options=SamplingOptions(steps=3, guidance=3.0, seed=5),
    )
    ours = run_job(sample(tiny_sdxl, request))
    torch.testing.assert_close(ours.latents, theirs_latents, rtol=1e-5, atol=1e-5)
    diff = np.abs(ours.images[0].astype(int) - (theirs * 255).round().astype(int))
    assert diff.max() <= 1


@pytest.mark.parametrize(
    ("size", "cells"), [((300, 200), (40, 24)), ((256, 256), (32, 32)), ((10, 7), (32, 24))]
)
def test_latent_regions_are_conservative(size, cells):
    from dedit_app.partition import edit_regions

    rng = np.random.default_rng(sum(size))
    for _ in range(5):
        active = np.zeros(size, bool)
        y, x = rng.integers(0, size[0]), rng.integers(0, size[1])
        active[y : y + rng.integers(1, size[0]), x : x + rng.integers(1, size[1])] = True
        hard, soft = edit_regions(active, edge=3)
        a, s, h = latent_regions(active, hard, cells)
        assert a.shape == cells and ((a.astype(int) + s + h) == 1).all()
        # every latent cell with any active pixel is active; hard cells cover only hard pixels
        rows = [
            (
                int(np.floor(i * size[0] / cells[0])),
                max(int(np.ceil((i + 1) * size[0] / cells[0])), 1),
            )
            for i in range(cells[0])
        ]
        cols = [
            (
                int(np.floor(j * size[1] / cells[1])),
                max(int(np.ceil((j + 1) * size[1] / cells[1])), 1),
            )
            for j in range(cells[1])
        ]
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                assert a[i, j] == active[r0:r1, c0:c1].any()
                assert h[i, j] == (hard[r0:r1, c0:c1].all() and not a[i, j])


def _masked(model, tiny_photo, **options):
    image, labels, _ = tiny_photo
    active = labels == 3
    opts = SamplingOptions(**{"steps": 3, "edge": 10, **options})
    return run_job(sample(model, SampleRequest(labels, PROMPTS, image, active, opts)))


def test_hard_pixels_are_byte_identical_and_hard_latents_are_the_original(tiny_sdxl, tiny_photo):
    from dedit_app.imageio import resize_image

    image, labels, _ = tiny_photo
    result = _masked(tiny_sdxl, tiny_photo, strength=0.0)
    out = result.images[0]
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[result.hard] == image[result.hard]).all()
    assert not (out[result.active] == image[result.active]).all()
    assert ((result.active.astype(int) + result.soft + result.hard) == 1).all()
    assert (result.active == (labels == 3)).all()
    original = tiny_sdxl.encode_image(resize_image(image, result.bucket))
    _, soft_l, hard_l = latent_regions(result.active, result.hard, tuple(original.shape[-2:]))
    z = result.latents[0]
    # after the last step the clean original is pasted into hard cells: exactly equal
    assert torch.equal(z[:, hard_l], original[0][:, hard_l])
    # strength 0: the soft band was pasted only after step 0, then generated
    assert not torch.allclose(z[:, soft_l], original[0][:, soft_l])
    full = _masked(tiny_sdxl, tiny_photo, strength=1.0).latents[0]
    assert torch.equal(full[:, soft_l], original[0][:, soft_l])


def test_candidates_are_batched_reproducible_and_different(tiny_sdxl, tiny_photo):
    both = _masked(tiny_sdxl, tiny_photo, candidates=2, seed=10, batch=2)
    assert both.seeds == [10, 11] and len(both.images) == 2
    second = _masked(tiny_sdxl, tiny_photo, candidates=1, seed=11)
    torch.testing.assert_close(both.latents[1:], second.latents, rtol=1e-4, atol=1e-4)
    assert not np.array_equal(both.images[0], both.images[1])
    # batching changes float rounding only: one grey level at most
    assert np.abs(second.images[0].astype(int) - both.images[1]).max() <= 2
    again = _masked(tiny_sdxl, tiny_photo, candidates=2, seed=10, batch=2)
    assert all(np.array_equal(a, b) for a, b in zip(again.images, both.images))


@pytest.mark.parametrize("scheduler", ["ddpm", "euler"])
def test_each_candidate_of_a_batch_is_what_its_seed_makes_alone(tiny_sdxl, tiny_photo, scheduler):
    """A history entry records the applied candidate's seed: with a stochastic scheduler
    (DDPM draws noise at every step) that seed alone must make the same picture."""
    three = _masked(tiny_sdxl, tiny_photo, candidates=3, seed=7, batch=3, scheduler=scheduler)
    for k, seed in enumerate(three.seeds):
        alone = _masked(tiny_sdxl, tiny_photo, candidates=1, seed=seed, scheduler=scheduler)
        torch.testing.assert_close(three.latents[k : k + 1], alone.latents, rtol=1e-4, atol=1e-4)


def test_previews_every_step(tiny_sdxl, tiny_photo):
    image, labels, _ = tiny_photo
    seen = []
    opts = SamplingOptions(steps=3, candidates=3, batch=2)
    run_job(
        sample(tiny_sdxl, SampleRequest(labels, PROMPTS, image, labels == 1, opts)), seen.append
    )
    assert [(p.step, p.total) for p in seen] == [(i, 6) for i in range(1, 7)]
    assert all(p.preview.shape == (40, 24, 3) and p.preview.dtype == np.uint8 for p in seen)
    quiet = []
    opts = SamplingOptions(steps=2, previews=False)
    run_job(
        sample(tiny_sdxl, SampleRequest(labels, PROMPTS, image, labels == 1, opts)), quiet.append
    )
    assert all(p.preview is None for p in quiet)


def test_cancel_stops_before_decoding(tiny_sdxl, tiny_photo, monkeypatch):
    image, labels, _ = tiny_photo
    cancel = CancelToken()

    def no_decode(*a, **k):
        raise AssertionError("decoded after cancel")

    monkeypatch.setattr(tiny_sdxl, "decode_latents", no_decode)
    job = sample(
        tiny_sdxl,
        SampleRequest(labels, PROMPTS, image, labels == 3, SamplingOptions(steps=5)),
        cancel,
    )
    steps = []
    with pytest.raises(Cancelled):
        run_job(job, lambda p: (steps.append(p.step), cancel.cancel()))
    assert steps == [1]


def test_numbers_that_overflow_are_a_sentence_not_a_blank_picture(
    tiny_sdxl, tiny_photo, monkeypatch
):
    """A UNet or a VAE whose numbers overflow (NaN in half precision) would hand back a
    blank or black region as if it were the edit; it is refused in words instead."""
    from dedit_app.errors import Overflowed, overflowed

    image, labels, _ = tiny_photo
    request = SampleRequest(labels, PROMPTS, image, labels == 3, SamplingOptions(steps=2))
    real_unet = tiny_sdxl.run_unet
    monkeypatch.setattr(
        tiny_sdxl, "run_unet", lambda *a, **k: [real_unet(*a, **k)[0] * float("nan")]
    )
    with pytest.raises(Overflowed) as info:
        run_job(sample(tiny_sdxl, request))
    assert str(info.value) == (
        "The edit went wrong: the model's numbers overflowed in float32 and are no longer "
        "numbers, so nothing was kept. Prepare the photo again."
    )
    monkeypatch.setattr(tiny_sdxl, "run_unet", real_unet)
    real_decode = tiny_sdxl.vae.decode

    def overflowing(z, **kwargs):  # a VAE whose decode overflows
        return [real_decode(z.float(), **kwargs)[0] * float("nan")]

    monkeypatch.setattr(tiny_sdxl.vae, "decode", overflowing)
    with pytest.raises(Overflowed, match="^Drawing the picture went wrong: .* in float32"):
        run_job(sample(tiny_sdxl, request))
    # in half precision the remedy is another precision
    said = str(overflowed("The edit", torch.float16, "Prepare the photo again."))
    assert "overflowed in float16" in said
    assert said.endswith("Choose float32 as the precision (or bfloat16 on a GPU that has it) "
                         "and try again.")  # fmt: skip


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"steps": 0}, "steps"),
        ({"guidance": -1.0}, "guidance"),
        ({"strength": 1.5}, "strength"),
        ({"edge": -2.0}, "soft edge"),
        ({"candidates": 0}, "candidates"),
    ],
)
def test_bad_options_are_refused_before_work(tiny_sdxl, tiny_photo, options, words):
    image, labels, _ = tiny_photo
    with pytest.raises(EditError, match=words):
        sample(tiny_sdxl, SampleRequest(labels, PROMPTS, image, None, SamplingOptions(**options)))


def test_bad_requests_are_sentences(tiny_sdxl, tiny_photo):
    image, labels, _ = tiny_photo
    with pytest.raises(EditError, match="different sizes"):
        sample(tiny_sdxl, SampleRequest(labels[:10], PROMPTS, image))
    with pytest.raises(EditError, match="whole picture"):
        sample(tiny_sdxl, SampleRequest(labels, PROMPTS, None, labels == 1))


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm"])
def test_other_schedulers_keep_hard_pixels(tiny_sdxl, tiny_photo, scheduler):
    image, _, _ = tiny_photo
    result = _masked(tiny_sdxl, tiny_photo, scheduler=scheduler)
    assert (result.images[0][result.hard] == image[result.hard]).all()


def test_sd15_masked_sampling(tiny_sd15_path, tiny_photo):
    from dedit_app.models import load_model

    model = load_model(tiny_sd15_path, device="cpu")
    image, _, _ = tiny_photo
    result = _masked(model, tiny_photo, steps=2)  # PNDM, as SD 1.5 ships
    assert result.images[0].shape == image.shape
    assert (result.images[0][result.hard] == image[result.hard]).all()


def test_one_batched_call_equals_the_papers_two_calls_over_a_whole_edit(tiny_sdxl, tiny_photo):
    """The benchmarks time a whole edit both ways; both must render the same picture."""
    from benchmarks.dedit_reference import paper_unet_calls
    from dedit_app.imageio import resize_labels
    from dedit_app.tokens import encode_items

    image, labels, _ = tiny_photo
    request = SampleRequest(labels, PROMPTS, image, labels == 3, SamplingOptions(steps=3))
    ours = run_job(sample(tiny_sdxl, request))
    small = torch.from_numpy(resize_labels(labels.astype(np.int64), (40, 24)))
    with torch.no_grad():
        key_items = encode_items(tiny_sdxl, PROMPTS).key_items
    with paper_unet_calls(tiny_sdxl, small, key_items):
        theirs = run_job(sample(tiny_sdxl, request))
    assert "run_unet" not in vars(tiny_sdxl)  # the engine's own call is back
    torch.testing.assert_close(ours.latents, theirs.latents, rtol=1e-4, atol=1e-4)
    assert np.abs(ours.images[0].astype(int) - theirs.images[0]).max() <= 1
