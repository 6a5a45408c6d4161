"""Downloading a model before the first Prepare needs it, from Settings ▸ Model: a job of
kind "download", which runs on a worker of its own (:mod:`ui.worker`), so finding items,
preparing another photo and editing go on meanwhile. The Jobs panel shows how far it got
and stops it; a stopped download goes on from there next time (the hub keeps its files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ui.settings import DEFAULT_MODEL
from ui.worker import JobRequest

if TYPE_CHECKING:
    from ui.mainwindow import MainWindow


class ModelDownloads:
    """The window's model downloads, at most one per model."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self._jobs: dict[str, int] = {}  # model source -> its download job

    def start(self, model: str, device: str, precision: str) -> str:
        """Start downloading ``model`` (a hub id as typed in Settings; "" is the default)
        in the weights ``device`` and ``precision`` read, unless it is downloading
        already; returns the sentence Settings shows in its place."""
        from ui import engine

        why = engine.unavailable()
        if why:
            return why
        spec = engine.ModelSpec(model.strip() or DEFAULT_MODEL, device, precision)
        running = self.w.jobs.jobs.get(self._jobs.get(spec.source, 0))
        if running is not None and running.active:
            return "Downloading already: the Jobs panel shows how far it got."
        source = spec.source

        def done(folder) -> None:
            if folder is not None:
                self.w.show_info(f"{source} is downloaded: Prepare no longer waits for it.", "ok")

        def failed(message: str) -> None:
            record = self.w.jobs.jobs.get(job_id)
            if record is not None and record.error == "ModelLoadError":
                self.w.show_error(message, action=self.w.settings_action("Model"))
            else:
                self.w.show_error(message)

        def cancelled() -> None:
            self.w.show_info(
                f"The download of {source} was stopped; what came so far is kept, and the "
                "next download or Prepare goes on from there."
            )

        record = self.w.jobs.submit(
            JobRequest(f"Download {source}", engine.DownloadTask(spec), kind="download"),
            on_finished=done,
            on_failed=failed,
            on_cancelled=cancelled,
        )
        job_id = record.request.id
        self._jobs[source] = job_id
        return (
            "Downloading in the background: the Jobs panel shows how far it got, and you can "
            "go on working meanwhile."
        )
