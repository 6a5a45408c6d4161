"""Render the editor in its main states to PNG files (offscreen; no display needed).

    python scripts/screenshots.py [--out docs/screenshots] [--photo PATH] [--reference PATH]

States: just opened (items found), item selected, job running with progress, candidates
shown, reference panel open, and the start page after the picture is closed. The D-Edit
authors' example is used when it is beside the repository
(../shared/reference/dedit-example1), else a synthetic scene. With the engine
installed and a tiny model available, preparing and editing are real (tiny random model:
the pictures it paints are noise-like, but the editor's states are the real ones);
otherwise the job and the results are stand-ins made with the instant preview.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see ui/app.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

EXAMPLE = ROOT.parent / "shared" / "reference" / "dedit-example1"


def _grab(window, path: Path) -> None:
    from PySide6.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    window.grab().save(str(path))
    print(f"wrote {path}")


def _pick_item(doc, prefer: str = "blue") -> int:
    """A mid-sized item, preferring one whose name contains ``prefer`` (the handbag)."""
    counts = doc.counts
    total = counts.sum()
    named = [k for k in doc.visible_items() if prefer in doc.items[k].name]
    if named:
        return max(named, key=lambda k: counts[k])
    mid = [k for k in doc.visible_items() if 0.03 * total < counts[k] < 0.4 * total]
    return mid[0] if mid else int(np.argmax(counts))


class _SlowSteps:
    """A stand-in job with a loss curve and step previews (when the engine is absent)."""

    def __init__(self, image: np.ndarray, steps: int = 400) -> None:
        self.image, self.steps = image, steps

    def run(self, ctx, cancel):
        from dedit_app.jobs import Progress

        small = self.image[::16, ::16]
        rng = np.random.default_rng(0)
        for i in range(self.steps):
            cancel.raise_if_cancelled()
            time.sleep(0.02)
            loss = 0.25 * np.exp(-i / 120) + 0.04 + 0.02 * rng.random()
            yield Progress(
                i + 1,
                self.steps,
                stage="Learning item prompts",
                loss=loss,
                preview=small if i % 10 == 0 else None,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--photo", type=Path, default=EXAMPLE / "image.png")
    parser.add_argument("--reference", type=Path, default=EXAMPLE / "reference_image.png")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from ui import engine
    from ui.testing import inner_pixel, make_window, wait_idle, write_synthetic_photo
    from ui.worker import JobRequest

    tmp = Path(tempfile.mkdtemp(prefix="dedit-shots-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # the window's settings, models
    photo, reference = args.photo, args.reference
    if not photo.is_file():
        photo = tmp / "scene.png"
        write_synthetic_photo(photo, 600, 800)
    if not reference.is_file():
        reference = tmp / "reference.png"
        write_synthetic_photo(reference, 480, 640)

    window = make_window(tmp, size=(1440, 900))
    real = not engine.unavailable() and engine.tiny_model_available()
    if real:
        engine.use_tiny_model(window, tmp)
    window.open_path(photo)
    wait_idle(window)
    _grab(window, args.out / "01-opened.png")

    doc = window.doc
    item = _pick_item(doc)
    x, y = inner_pixel(doc.labels, item)
    from ui.testing import click

    click(window.canvas, x, y)
    doc.set_hover(None)
    window.items_panel.prompt_edit.setText("a white handbag")
    _grab(window, args.out / "02-item-selected.png")

    # A job running with progress.
    if real:
        window.editing.prepare()
    else:
        window.jobs.submit(
            JobRequest("Prepare project", _SlowSteps(doc.image), kind="prepare"),
            on_progress=lambda rec: window.prepare_panel.show_running(rec),
        )
        window.editing.prepare_job = max(window.jobs.jobs)
    from ui.testing import wait_until

    wait_until(
        lambda: any(
            r.progress is not None and r.progress.total and r.progress.step > 0.3 * r.progress.total
            for r in window.jobs.jobs.values()
            if r.active
        ),
        600,
        "progress",
    )
    _grab(window, args.out / "03-job-running.png")
    if real:
        wait_idle(window, 900)
    else:
        window.jobs.cancel_all()
        wait_idle(window)
        window.editing.prepare_job = None
        window.editing.update_state()

    # Candidates.
    if real:
        window.editing.text_edit(item, "a white handbag")
        wait_idle(window, 900)
    else:
        from dedit_app.partition import Move
        from ui.editing import Candidates, PendingEdit
        from ui.preview import move_preview

        imgs = []
        for k, (dx, s) in enumerate(((60, 0.8), (-40, 1.0), (20, 0.6))):
            img, lab = move_preview(doc.image, doc.labels, [Move(item, dx, 30 * k, s)])
            imgs.append(img)
        pending = PendingEdit(
            doc,
            doc.state(),
            "move",
            f"Move {doc.item_name(item)}",
            item,
            {"kind": "move", "item": item},
            labels=lab,
        )
        cmd = doc.apply_result(imgs[0], lab, pending.entry, pending.title)
        window.editing.candidates = Candidates(imgs, pending, cmd)
        window.candidates.set_candidates(imgs, pending.title)
    window.candidates.slider.setValue(45)
    _grab(window, args.out / "04-candidates.png")
    window.candidates.slider.setValue(100)

    # Activity ▸ Edits: the edit kept with the project, and the way back to before it.
    window.editing.close_candidates()
    window.activity.setCurrentWidget(window.edits_panel)
    window.edits_panel.list.setCurrentRow(0)
    _grab(window, args.out / "07-edits.png")
    window.activity.setCurrentWidget(window.jobs_panel)

    # Reference panel.
    window.reference_photo.open(reference)
    wait_idle(window)
    _grab(window, args.out / "05-reference-panel.png")

    # Back to the start page (File ▸ Close picture): the photo and the project saved from
    # it are now recent files, each with a thumbnail.
    window.reference_photo.close()
    window.save_project(tmp / f"{photo.stem} edited.dedit", wait=True)
    window.close_picture()
    wait_idle(window)
    _grab(window, args.out / "06-start-page.png")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
