"""Session fixtures for engine tests (tiny random models built offline).

The tiny SDXL and SD 1.5 are written once per session into a temporary folder, in diffusers
format, and loaded through :func:`dedit_app.models.load_model` like a real model. The loaded
SDXL is shared: fixtures that hand it out reset it first, so a test always starts from the
base model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def hub_snapshot(cache: Path, repo_id: str) -> Path:
    """Where the Hugging Face cache ``cache`` keeps the files of hub model ``repo_id``, as
    the hub lays it out: ``refs/main`` names a commit, whose snapshot folder (returned,
    not made) holds them."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    return repo / "snapshots" / commit


@pytest.fixture
def offline_hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache in ``tmp_path`` (the real one is never read), offline."""
    import huggingface_hub.constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def no_gpu(monkeypatch):
    """torch sees no CUDA or MPS device, and no NVIDIA or AMD driver is on the path."""
    import shutil

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(shutil, "which", lambda name: None)


def fake_gpu(monkeypatch, name: str, gib: int, major: int) -> None:
    """Make torch see one CUDA GPU ``name`` of ``gib`` GiB and compute capability
    ``major``.x (8: Ampere, with bfloat16 of its own)."""
    from types import SimpleNamespace

    import torch

    props = SimpleNamespace(name=name, total_memory=gib * 2**30 - 2**20, major=major)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.version, "hip", None)


def held_for(times: int, monkeypatch, winerror: int | None = None) -> list[str]:
    """Make the next ``times`` renames over or of a file fail as on Windows while another
    program holds it (PermissionError, with ``winerror`` when given); returns the targets
    of the failed tries."""
    import errno
    import os

    from dedit_app import atomic

    real, failed = os.replace, []

    def busy(src, dst, *args, **kwargs):
        if len(failed) < times:
            failed.append(str(dst))
            err = PermissionError(errno.EACCES, "The process cannot access the file")
            if winerror is not None:
                err.winerror = winerror
            raise err
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", busy)
    return failed


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session folder holding the tiny models (built lazily by the fixtures below)."""
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_sdxl_path(tiny_models_dir: Path) -> Path:
    """A tiny random SDXL in diffusers format (256 x 256 images)."""
    from dedit_app.tiny_models import save_tiny_sdxl

    return save_tiny_sdxl(tiny_models_dir / "tiny-sdxl", seed=0)


@pytest.fixture(scope="session")
def tiny_sd15_path(tiny_models_dir: Path) -> Path:
    """A tiny random SD 1.5 in diffusers format (one text encoder)."""
    from dedit_app.tiny_models import save_tiny_sd15

    return save_tiny_sd15(tiny_models_dir / "tiny-sd15", seed=0)


@pytest.fixture(scope="session")
def tiny_sdxl_other_path(tiny_models_dir: Path) -> Path:
    """The same tiny SDXL architecture with other random weights (another "base model")."""
    from dedit_app.tiny_models import save_tiny_sdxl

    return save_tiny_sdxl(tiny_models_dir / "tiny-sdxl-other", seed=1)


@pytest.fixture(scope="session")
def _tiny_sdxl_session(tiny_sdxl_path: Path):
    import torch

    from dedit_app.models import load_model

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    return load_model(tiny_sdxl_path, device="cpu")


@pytest.fixture
def tiny_sdxl(_tiny_sdxl_session):
    """The loaded tiny SDXL (CPU, fp32), reset to its base state for this test."""
    _tiny_sdxl_session.reset()
    return _tiny_sdxl_session


@pytest.fixture(scope="session")
def tiny_photo() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A 300 x 200 (H x W) picture with four items: image, labels, names."""
    from dedit_app.tiny_models import tiny_photo as make

    return make()


@pytest.fixture(scope="session")
def prepared_project_dir(tmp_path_factory, _tiny_sdxl_session, tiny_photo) -> Path:
    """A project of :func:`tiny_photo` prepared (a few steps) on the tiny SDXL jointly with a
    reference project (saved beside it as ``reference.dedit``). Tests must not modify it:
    load it with ``Project.load`` (a fresh copy in memory) and never save."""
    from dedit_app.finetune import FinetuneOptions, finetune_project, store_result
    from dedit_app.jobs import run_job
    from dedit_app.project import Project

    folder = tmp_path_factory.mktemp("prepared")
    image, labels, names = tiny_photo
    project = Project.new(image, labels, list(names), source="tiny.png")
    project.save(folder / "tiny.dedit")
    reference = Project.new(image[::-1, ::-1].copy(), labels[::-1].copy(), ["sky", "a", "b", "c"])
    reference.save(folder / "reference.dedit")
    _tiny_sdxl_session.reset()
    options = FinetuneOptions(emb_steps=2, model_steps=2, grad_accum=1, seed=0)
    result = run_job(finetune_project(_tiny_sdxl_session, project, reference, options))
    store_result(project, result)
    _tiny_sdxl_session.reset()
    return folder
