"""The editor's adapter to the D-Edit engine (dedit_app.models / finetune / edits).

The window asks for jobs in its own words (prepare this project, retype this item, move
that one); this module turns them into the engine's immutable requests, checks them on the
UI thread (so a mistake is told at once and nothing is queued), and wraps them in worker
tasks. The worker keeps one loaded model in its context and reuses it while the model
settings stay the same; the engine installs a project's learned weights into it when an
edit needs them (``model.applied``), so switching between prepared projects never trains.

What the worker gets is a *snapshot* of the project: a shallow copy holding the document's
read-only arrays and copies of its items, so the document can move on (undo, more edits)
while the job runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import random
import threading
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dedit_app.errors import EditError, as_out_of_memory
from dedit_app.jobs import CancelToken, Progress
from ui.worker import NOTICE, WorkerContext

_MODEL_KEY = "diffusion-model"
log = logging.getLogger(__name__)


def unavailable() -> str:
    """Why preparing and editing cannot run in this installation, or "" when they can."""
    for mod in ("dedit_app.edits", "dedit_app.finetune", "dedit_app.models"):
        try:
            if importlib.util.find_spec(mod) is None:
                raise ImportError(mod)
        except ImportError:
            return (
                "This installation has no D-Edit engine, so preparing and editing are off; "
                "refining items, saving and exporting work."
            )
    return ""


# ----- the engine's modules, loaded ahead ----------------------------------------------

# What Prepare and the edits import on the UI thread to check a request before queuing it.
# They import torch and diffusers: 3 to 5 s on a 2-core machine, which froze the window at
# the first Prepare or the first edit.
_ENGINE_MODULES = ("dedit_app.finetune", "dedit_app.sampler", "dedit_app.edits")
_loading: threading.Thread | None = None


def load_ahead() -> None:
    """Start importing the engine's modules on a thread of their own (once per process), so
    the first Prepare or edit does not wait for them. Called once the window shows, and
    when a photo opens (for windows made without :func:`ui.app.main`)."""
    global _loading
    if _loading is not None or unavailable():
        return

    def load() -> None:
        for name in _ENGINE_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the job that needs it says why, in words
                log.warning("loading %s ahead failed", name, exc_info=True)
                return

    _loading = threading.Thread(target=load, name="dedit-engine-import", daemon=True)
    _loading.start()


def finish_loading(timeout: float = 60.0) -> None:
    """Wait, at most ``timeout`` seconds, for the import :func:`load_ahead` started. For
    when the window has gone: an editor quit within seconds of starting tore torch's
    modules down while they were half imported, and torch's finalizers printed errors."""
    if _loading is not None:
        _loading.join(timeout)


def _loaded() -> None:
    """Wait until the modules :func:`load_ahead` started are in (at once when they are):
    one thread at a time imports them, so no two imports can wait on each other."""
    if _loading is not None:
        _loading.join()


# ----- the model, on the worker thread ----------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load, and how to run it, from Settings."""

    source: str
    device: str = "auto"  # auto | cuda | mps | cpu
    precision: str = "auto"  # auto | bfloat16 | float16 | float32
    compile: bool = False  # torch.compile the UNet; honoured on CUDA only

    @classmethod
    def from_settings(cls, settings) -> ModelSpec:
        return cls(settings.model, settings.device, settings.precision, settings.compile)

    @property
    def load_key(self) -> tuple[str, str, str]:
        """What decides which weights are loaded where; switching compile reuses them."""
        return (self.source, self.device, self.precision)

    @property
    def placement(self) -> dict[str, str | None]:
        """``device`` and ``dtype`` as :func:`dedit_app.models.load_model` takes them."""
        return {
            "device": None if self.device == "auto" else self.device,
            "dtype": None if self.precision == "auto" else self.precision,
        }


def _model(ctx: WorkerContext, spec: ModelSpec, *, training: bool = False):
    """The loaded model for ``spec``, loading it (once) when needed.

    The segmenter (SAM on a GPU) gives its accelerator memory back only when SDXL needs the
    most: to load, and to train. An edit with SDXL already loaded leaves it in place, so
    the next click does not wait for SAM to move back."""
    from dedit_app.models import compile_cache_dir, load_model

    seg = ctx.cache.get("segmenter")
    loaded = ctx.cache.get(_MODEL_KEY)
    needs_room = training or loaded is None or loaded[0] != spec.load_key
    if seg is not None and hasattr(seg[1], "release") and needs_room:
        seg[1].release()

    def make():
        # The job's _download has just brought what the cache lacked: asking the hub
        # again would only repeat its request.
        return load_model(spec.source, **spec.placement, local_files_only=True)

    model = ctx.get(_MODEL_KEY, make, version=spec.load_key)
    # On a CPU, inductor takes minutes for what it saves in seconds (docs/PERFORMANCE.md).
    # A compile that failed once stays off until the model is loaded again (the job ran
    # uncompiled and the log says why).
    wanted = spec.compile and model.device.type == "cuda" and not model.compile_error
    if wanted != model.compiled:
        model.compile_unet("inductor" if wanted else None, cache_dir=compile_cache_dir())
    return model


def _download(ctx: WorkerContext, spec: ModelSpec, cancel: CancelToken):
    """The first job that loads a hub model downloads what the cache lacks of it, with
    progress (:func:`dedit_app.hub.fetch`): the precision the model will run in (7 GB
    of SDXL for a GPU), or, when either precision is cached in full, what that one
    lacks (one request to the hub); a model already loaded costs nothing. Returns the
    cache folder, or None when nothing was asked (loaded already, a local folder,
    offline)."""
    from dedit_app.hub import fetch
    from dedit_app.models import download_variant

    loaded = ctx.cache.get(_MODEL_KEY)
    if loaded is not None and loaded[0] == spec.load_key:
        return None
    variant = download_variant(**spec.placement)
    return (yield from fetch(spec.source, variant=variant, any_precision=True, cancel=cancel))


def _wait_for_download(done: threading.Event, source: str, cancel: CancelToken):
    """Yield a waiting progress until ``done`` is set (the download of ``source`` running
    as its own job has ended, however it ended); Cancelled when the job is cancelled."""
    said = f"Waiting for the download of {source} (in the Jobs panel)"
    while not done.wait(0.25):
        cancel.raise_if_cancelled()
        yield Progress(0, 0, stage="downloading", message=said)


@dataclass(frozen=True)
class DownloadTask:
    """Download a hub model's files before the first Prepare needs them (a job of kind
    "download", on a worker of its own); returns the cache folder, or None when there was
    nothing to download (a local folder; offline)."""

    spec: ModelSpec

    def run(self, ctx: WorkerContext, cancel: CancelToken):
        _loaded()
        return (yield from _download(ctx, self.spec, cancel))


def _telling_compile_failures(model, job):
    """Run ``job``; when the model's compiler failed during it (the job went on uncompiled),
    tell the user once, as a notice."""
    before = model.compile_error
    result = yield from job
    if model.compile_error and model.compile_error != before:
        yield Progress(0, 0, stage=NOTICE, message=model.compile_error)
    return result


def snapshot(project):
    """A copy of ``project`` that a job can read while the document moves on."""
    return project.job_copy()


# ----- preparing ------------------------------------------------------------------------


def finetune_options(settings):
    _loaded()
    from dedit_app.finetune import FinetuneOptions

    options = FinetuneOptions(
        emb_steps=settings.emb_steps,
        model_steps=settings.model_steps,
        lora_rank=settings.lora_rank,
    )
    # same trained tensors, less memory, slower steps (docs/PERFORMANCE.md); "auto" is
    # decided by PrepareTask once the model is loaded and its GPU known
    return options.with_low_memory() if settings.low_memory == "on" else options


@dataclass(frozen=True)
class PrepareTask:
    """Fine-tune the model on a project (and a reference project, jointly)."""

    spec: ModelSpec
    project: Any = field(repr=False)  # snapshot
    reference: Any = field(default=None, repr=False)  # snapshot or None
    options: Any = None  # FinetuneOptions
    sampling: Any = None  # SamplingOptions of the edits to come (a compiled model warms up)
    auto_memory: bool = False  # low-memory mode where the model's GPU is too small without
    # set when a download of the model started from Settings has ended (ui.downloads):
    # until then this job waits for it rather than downloading the same files beside it
    after: threading.Event | None = field(default=None, compare=False, repr=False)

    def run(self, ctx: WorkerContext, cancel: CancelToken):
        _loaded()
        from dedit_app.finetune import finetune_project

        if self.after is not None:
            yield from _wait_for_download(self.after, self.spec.source, cancel)
        yield from _download(ctx, self.spec, cancel)
        yield Progress(0, 0, stage="Loading the model", message=f"Loading {self.spec.source}")
        model = _model(ctx, self.spec, training=True)
        cancel.raise_if_cancelled()
        options = yield from self._memory_mode(ctx, model)
        job = finetune_project(model, self.project, self.reference, options, cancel)
        try:
            result = yield from _telling_compile_failures(model, job)
        except Exception as err:
            # Low memory is on already: advising it, as for other preparations, would
            # send the user round in a circle.
            oom = options.gradient_checkpointing and as_out_of_memory(
                err, "Preparing in low-memory mode", "choose a smaller model in Settings > Model"
            )
            if oom:
                raise oom from err
            raise
        if model.compiled and self.sampling is not None:
            yield from _warm_up_edits(model, self.project, self.sampling, cancel)
        return result

    def _memory_mode(self, ctx: WorkerContext, model):
        """The options to prepare with: low-memory mode when it is automatic and the
        model's GPU is too small for it without (told once per session, as a notice)."""
        from dedit_app.recompute import low_memory_reason

        options = self.options
        if not self.auto_memory or options.gradient_checkpointing:
            return options
        why = low_memory_reason(model.family, model.device)
        if not why:
            return options
        if not ctx.cache.get(_TOLD_LOW_MEMORY):
            ctx.cache[_TOLD_LOW_MEMORY] = True
            yield Progress(0, 0, stage=NOTICE, message=f"{why} {_LOW_MEMORY_SETTING}")
        return options.with_low_memory()


_TOLD_LOW_MEMORY = "told: low memory"  # WorkerContext.cache: the notice was given
_LOW_MEMORY_SETTING = "Change it in Settings > Preparing > Low memory."


def _warm_up_edits(model, project, options, cancel):
    """Compile the edit graph while the user is still waiting for Prepare, so the first
    click afterwards answers in seconds. The preparation is finished by now: a cancel or
    a failure here only skips the warm-up, and the result is kept."""
    from dedit_app.jobs import Cancelled
    from dedit_app.sampler import warm_up

    try:
        job = warm_up(model, project.image, project.labels, options, cancel)
        yield from _telling_compile_failures(model, job)
    except Cancelled:
        log.info("edit warm-up cancelled; the preparation is kept")
    except Exception:  # noqa: BLE001 - the user's preparation must survive the warm-up
        log.warning("edit warm-up failed; the first edit compiles instead", exc_info=True)


def processor_warning(settings) -> str:
    """A sentence saying that preparing and editing with Settings' model would be slow
    because it runs on the processor (no GPU found, or chosen), or "" when it would not
    (:mod:`dedit_app.slow_device`: no model is loaded to find out)."""
    if unavailable():
        return ""
    _loaded()
    from dedit_app.slow_device import processor_warning as warning

    spec = ModelSpec.from_settings(settings)
    return warning(spec.source, spec.placement["device"])


Said = tuple[str, str, str]  # a Verdict for the UI thread: (text, state, model instead)


def placement(model: str, device: str, precision: str, low_memory: str) -> Said | None:
    """Where ``model`` would run with these Settings fields, as ``(sentences, state,
    model to choose instead)`` (:func:`dedit_app.placement.describe_placement`; state
    "ready", "note" or "problem"; the model "" unless a smaller one is the remedy), or
    None when this installation has no engine. Slow the first time (torch starts CUDA):
    call it off the UI thread."""
    return _verdict(lambda p: p.describe_runs(model, device, precision, low_memory))


def model_source(model: str, device: str, precision: str) -> Said | None:
    """Where the files of Settings' model are, or why they cannot be used, as
    ``(sentences, state, "")`` (:func:`dedit_app.placement.describe_source`), or None
    without an engine. Reads the disk and the Hugging Face cache: call it off the UI
    thread."""
    return _verdict(lambda p: p.describe_source(model, device, precision))


def _verdict(ask) -> Said | None:
    """``ask(dedit_app.placement)``'s Verdict as :data:`Said`; None without an engine."""
    if unavailable():
        return None
    _loaded()
    from dedit_app import placement

    said = ask(placement)
    return said.text, said.state, said.model


def prepare_task(project, settings, reference=None) -> PrepareTask:
    """The preparation job for ``project`` (with ``reference`` when a reference photo is
    open); raises a DEditError with a sentence when it cannot start."""
    why = unavailable()
    if why:
        raise EditError(why)
    options = finetune_options(settings)
    options.check()
    return PrepareTask(
        ModelSpec.from_settings(settings),
        snapshot(project),
        snapshot(reference) if reference is not None else None,
        options,
        sampling_options(settings),
        auto_memory=settings.low_memory == "auto",
    )


def store_prepared(project, result, reference=None, write: bool = True) -> None:
    """Keep a finished preparation in the project (tokens, training record, weights). With
    ``write`` False the weights wait for the project's next save, even when it has a
    folder: the editor saves off the UI thread (:mod:`ui.files`)."""
    from dedit_app.finetune import store_result

    store_result(project, result, write, reference)


def _metadata(project) -> dict[str, str]:
    from dedit_app.project import weights_metadata

    return weights_metadata(project)


def is_prepared(project, settings=None, reference=None) -> bool:
    """Prepared for the current items and, when ``settings`` are given, the current model."""
    return project is not None and not stale_reason(project, settings)


def stale_reason(project, settings=None, reference=None) -> str:
    """Why the project's preparation cannot be used as it is ("" when it can)."""
    if not project.has_weights:
        return "This project has not been prepared yet."
    try:
        meta = _metadata(project)
    except Exception as err:  # damaged or missing file: say so
        return str(err)
    from dedit_app.looks import missing_looks

    try:
        tokens = [str(t) for t in json.loads(meta.get("items", "[]"))]
        reference_tokens = [str(t) for t in json.loads(meta.get("reference_items", "[]"))]
    except (ValueError, TypeError):
        return "The project's learned weights are damaged; prepare it again."
    if missing_looks(project, tokens, reference_tokens):  # a copy has its item's look
        return "Items were added after preparing; prepare again to edit them."
    if settings is not None:
        training = project.training or {}
        source = training.get("source") or meta.get("source", "")
        if source and source != settings.model and Path(source).name != Path(settings.model).name:
            return (
                f"This project was prepared with {meta.get('base_model', source)}, but Settings "
                f"choose {settings.model}; prepare again, or switch the model back."
            )
    return ""


def prepared_with(project, reference) -> bool:
    """True when ``project`` was prepared jointly with exactly this ``reference``."""
    try:
        meta = _metadata(project)
    except Exception:
        return False
    return meta.get("reference_key") == _reference_key(reference)


# The last reference hashed: (its image and item map, weakly held, and their key).
_last_reference: tuple[weakref.ref, weakref.ref, str] | None = None


def _reference_key(reference) -> str:
    """``content_key`` of the reference's picture and items, remembered while they are
    the same arrays (never changed in place): the window asks at every click, through
    :meth:`ui.editing.EditController.update_state`, and hashing a 24 MP reference takes a
    tenth of a second on the UI thread."""
    global _last_reference
    from dedit_app.project import content_key

    image, labels = reference.image, reference.labels
    last = _last_reference
    if last is not None and last[0]() is image and last[1]() is labels:
        return last[2]
    key = content_key(image, labels)
    _last_reference = (weakref.ref(image), weakref.ref(labels), key)
    return key


# ----- edits ----------------------------------------------------------------------------


def sampling_options(settings, seed: int | None = None):
    _loaded()
    from dedit_app.sampler import SamplingOptions

    if seed is None:
        seed = settings.seed if settings.seed >= 0 else random.randrange(2**31)
    return SamplingOptions(
        steps=settings.steps,
        guidance=settings.guidance,
        strength=settings.strength,
        edge=float(settings.edge),
        candidates=settings.candidates,
        seed=seed,
    )


@dataclass(frozen=True)
class EditTask:
    """Render one edit request for a project snapshot."""

    spec: ModelSpec
    project: Any = field(repr=False)
    request: Any = None  # dedit_app.edits.*Request
    reference: Any = field(default=None, repr=False)

    def run(self, ctx: WorkerContext, cancel: CancelToken):
        _loaded()
        from dedit_app.edits import run_edit

        yield from _download(ctx, self.spec, cancel)
        yield Progress(0, 0, stage="Loading the model", message=f"Loading {self.spec.source}")
        model = _model(ctx, self.spec)
        cancel.raise_if_cancelled()
        job = run_edit(model, self.project, self.request, reference=self.reference, cancel=cancel)
        return (yield from _telling_compile_failures(model, job))


def edit_task(project, settings, kind: str, **kw: Any) -> EditTask:
    """An edit job: ``kind`` is text (item, prompt; extra: more items regenerated with it),
    move (moves: one :class:`~dedit_app.partition.Move` per item), duplicate (moves: one
    per copy, from its item), remove (item; also:
    more items removed with it), swap (item, reference, ref_item) or redraw (drawn: the
    ``(H, W)`` item map the picture was made with). Checked here, on the UI thread: a
    request the engine would refuse raises its sentence and nothing is queued."""
    _loaded()
    from dedit_app import edits

    why = unavailable()
    if why:
        raise EditError(why)
    options = sampling_options(settings)
    extra = tuple(int(i) for i in kw.get("extra", ()))  # regenerated with the edit
    reference = None
    if kind == "text":
        request = edits.TextRequest(int(kw["item"]), str(kw["prompt"]), extra, options)
    elif kind == "move":
        request = edits.MoveRequest(tuple(kw["moves"]), options=options)
    elif kind == "duplicate":
        request = edits.DuplicateRequest(tuple(kw["moves"]), options=options)
    elif kind == "remove":
        also = tuple(int(i) for i in kw.get("also", ()))
        request = edits.RemoveRequest(int(kw["item"]), options=options, also=also)
    elif kind == "swap":
        request = edits.SwapRequest(int(kw["item"]), int(kw["ref_item"]), options=options)
        reference = snapshot(kw["reference"])
    elif kind == "redraw":
        request = edits.RedrawRequest(kw["drawn"], options=options)
    else:
        raise EditError(f"There is no edit called {kind!r}.")
    snap = snapshot(project)
    edits.check_edit(snap, request, reference)  # raises with a sentence; cheap
    return EditTask(ModelSpec.from_settings(settings), snap, request, reference)


def result_images(result, labels: np.ndarray | None) -> tuple[list[np.ndarray], np.ndarray]:
    """The candidates of an EditResult and the label map to apply with them."""
    new = result.labels if result.labels is not None else labels
    return list(result.images), new


def result_areas(result) -> np.ndarray | None:
    """Pixels per item of the result's new item map, counted on the worker; None when the
    edit kept the map."""
    return result.areas


def result_items(result) -> list | None:
    """The items after the edit when it added some (a duplicate's copies); None: kept."""
    return result.items


def result_regions(result) -> tuple[np.ndarray, np.ndarray, float]:
    """``(active, soft, edge)``: the ``(H, W)`` bool pixels the edit generated and its soft
    band, and the band's width; every other pixel it left as it was. For laying it onto a
    picture changed while it ran (:mod:`dedit_app.rebase`)."""
    return result.active, result.soft, float(result.request.options.edge)


def result_entry(result, candidate: int = 0) -> dict[str, Any]:
    """The history record of candidate ``candidate``."""
    return result.entry(candidate)


# ----- the tiny model (tests, screenshots, benchmarks) ------------------------------------


def tiny_model_available() -> bool:
    return not unavailable() and importlib.util.find_spec("dedit_app.tiny_models") is not None


def make_tiny_model(folder: str | Path) -> Path:
    """A tiny random SDXL in diffusers format under ``folder`` (built once, reused)."""
    from dedit_app.tiny_models import save_tiny_sdxl

    folder = Path(folder) / "tiny-sdxl"
    if not (folder / "model_index.json").is_file():
        save_tiny_sdxl(folder)
    return folder


def use_tiny_model(
    window, folder: str | Path, *, train_steps: int = 100, steps: int = 8, candidates: int = 3
) -> None:
    """Point ``window`` at the tiny model with short schedules (screenshots and demos)."""
    s = replace(
        window.settings,
        model=str(make_tiny_model(folder)),
        device="cpu",
        precision="float32",
        emb_steps=train_steps,
        model_steps=train_steps,
        steps=steps,
        candidates=candidates,
        seed=1,
    )
    window.apply_settings(s)
