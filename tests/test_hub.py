"""Where model files come from: the first download of a hub model reports its progress in
megabytes and stops when cancelled; folders and offline sources download nothing. The hub
itself is never reached: a stand-in download drives the progress bars the way
``snapshot_download`` does (one byte bar for all files, filled from several threads)."""

from __future__ import annotations

import threading
import time

import pytest

from dedit_app.errors import Cancelled, ModelLoadError
from dedit_app.hub import fetch, is_hub_id, resolve
from dedit_app.jobs import CancelToken, run_job

MB = 1_000_000


@pytest.fixture
def online(monkeypatch):
    """The tests run offline; these ones pretend not to (the download is a stand-in)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")


def stand_in(tmp_path, sizes: list[int], chunk: int = MB, pause: float = 0.002, seen=None):
    """A download of files of ``sizes`` bytes, two threads at a time, into ``tmp_path``."""

    def download(source, what, variant, local, tqdm_class):
        assert not local and what == "model" and variant is None
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
