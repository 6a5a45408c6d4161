"""Timing, peak-memory measurement and the table every benchmark prints."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil


@dataclass
class Row:
    """One measured implementation of one case; ``ratio`` is reference time / this time."""

    case: str
    impl: str
    seconds: float | None  # median wall time; None when the case was skipped (see note)
    peak_mb: float | None  # peak extra RSS (CPU) or allocated VRAM (GPU) during the call
    ratio: float | None = None
    note: str = ""


class _RssSampler:
    """Samples this process's RSS on a thread: catches peaks inside C code numpy calls."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> _RssSampler:
        gc.collect()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def measure(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> tuple[float, float]:
    """Median seconds over ``repeats`` calls and peak extra memory (MB) of one call.

    On CUDA (when ``fn`` uses it) the peak is ``torch.cuda.max_memory_allocated``;
    otherwise the process RSS sampled during a separate, untimed call (with malloc set to
    give memory back, see :func:`_returned_heap`).
    """
    cuda = _cuda_in_use()
    device = "cuda" if cuda else "cpu"
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        with _returned_heap(), _RssSampler() as s:
            fn()
        peak = s.extra_mb
    return statistics.median(times), peak


@contextlib.contextmanager
def _returned_heap() -> Iterator[None]:
    """Make the RSS follow live memory during one call (glibc): freed heap pages go back to
    the OS first, and blocks from 128 KiB up get their own mapping, unmapped when freed.
    Without this, torch's tensors reuse pages an earlier call left in malloc's arenas and
    the RSS does not move (the peak read 0 MB). Afterwards the threshold goes to 32 MiB,
    about where glibc's own adaptive threshold settles, so later timings are unaffected."""
    libc = _libc()
    if libc is None:
        yield
        return
    libc.malloc_trim(0)
    libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - glibc only (not musl)
    except (OSError, AttributeError):
        return None
    return libc


def scratch_folder(prefix: str) -> Path:
    """A new temporary folder, removed when the benchmark's process exits (the models
    saved there are read until then)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _cuda_in_use() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def sync(device) -> None:
    """Wait for ``device``'s queued work (CUDA), so a wall-clock reading is complete."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        torch.cuda.synchronize()


def with_ratios(ours: Row, reference: Row) -> list[Row]:
    """Fill ``ours.ratio`` as reference time / our time (above 1 means we are faster)."""
    if ours.seconds and reference.seconds:
        ours.ratio = reference.seconds / ours.seconds
        reference.ratio = 1.0
    return [ours, reference]


FAILED = "failed"
# bench.py --only: run only the parts whose name contains one of these (empty: all parts)
ONLY: tuple[str, ...] = ()


def guarded(name: str, part: Callable[[], Iterable[Row]], case: str | None = None) -> Iterator[Row]:
    """The rows of ``part()`` as they come; if it fails, one ``failed`` row for ``case``
    (default ``name``) naming the error (the traceback goes to stderr), and the caller goes
    on with its next part. A first run on a new machine (the CUDA paths) then still prints
    every table that works. Parts whose ``name`` matches none of :data:`ONLY` are skipped."""
    if ONLY and not any(token in name for token in ONLY):
        return
    try:
        yield from part()
    except Exception as err:  # noqa: BLE001 - reported as a row, and bench.py exits 1
        traceback.print_exc()
        _free_cuda()
        first = (str(err).strip().splitlines() or [""])[0][:200]
        yield Row(
            case or name, f"{FAILED}: {name}", None, None, note=f"{type(err).__name__}: {first}"
        )


def _free_cuda() -> None:
    if _cuda_in_use():
        import torch

        torch.cuda.empty_cache()


def print_table(rows: Iterable[Row]) -> int:
    """Print each row as soon as it is measured; returns how many parts failed."""
    header = f"{'case':<34} {'impl':<34} {'median s':>10} {'peak MB':>10} {'ratio':>7}  note"
    print(header, flush=True)
    print("-" * len(header), flush=True)
    failed = 0
    for r in rows:
        failed += r.impl.startswith(FAILED)
        sec = f"{r.seconds:.4f}" if r.seconds is not None else "-"
        mem = f"{r.peak_mb:.1f}" if r.peak_mb is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        print(f"{r.case:<34} {r.impl:<34} {sec:>10} {mem:>10} {ratio:>7}  {r.note}", flush=True)
    return failed


def grainy_photo(height: int, width: int, seed: int = 0, grain: int = 16) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 stand-in for a photo: smooth colour regions with
    some grain, so that its PNG is about as large as a photo's."""
    import cv2

    rng = np.random.default_rng(seed)
    photo = cv2.resize(rng.integers(0, 255, (48, 72, 3), dtype=np.uint8), (width, height))
    return cv2.add(photo, rng.integers(0, grain, photo.shape, dtype=np.uint8))


def voronoi_labels(height: int, width: int, k: int, seed: int = 0) -> np.ndarray:
    """A ``(height, width)`` int32 partition into ``k`` blob-shaped items (Voronoi cells of
    random seeds, each touching others): a stand-in for a photo's items."""
    import cv2

    rng = np.random.default_rng(seed)
    small = 256
    pts = rng.uniform(0, small, (k, 2))
    yy, xx = np.mgrid[0:small, 0:small]
    d = (xx[..., None] - pts[:, 0]) ** 2 + (yy[..., None] - pts[:, 1]) ** 2
    cells = d.argmin(axis=2).astype(np.uint8)
    return cv2.resize(cells, (width, height), interpolation=cv2.INTER_NEAREST).astype(np.int32)
