"""Downloading a model before the first Prepare needs it, from Settings ▸ Model: a job of
kind "download", which runs on a worker of its own (:mod:`ui.worker`), so finding items,
preparing another photo and editing go on meanwhile. The Jobs panel shows how far it got
and stops it; a stopped download goes on from there next time (the hub keeps its files).
A Prepare of the same model meanwhile waits for it rather than fetching the same files.
"""

from __future__ import annotations

import threading
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
        self._ended: dict[str, threading.Event] = {}  # set once that job has ended

    def waiting_for(self, source: str) -> threading.Event | None:
        """What a Prepare of ``source`` waits for: the end of its download under way, or
        None when none is (it then downloads what is missing itself)."""
        record = self.w.jobs.jobs.get(self._jobs.get(source, 0))
        return self._ended.get(source) if record is not None and record.active else None

    def start(self, model: str, device: str, precision: str) -> str:
        """Start downloading ``model`` (a hub id as typed in Settings; "" is the default)
        in the weights ``device`` and ``precision`` read, unless it is downloading
        already; returns the sentence Settings shows in its place."""
        from ui import engine

        why = engine.unavailable()
        if why:
            return why
        spec = engine.ModelSpec(model.strip() or DEFAULT_MODEL, device, precision)
        if self.waiting_for(spec.source) is not None:
            return "Downloading already: the Jobs panel shows how far it got."
        source = spec.source
        ended = self._ended[source] = threading.Event()

        def done(folder) -> None:
            ended.set()
            if folder is not None:
                self.w.show_info(f"{source} is downloaded: Prepare no longer waits for it.", "ok")

        def failed(message: str) -> None:
            ended.set()
            record = self.w.jobs.jobs.get(job_id)
            if record is not None and record.error == "ModelLoadError":
                self.w.show_error(message, action=self.w.settings_action("Model"))
            else:
                self.w.show_error(message)

        def cancelled() -> None:
            ended.set()
            self.w.show_info(
                f"The download of {source} was stopped; what came so far is kept, and the "
                "next download or Prepare goes on from there."
            )

        record = self.w.jobs.submit(
            JobRequest("Download the model", engine.DownloadTask(spec), kind="download"),
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
