"""The shape of long-running engine work: generators that yield progress and honour cancel.

Every long engine call (fine-tuning, sampling, segmentation of a big photo) is a generator:

    def finetune(request, cancel: CancelToken) -> Generator[Progress, None, Result]

It yields :class:`Progress` at every step, calls ``cancel.raise_if_cancelled()`` at every
step, and *returns* its result (``StopIteration.value``). Callers that do not care about
progress use :func:`run_job`. The UI's worker thread drives the same generators and turns
each yield into a Qt signal, so the engine never knows about threads or Qt.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from dedit_app.errors import Cancelled

T = TypeVar("T")


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"  # asked; the worker has not confirmed yet
    CANCELLED = "cancelled"  # the worker confirmed; nothing was changed
    FAILED = "failed"
    DONE = "done"


class CancelToken:
    """Cooperative cancel flag shared between the asker (UI/CLI) and the job."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Progress:
    """One step of a job.

    ``preview`` is an optional small RGB image (h, w, 3) uint8 for the UI to show;
    ``loss`` is set by training steps, measured at step ``loss_step`` when that is given
    (a GPU's losses are read back a step late, so they trail ``step``), else at ``step``.
    """

    step: int
    total: int
    stage: str = ""
    loss: float | None = None
    preview: np.ndarray | None = None
    message: str = ""
    loss_step: int | None = None

    @property
    def loss_at(self) -> int:
        """The step ``loss`` belongs to (for a loss curve)."""
        return self.step if self.loss_step is None else self.loss_step

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


Job = Generator[Progress, None, T]


def run_job(job: Job[T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drive a job generator to completion and return its result."""
    while True:
        try:
            p = next(job)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(p)
