"""The job queue panel: one card per job with progress, step preview, time left, cancel,
and its error in words when it fails."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dedit_app.jobs import JobState, Progress
from ui.imaging import thumbnail
from ui.theme import COLORS
from ui.worker import JobQueue, JobRecord

STATE_TEXT = {
    JobState.QUEUED: "Waiting",
    JobState.RUNNING: "Running",
    JobState.CANCELLING: "Cancelling…",
    JobState.CANCELLED: "Cancelled",
    JobState.FAILED: "Failed",
    JobState.DONE: "Done",
}


# The engine's stage names, in a designer's words.
STAGE_WORDS = {
    "tokens": "Learning item prompts",
    "unet": "Tuning the model",
    "sampling": "Painting",
    "loading": "Loading",
    "compiling": "Compiling the model for this photo size (once; can take minutes)",
}


def stage_text(stage: str) -> str:
    return STAGE_WORDS.get(stage, stage)


def format_duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def time_left(record: JobRecord) -> float | None:
    """Seconds left, extrapolated from the pace of the steps counted so far (since the
    current count began: loading or downloading before it says nothing of its pace)."""
    p = record.progress
    if p is None or not p.total or record.counting is None:
        return None
    since, first, _total = record.counting
    steps, seconds = p.step - first, record.elapsed - since
    if steps <= 0 or seconds <= 0:
        return None
    return seconds * (p.total - p.step) / steps


def progress_words(p: Progress) -> list[str]:
    """What the job is doing and how far it got, e.g. ``["Tuning the model", "step 3 of
    500"]`` (a download says how much of how much in its message)."""
    if p.stage == "downloading":
        return [p.message or "Downloading the model"]
    words = [stage_text(p.stage)] if p.stage else []
    if p.total:
        words.append(f"step {p.step} of {p.total}")
    return words


class JobCard(QFrame):
    def __init__(self, record: JobRecord, queue: JobQueue) -> None:
        super().__init__()
        self.setObjectName("card")
        self.record = record
        self.queue = queue
        self.colours = None  # the photo's colour profile to the screen's (JobsPanel.colours)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 8, 8, 8)
        lay.setSpacing(10)
        self.preview = QLabel()
        self.preview.setFixedSize(56, 56)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet(f"background: {COLORS['window']}; border-radius: 6px;")
        self.preview.setVisible(False)
        lay.addWidget(self.preview)
        col = QVBoxLayout()
        col.setSpacing(4)
        top = QHBoxLayout()
        self.title = QLabel(record.request.title)
        self.title.setStyleSheet("font-weight: 600; background: transparent;")
        self.title.setWordWrap(True)
        self.state = QLabel()
        self.state.setProperty("role", "hint")
        top.addWidget(self.title, 1)
        top.addWidget(self.state)
        col.addLayout(top)
        self.bar = QProgressBar()
        self.bar.setFixedHeight(6)
        self.bar.setTextVisible(False)
        col.addWidget(self.bar)
        self.detail = QLabel()
        self.detail.setProperty("role", "hint")
        self.detail.setWordWrap(True)
        col.addWidget(self.detail)
        lay.addLayout(col, 1)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("✕")
        self.cancel_button.setToolTip("Cancel this job")
        self.cancel_button.clicked.connect(self._cancel_or_remove)
        lay.addWidget(self.cancel_button, 0, Qt.AlignmentFlag.AlignTop)
        self.refresh()

    def _cancel_or_remove(self) -> None:
        if self.record.active:
            self.queue.cancel(self.record.request.id)
        else:
            self.queue.remove(self.record.request.id)

    def refresh(self) -> None:
        r = self.record
        self.state.setText(STATE_TEXT[r.state])
        p = r.progress
        if r.state is JobState.QUEUED:
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
        elif p is not None and p.total:
            self.bar.setRange(0, p.total)
            self.bar.setValue(p.step)
        elif r.state is JobState.RUNNING:
            self.bar.setRange(0, 0)  # busy indicator
        elif r.state is JobState.DONE:
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
        self.bar.setVisible(r.active or r.state is JobState.DONE)
        if r.state is JobState.FAILED:
            self.detail.setText(r.message)
            self.detail.setStyleSheet(f"color: {COLORS['error']};")
        elif r.state in (JobState.CANCELLED, JobState.CANCELLING):
            self.detail.setText(
                "Stopping at the next step…"
                if r.state is JobState.CANCELLING
                else "Nothing was changed."
            )
            self.detail.setStyleSheet("")
        elif r.state is JobState.DONE:
            self.detail.setText(f"Finished in {format_duration(r.elapsed)}")
            self.detail.setStyleSheet("")
        elif p is not None:
            parts = progress_words(p)
            left = time_left(r)
            if left is not None:
                parts.append(f"about {format_duration(left)} left")
            if p.message and not p.stage:
                parts.append(p.message)
            self.detail.setText(" · ".join(parts))
            self.detail.setStyleSheet("")
        else:
            self.detail.setText(
                "Waiting for the jobs before it." if r.state is JobState.QUEUED else "Starting…"
            )
        if p is not None and p.preview is not None and r.active:
            ratio = self.preview.devicePixelRatioF()
            self.preview.setPixmap(thumbnail(p.preview, 56, self.colours, ratio))
            self.preview.setVisible(True)
        elif not r.active and r.state is not JobState.DONE:
            self.preview.setVisible(False)
        self.cancel_button.setToolTip("Cancel this job" if r.active else "Remove from the list")
        self.cancel_button.setEnabled(r.state is not JobState.CANCELLING)


class JobsPanel(QWidget):
    """Every job of this session, newest first."""

    def __init__(self, queue: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        # the document's colour profile to the screen's, for the previews of its jobs
        # (set with the document; None: the values as they are)
        self.colours = None
        self.cards: dict[int, JobCard] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(6)
        head = QHBoxLayout()
        self.summary = QLabel("No jobs yet")
        self.summary.setProperty("role", "hint")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setProperty("flat", True)
        self.clear_button.setEnabled(False)
        self.clear_button.clicked.connect(queue.clear_finished)
        self._listed_any = False  # "No jobs yet" only until the first one
        head.addWidget(self.summary, 1)
        head.addWidget(self.clear_button)
        lay.addLayout(head)
        self.area = QScrollArea()
        self.area.setWidgetResizable(True)
        self.area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.area.setFrameShape(QFrame.Shape.NoFrame)
        inner = QWidget()
        self.column = QVBoxLayout(inner)
        self.column.setContentsMargins(0, 0, 0, 0)
        self.column.setSpacing(6)
        self.column.addStretch(1)
        self.area.setWidget(inner)
        lay.addWidget(self.area, 1)
        queue.added.connect(self._added)
        queue.changed.connect(self._changed)
        queue.progressed.connect(self._changed)
        queue.removed.connect(self._removed)

    def _added(self, job_id: int) -> None:
        record = self.queue.jobs[job_id]
        if record.request.quiet:
            return
        card = JobCard(record, self.queue)
        card.colours = self.colours  # its previews are of the picture open now
        self.cards[job_id] = card
        self.column.insertWidget(0, card)
        self._summary()

    def _changed(self, job_id: int) -> None:
        card = self.cards.get(job_id)
        if card is not None:
            card.refresh()
            self._summary()

    def _removed(self, job_id: int) -> None:
        card = self.cards.pop(job_id, None)
        if card is not None:
            card.deleteLater()
        self._summary()

    def _summary(self) -> None:
        active = sum(1 for c in self.cards.values() if c.record.active)
        self._listed_any = self._listed_any or bool(self.cards)
        self.clear_button.setEnabled(active < len(self.cards))
        if not self.cards:
            self.summary.setText("No jobs" if self._listed_any else "No jobs yet")
        elif active:
            self.summary.setText(f"{active} running or waiting")
        else:
            self.summary.setText("All done")
