"""A fresh editor's first Prepare and first edit: how long the UI thread is held.

Preparing and editing check their request on the UI thread before queuing it, and the
engine modules that check it import torch and diffusers: seconds on a 2-core machine, paid
by whoever uses them first. Ours loads them ahead on a thread of its own when a photo opens
(``ui.engine.load_ahead``) and reads a prepared project's metadata without torch; the
reference is the editor as it was: nothing loaded ahead, and opening a prepared project
imported the fine-tuning module to read its weights' metadata.

Each measure needs a process that has not imported torch yet, so each runs in one of its
own (:func:`main`). The user is taken to press Prepare, or Enter on a new
prompt, once the engine has loaded (half a second after; sooner, the click waits for the
rest). The price of loading ahead is a stall while it runs; it is reported too.

Part of ``python scripts/bench.py ui`` (both profiles: it measures startup costs, not size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import Row, guarded, scratch_folder, with_ratios

_ROOT = Path(__file__).resolve().parents[2]


def _settle(
    seconds_after: float = 0.5,
    longest: float = 60.0,
    at_least: float = 0.0,
    wait_for_engine: bool = True,
) -> tuple[float, float]:
    """Idle in the event loop until the engine has loaded ahead (or ``longest`` s; at once
    without ``wait_for_engine``), then ``seconds_after`` more, and ``at_least`` in all;
    -> (seconds waited, longest gap between 5 ms timer ticks)."""
    from PySide6.QtCore import QEventLoop, QTimer

    from ui import engine

    t0 = time.perf_counter()
    ticks = {"last": t0, "worst": 0.0}

    def tick() -> None:
        now = time.perf_counter()
        ticks["worst"] = max(ticks["worst"], now - ticks["last"])
        ticks["last"] = now

    meter = QTimer()
    meter.setInterval(5)
    meter.timeout.connect(tick)
    meter.start()
    loop = QEventLoop()
    end = {"at": None}

    def poll() -> None:
        loading = engine._loading
        now = time.perf_counter()
        loaded = not wait_for_engine or loading is None or not loading.is_alive()
        if end["at"] is None and (loaded or now - t0 > longest):
            end["at"] = now + seconds_after
        if end["at"] is not None and now >= max(end["at"], t0 + at_least):
            loop.quit()

    poller = QTimer()
    poller.setInterval(20)
    poller.timeout.connect(poll)
    poller.start()
    loop.exec()
    meter.stop()
    poller.stop()
    return time.perf_counter() - t0, ticks["worst"]


def _probe(scenario: str, variant: str, path: str, model: str, folder: str) -> dict:
    """In a fresh process: open ``path``, wait, then Prepare (``scenario`` "prepare") or
    retype item 1 ("edit"); -> the UI thread's hold of each step, in seconds."""
    import dataclasses

    from ui import engine
    from ui.testing import make_window

    if variant == "reference":
        from dedit_app.project import weights_metadata

        def through_finetune(project):
            import dedit_app.finetune  # noqa: F401 - where the metadata was read before

            return weights_metadata(project)

        engine.load_ahead = lambda: None
        engine._metadata = through_finetune
    w = make_window(Path(folder))
    w.apply_settings(
        dataclasses.replace(
            w.settings, model=model, device="cpu", precision="float32", candidates=1, steps=2
        )
    )
    engine.load_ahead()  # as ui.app.main does once the window shows
    _choosing, start_stall = _settle(at_least=1.5, wait_for_engine=False)
    t0 = time.perf_counter()
    if not w.open_path(Path(path)):
        raise RuntimeError(w.message_text())
    opened = time.perf_counter() - t0
    waited, stall = _settle()
    t0 = time.perf_counter()
    if scenario == "prepare":
        w.editing.prepare()
    else:
        w.editing.text_edit(1, "a red ball")
    first = time.perf_counter() - t0
    queued = bool(w.jobs.active(scenario if scenario == "prepare" else "edit"))
    return {
        "start_stall": start_stall,
        "open": opened,
        "waited": waited + _choosing,
        "stall": stall,
        "first": first,
        "queued": queued,
    }


def _run_probe(scenario: str, variant: str, path: Path, model: Path, folder: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT / "scripts"), str(_ROOT)])
    # -c, not this file as a script: its folder first on the path would shadow ui/.
    code = "import sys; from benchmarks.ui_cold import main; main(sys.argv[1:])"
    args = [sys.executable, "-c", code, scenario, variant, str(path), str(model), str(folder)]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, cwd=_ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"the {variant} probe failed: {out.stderr.strip()[-600:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _inputs(folder: Path) -> tuple[Path, Path, Path]:
    """(tiny model, a prepared project, a photo) under ``folder``."""
    from dedit_app.jobs import CancelToken, run_job
    from dedit_app.project import Project
    from ui import engine
    from ui.settings import EditorSettings
    from ui.testing import synthetic_scene, write_synthetic_photo
    from ui.worker import WorkerContext

    model = engine.make_tiny_model(folder)
    image, labels = synthetic_scene()
    project = Project.new(image, labels, [f"item {k}" for k in range(int(labels.max()) + 1)])
    settings = EditorSettings(
        model=str(model), device="cpu", precision="float32", emb_steps=1, model_steps=1
    )
    task = engine.prepare_task(project, settings)
    engine.store_prepared(project, run_job(task.run(WorkerContext(), CancelToken())))
    project.save(folder / "prepared.dedit")
    photo = folder / "scene.png"
    write_synthetic_photo(photo)
    return model, folder / "prepared.dedit", photo


def cold_rows() -> list[Row]:
    from ui import engine

    if not engine.tiny_model_available():
        return [Row("fresh editor", "skipped", None, None, note="no D-Edit engine installed")]
    folder = scratch_folder("dedit-bench-cold-")
    model, prepared, photo = _inputs(folder)
    rows: list[Row] = []
    for scenario, path, what, action in (
        ("edit", prepared, "prepared project", "first edit"),
        ("prepare", photo, "new photo", "first Prepare"),
    ):
        got = {
            variant: _run_probe(scenario, variant, path, model, folder / f"{scenario}-{variant}")
            for variant in ("ours", "reference")
        }
        ours, ref = got["ours"], got["reference"]
        case = f"fresh editor, {what}:"
        queued = "queued" if ours["queued"] and ref["queued"] else "NOT QUEUED"
        rows += with_ratios(
            Row(f"{case} open", "ours", ours["open"], None),
            Row(f"{case} open", "nothing loaded ahead", ref["open"], None),
        )
        rows += with_ratios(
            Row(
                f"{case} {action}",
                "ours",
                ours["first"],
                None,
                note=f"{queued}; asked {ours['waited']:.1f} s after the window showed",
            ),
            Row(f"{case} {action}", "nothing loaded ahead", ref["first"], None),
        )
        rows.append(
            Row(
                f"{case} longest UI gap, start page",
                "ours",
                ours["start_stall"],
                None,
                note=f"the engine loading ahead; without: {ref['start_stall']:.3f} s",
            )
        )
        rows.append(
            Row(
                f"{case} longest UI gap, photo open",
                "ours",
                ours["stall"],
                None,
                note=f"until the {action}; without: {ref['stall']:.3f} s",
            )
        )
    return rows


def run(profile: str) -> Iterator[Row]:
    yield from guarded("cold", cold_rows)


def main(argv: list[str]) -> None:
    """The probe's process: one JSON line on stdout."""
    print(json.dumps(_probe(*argv)), flush=True)
    os._exit(0)  # the window's worker thread need not be joined
