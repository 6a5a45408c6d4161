"""The speed and memory switches give the results of the plain engine: a compiled UNet
(preparing and editing), channels-last weights, and the low-memory mode's offloading.
Compiling uses the ``eager`` backend here (dynamo's tracing, guards and graph reuse
without a C++ build); the GPU timings are in docs/PERFORMANCE.md."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from dedit_app.finetune import FinetuneOptions, TrainImage, finetune
from dedit_app.jobs import CancelToken, run_job
from dedit_app.sampler import SampleRequest, SamplingOptions, sample

QUICK = FinetuneOptions(emb_steps=2, model_steps=2, grad_accum=1, seed=0)


@pytest.fixture
def compiled(tiny_sdxl):
    """The tiny SDXL with its UNet compiled (eager backend), plain again afterwards."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    tiny_sdxl.compile_unet(backend="eager")
    yield tiny_sdxl
    tiny_sdxl.compile_unet(None)
    torch._dynamo.reset()


def _edit(model, tiny_photo, prompts, item):
    image, labels, _ = tiny_photo
    opts = SamplingOptions(steps=2, edge=10, previews=False)
    return run_job(sample(model, SampleRequest(labels, prompts, image, labels == item, opts)))


def test_compiled_edits_match_and_share_one_graph(compiled, tiny_photo):
    """Edits with other prompts (other key counts) and other regions reuse the graph the
    first edit compiled, and give the plain UNet's pictures."""
    from torch._dynamo.utils import counters

    edits = [
        ({0: "a wall", 1: "a table", 2: "a floor", 3: "a red bag"}, 3),
        ({0: "a wall", 1: "a long wooden table with legs", 3: "a cat"}, 1),
    ]
    assert compiled.edit_attention == "masked"
    ours = [_edit(compiled, tiny_photo, p, item) for p, item in edits]
    graphs = counters["stats"]["unique_graphs"]
    compiled.compile_unet(None)
    assert compiled.edit_attention == "grouped"
    plain = [_edit(compiled, tiny_photo, p, item) for p, item in edits]
    assert graphs == 1
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a.latents, b.latents, rtol=1e-4, atol=1e-4)
        assert np.abs(a.images[0].astype(int) - b.images[0]).max() <= 1


def _other_photo(tiny_photo, items: int = 5):
    """The same size as ``tiny_photo``, another layout: ``items`` vertical bands, other
    names. With 4 or 5 items its padded key count is tiny_photo's (4 items: 256)."""
    image, labels, _ = tiny_photo
    bands = (np.arange(labels.shape[1]) * items // labels.shape[1]).astype(labels.dtype)
    names = ("sky", "grey stone wall", "dog", "lamp", "rug")[:items]
    return TrainImage(image[::-1].copy(), np.broadcast_to(bands, labels.shape).copy(), names)


def test_compiled_preparation_trains_the_same(compiled, tiny_photo):
    """A compiled preparation ("masked" attention) trains what the plain UNet ("grouped")
    trains, for one photo and for two trained together."""
    pairs = [[TrainImage(*tiny_photo)], [TrainImage(*tiny_photo), _other_photo(tiny_photo)]]
    ours = [run_job(finetune(compiled, photos, QUICK)) for photos in pairs]
    assert compiled.train_attention == "masked"
    compiled.compile_unet(None)
    assert compiled.train_attention == "grouped"
    plain = [run_job(finetune(compiled, photos, QUICK)) for photos in pairs]
    for a, b in zip(ours, plain):
        for key, value in b.tensors.items():
            torch.testing.assert_close(a.tensors[key], value, rtol=1e-4, atol=1e-6)


def test_another_photo_prepares_without_compiling_again(compiled, tiny_photo):
    """A preparation's graphs (one per stage) serve the next photo of that size whose
    padded key count is the same, whatever its items and prompts: no recompile, no notice.
    A photo with few enough items for a smaller key count compiles, and says so."""
    from torch._dynamo.utils import counters

    first = _stages(finetune(compiled, [TrainImage(*tiny_photo)], QUICK))
    graphs = counters["stats"]["unique_graphs"]
    second = _stages(finetune(compiled, [_other_photo(tiny_photo, 5)], QUICK))
    assert first.count("compiling") == 2 and "compiling" not in second
    assert 1 <= graphs <= 2 and counters["stats"]["unique_graphs"] == graphs
    third = _stages(finetune(compiled, [_other_photo(tiny_photo, 2)], QUICK))
    assert third.count("compiling") == 2 and counters["stats"]["unique_graphs"] > graphs


def _stages(job) -> list[str]:
    stages: list[str] = []
    run_job(job, lambda p: stages.append(p.stage))
    return stages


def test_jobs_say_before_they_wait_for_a_compile(compiled, tiny_photo):
    """The first compiled edit, and each stage of a compiled preparation, announce the
    compile before the step that pays it; an edit with another layout does not, one with
    more results per batch (another graph) does."""
    image, labels, _ = tiny_photo
    opts = SamplingOptions(steps=2, edge=10, previews=False)
    request = SampleRequest(labels, {0: "a wall", 1: "a bag"}, image, labels == 1, opts)
    moved = SampleRequest(labels, {0: "a wall", 3: "a cat"}, image, labels == 3, opts)
    first, second = _stages(sample(compiled, request)), _stages(sample(compiled, moved))
    assert first == ["compiling", "sampling", "sampling"] and "compiling" not in second
    wider = SamplingOptions(steps=2, edge=10, previews=False, candidates=2, batch=2)
    more = SampleRequest(labels, {0: "a wall", 1: "a bag"}, image, labels == 1, wider)
    assert _stages(sample(compiled, more))[0] == "compiling"
    prep = _stages(finetune(compiled, [TrainImage(*tiny_photo)], QUICK))
    assert prep == ["compiling", "tokens", "tokens", "compiling", "unet", "unet"]
    compiled.compile_unet(None)
    assert "compiling" not in _stages(sample(compiled, request))


def test_a_warm_up_compiles_what_the_first_edit_needs(compiled, tiny_photo):
    """After a warm-up with the edits' options, the first real edit (other prompts, another
    region) neither compiles nor says so; an uncompiled model does not warm up at all."""
    from torch._dynamo.utils import counters

    from dedit_app.sampler import warm_up

    image, labels, _ = tiny_photo
    opts = SamplingOptions(steps=3, edge=10, previews=False, candidates=2, batch=2)
    assert "compiling" in _stages(warm_up(compiled, image, labels, opts))
    graphs = counters["stats"]["unique_graphs"]
    request = SampleRequest(labels, {0: "a wall", 3: "a cat"}, image, labels == 3, opts)
    assert "compiling" not in _stages(sample(compiled, request))
    assert counters["stats"]["unique_graphs"] == graphs
    compiled.compile_unet(None)
    assert _stages(warm_up(compiled, image, labels, opts)) == []


def _fails_to_compile():
    """A backend that raises while compiling, as inductor does on a damaged kernel cache."""

    def backend(graph, example_inputs):
        raise ImportError("main.so: file too short")

    return backend


def _fails_on_the_second_call():
    """A backend whose code compiles and then raises on a later call, as inductor's size
    and stride checks do when a call breaks what the generated code assumed."""
    calls = []

    def backend(graph, example_inputs):
        def run(*args):
            calls.append(1)
            if len(calls) > 1:
                raise AssertionError("expected size 2==2, stride 3840==5120 at dim=0")
            return graph(*args)

        return run

    return backend


@pytest.mark.parametrize(
    "backend, why",
    [
        (_fails_to_compile, "ImportError: main.so: file too short"),
        (_fails_on_the_second_call, "AssertionError: expected size 2==2"),
    ],
)
def test_a_compiler_that_fails_falls_back_to_the_plain_unet(tiny_sdxl, tiny_photo, backend, why):
    """A compiler that fails, while compiling or in the code it made, costs the user
    nothing: the edit comes out as the plain UNet's, and the model stays plain and says
    why."""
    prompts = {0: "a wall", 1: "a bag"}
    plain = _edit(tiny_sdxl, tiny_photo, prompts, 1)
    torch._dynamo.reset()
    tiny_sdxl.compile_unet(backend=backend())
    try:
        fell_back = _edit(tiny_sdxl, tiny_photo, prompts, 1)
        assert not tiny_sdxl.compiled
        assert why in tiny_sdxl.compile_error
        assert tiny_sdxl.compile_error.startswith("Compiling the model failed")
    finally:
        tiny_sdxl.compile_unet(None)
        torch._dynamo.reset()
    torch.testing.assert_close(fell_back.latents, plain.latents, rtol=1e-4, atol=1e-4)


def test_a_compiled_backward_that_fails_falls_back(tiny_sdxl, tiny_photo):
    """The backward graph compiles at the first ``backward()``, after the forward's
    fallback has passed: a failure there also ends in the plain UNet's training, exactly
    (the failed step runs again from the same random state), and says why."""
    from torch._dynamo.backends.common import aot_autograd

    def broken(graph, example_inputs):
        raise ImportError("backward.so: file too short")

    photo = TrainImage(*tiny_photo)
    plain = run_job(finetune(tiny_sdxl, [photo], QUICK))
    torch._dynamo.reset()
    tiny_sdxl.compile_unet(backend=aot_autograd(fw_compiler=lambda g, _: g.forward,
                                                bw_compiler=broken))  # fmt: skip
    try:
        ours = run_job(finetune(tiny_sdxl, [photo], QUICK))
        assert not tiny_sdxl.compiled
        assert "backward.so: file too short" in tiny_sdxl.compile_error
    finally:
        tiny_sdxl.compile_unet(None)
        torch._dynamo.reset()
    for key, value in plain.tensors.items():
        torch.testing.assert_close(ours.tensors[key], value, rtol=1e-5, atol=1e-7)


def test_an_error_of_the_call_itself_keeps_the_model_compiled(tiny_sdxl, tiny_photo, monkeypatch):
    """A compiled call that fails because of what it was given fails the plain way too:
    that error reaches the caller, and the model stays compiled, with no compile notice,
    for the next edit or preparation."""
    import dedit_app.finetune as ft

    def broken_step(*args, **kwargs):
        raise ValueError("the photo's items do not match its labels")

    torch._dynamo.reset()
    tiny_sdxl.compile_unet(backend="eager")
    try:
        z = torch.zeros(1, 4, 8, 8)
        cond = torch.zeros(1, 7, 3)  # the text width is wrong: no UNet accepts it
        extra = {
            "text_embeds": torch.zeros(1, tiny_sdxl.text_encoders[1].config.projection_dim),
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]]),
        }
        with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
            tiny_sdxl.run_unet(z, 10, cond, added_cond_kwargs=extra, return_dict=False)
        assert tiny_sdxl.compiled and tiny_sdxl.compile_error == ""

        monkeypatch.setattr(ft, "_forward_backward", broken_step)
        with pytest.raises(ValueError, match="do not match"):
            run_job(finetune(tiny_sdxl, [TrainImage(*tiny_photo)], QUICK))
        assert tiny_sdxl.compiled and tiny_sdxl.compile_error == ""
    finally:
        tiny_sdxl.compile_unet(None)
        torch._dynamo.reset()


def test_the_kernel_cache_is_ours_and_emptied_when_compiling_fails(
    tiny_sdxl, tmp_path, monkeypatch
):
    """Inductor keeps kernels in the editor's folder (not under the temp folder, so they
    survive a reboot); a failed compile empties that folder so the next load starts clean,
    while a folder the user chose with TORCHINDUCTOR_CACHE_DIR is theirs and left alone."""
    from dedit_app.models import compile_cache_dir

    monkeypatch.setenv("DEDIT_CACHE_DIR", str(tmp_path / "cache"))
    ours = compile_cache_dir()
    assert ours == tmp_path / "cache" / "kernels"
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    # as importing diffusers leaves it: inductor's default written into the environment
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    try:
        tiny_sdxl.compile_unet("inductor", cache_dir=ours)  # compiles lazily: nothing runs
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(ours)
        (ours / "fxgraph").mkdir(parents=True)
        (ours / "fxgraph" / "main.so").write_bytes(b"half")
        tiny_sdxl.stop_compiling(ImportError("main.so: file too short"))
        assert not ours.exists() and not tiny_sdxl.compiled

        theirs = tmp_path / "theirs"
        theirs.mkdir()
        monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(theirs))
        tiny_sdxl.compile_unet("inductor", cache_dir=ours)
        tiny_sdxl.stop_compiling(ImportError("main.so: file too short"))
        assert theirs.exists() and tiny_sdxl.kernel_cache is None
    finally:
        tiny_sdxl.compile_unet(None)
        tiny_sdxl.kernel_cache = None
        tiny_sdxl.compile_error = ""


def test_channels_last_gives_the_same_edit(tiny_sdxl, tiny_photo):
    prompts = {0: "a wall", 1: "a table", 2: "a floor", 3: "a red bag"}
    plain = _edit(tiny_sdxl, tiny_photo, prompts, 3)
    tiny_sdxl.use_channels_last()
    try:
        conv = tiny_sdxl.unet.conv_in.weight
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
        nhwc = _edit(tiny_sdxl, tiny_photo, prompts, 3)
    finally:
        tiny_sdxl.use_channels_last(False)
    assert tiny_sdxl.unet.conv_in.weight.is_contiguous()
    torch.testing.assert_close(nhwc.latents, plain.latents, rtol=1e-4, atol=1e-4)


class _Placement:
    """Records where the job sends the VAE and the text encoders. The test model already
    runs on the CPU, so parking ("idle") is recorded without moving; a move back to the
    model's device is real."""

    def __init__(self, model, monkeypatch) -> None:
        import dedit_app.finetune as ft

        monkeypatch.setattr(ft, "_can_offload", lambda model: True)
        monkeypatch.setattr(ft, "_IDLE_DEVICE", "idle")
        self.where = {"vae": "gpu", "text": "gpu"}
        self.moves: list[tuple[str, str]] = []
        for name, modules in (("vae", [model.vae]), ("text", model.text_encoders)):
            for module in modules:
                monkeypatch.setattr(module, "to", self._recorder(name, module, module.to))

    def _recorder(self, name, module, original):
        def to(*args, **kwargs):
            parked = args[0] == "idle"
            self.where[name] = "ram" if parked else "gpu"
            self.moves.append((name, self.where[name]))
            return module if parked else original(*args, **kwargs)

        return to


def test_low_memory_mode_offloads_idle_models_and_trains_the_same(tiny_sdxl, tiny_photo,
                                                                 monkeypatch):  # fmt: skip
    photo = TrainImage(*tiny_photo)
    plain = run_job(finetune(tiny_sdxl, [photo], QUICK))
    placement = _Placement(tiny_sdxl, monkeypatch)
    seen = []
    low = FinetuneOptions(**{**QUICK.__dict__, "offload_idle": True})
    result = run_job(
        finetune(tiny_sdxl, [photo], low), lambda p: seen.append((p.stage, dict(placement.where)))
    )
    # stage 1 trains through the text encoders; stage 2 needs neither them nor the VAE
    assert [w for s, w in seen if s == "tokens"] == [{"vae": "ram", "text": "gpu"}] * 2
    assert [w for s, w in seen if s == "unet"] == [{"vae": "ram", "text": "ram"}] * 2
    assert placement.where == {"vae": "gpu", "text": "gpu"}  # back for the edits
    for key, value in plain.tensors.items():
        torch.testing.assert_close(result.tensors[key], value, rtol=1e-5, atol=1e-6)


def test_low_memory_mode_brings_models_back_after_a_cancel(tiny_sdxl, tiny_photo, monkeypatch):
    from dedit_app.errors import Cancelled

    placement = _Placement(tiny_sdxl, monkeypatch)
    cancel = CancelToken()
    low = FinetuneOptions(emb_steps=2, model_steps=3, grad_accum=1, offload_idle=True)

    def stop_in_stage_two(progress):
        if progress.stage == "unet":
            cancel.cancel()

    with pytest.raises(Cancelled):
        run_job(finetune(tiny_sdxl, [TrainImage(*tiny_photo)], low, cancel), stop_in_stage_two)
    assert ("text", "ram") in placement.moves
    assert placement.where == {"vae": "gpu", "text": "gpu"}


def test_bf16_prepares_and_edits_like_the_gpu_does(tiny_sdxl_path, tiny_photo):
    """The GPU's precision path, run on the CPU: a bf16 model trains fp32 master copies
    under autocast, casts them back, and edits with what it learned, pixels outside the
    edit untouched."""
    from dedit_app.finetune import apply_trained
    from dedit_app.models import load_model

    model = load_model(tiny_sdxl_path, device="cpu", dtype="bf16")
    image, labels, names = tiny_photo
    low = FinetuneOptions(**{**QUICK.__dict__, "gradient_checkpointing": True})
    result = run_job(finetune(model, [TrainImage(image, labels, names)], low))
    assert all(np.isfinite(result.losses))
    assert {p.dtype for p in model.unet.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in model.unet.parameters())
    unet = {k: v for k, v in result.tensors.items() if k.startswith("unet.")}
    assert unet and {v.dtype for v in unet.values()} == {torch.bfloat16}

    model.reset()
    apply_trained(model, result.tensors, result.metadata)
    prompts = {i: token for i, token in enumerate(result.item_tokens)}
    prompts[3] = "a green bag"
    edit = _edit(model, tiny_photo, prompts, 3)
    assert torch.isfinite(edit.latents.float()).all()
    kept = edit.hard  # pixels the edit must not touch
    assert kept.any() and not kept.all()
    assert np.array_equal(edit.images[0][kept], image[kept])
    assert not np.array_equal(edit.images[0][labels == 3], image[labels == 3])


@pytest.mark.parametrize(
    "family, device, gib, on",
    [
        ("sdxl", "cuda", 24, True),  # a 24 GB card: the default mode's 23.6 GiB does not fit
        ("sdxl", "cuda", 16, True),
        ("sdxl", "cuda", 80, False),
        ("sd15", "cuda", 16, False),  # SD 1.5 fits without
        ("sdxl", "cpu", 16, False),  # the processor's memory is not the GPU's
        ("sdxl", "mps", 21, True),  # a 32 GB Mac: Metal recommends about two thirds of it
        ("sdxl", "mps", 48, False),  # a 64 GB Mac
        ("sd15", "mps", 10, False),
    ],
)
def test_low_memory_is_wanted_for_sdxl_on_a_gpu_too_small_without_it(
    family, device, gib, on, monkeypatch
):
    from types import SimpleNamespace

    from dedit_app.recompute import low_memory_reason

    asked = []

    def properties(dev):
        asked.append(dev)
        return SimpleNamespace(total_memory=gib * 2**30 - 2**20)

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: gib * 2**30 - 2**20)
    why = low_memory_reason(family, torch.device(device))
    assert bool(why) == on
    if on:
        has = "Apple's GPU can use about" if device == "mps" else "this GPU has"
        assert f"{has} {gib} GB" in why and "learns the same" in why
    assert bool(asked) == (family == "sdxl" and device == "cuda")  # no CUDA call elsewhere
