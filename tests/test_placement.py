"""Settings ▸ Model says, before anything loads, where the model's files are (a local
folder, the Hugging Face cache, still to download, or why they cannot be used) and where
it would run: the GPU's name, memory and precision, or the processor, or why the chosen
device or precision cannot work here. CUDA is faked through torch's own queries, so every
case runs on any machine."""

from __future__ import annotations

import shutil

import torch
from engine_fixtures import fake_gpu, hub_snapshot

from dedit_app.models import pick_dtype
from dedit_app.placement import (
    COMMAND_LINE,
    EDITOR,
    SD15_MODEL,
    Verdict,
    describe_placement,
    describe_source,
    model_family,
)
from dedit_app.recompute import LOW_MEMORY_BELOW, SDXL_EDIT_NEEDS, SDXL_PREPARE_NEEDS


def test_the_processor_is_named_with_how_slow_it_is(no_gpu):
    found = describe_placement("auto", "auto")
    assert not found.ok
    assert found.text == (
        "Runs on the processor in float32 (this computer has no GPU that PyTorch can use): "
        "preparing a photo with SDXL takes hours there and each edit minutes."
    )
    assert (
        "with Stable Diffusion 1.5 takes hours"
        in describe_placement("cpu", "auto", family="sd15").text
    )
    chosen = describe_placement("cpu", "float16")
    assert chosen.text.startswith("Runs on the processor in float16:")  # chosen: no "why"
    assert not chosen.ok


def test_a_small_model_is_quick_on_the_processor_and_fits_any_gpu(no_gpu, monkeypatch):
    small = describe_placement("auto", "auto", family="sdxl", small=True)
    assert small == Verdict(
        "Runs on the processor in float32; this model is small, so that is quick.", "ready"
    )
    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4060", 8, major=8)
    assert describe_placement("auto", "auto", "off", "sdxl", small=True) == Verdict(
        "Runs on NVIDIA GeForce RTX 4060 (8 GB) in bfloat16.", "ready"
    )
    assert not describe_placement("auto", "auto", "off", "sdxl").ok  # full-size SDXL


def test_a_tiny_model_on_disk_counts_as_small(tiny_sdxl_path, tmp_path, monkeypatch):
    from dedit_app import slow_device

    assert slow_device.is_small(str(tiny_sdxl_path))
    assert not slow_device.is_small(str(tmp_path / "nowhere"))  # size not known
    assert not slow_device.is_small("")  # the default model, not downloaded
    monkeypatch.setattr(slow_device, "FULL_SIZE_BYTES", 1)
    assert not slow_device.is_small(str(tiny_sdxl_path))


def test_an_nvidia_gpu_under_a_processor_only_pytorch_says_how_to_use_it(no_gpu, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    found = describe_placement("auto", "auto")
    assert found.text.startswith(
        "Runs on the processor in float32 (this computer has an NVIDIA GPU, but this PyTorch "
        "is built for the processor only): preparing"
    )
    assert found.text.endswith("install PyTorch's CUDA build (pytorch.org lists the pip line) "
                               "into the editor's Python environment.")  # fmt: skip
    assert not found.ok


def test_a_device_that_is_not_there_says_so_and_what_to_choose(no_gpu):
    for device, says in [("cuda", "no CUDA GPU"), ("mps", "Apple MPS is not available")]:
        found = describe_placement(device, "auto")
        assert says in found.text and found.text.endswith("Choose auto in Device.")
        assert not found.ok


def test_apples_gpu_is_named_with_the_memory_it_may_use(no_gpu, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 21 * 2**30)  # a 32 GB Mac
    said = "Runs on Apple's GPU (MPS, about 21 GB of the memory it shares with the processor)"
    found = describe_placement("auto", "auto")
    assert found.ok and found.text.startswith(f"{said} in float16. Preparing SDXL on a GPU")
    assert "under 28 GB uses low-memory mode" in found.text
    assert not describe_placement("auto", "auto", "off").ok
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 10 * 2**30)  # 16 GB
    small = describe_placement("mps", "auto")
    assert small.state == "problem" and small.text.endswith(f"(such as {SD15_MODEL}).")
    assert describe_placement("mps", "auto", family="sd15").ok
    monkeypatch.delattr(torch.mps, "recommended_max_memory")  # a torch that cannot say
    assert describe_placement("mps", "auto") == Verdict(
        "Runs on Apple's GPU (MPS) in float16.", "ready"
    )


def _old_torch_on_a_mac(monkeypatch) -> None:
    """A Mac whose PyTorch predates autocast on Apple's GPU (before 2.5)."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 21 * 2**30)
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda kind: kind != "mps")


def test_a_pytorch_that_cannot_prepare_in_half_precision_says_what_to_update(no_gpu, monkeypatch):
    _old_torch_on_a_mac(monkeypatch)
    found = describe_placement("auto", "auto")
    assert found.state == "problem"
    assert found.text == (
        f"This PyTorch ({torch.__version__}) cannot prepare a photo in float16 on Apple's GPU "
        "(MPS): it has no mixed precision there. Update PyTorch (`python -m pip install -U "
        "torch`), or choose float32 in Precision."
    )
    assert describe_placement("auto", "float32").ok  # float32 needs no autocast
    monkeypatch.delattr(torch.amp, "is_autocast_available")  # older still: cannot ask
    assert "cannot prepare a photo in float16" in describe_placement("mps", "auto").text


def test_a_large_gpu_is_named_with_its_memory_and_precision(monkeypatch):
    fake_gpu(monkeypatch, "NVIDIA H200", 141, major=9)
    found = describe_placement("auto", "auto", low_memory="off")
    assert found == Verdict("Runs on NVIDIA H200 (141 GB) in bfloat16.", "ready")
    assert describe_placement("cuda", "float32").text == "Runs on NVIDIA H200 (141 GB) in float32."


def test_a_gpu_under_the_low_memory_line_says_what_preparing_sdxl_needs(monkeypatch):
    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4090", 24, major=8)
    assert LOW_MEMORY_BELOW > 24 * 2**30
    for low_memory in ("auto", "on"):
        found = describe_placement("auto", "auto", low_memory)
        assert found.ok
        assert found.text.startswith("Runs on NVIDIA GeForce RTX 4090 (24 GB) in bfloat16.")
        assert "under 28 GB uses low-memory mode" in found.text
    off = describe_placement("auto", "auto", "off")
    assert not off.ok
    assert "runs out of memory with Low memory off: choose Automatic or On" in off.text


def test_a_gpu_too_small_for_sdxl_even_in_low_memory_mode_names_a_model_that_fits(monkeypatch):
    assert SDXL_EDIT_NEEDS < 12 * 2**30 < SDXL_PREPARE_NEEDS < LOW_MEMORY_BELOW
    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4060", 8, major=8)
    small = describe_placement("auto", "auto")
    assert small.state == "problem"
    assert small.text.startswith("Runs on NVIDIA GeForce RTX 4060 (8 GB) in bfloat16. Preparing")
    assert "about 14 GB of GPU memory even in low-memory mode, and each edit about 9.5 GB" in (
        small.text
    )
    assert small.text.endswith(
        f"choose a Stable Diffusion 1.5 model in Model (such as {SD15_MODEL})."
    )
    assert small.model == SD15_MODEL  # the model to offer instead
    assert describe_placement("auto", "auto", family=model_family(SD15_MODEL)).model == ""
    sd15 = describe_placement("auto", "auto", family="sd15")  # SD 1.5 fits
    assert sd15 == Verdict("Runs on NVIDIA GeForce RTX 4060 (8 GB) in bfloat16.", "ready")
    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 3060", 12, major=8)
    edits_fit = describe_placement("auto", "auto", family="sdxl")
    assert edits_fit.state == "problem" and "even in low-memory mode, so it" in edits_fit.text
    assert "each edit" not in edits_fit.text
    fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4090", 24, major=8)
    assert describe_placement("auto", "auto", family="sd15").text.endswith("in bfloat16.")


def test_the_family_of_a_model_is_read_from_its_files(
    tiny_sdxl_path, tiny_sd15_path, tmp_path, offline_hub_cache
):
    assert model_family(str(tiny_sdxl_path)) == "sdxl"
    assert model_family(f" {tiny_sd15_path} ") == "sd15"
    assert model_family("") == "sdxl"  # the default model, downloaded or not
    assert model_family(SD15_MODEL) == "sd15"  # the one offered for small GPUs, too
    assert model_family("owner/not-downloaded") is None
    assert model_family(str(tmp_path / "nowhere")) is None
    cached(offline_hub_cache, "owner/small", tiny_sd15_path)
    assert model_family("owner/small") == "sd15"


def test_a_gpu_before_ampere_runs_float16_and_warns_of_emulated_bfloat16(monkeypatch):
    """torch.cuda.is_bf16_supported() says True on a T4 (it emulates bfloat16 there in
    float32): the automatic precision must not take it."""
    fake_gpu(monkeypatch, "Tesla T4", 16, major=7)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_dtype(torch.device("cuda")) == torch.float16
    auto = describe_placement("auto", "auto")
    assert auto.ok and "Runs on Tesla T4 (16 GB) in float16." in auto.text
    chosen = describe_placement("auto", "bfloat16")
    assert not chosen.ok
    assert "only by emulating it" in chosen.text and "choose auto (float16 here)" in chosen.text
    fake_gpu(monkeypatch, "NVIDIA A10", 24, major=8)
    assert pick_dtype(torch.device("cuda")) == torch.bfloat16


def cached(cache, repo_id: str, model_folder, half_only: bool = False):
    """Put a copy of ``model_folder`` in ``cache`` as hub model ``repo_id`` (its weights
    renamed to the half-precision variant when ``half_only``)."""
    snapshot = shutil.copytree(model_folder, hub_snapshot(cache, repo_id))
    if half_only:
        for file in snapshot.glob("*/*.safetensors"):
            file.rename(file.with_name(file.name.replace(".safetensors", ".fp16.safetensors")))
    return snapshot


def test_a_local_model_folder_is_named_with_its_family_and_weights(
    tiny_sdxl_path, tiny_sd15_path, tmp_path
):
    found = describe_source(str(tiny_sdxl_path))
    assert found.state == "ready"
    assert found.text.startswith("A local folder: SDXL, its weights in full precision (")
    assert found.text.endswith(" MB).")
    assert "Stable Diffusion 1.x" in describe_source(f"  {tiny_sd15_path} ").text  # as typed
    mixed = shutil.copytree(tiny_sdxl_path, tmp_path / "mixed")
    for file in (mixed / "unet").glob("*.safetensors"):  # a half copy of the UNet only
        file.rename(file.with_name(file.name.replace(".safetensors", ".fp16.safetensors")))
    assert describe_source(str(mixed)).text.startswith(
        "A local folder: SDXL, its weights in mixed precision (unet half, vae full, "
        "text_encoder full, text_encoder_2 full) ("
    )
    broken = shutil.copytree(tiny_sdxl_path, tmp_path / "broken")
    shutil.rmtree(broken / "text_encoder_2")
    said = describe_source(str(broken))
    assert said.state == "problem" and "it has no text_encoder_2/ subfolder" in said.text
    for file in (broken / "unet").glob("*.safetensors"):
        file.rename(file.with_suffix(".bin"))  # only pickles: refused, and said why
    (broken / "text_encoder_2").mkdir()
    assert "loads safetensors only" in describe_source(str(broken)).text


def test_a_path_that_is_not_a_model_says_what_to_point_at(tmp_path, tiny_sdxl_path):
    nowhere = describe_source(str(tmp_path / "no-such-folder"))
    assert nowhere.state == "problem" and "There is no folder" in nowhere.text
    a_file = describe_source(str(tiny_sdxl_path / "model_index.json"))
    assert a_file.state == "problem" and "is a file; point the editor" in a_file.text


def test_a_hub_model_is_found_in_the_cache_or_said_to_download(
    offline_hub_cache, tiny_sdxl_path, monkeypatch
):
    cached(offline_hub_cache, "owner/half", tiny_sdxl_path, half_only=True)
    found = describe_source("owner/half")
    assert found.state == "ready"
    assert found.text.startswith("In the Hugging Face cache: SDXL, its weights in half precision")
    both = cached(offline_hub_cache, "owner/both", tiny_sdxl_path)
    for file in both.glob("*/*.safetensors"):
        shutil.copy(file, file.with_name(file.name.replace(".safetensors", ".fp16.safetensors")))
    assert "its weights in full and half precision" in describe_source("owner/both").text
    offline = describe_source("owner/elsewhere", "cpu", "auto")
    assert offline.state == "problem" and "not downloaded and the editor is offline" in offline.text
    assert '--exclude "*.fp16.safetensors"' in offline.text  # the processor reads full weights
    half = describe_source("owner/elsewhere", "cpu", "float16").text
    assert '--include "unet/*.fp16.safetensors"' in half
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    online = describe_source("owner/elsewhere")
    assert online.state == "note" and online.text.startswith("Not downloaded yet: the first")
    assert "about 14 GB in full precision" in describe_source("", "cpu", "auto").text  # default
    assert "about 7 GB in half precision" in describe_source("", "cpu", "float16").text
    assert "about 2 GB in half precision" in describe_source(SD15_MODEL, "cpu", "float16").text


def test_the_command_line_names_its_options_and_the_editor_its_fields(no_gpu, monkeypatch):
    """Each remedy in both wordings: the command line's names only options, the editor's
    only fields, and both say the same thing otherwise."""

    def both(machine, *args) -> tuple[str, str]:
        machine()  # the computer it is said on
        return tuple(describe_placement(*args, wording=w).text for w in (EDITOR, COMMAND_LINE))

    cases = {
        "--device": both(lambda: None, "cuda", "auto"),
        "--dtype": both(lambda: None, "cpu", "fp8"),
        "--dtype (float16 here)": both(
            lambda: fake_gpu(monkeypatch, "Tesla T4", 16, major=7), "auto", "bf16"
        ),
        "--no-low-memory": both(
            lambda: fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4090", 24, major=8),
            "auto",
            "auto",
            "off",
        ),
        "--model": both(
            lambda: fake_gpu(monkeypatch, "NVIDIA GeForce RTX 4060", 8, major=8), "auto", "auto"
        ),
        "--dtype fp32": both(lambda: _old_torch_on_a_mac(monkeypatch), "mps", "auto"),
    }
    for option, (editor, command_line) in cases.items():
        assert option in command_line, command_line
        assert "--" not in editor and editor != command_line
        for field in ("Settings", "in Device", "in Precision", "in Model", "Choose auto"):
            assert field not in command_line, command_line
    assert "'fp8' is not a precision" in cases["--dtype"][1]
    assert cases["--dtype"][0].endswith("Choose auto in Precision.")  # not "in Device"


def test_the_command_line_says_which_command_downloads_a_model(offline_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # no network is used: only the cache is read
    said = describe_source("owner/elsewhere", wording=COMMAND_LINE).text
    assert said.startswith("Not downloaded yet: the first `dedit finetune` downloads it")
    assert "Prepare" not in said
