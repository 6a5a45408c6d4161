"""The background worker: one thread that owns the models and runs jobs one at a time.

Jobs go in as immutable :class:`JobRequest` objects and come back as typed messages
(:class:`JobStarted`, :class:`JobProgress`, :class:`JobFinished`, :class:`JobFailed`,
:class:`JobCancelled`) through one Qt signal, queued across threads to the UI thread. The
shape follows superqt's thread worker (started / yielded / errored / finished / aborted) and
krita-ai-diffusion's job queue (one request per job, a job-state enum).

A request carries a *task*: a frozen dataclass with a ``run(context, cancel)`` method that
returns the result, or a generator in the :mod:`dedit_app.jobs` protocol (yields
``Progress``, returns the result). Only the worker thread calls ``run``, so tasks may keep
loaded models in the :class:`WorkerContext` between jobs.

Downloads of model files (``kind="download"``) run on a second worker of their own: they
take minutes and need no model, and on the first worker they would hold up finding items
and every other job behind them. Jobs whose task says it needs no model
(``task.needs_model`` False: finding items with the weights-free segmenter) run on a third,
so that the items of a photo or a reference opened during a preparation of minutes are
found at once instead of after it.

Cancelling is cooperative and acknowledged: :meth:`JobQueue.cancel` sets the job's
:class:`~dedit_app.jobs.CancelToken` and moves it to ``CANCELLING``; it is ``CANCELLED`` only
when the worker confirms (the engine raised ``Cancelled`` at a step boundary, or the job was
dropped before it started).
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

from PySide6.QtCore import QObject, QThread, Signal

from dedit_app.errors import Cancelled, DEditError, as_out_of_memory
from dedit_app.jobs import CancelToken, JobState, Progress

log = logging.getLogger(__name__)

_ids = itertools.count(1)

# Progress messages are coalesced to this rate (losses are never dropped): a tiny model can
# step a thousand times a second, and the UI needs no more than a smooth bar.
_PROGRESS_INTERVAL = 1 / 30


class Task(Protocol):
    """What a job does; implemented by frozen dataclasses in :mod:`ui.tasks`."""

    def run(self, context: WorkerContext, cancel: CancelToken) -> Any: ...


@dataclass(frozen=True)
class JobRequest:
    """One job, immutable once queued."""

    title: str  # shown in the jobs panel, e.g. "Prepare project"
    task: Any  # a Task
    kind: str = "job"  # "segment", "click", "prepare", "edit", ...: for grouping and icons
    quiet: bool = False  # quick interactive jobs (a click) are not listed in the jobs panel
    id: int = field(default_factory=lambda: next(_ids))


# ----- messages (worker thread -> UI thread) -----------------------------------------


@dataclass(frozen=True)
class JobStarted:
    job_id: int


@dataclass(frozen=True)
class JobProgress:
    job_id: int
    progress: Progress
    losses: tuple[tuple[int, float], ...] = ()  # every (step, loss) since the last message
    elapsed: float = 0.0  # seconds since the job started


@dataclass(frozen=True)
class JobFinished:
    job_id: int
    result: Any
    elapsed: float = 0.0


@dataclass(frozen=True)
class JobFailed:
    job_id: int
    message: str  # one sentence for the user
    detail: str = ""  # traceback for the log, empty for expected errors
    error: str = ""  # the DEditError's class name ("ModelLoadError"): what the UI may offer


@dataclass(frozen=True)
class JobCancelled:
    job_id: int


@dataclass(frozen=True)
class JobNotice:
    """Something the user should know that does not stop the job (a task yields
    ``Progress(stage=NOTICE, message=...)``)."""

    job_id: int
    text: str


NOTICE = "notice"

Message = JobStarted | JobProgress | JobFinished | JobFailed | JobCancelled | JobNotice


class WorkerContext:
    """State that lives on the worker thread between jobs: loaded models and caches.

    Tasks store what they load under a key of their choosing (``cache``), so a model is
    loaded once and reused while its settings stay the same.
    """

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    def get(self, key: str, make: Callable[[], Any], *, version: Any = None) -> Any:
        """The cached value for ``key`` if it was made for ``version``, else ``make()``.

        Making a new value for a key drops the old one first (so two SDXL models never
        sit in memory together).
        """
        found = self.cache.get(key)
        if found is not None and found[0] == version:
            return found[1]
        self.cache.pop(key, None)
        value = make()
        self.cache[key] = (version, value)
        return value

    def drop(self, key: str) -> None:
        self.cache.pop(key, None)


# What a user can change in Settings when a job of this kind runs out of GPU memory.
_OOM_REMEDY = {
    "prepare": "set Low memory to On in Settings > Preparing",
    "edit": "ask for fewer results per edit in Settings > Editing",
}


def user_message(err: BaseException, title: str, kind: str = "job") -> tuple[str, str]:
    """The sentence a user sees for an exception, and the detail for the log."""
    if isinstance(err, DEditError):
        return str(err), ""
    detail = "".join(traceback.format_exception(err))
    name = type(err).__name__
    remedy = _OOM_REMEDY.get(kind, "choose the CPU in Settings > Model")
    oom = as_out_of_memory(err, title, remedy)
    if oom is not None:
        return str(oom), detail
    return (
        f"{title} stopped because of an internal error ({name}: {err}). "
        "Nothing was changed; the details are in the log.",
        detail,
    )


class Worker(QThread):
    """The thread that runs jobs one at a time. Talk to it through :class:`JobQueue`."""

    message = Signal(object)  # one of the Message types

    def __init__(self, parent: QObject | None = None, name: str = "dedit-worker") -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self._queue: queue.Queue[tuple[JobRequest, CancelToken] | None] = queue.Queue()
        self.context = WorkerContext()

    def submit(self, request: JobRequest, cancel: CancelToken) -> None:
        self._queue.put((request, cancel))

    def stop(self) -> None:
        """Ask the thread to finish after the current job and wait for it.

        Waits as long as it takes: a cancelled job stops at its next step, but loading a
        model cannot be interrupted, and destroying a running QThread aborts the process.
        """
        self._queue.put(None)
        self.wait()

    def run(self) -> None:  # the worker thread
        while True:
            entry = self._queue.get()
            if entry is None:
                break
            request, cancel = entry
            if cancel.cancelled:
                self.message.emit(JobCancelled(request.id))
                continue
            self._run_one(request, cancel)
        self.context.cache.clear()

    def _run_one(self, request: JobRequest, cancel: CancelToken) -> None:
        job_id = request.id
        self.message.emit(JobStarted(job_id))
        t0 = time.monotonic()
        try:
            outcome = request.task.run(self.context, cancel)
            if isinstance(outcome, Generator):
                outcome = self._drive(job_id, outcome, cancel, t0)
            cancel.raise_if_cancelled()
        except Cancelled:
            self.message.emit(JobCancelled(job_id))
            return
        except BaseException as err:  # every failure ends as a sentence in the window
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            if cancel.cancelled:  # a job torn down by its cancel counts as cancelled
                self.message.emit(JobCancelled(job_id))
                return
            text, detail = user_message(err, request.title, request.kind)
            if detail:
                log.error("job %r failed:\n%s", request.title, detail)
            error = type(err).__name__ if isinstance(err, DEditError) else ""
            self.message.emit(JobFailed(job_id, text, detail, error))
            return
        self.message.emit(JobFinished(job_id, outcome, time.monotonic() - t0))

    def _drive(self, job_id: int, job: Generator, cancel: CancelToken, t0: float) -> Any:
        losses: list[tuple[int, float]] = []
        last_emit = 0.0
        pending: Progress | None = None
        shown_stage: str | None = None
        while True:
            try:
                p = next(job)
            except StopIteration as stop:
                if pending is not None:
                    self._emit_progress(job_id, pending, losses, t0)
                return stop.value
            if cancel.cancelled:
                job.close()  # runs the generator's cleanup; the engine saw no more steps
                raise Cancelled()
            if not isinstance(p, Progress):
                continue
            if p.stage == NOTICE:
                self.message.emit(JobNotice(job_id, p.message))
                continue
            if p.loss is not None:
                losses.append((p.loss_at, float(p.loss)))
            now = time.monotonic()
            last = p.total and p.step >= p.total
            # A new stage always shows: the step after it may be a long wait (a compile).
            new_stage = p.stage != shown_stage
            if p.preview is not None or last or new_stage or now - last_emit >= _PROGRESS_INTERVAL:
                self._emit_progress(job_id, p, losses, t0)
                losses = []
                pending = None
                last_emit = now
                shown_stage = p.stage
            else:
                pending = p

    def _emit_progress(
        self, job_id: int, p: Progress, losses: list[tuple[int, float]], t0: float
    ) -> None:
        self.message.emit(JobProgress(job_id, p, tuple(losses), time.monotonic() - t0))


@dataclass
class JobRecord:
    """What the UI knows about one job."""

    request: JobRequest
    cancel: CancelToken
    state: JobState = JobState.QUEUED
    progress: Progress | None = None
    message: str = ""  # the error sentence when FAILED
    error: str = ""  # and the engine error's class name (JobFailed.error)
    elapsed: float = 0.0
    started_at: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    # (elapsed, step, total) when the steps of the current count began: a download in
    # megabytes, then training steps; each one's pace says its own time left.
    counting: tuple[float, int, int] | None = None
    result: Any = None
    callbacks: dict[str, Callable[..., None]] = field(default_factory=dict)
    retired: bool = False  # taken off the list once it ends: its picture was closed
    lane: str = ""  # the worker it runs on (its thread's name): jobs of one lane queue

    @property
    def active(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING, JobState.CANCELLING)


class JobQueue(QObject):
    """The UI-thread side: submits requests, tracks every job's state, re-emits messages.

    Per-job callbacks (``on_finished(result)``, ``on_failed(message)``, ``on_cancelled()``,
    ``on_progress(record)``) run on the UI thread; the signals below serve panels.
    """

    added = Signal(int)
    changed = Signal(int)  # state, progress or message of a job changed
    started = Signal(int)
    progressed = Signal(int)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    removed = Signal(int)
    noticed = Signal(int, str)  # a job's notice for the user; the job goes on

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs: dict[int, JobRecord] = {}
        self.worker = Worker()
        self.downloads = Worker(name="dedit-downloads")  # kind "download": no model needed
        self.modelless = Worker(name="dedit-items")  # tasks with needs_model False
        for worker in self._workers:
            worker.message.connect(self._on_message)
            worker.start()

    @property
    def _workers(self) -> tuple[Worker, ...]:
        return (self.worker, self.downloads, self.modelless)

    def _worker_for(self, request: JobRequest) -> Worker:
        if request.kind == "download":
            return self.downloads
        if not getattr(request.task, "needs_model", True):
            return self.modelless
        return self.worker

    # ----- asking -----------------------------------------------------------------------

    def submit(
        self,
        request: JobRequest,
        *,
        on_finished: Callable[[Any], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_progress: Callable[[JobRecord], None] | None = None,
    ) -> JobRecord:
        record = JobRecord(request, CancelToken())
        for name, cb in (
            ("finished", on_finished),
            ("failed", on_failed),
            ("cancelled", on_cancelled),
            ("progress", on_progress),
        ):
            if cb is not None:
                record.callbacks[name] = cb
        self.jobs[request.id] = record
        self.added.emit(request.id)
        worker = self._worker_for(request)
        record.lane = worker.objectName()
        worker.submit(request, record.cancel)
        return record

    def cancel(self, job_id: int) -> None:
        """Ask a job to stop; it is CANCELLED once the worker confirms."""
        record = self.jobs.get(job_id)
        if record is None or not record.active or record.state is JobState.CANCELLING:
            return
        record.cancel.cancel()
        record.state = JobState.CANCELLING
        self.changed.emit(job_id)

    def retire(self, job_id: int) -> None:
        """Stop a job whose picture was closed and take it off the list once it has ended
        (at once when it already has): nobody will look at it again."""
        record = self.jobs.get(job_id)
        if record is None:
            return
        record.retired = True
        if record.active:
            self.cancel(job_id)
        else:
            self.remove(job_id)

    def cancel_all(self, kind: str | None = None) -> None:
        for job_id, record in list(self.jobs.items()):
            if kind is None or record.request.kind == kind:
                self.cancel(job_id)

    def remove(self, job_id: int) -> None:
        """Forget a finished job (the jobs panel's clear button)."""
        record = self.jobs.get(job_id)
        if record is not None and not record.active:
            del self.jobs[job_id]
            self.removed.emit(job_id)

    def clear_finished(self) -> None:
        for job_id in [j for j, r in self.jobs.items() if not r.active]:
            self.remove(job_id)

    def active(self, kind: str | None = None) -> list[JobRecord]:
        return [
            r for r in self.jobs.values() if r.active and (kind is None or r.request.kind == kind)
        ]

    def ahead(self, job_id: int) -> JobRecord | None:
        """The job that queued job ``job_id`` waits behind (the first active one asked for
        before it on its worker), None when it is not waiting: a sentence can say what it
        waits for rather than leave "Finding items…" on show for the minutes of a
        preparation."""
        record = self.jobs.get(job_id)
        if record is None or record.state is not JobState.QUEUED:
            return None
        for other_id, other in self.jobs.items():  # in the order they were asked for
            if other_id == job_id:
                return None
            if other.active and other.lane == record.lane:
                return other
        return None

    @property
    def busy(self) -> bool:
        return any(r.active for r in self.jobs.values())

    def shutdown(self) -> None:
        """Cancel everything and stop the thread (window closing); idempotent."""
        running = [w for w in self._workers if w.isRunning()]
        if not running:
            return
        for record in self.jobs.values():
            record.cancel.cancel()
        for worker in running:
            worker.stop()

    # ----- hearing ------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        record = self.jobs.get(msg.job_id)
        if record is None:
            return
        if isinstance(msg, JobStarted):
            if record.state is not JobState.CANCELLING:
                record.state = JobState.RUNNING
            record.started_at = time.monotonic()
            self.started.emit(msg.job_id)
        elif isinstance(msg, JobProgress):
            p = record.progress = msg.progress
            record.losses.extend(msg.losses)
            record.elapsed = msg.elapsed
            if p.total and (record.counting is None or record.counting[2] != p.total):
                record.counting = (msg.elapsed, p.step, p.total)
            self._call(record, "progress", record)
            self.progressed.emit(msg.job_id)
        elif isinstance(msg, JobFinished):
            record.state = JobState.DONE
            record.elapsed = msg.elapsed
            self._call(record, "finished", msg.result)
            record.result = None  # results can be large; the callback took what it needs
            self.finished.emit(msg.job_id, msg.result)
        elif isinstance(msg, JobFailed):
            record.state = JobState.FAILED
            record.message = msg.message
            record.error = msg.error
            self._call(record, "failed", msg.message)
            self.failed.emit(msg.job_id, msg.message)
        elif isinstance(msg, JobNotice):
            self.noticed.emit(msg.job_id, msg.text)
            return
        elif isinstance(msg, JobCancelled):
            record.state = JobState.CANCELLED
            record.message = "Cancelled; nothing was changed."
            self._call(record, "cancelled")
            self.cancelled.emit(msg.job_id)
        self.changed.emit(msg.job_id)
        if record.retired and not record.active:
            self.remove(msg.job_id)

    def _call(self, record: JobRecord, name: str, *args: Any) -> None:
        cb = record.callbacks.get(name)
        if cb is None:
            return
        try:
            cb(*args)
        except Exception as err:
            # A result that cannot be applied is the job's failure, told in words; a bug or
            # a full disk while taking it in too, so the panels never go on saying "Done"
            # or "Preparing…" over a result that was dropped.
            message = str(err)
            if not isinstance(err, DEditError):
                log.exception("Taking in what %r sent failed", record.request.title)
                message = (
                    f"{record.request.title} finished, but its result could not be taken in "
                    f"({type(err).__name__}: {err}); the details are in the log."
                )
            record.state = JobState.FAILED
            record.message = message
            if name != "failed" and "failed" in record.callbacks:
                record.callbacks["failed"](message)
            self.failed.emit(record.request.id, message)
