"""Opening, saving and exporting a picture at its own resolution: how long each holds the
UI thread. Ours reads and writes a large picture on the files thread (:mod:`ui.files`);
the reference does it at once on the UI thread, as the editor did before. The measure is
the longest gap between the ticks of a 5 ms timer until the work has landed.

Part of ``python scripts/bench.py ui``: 24 MP with --full, 6 MP (1.5 MP for saving and
exporting) with --quick; with --full also a save with new learned weights of SDXL's size.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import Row, grainy_photo, guarded, measure, scratch_folder, with_ratios


def _photo(folder: Path, height: int, width: int) -> Path:
    path = folder / f"photo-{width}x{height}.png"
    cv2.imwrite(str(path), grainy_photo(height, width, seed=5))
    return path


class _Bench:
    """One window, ``ours`` against ``before`` for one kind of file work."""

    def __init__(self, folder: Path) -> None:
        from benchmarks.ui import _app, _GapMeter
        from ui.testing import make_window

        _app()
        self.folder = folder
        self.window = make_window(folder / "settings")
        self.window.ask_to_save = False
        self.window.recovery.enabled = False
        self.meter = _GapMeter()

    def settle(self) -> None:
        """Wait until the work has landed; stop the item finding an opened photo starts."""
        from ui.testing import wait_until

        w = self.window
        wait_until(lambda: not w.files.busy, 600, "the files thread")
        w.jobs.cancel_all()  # the items are not what is measured here
        wait_until(lambda: not w.jobs.busy, 600, "the jobs to stop")

    def open_photo(self, height: int, width: int) -> None:
        """Open a new photo of that size at once: the document the writing rows use."""
        self._set_aside(False)
        self.window.open_path(_photo(self.folder, height, width))
        self.settle()

    def _set_aside(self, everything: bool) -> None:
        files = self.window.files
        files.aside_from = files.weights_aside_from = 0 if everything else 10**12

    def held(self, act: Callable[[], object]) -> float:
        """Longest UI-thread gap while ``act()`` runs with everything large set aside."""
        self._set_aside(True)
        self.meter.start()
        act()
        self.settle()
        return self.meter.stop()

    def took(self, act: Callable[[], object]) -> float:
        """Seconds ``act()`` holds the UI thread when done at once."""
        self._set_aside(False)
        t0 = time.perf_counter()
        act()
        took = time.perf_counter() - t0
        self.settle()
        return took

    def rows(self, case: str, act, repeats: int, note: str, warm: bool) -> list[Row]:
        """``act()`` set aside (ours) and done at once (the reference)."""
        if warm:
            self.held(act)
        held = sorted(self.held(act) for _ in range(repeats))[repeats // 2]
        before = sorted(self.took(act) for _ in range(repeats))[repeats // 2]
        return with_ratios(
            Row(case, "UI thread held, files thread (ours)", held, None, note=note),
            Row(case, "on the UI thread", before, None),
        )


def open_rows(height: int, width: int, repeats: int = 2) -> list[Row]:
    """Opening a photo (a PNG) and the project saved from it."""
    bench = _Bench(scratch_folder("dedit-bench-open-"))
    path = _photo(bench.folder, height, width)
    mp = f"{height * width / 1e6:.2g} MP"
    note = f"longest timer gap until the picture shows; {path.stat().st_size / 1e6:.0f} MB"
    opening = bench.rows(
        f"open a PNG, {mp}",
        lambda: bench.window.open_path(path),
        repeats,
        note,
        warm=True,
    )
    project = bench.folder / "photo.dedit"
    bench.window.save_project(project, wait=True)
    reopening = bench.rows(
        f"open a project, {mp}",
        lambda: bench.window.open_path(project),
        repeats,
        "longest timer gap until the project shows",
        warm=False,
    )
    bench.window.close()
    return opening + reopening


def write_rows(height: int, width: int, repeats: int = 2) -> list[Row]:
    """A project's first save (into a new folder) and a PNG export."""
    bench = _Bench(scratch_folder("dedit-bench-save-"))
    bench.open_photo(height, width)
    mp = f"{height * width / 1e6:.2g} MP"
    counter = itertools.count()

    def fresh(suffix: str) -> Path:
        return bench.folder / f"out-{next(counter)}{suffix}"

    w = bench.window
    saving = bench.rows(
        f"first save of a project, {mp}",
        lambda: w.save_project(fresh(".dedit")),
        repeats,
        "longest timer gap until saved",
        warm=False,
    )
    exporting = bench.rows(
        f"export a PNG, {mp}",
        lambda: w.export_image(fresh(".png")),
        repeats,
        "longest timer gap until written",
        warm=False,
    )
    w.close()
    return saving + exporting


def tiff_rows(height: int, width: int, repeats: int = 2) -> list[Row]:
    """A TIFF export on the files thread: OpenCV's encoder (ours) lets go of Python's lock
    while it works; Pillow's, used before, holds it for the whole encode."""
    import io

    from PIL import Image

    from dedit_app import imageio

    def pillow(image: np.ndarray) -> memoryview:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, "TIFF", compression="tiff_deflate")
        return buf.getbuffer()

    bench = _Bench(scratch_folder("dedit-bench-tiff-"))
    bench.open_photo(height, width)
    counter = itertools.count()
    w = bench.window

    def export() -> None:
        w.export_image(bench.folder / f"out-{next(counter)}.tif")

    ours = sorted(bench.held(export) for _ in range(repeats))[repeats // 2]
    real = imageio.tiff_bytes
    imageio.tiff_bytes = pillow
    try:
        before = sorted(bench.held(export) for _ in range(repeats))[repeats // 2]
    finally:
        imageio.tiff_bytes = real
    w.close()
    case = f"export a TIFF, {height * width / 1e6:.2g} MP"
    return with_ratios(
        Row(case, "UI thread held, OpenCV's encoder (ours)", ours, None,
            note="longest timer gap until written, both on the files thread"),
        Row(case, "UI thread held, Pillow's encoder", before, None),
    )  # fmt: skip


def sdxl_weights() -> dict:
    """Random tensors of the shapes preparing SDXL learns by default (every cross-attention
    to_q, to_k, to_v: 443 M values), in bfloat16: 0.83 GiB."""
    import torch

    shapes = []
    for width, blocks in ((640, 10), (1280, 60)):  # SDXL's transformer blocks per width
        shapes += [(width, width), (width, 2048), (width, 2048)] * blocks
    gen = torch.Generator().manual_seed(0)
    return {
        f"unet.{i}": torch.randn(shape, generator=gen).to(torch.bfloat16)
        for i, shape in enumerate(shapes)
    }


def weights_rows(height: int, width: int, repeats: int = 2) -> list[Row]:
    """Saving a saved project again with new learned weights of SDXL's size, as when a
    preparation finishes on a saved project."""
    bench = _Bench(scratch_folder("dedit-bench-weights-"))
    w = bench.window
    bench.open_photo(height, width)
    folder = bench.folder / "prepared.dedit"
    w.save_project(folder, wait=True)
    tensors = sdxl_weights()
    size = sum(t.numel() * t.element_size() for t in tensors.values()) / 2**30

    def save() -> None:
        w.doc.project.store_weights(tensors, {"weights_id": "bench"}, write=False)
        w.save_project(folder)

    rows = bench.rows(
        f"save with new SDXL weights ({size:.2f} GiB)",
        save,
        repeats,
        "longest timer gap until saved; the pictures were saved before",
        warm=False,
    )
    w.close()
    return rows


class _OneAfterAnother:
    """Stands in for ``imageio.ThreadPoolExecutor``: runs each task as it is submitted,
    so a 16-bit file is decoded by OpenCV and then by Pillow, one after another, as
    before they ran side by side."""

    def __init__(self, *_args, **_kwargs) -> None:
        pass

    def __enter__(self) -> _OneAfterAnother:
        return self

    def __exit__(self, *_exc) -> None:
        pass

    def submit(self, fn, *args):
        from concurrent.futures import Future

        done: Future = Future()
        done.set_result(fn(*args))
        return done


def deep_rows(height: int, width: int, repeats: int = 1) -> list[Row]:
    """Reading a 16-bit RGBA PNG (a designer's export with transparency). Ours puts it
    on white in bands of rows (``imageio._composite_on_white``), and decodes it with
    OpenCV (the 16 bits) and Pillow (the proof that it is complete) side by side. The
    reference is the same code with one band for the whole picture and the two decodes
    one after another, as it was; a row between has the bands alone. Another row keeps
    the 16-bit picture as well, as the editor opens it."""
    from dedit_app import imageio

    folder = scratch_folder("dedit-bench-deep-")
    rng = np.random.default_rng(6)
    small = rng.integers(0, 65535, (48, 64, 4), dtype=np.uint16)
    path = folder / "deep.png"
    cv2.imwrite(str(path), cv2.resize(small, (width, height)), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    banded, side_by_side = imageio._BAND_PIXELS, imageio.ThreadPoolExecutor
    ours = measure(lambda: imageio.load_image(path), repeats=repeats, warmup=0)
    first = imageio.load_image(path)
    # as the editor opens it: the 16-bit picture is kept as well, for 16-bit exports
    kept = measure(lambda: imageio.load_image(path, deep=[]), repeats=repeats, warmup=0)
    imageio.ThreadPoolExecutor = _OneAfterAnother
    try:
        bands = measure(lambda: imageio.load_image(path), repeats=repeats, warmup=0)
        imageio._BAND_PIXELS = height * width
        whole = measure(lambda: imageio.load_image(path), repeats=repeats, warmup=0)
        same = np.array_equal(first, imageio.load_image(path))
    finally:
        imageio._BAND_PIXELS, imageio.ThreadPoolExecutor = banded, side_by_side
    case = f"open a 16-bit RGBA PNG, {height * width / 1e6:.2g} MP"
    note = f"peak {ours[1]:.0f} MB vs {whole[1]:.0f} MB; {'same pixels' if same else 'DIFFERENT'}"
    rows = [
        Row(case, "in bands, decoded side by side", ours[0], ours[1], note=note),
        Row(case, "the same, 16 bits kept too (the editor)", *kept),
        Row(case, "in bands, decoded one after another", *bands),
    ]
    reference = Row(case, "whole picture, one after another (before)", whole[0], whole[1])
    for row in rows:
        with_ratios(row, reference)
    return [*rows, reference]


def deep_export_rows(height: int, width: int, repeats: int = 1) -> list[Row]:
    """Exporting a 16-bit photo with an edit as a 16-bit PNG (ours: the file's own values
    where the edit did not paint, ``imageio.deep_picture``), against the 8-bit PNG every
    export of it was before."""
    from dedit_app import imageio

    folder = scratch_folder("dedit-bench-deep-export-")
    rng = np.random.default_rng(8)
    image = grainy_photo(height, width, seed=8)
    fine = rng.integers(-128, 129, image.shape, dtype=np.int16)  # the file's finer values
    deep = np.clip(image.astype(np.int32) * 257 + fine, 0, 65535).astype(np.uint16)
    edited = image.copy()
    edited[height // 3 : height // 2, width // 3 : width // 2] //= 2  # an edit's box
    out16, out8 = folder / "deep.png", folder / "plain.png"
    ours = measure(lambda: imageio.save_image(out16, edited, deep=deep), repeats, warmup=0)
    before = measure(lambda: imageio.save_image(out8, edited), repeats, warmup=0)
    back = cv2.imread(str(out16), cv2.IMREAD_UNCHANGED)[..., ::-1]
    kept = (edited == image).all(axis=2)
    same = np.array_equal(back[kept], deep[kept]) and np.array_equal(
        imageio.eight_bits(back), edited
    )
    sizes = f"{out16.stat().st_size / 2**20:.0f} MB vs {out8.stat().st_size / 2**20:.0f} MB"
    case = f"export a 16-bit photo as PNG, {height * width / 1e6:.2g} MP"
    note = f"{sizes}; untouched pixels {'the file' + chr(39) + 's' if same else 'DIFFERENT'}"
    return with_ratios(
        Row(case, "16 bits, file's values kept", ours[0], ours[1], note=note),
        Row(case, "8 bits (before)", before[0], before[1]),
    )


def deep_project_rows(height: int, width: int, repeats: int = 1) -> list[Row]:
    """Opening a project of a 16-bit photo: ours decodes its picture, item map and 16-bit
    photo on threads of their own (``Project.load``); the reference reads them one after
    another, as it did before."""
    import json

    from dedit_app import bundle_files
    from dedit_app.project import Project

    rng = np.random.default_rng(9)
    image = grainy_photo(height, width, seed=9)
    fine = rng.integers(-128, 129, image.shape, dtype=np.int16)
    deep = np.clip(image.astype(np.int32) * 257 + fine, 0, 65535).astype(np.uint16)
    labels = np.zeros((height, width), np.int32)
    labels[:, width // 2 :] = 1
    labels[height // 2 :, : width // 3] = 2
    folder = scratch_folder("dedit-bench-deep-project-") / "deep.dedit"
    Project.new(image, labels, ["a", "b", "c"], deep=deep).save(folder)
    doc = json.loads((folder / "project.json").read_text())

    def one_after_another() -> None:
        bundle_files.read_png(folder / doc["image"], "image")
        bundle_files.read_png(folder / doc["labels"], "labels").astype(np.int32)
        bundle_files.read_deep(folder, doc["deep"])

    ours = measure(lambda: Project.load(folder), repeats, warmup=1)
    before = measure(one_after_another, repeats, warmup=0)
    same = np.array_equal(Project.load(folder).deep, deep)
    case = f"open a project of a 16-bit photo, {height * width / 1e6:.2g} MP"
    return with_ratios(
        Row(case, "files decoded side by side", ours[0], ours[1], note=f"same pixels: {same}"),
        Row(case, "one after another (before)", before[0], before[1]),
    )


def run(profile: str, size: tuple[int, int]) -> Iterator[Row]:
    """``size`` is the ``(height, width)`` the other landing rows use."""
    full = profile == "full"
    yield from guarded("open", lambda: open_rows(*size, repeats=2 if full else 1))
    small = size if full else (1000, 1500)
    yield from guarded("save", lambda: write_rows(*small, repeats=2 if full else 1))
    yield from guarded("tiff", lambda: tiff_rows(*small, repeats=2 if full else 1))
    deep = (8000, 12000) if full else (1500, 2000)  # 96 MP: the open limit is 100 MP
    yield from guarded("deep", lambda: deep_rows(*deep))
    yield from guarded("deep export", lambda: deep_export_rows(*(size if full else small)))
    yield from guarded("deep project", lambda: deep_project_rows(*(size if full else small)))
    if full:
        yield from guarded("save weights", lambda: weights_rows(*small))
