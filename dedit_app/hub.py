"""Where a model's files come from: a local diffusers folder, or the Hugging Face hub
through its cache, downloaded with progress the first time.

    folder = resolve("stabilityai/stable-diffusion-xl-base-1.0", what="model")
    for p in fetch(DEFAULT_MODEL, cancel=token): ...  # Progress in megabytes, or nothing

:func:`resolve` turns a source into a folder, or raises :class:`ModelLoadError` with a
sentence that says what to download or where to point the editor. :func:`fetch` is the
long first download of a hub model as a job: the editor shows how much is done and can
stop it; a stopped or broken download resumes next time (the hub keeps its partial files).
Both download the same files: the configs and one precision of the safetensors weights.

With ``any_precision=True`` (what the editor asks for) a model whose weights are already in
the cache in full, each part in either precision, stays as it is: offline it is used as it
is, online one request tops up those sets only. Otherwise the ``variant`` asked for is
downloaded (SDXL base's half-precision copy is about 7 GB, its full one about 14 GB), and
the full files of the parts the repository publishes no such copy of.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from dedit_app.errors import Cancelled, ModelLoadError, short_error
from dedit_app.jobs import CancelToken, Job, Progress
from dedit_app.weight_files import (
    HALF,
    WEIGHT_SUFFIX,
    WEIGHTED,
    held_whole,
    one_variant,
    part_sets,
    pick_variants,
)

# Which weight files to fetch: one variant for every part (None: the plain, full files),
# or a variant per part, where a repository publishes half copies of only some parts.
Variant = str | None | Mapping[str, str | None]

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
_MB = 1_000_000  # decimal, as the sizes the hub and file managers show
_POLL_S = 0.25  # how often a download's progress is reported

__all__ = [
    "DEFAULT_MODEL",
    "WEIGHT_SUFFIX",
    "cached_folder",
    "download_command",
    "fetch",
    "is_hub_id",
    "offline",
    "resolve",
    "size_text",
]


# Who is offline in the sentence for a model not downloaded: the editor by default; the
# `dedit` command sets "this computer" while it runs (dedit_app.cli.main).
offline_subject: ContextVar[str] = ContextVar("offline_subject", default="the editor")


def is_hub_id(source: str) -> bool:
    """True when ``source`` reads as ``owner/name`` (not a path)."""
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~", "/"))


def offline(local_files_only: bool = False) -> bool:
    """True when the network must not be touched (asked for, or ``HF_HUB_OFFLINE``)."""
    return local_files_only or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def _patterns(variant: Variant, what: str) -> dict[str, Any]:
    """``snapshot_download``'s file filters: configs and the safetensors weights of the
    parts the editor loads only; everything else in a hub repository (pickles, ONNX, Flax,
    single-file checkpoints at the top level, SD 1.5's safety checker) is left alone. A
    per-part ``variant`` fetches only those parts' weights (and every config)."""
    if isinstance(variant, Mapping):
        allow = ["model_index.json", "*.json", "*.txt"]
        ignore = []
        for part, v in variant.items():
            allow.append(f"{part}/*.{v}{WEIGHT_SUFFIX}" if v else f"{part}/*{WEIGHT_SUFFIX}")
            if not v:  # the plain files only, not the half copies beside them
                ignore += [f"{part}/*.{HALF}{WEIGHT_SUFFIX}", f"{part}/*.bf16{WEIGHT_SUFFIX}"]
        return {"allow_patterns": allow, "ignore_patterns": ignore or None}
    weights = f"*.{variant}{WEIGHT_SUFFIX}" if variant else f"*{WEIGHT_SUFFIX}"
    # the parts the editor loads: not SD 1.5's safety checker (1.2 GB) or other extras
    allow = ["model_index.json", "*.json", "*.txt", *(f"{part}/{weights}" for part in WEIGHTED)]
    if what == "vae":
        allow += [weights]
    # Without a variant, skip the half-precision copies that hub repos keep beside the
    # full ones (SDXL base would otherwise download twice).
    ignore = None if variant else [f"*.{HALF}{WEIGHT_SUFFIX}", f"*.bf16{WEIGHT_SUFFIX}"]
    return {"allow_patterns": allow, "ignore_patterns": ignore}


def download_command(source: str, variant: Variant, what: str = "model") -> str:
    """The ``hf download`` line that fetches what the editor would (a bare ``hf download``
    takes every file of the repository: SDXL base's pickles and ONNX copies too). Double
    quotes keep the patterns whole in POSIX shells, PowerShell and cmd alike."""
    patterns = _patterns(variant, what)
    include = [p for p in patterns["allow_patterns"] if p != "model_index.json"]
    words = [f'--include "{p}"' for p in include]
    words += [f'--exclude "{p}"' for p in patterns["ignore_patterns"] or []]
    return " ".join([f"hf download {source}", *words])


def resolve(
    source: str,
    *,
    what: str,
    variant: str | None,
    local_files_only: bool,
    any_precision: bool = False,
) -> Path:
    """A local folder for ``source``: the folder itself, or a hub id fetched to (or read
    from) the Hugging Face cache. ``what`` ("model", "vae") names it in sentences;
    ``variant`` and ``any_precision`` are as in the module's docstring."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"{path} is a file; point the editor to a diffusers model folder (with "
                "model_index.json, unet/, vae/, text_encoder/ ...), not a single checkpoint."
            )
        return path
    if not is_hub_id(source):
        raise ModelLoadError(
            f"There is no folder {path} and {source!r} is not a Hugging Face model id; give a "
            f"local diffusers folder or a hub id such as {DEFAULT_MODEL}."
        )
    local = offline(local_files_only)
    return Path(_hub_folder(source, what, variant, local, any_precision, _download))


def _hub_folder(
    source: str,
    what: str,
    variant: str | None,
    local: bool,
    any_precision: bool,
    download: Callable[..., str],
    **more: Any,
) -> str:
    """The cache folder of hub model ``source``, downloading what it lacks with
    ``download`` (:func:`_download`'s signature; ``more`` goes to it)."""
    held = cached_folder(source) if any_precision else None
    if held is not None:
        if local:
            return str(held)
        # One request for the precision already held, never the other: it brings what an
        # interrupted download left out beside the weights (a tokenizer file, a config)
        # and a newer revision's changed files; it falls back to the cache when the hub
        # cannot be reached.
        picked = one_variant(pick_variants(held, variant), variant)
        return download(source, what, picked, local, **more)
    folder = download(source, what, variant, local, room=True, **more)
    if any_precision and variant is not None and not local:
        # Parts the repository publishes no complete copy of in that precision: their full
        # files, and only theirs (SDXL with a swapped-in VAE: 0.3 GB more, not 14).
        sets = part_sets(folder)
        lacking = {part: None for part, held in sets.items() if variant not in held}
        if lacking:
            every = len(lacking) == len(sets)
            folder = download(source, what, None if every else lacking, local, room=True, **more)
    return folder


def cached_folder(source: str) -> Path | None:
    """The cache folder of hub model ``source`` when its weights are there in full (each
    part in either precision), found without the network; None when they are not."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            source, local_files_only=True, allow_patterns=["model_index.json"]
        )
    except Exception:  # noqa: BLE001 - not cached, or cached in a way the hub cannot read
        return None
    return Path(folder) if held_whole(folder) else None


def _download(
    source: str, what: str, variant: Variant, local: bool, room: bool = False, **more: Any
) -> str:
    """``snapshot_download`` of ``source``, its failures turned into sentences. With
    ``room`` (a download that may be gigabytes) it first makes sure the disk holding the
    cache has room for what is still to come."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    patterns = _patterns(variant, what)
    try:
        if room and not local:
            _check_room(source, patterns, more.get("tqdm_class"))
        return snapshot_download(source, local_files_only=local, **patterns, **more)
    except GatedRepoError as err:
        raise ModelLoadError(
            f"The model {source} needs you to accept its license on huggingface.co and log in "
            "(`hf auth login`) before it can be downloaded."
        ) from err
    except RepositoryNotFoundError as err:
        raise ModelLoadError(
            f"There is no model {source} on the Hugging Face hub (or it is private); check the "
            f"name, or point the editor to a local diffusers folder."
        ) from err
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        raise ModelLoadError(
            f"The {what} {source} is not downloaded and {offline_subject.get()} is offline; "
            "download it once "
            f"while online with `{download_command(source, variant, what)}`, or use a local "
            "diffusers folder as the model (Settings, Model in the editor; --model on the "
            "command line)."
        ) from err
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise ModelLoadError(
                f"The disk filled up while downloading {source} into {_cache_dir()}; "
                f"{_MAKE_ROOM} The part downloaded so far is kept."
            ) from err
        raise _unreachable(what, source, err) from err
    except (HfHubHTTPError, ValueError) as err:
        raise _unreachable(what, source, err) from err


_MAKE_ROOM = (
    "free some space there, or start the editor with HF_HOME set to a folder on a larger disk."
)
_SLACK = 500 * _MB  # a disk filled to the last megabyte fails in other ways too


def _unreachable(what: str, source: str, err: BaseException) -> ModelLoadError:
    return ModelLoadError(
        f"The {what} {source} could not be downloaded ({short_error(err)}); check the "
        "network, or point the editor to a local diffusers folder."
    )


def _cache_dir() -> Path:
    import huggingface_hub.constants

    return Path(huggingface_hub.constants.HF_HUB_CACHE)


def _check_room(source: str, patterns: dict[str, Any], bar: type | None) -> None:
    """Raise ModelLoadError when the files of ``source`` still to download (asked of the
    hub without downloading them) do not fit on the disk that holds the cache. Says
    nothing when the hub cannot say: the download itself then tells what is wrong.
    ``bar``: the download's tqdm class, so the question prints nothing and can be stopped."""
    from huggingface_hub import snapshot_download

    try:
        plan = snapshot_download(source, dry_run=True, tqdm_class=bar, **patterns)
        need = sum(f.file_size or 0 for f in plan if f.will_download)
    except Cancelled:
        raise
    except Exception:  # noqa: BLE001 - an older hub without dry runs, or no answer
        return
    cache = _cache_dir()
    there = next((p for p in (cache, *cache.parents) if p.exists()), None)
    if there is None or need == 0:
        return
    free = shutil.disk_usage(there).free
    if need + _SLACK > free:
        raise ModelLoadError(
            f"Downloading {source} needs {size_text(need)} on disk, and the disk holding the "
            f"Hugging Face cache ({cache}) has {size_text(free)} free; {_MAKE_ROOM}"
        )


# ----- downloading with progress ---------------------------------------------------------


class _Tally:
    """What the download's progress bars said, gathered across the hub's threads."""

    def __init__(self, cancel: CancelToken | None) -> None:
        self.cancel = cancel
        self.bars: list[Any] = []
        self.lock = threading.Lock()

    def done_total(self) -> tuple[int, int, str]:
        """``(done, total, unit)``: bytes when the hub reports bytes (one bar sums all
        files), else files; the byte bar with the largest total is the whole download."""
        with self.lock:
            bars = [(int(b.n or 0), int(b.total or 0), b.counts) for b in self.bars]
        sized = [b for b in bars if b[2] == "B" and b[1] > 0]
        if sized:
            return max(sized, key=lambda b: b[1])
        files = [b for b in bars if b[2] != "B" and b[1] > 0]
        return max(files, key=lambda b: b[1]) if files else (0, 0, "")


def _bar_class(tally: _Tally) -> type:
    """A tqdm class that prints nothing, tells ``tally`` how far it got, and stops the
    download (inside the hub's own threads) once the job is cancelled."""
    from tqdm.auto import tqdm

    class Bar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)  # the hub's own bars take a name; tqdm does not
            self.counts = kwargs.get("unit", "it")  # a disabled bar keeps no unit...
            kwargs["disable"] = True  # ...and prints nothing
            super().__init__(*args, **kwargs)
            with tally.lock:
                tally.bars.append(self)

        def update(self, n: float | None = 1) -> bool | None:
            if tally.cancel is not None and tally.cancel.cancelled:
                raise Cancelled()
            with tally.lock:  # the hub's threads share one bar
                self.n += n or 0  # a disabled bar does not count by itself
            return None

    return Bar


def fetch(
    source: str,
    *,
    what: str = "model",
    variant: str | None = None,
    any_precision: bool = False,
    cancel: CancelToken | None = None,
    download: Callable[..., str] | None = None,
) -> Job[Path | None]:
    """Download hub model ``source`` into the Hugging Face cache, yielding
    ``Progress(done, total, stage="downloading")`` in megabytes (or files, with hub
    versions that report only files) a few times a second, and return its folder.

    A local folder, or any source while offline, returns None at once: there is nothing
    to download and :func:`resolve` says what is wrong, if anything. A model already in
    the cache takes one request to the hub. Cancelled stops the download between chunks
    (raises :class:`Cancelled`); the files so far stay in the cache and the next fetch
    goes on from them. ``variant`` and ``any_precision`` are as in the module's
    docstring. ``download`` replaces ``snapshot_download``'s wrapper in tests.
    """
    if Path(source).expanduser().exists() or not is_hub_id(source) or offline():
        return None
    tally = _Tally(cancel)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            run = download or _download
            bar = _bar_class(tally)
            outcome["folder"] = _hub_folder(
                source, what, variant, False, any_precision, run, tqdm_class=bar
            )
        except BaseException as err:  # noqa: BLE001 - handed to the job's thread below
            outcome["error"] = err

    worker = threading.Thread(target=work, name=f"download {source}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(_POLL_S)
        done, total, unit = tally.done_total()
        if unit == "B":
            yield Progress(
                done // _MB,
                max(total // _MB, 1),
                stage="downloading",
                message=f"Downloading {source}: {size_text(done)} of {size_text(total)}",
            )
        else:  # files only (older hubs), or nothing known yet: still asking the hub
            said = f"Downloading {source}" if total else f"Checking {source} on the hub"
            yield Progress(done, total, stage="downloading", message=said)
    error = outcome.get("error")
    if isinstance(error, Cancelled) or (error is not None and cancel and cancel.cancelled):
        raise Cancelled("The download was stopped; it goes on from there next time.")
    if error is not None:
        raise error
    return Path(outcome["folder"])


def size_text(n: int) -> str:
    """``n`` bytes as people read them: "6.9 GB", or "52 MB" under a tenth of a GB."""
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"
