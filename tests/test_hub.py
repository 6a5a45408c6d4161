"""Where model files come from: the first download of a hub model reports its progress in
megabytes and stops when cancelled; folders and offline sources download nothing; one
precision of the weights is downloaded, and none when either is cached in full. The hub
itself is never reached: a stand-in download drives the progress bars the way
``snapshot_download`` does (one byte bar for all files, filled from several threads)."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from engine_fixtures import hub_snapshot

from dedit_app import hub
from dedit_app.errors import Cancelled, ModelLoadError
from dedit_app.hub import download_command, fetch, is_hub_id, resolve
from dedit_app.jobs import CancelToken, run_job
from dedit_app.weight_files import part_sets, weight_sets

MB = 1_000_000


@pytest.fixture
def online(monkeypatch):
    """The tests run offline; these ones pretend not to (the download is a stand-in)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")


def stand_in(tmp_path, sizes: list[int], chunk: int = MB, pause: float = 0.002, seen=None):
    """A download of files of ``sizes`` bytes, two threads at a time, into ``tmp_path``."""

    def download(source, what, variant, local, tqdm_class, room=False):
        assert not local and what == "model" and variant is None
        assert room  # a first download makes sure it fits on the disk
        files = tqdm_class(total=len(sizes), desc=f"Fetching {len(sizes)} files")
        data = tqdm_class(total=sum(sizes), unit="B", unit_scale=True, name="hub-only-kwarg")

        def one(size: int) -> None:
            try:
                for _ in range(0, size, chunk):
                    time.sleep(pause)
                    data.update(min(chunk, size))
            except Cancelled:  # as the hub's threads end: the download raises it below
                if seen is not None:
                    seen.append("stopped")

        threads = [threading.Thread(target=one, args=(s,)) for s in sizes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
            files.update(1)
        if seen and seen[-1] == "stopped":
            raise Cancelled()
        return str(tmp_path)

    return download


def drain(job):
    """All progress of ``job`` and what it returned."""
    seen = []
    result = run_job(job, seen.append)
    return seen, result


def test_a_first_download_reports_megabytes_and_returns_the_folder(tmp_path, online):
    sizes = [40 * MB, 25 * MB]
    job = fetch("owner/model", download=stand_in(tmp_path, sizes))
    progress, folder = drain(job)
    assert folder == tmp_path
    assert progress and all(p.stage == "downloading" and p.total == 65 for p in progress)
    steps = [p.step for p in progress]
    assert steps == sorted(steps) and steps[-1] == 65  # never backwards; all of it
    assert progress[-1].message == "Downloading owner/model: 65 MB of 65 MB"


def test_cancelling_stops_the_download_in_its_own_threads(tmp_path, online):
    cancel, seen = CancelToken(), []
    job = fetch(
        "owner/model",
        cancel=cancel,
        download=stand_in(tmp_path, [4000 * MB], pause=0.001, seen=seen),
    )
    first = next(job)
    assert first.stage == "downloading"
    cancel.cancel()
    with pytest.raises(Cancelled, match="goes on from there next time"):
        drain(job)
    assert seen == ["stopped"]  # the download itself stopped, not only the waiting for it


def test_a_failed_download_raises_its_sentence(tmp_path, online):
    def broken(*args, **kwargs):
        raise ModelLoadError("The model owner/model could not be downloaded (no route).")

    with pytest.raises(ModelLoadError, match="no route"):
        drain(fetch("owner/model", download=broken))


def test_folders_and_offline_sources_download_nothing(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("nothing should be downloaded")

    assert drain(fetch(str(tmp_path), download=never)) == ([], None)
    assert drain(fetch("not a hub id", download=never)) == ([], None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert drain(fetch("owner/model", download=never)) == ([], None)
    # Offline, loading is what says what to do.
    with pytest.raises(ModelLoadError, match="not downloaded and the editor is offline"):
        resolve("owner/model", what="model", variant=None, local_files_only=False)


def test_hub_ids_and_paths_are_told_apart():
    assert is_hub_id("stabilityai/stable-diffusion-xl-base-1.0")
    assert not is_hub_id("/models/sdxl") and not is_hub_id("./sdxl/unet")
    assert not is_hub_id("~/sdxl") and not is_hub_id("sdxl") and not is_hub_id("a/b/c")


# ----- which precision is downloaded -----------------------------------------------------

PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def write_model(folder, names_by_variant: dict[str | None, list[str]]):
    """A model folder: ``model_index.json`` and, per variant, empty weight files in the
    parts listed (every part for ``"all"``)."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {part: ["diffusers", "Thing"] for part in PARTS}
    (folder / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    for variant, parts in names_by_variant.items():
        name = f"w.{variant}.safetensors" if variant else "w.safetensors"
        for part in PARTS if parts == ["all"] else parts:
            (folder / part).mkdir(exist_ok=True)
            (folder / part / name).write_bytes(b"")
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache in ``tmp_path`` (the real one is never read)."""
    import huggingface_hub.constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def cached_snapshot(cache, names_by_variant):
    """``owner/model`` as the hub's cache keeps it, its snapshot holding those weights."""
    return write_model(hub_snapshot(cache, "owner/model"), names_by_variant)


def recording(folder, published: tuple[str | None, ...], asked: list):
    """A stand-in download of a repository that publishes the weight sets ``published``:
    it writes the set asked for, if there is one, and the configs in any case."""

    def download(source, what, variant, local, **more):
        asked.append(variant)
        write_model(folder, {variant: ["all"]} if variant in published else {})
        return str(folder)

    return download


def offline_finds(monkeypatch):
    """What ``owner/model`` resolves to offline, asking the hub nothing."""

    def never(*args, **kwargs):
        raise AssertionError("offline, nothing is asked of the hub")

    monkeypatch.setattr(hub, "_download", never)
    return resolve(
        "owner/model", what="model", variant="fp16", local_files_only=True, any_precision=True
    )


def test_a_first_download_takes_the_half_precision_copy(tmp_path, hub_cache, online):
    asked: list = []
    download = recording(tmp_path / "m", (None, "fp16"), asked)
    job = fetch("owner/model", variant="fp16", any_precision=True, download=download)
    assert drain(job)[1] == tmp_path / "m"
    assert asked == ["fp16"]  # about 7 GB of SDXL, not 14


def test_a_repository_without_a_half_copy_gives_its_full_files(tmp_path, hub_cache, online):
    asked: list = []
    download = recording(tmp_path / "m", (None,), asked)
    drain(fetch("owner/model", variant="fp16", any_precision=True, download=download))
    assert asked == ["fp16", None]
    assert weight_sets(tmp_path / "m") == {None}


def test_a_model_cached_in_either_precision_stays_in_it(tmp_path, hub_cache, online, monkeypatch):
    folder = cached_snapshot(hub_cache, {None: ["all"]})  # the full files, from long ago
    asked: list = []
    download = recording(tmp_path / "m", (None, "fp16"), asked)
    drain(fetch("owner/model", variant="fp16", any_precision=True, download=download))
    # One request tops up the full set (a config an interrupted download left out); the
    # 7 GB half copy is not fetched beside the 14 GB already there.
    assert asked == [None]
    assert offline_finds(monkeypatch) == folder


def test_a_half_finished_cache_download_goes_on(tmp_path, hub_cache, online):
    cached_snapshot(hub_cache, {"fp16": ["unet", "vae"]})  # stopped before the encoders
    asked: list = []
    download = recording(tmp_path / "m", (None, "fp16"), asked)
    drain(fetch("owner/model", variant="fp16", any_precision=True, download=download))
    assert asked == ["fp16"]


def publishing(folder, published: dict[str, set], asked: list):
    """A stand-in download of a repository whose parts publish the weight sets
    ``published[part]``: it writes what is asked for (one variant for every part, or a
    variant per part), where the repository has it, and the configs in any case."""

    def download(source, what, variant, local, **more):
        asked.append(variant)
        wanted = variant if isinstance(variant, dict) else dict.fromkeys(PARTS, variant)
        write_model(folder, {})
        for part, v in wanted.items():
            if v in published[part]:
                write_model(folder, {v: [part]})
        return str(folder)

    return download


def test_a_part_without_a_half_copy_alone_takes_its_full_files(tmp_path, hub_cache, online):
    """SDXL with a swapped-in VAE that has only its full file: the half copies of the rest
    and the VAE's full file, not the whole 14 GB full set beside the 7 GB half one."""
    published = {**dict.fromkeys(PARTS, {None, "fp16"}), "vae": {None}}
    asked: list = []
    download = publishing(tmp_path / "m", published, asked)
    folder = drain(fetch("owner/model", variant="fp16", any_precision=True, download=download))[1]
    assert asked == ["fp16", {"vae": None}]
    assert part_sets(folder) == {**dict.fromkeys(PARTS, {"fp16"}), "vae": {None}}
    assert not (folder / "unet" / "w.safetensors").exists()


def test_a_model_cached_part_by_part_is_used_and_topped_up_as_it_is(
    tmp_path, hub_cache, online, monkeypatch
):
    folder = cached_snapshot(hub_cache, {"fp16": ["unet", "text_encoder", "text_encoder_2"]})
    write_model(folder, {None: ["vae"]})
    asked: list = []
    published = dict.fromkeys(PARTS, {None, "fp16"})
    drain(fetch("owner/model", variant="fp16", any_precision=True,
                download=publishing(tmp_path / "m", published, asked)))  # fmt: skip
    assert asked == [{**dict.fromkeys(PARTS, "fp16"), "vae": None}]  # nothing new fetched
    assert offline_finds(monkeypatch) == folder


def test_a_download_part_by_part_takes_only_those_parts_weights():
    from huggingface_hub.utils import filter_repo_objects

    patterns = hub._patterns({"unet": None, "text_encoder": "fp16"}, "model")
    taken = set(filter_repo_objects(SDXL_BASE_FILES, **patterns))
    assert {f for f in taken if f.endswith(".safetensors")} == {
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.fp16.safetensors",
    }
    assert "model_index.json" in taken and "unet/config.json" in taken  # configs: all


def a_hub(tmp_path, monkeypatch, calls: list, planned=None, fails=None):
    """``snapshot_download`` as a stand-in: a dry run answers ``planned`` (or raises
    TypeError, as a hub without dry runs does, when None); a download raises ``fails``
    or returns a folder. ``calls`` records whether each call was a dry run."""
    import huggingface_hub

    def snapshot_download(repo_id, *, dry_run=False, local_files_only=False, **kw):
        calls.append(dry_run)
        if dry_run:
            if planned is None:
                raise TypeError("snapshot_download() got an unexpected keyword 'dry_run'")
            if isinstance(planned, BaseException):
                raise planned
            return planned
        if fails is not None:
            raise fails
        return str(tmp_path / "m")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def free_space(monkeypatch, gb: float) -> None:
    monkeypatch.setattr(hub.shutil, "disk_usage", lambda path: SimpleNamespace(free=int(gb * 1e9)))


def test_a_download_that_would_not_fit_on_the_disk_is_refused_before_it_starts(
    tmp_path, hub_cache, online, monkeypatch
):
    calls: list = []
    planned = [
        SimpleNamespace(file_size=6_900_000_000, will_download=True),
        SimpleNamespace(file_size=10**9, will_download=False),  # in the cache already
    ]
    a_hub(tmp_path, monkeypatch, calls, planned)
    free_space(monkeypatch, 2.0)
    with pytest.raises(ModelLoadError) as said:
        hub._download("owner/model", "model", "fp16", False, room=True)
    assert str(said.value) == (
        "Downloading owner/model needs 6.9 GB on disk, and the disk holding the Hugging Face "
        f"cache ({hub_cache}) has 2.0 GB free; free some space there, or start the editor "
        "with HF_HOME set to a folder on a larger disk."
    )
    assert calls == [True]  # nothing was downloaded
    free_space(monkeypatch, 50)
    assert hub._download("owner/model", "model", "fp16", False, room=True) == str(tmp_path / "m")
    assert calls == [True, True, False]
    calls.clear()
    hub._download("owner/model", "model", "fp16", False)  # a top-up of a cached model
    hub._download("owner/model", "model", "fp16", True, room=True)  # offline: from the cache
    assert calls == [False, False]


def test_a_hub_that_cannot_plan_a_download_goes_on_without_the_check(
    tmp_path, hub_cache, online, monkeypatch
):
    calls: list = []
    a_hub(tmp_path, monkeypatch, calls, planned=None)
    free_space(monkeypatch, 0.001)
    assert hub._download("owner/model", "model", None, False, room=True) == str(tmp_path / "m")
    assert calls == [True, False]
    calls.clear()
    a_hub(tmp_path, monkeypatch, calls, planned=Cancelled())  # stopped while it asks
    with pytest.raises(Cancelled):
        hub._download("owner/model", "model", None, False, room=True)
    assert calls == [True]


def test_a_disk_that_fills_up_during_a_download_is_named_with_the_remedy(
    tmp_path, hub_cache, online, monkeypatch
):
    import errno

    full = OSError(errno.ENOSPC, "No space left on device")
    a_hub(tmp_path, monkeypatch, [], planned=[], fails=full)
    with pytest.raises(ModelLoadError) as said:
        hub._download("owner/model", "model", "fp16", False, room=True)
    assert str(said.value).startswith(
        f"The disk filled up while downloading owner/model into {hub_cache}; free some space"
    )
    assert str(said.value).endswith("The part downloaded so far is kept.")
    a_hub(tmp_path, monkeypatch, [], planned=[], fails=OSError(errno.ECONNRESET, "reset"))
    with pytest.raises(
        ModelLoadError, match=r"could not be downloaded \(\[Errno \d+\] reset\); check"
    ):
        hub._download("owner/model", "model", "fp16", False, room=True)


SDXL_BASE_FILES = [  # a part of what stabilityai/stable-diffusion-xl-base-1.0 holds
    "model_index.json",
    "sd_xl_base_1.0.safetensors",  # the single-file checkpoint, 7 GB more
    "scheduler/scheduler_config.json",
    "tokenizer/merges.txt",
    "tokenizer/vocab.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.onnx",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "vae_decoder/model.onnx",
    "safety_checker/config.json",  # SD 1.5's, which the editor never loads
    "safety_checker/model.safetensors",
    "safety_checker/model.fp16.safetensors",
]


@pytest.mark.parametrize(
    ("variant", "weights"),
    [
        (
            "fp16",
            {
                "text_encoder/model.fp16.safetensors",
                "unet/diffusion_pytorch_model.fp16.safetensors",
            },
        ),
        (None, {"text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors"}),
    ],
)
def test_the_offline_sentence_names_a_download_of_only_what_loads(variant, weights):
    import shlex

    from huggingface_hub.utils import filter_repo_objects

    line = download_command("owner/model", variant)
    words = shlex.split(line)
    assert words[:3] == ["hf", "download", "owner/model"]
    include = [words[i + 1] for i, w in enumerate(words) if w == "--include"]
    exclude = [words[i + 1] for i, w in enumerate(words) if w == "--exclude"]
    assert len(include) + len(exclude) == (len(words) - 3) / 2  # nothing else on the line
    taken = set(
        filter_repo_objects(
            SDXL_BASE_FILES, allow_patterns=include, ignore_patterns=exclude or None
        )
    )
    configs = {f for f in SDXL_BASE_FILES if f.endswith((".json", ".txt"))}
    assert taken == configs | weights
