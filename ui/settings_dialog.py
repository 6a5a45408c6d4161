"""The Settings dialog: it edits a copy of :class:`ui.settings.EditorSettings`, page by
page (Model, Segmentation, Editing, Preparing), and says as the fields change whether the
model, the device and the segmentation backend can work with what is typed there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui.settings import (
    DEFAULT_MODEL,
    LOW_MEMORY_CHOICES,
    LOW_MEMORY_HINT,
    EditorSettings,
)
from ui.side_thread import SideThread

if TYPE_CHECKING:
    from ui.engine import Said


def backend_names() -> list[tuple[str, str]]:
    """``(name, title)`` of every segmentation backend."""
    try:
        from dedit_app.segment import list_backends

        return [(b.name, b.title) for b in list_backends()] or [
            ("classical", "Colour and edges (no download)")
        ]
    except Exception:  # the registry is optional for the dialog
        return [("classical", "Colour and edges (no download)")]


def segmenter_readiness(name: str, sam_checkpoint: str, grounding: str, device: str) -> str:
    """Why backend ``name`` cannot load with these fields of the Segmentation page, or ""
    when its package and weights are on this machine. Quick: it loads and imports nothing."""
    from dedit_app.segment import backend_status
    from ui.tasks import segmenter_options

    return backend_status(name, **segmenter_options(name, sam_checkpoint, grounding, device))


class _PathField(QWidget):
    def __init__(self, text: str, placeholder: str, folder: bool, parent=None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit(text)
        self.edit.setPlaceholderText(placeholder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        lay.addWidget(self.edit, 1)
        lay.addWidget(browse)
        self.folder = folder

    def _browse(self) -> None:
        if self.folder:
            path = QFileDialog.getExistingDirectory(self, "Choose a model folder")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a checkpoint")
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()


class SettingsDialog(QDialog):
    """Edits a copy of the settings; :meth:`result_settings` returns it after OK."""

    def __init__(
        self,
        settings: EditorSettings,
        parent: QWidget | None = None,
        tab: str = "",
        side: SideThread | None = None,
        download: Callable[[str, str, str], str] | None = None,
    ) -> None:
        """``tab``: the title of the page to open on ("Segmentation"); "" opens the first.
        ``side``: the thread that finds where the model is and runs (the window's);
        without one the Model page does not say. ``download(model, device, precision)``
        starts downloading a hub model not downloaded yet and returns what to say
        instead (:meth:`ui.downloads.ModelDownloads.start`); without it there is no
        Download now button."""
        super().__init__(parent)
        self._side = side
        self._download = download
        self._asking: dict[QLabel, int] = {}  # the side thread's tickets, by line being found
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self._settings = dataclasses.replace(settings)
        tabs = QTabWidget()

        model, form = _page()
        self.model = _PathField("", DEFAULT_MODEL, folder=True)
        form.addRow("Model", self.model)
        form.addRow("", _hint("A Hugging Face id (downloaded once) or a local diffusers folder."))
        # Whether it is here, found off the UI thread (the disk and the hub's cache): the
        # way to mend a model that cannot load is to watch this line turn ready as it is typed
        self.source_state = _hint("")
        self.source_state.setVisible(side is not None)
        form.addRow("", self.source_state)
        self.download_now = QPushButton("Download now")
        self.download_now.setToolTip(
            "Download the model's files now, while you work, so Prepare does not wait for them"
        )
        self.download_now.clicked.connect(self._download_now)
        self._download_row = _button_row(self.download_now)  # for a hub model not downloaded
        form.addRow("", self._download_row)
        self.device = _combo(["auto", "cuda", "mps", "cpu"])
        form.addRow("Device", self.device)
        self.precision = _combo(["auto", "bfloat16", "float16", "float32"])
        form.addRow("Precision", self.precision)
        # Where that is, found off the UI thread: asking torch starts CUDA, a second or more.
        self.placement = _hint("")
        self.placement.setVisible(side is not None)
        form.addRow("", self.placement)
        # when the GPU is too small for the model, the one to choose instead, in a click
        self.use_instead = QPushButton("")
        self.use_instead.clicked.connect(self._use_instead)
        self._instead_row = _button_row(self.use_instead)
        form.addRow("", self._instead_row)
        self.compile = _switch(
            form,
            "Compile the model",
            "NVIDIA GPUs only. Prepare waits once per photo size while the model compiles "
            "(a photo prepared earlier waits at its first edit instead); edits after that "
            "are faster.",
        )
        tabs.addTab(model, "Model")

        seg, form = _page()
        self.segmenter = QComboBox()
        for name, title in backend_names():
            self.segmenter.addItem(title, name)
        form.addRow("Backend", self.segmenter)
        self.sam = _PathField("", "sam_vit_h_4b8939.pth", folder=False)
        form.addRow("SAM checkpoint", self.sam)
        self.grounding = _PathField("", "IDEA-Research/grounding-dino-tiny", folder=True)
        form.addRow("Grounding DINO", self.grounding)
        # Whether the chosen backend can load with what is typed here, before OK: the way to
        # mend a backend that could not load is to watch this line turn ready.
        self.segmenter_state = _hint("")
        form.addRow("", self.segmenter_state)
        self.segmenter.currentIndexChanged.connect(self._show_segmenter_state)
        self.sam.edit.textChanged.connect(self._show_segmenter_state)
        self.grounding.edit.textChanged.connect(self._show_segmenter_state)
        self.device.currentIndexChanged.connect(self._show_segmenter_state)  # on Model
        tabs.addTab(seg, "Segmentation")

        edit, form = _page()
        self.steps = _spin(1, 200)
        form.addRow("Steps", self.steps)
        self.guidance = _dspin(0.0, 30.0, 0.5)
        form.addRow("Guidance", self.guidance)
        self.strength = _dspin(0.0, 1.0, 0.05)
        form.addRow("Strength", self.strength)
        self.edge = _spin(0, 512, " px")
        form.addRow("Soft edge", self.edge)
        self.candidates = _spin(1, 8)
        form.addRow("Candidates", self.candidates)
        self.seed = _spin(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        form.addRow("Seed", self.seed)
        tabs.addTab(edit, "Editing")

        prep, form = _page()
        self.emb_steps = _spin(0, 100000)
        form.addRow("Token steps", self.emb_steps)
        self.model_steps = _spin(0, 100000)
        form.addRow("Model steps", self.model_steps)
        self.lora_rank = _spin(0, 256)
        self.lora_rank.setSpecialValueText("off (train attention)")
        form.addRow("LoRA rank", self.lora_rank)
        form.addRow("", _hint("Changing these makes the next Prepare train again."))
        self.low_memory = QComboBox()
        for value, title in LOW_MEMORY_CHOICES.items():
            self.low_memory.addItem(title, value)
        form.addRow("Low memory", self.low_memory)
        form.addRow("", _hint(LOW_MEMORY_HINT))
        tabs.addTab(prep, "Preparing")
        for box in (self.device, self.precision, self.low_memory):
            box.currentIndexChanged.connect(self._find_placement)
        self.model.edit.textChanged.connect(self._find_placement)  # SDXL or SD 1.5
        for changed in (
            self.model.edit.textChanged,
            self.device.currentIndexChanged,
            self.precision.currentIndexChanged,  # which copy of the weights to download
        ):
            changed.connect(self._find_source)
        self.tabs = tabs
        for page in range(tabs.count()):
            self._fill_page(tabs.tabText(page), settings)
        self._show_segmenter_state()
        self._find_source()
        self._find_placement()
        titles = [tabs.tabText(k) for k in range(tabs.count())]
        if tab in titles:
            tabs.setCurrentIndex(titles.index(tab))

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.restore = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.restore.setToolTip("This page's settings as they first were; OK keeps them")
        self.restore.clicked.connect(self.restore_page)
        lay = QVBoxLayout(self)
        lay.addWidget(tabs)
        lay.addWidget(buttons)

    def restore_page(self) -> None:
        """The page shown back at its defaults (recent files and prompts stay); nothing
        changes until OK."""
        self._fill_page(self.tabs.tabText(self.tabs.currentIndex()), EditorSettings())

    def _fill_page(self, page: str, s: EditorSettings) -> None:
        """Show ``s`` in the fields of page ``page`` (:meth:`result_settings` reads them)."""
        if page == "Model":
            self.model.edit.setText(s.model)
            _choose(self.device, s.device)
            _choose(self.precision, s.precision)
            self.compile.setChecked(s.compile)
        elif page == "Segmentation":
            self.segmenter.setCurrentIndex(max(self.segmenter.findData(s.segmenter), 0))
            self.sam.edit.setText(s.sam_checkpoint)
            self.grounding.edit.setText(s.grounding_checkpoint)
        elif page == "Editing":
            self.steps.setValue(s.steps)
            self.guidance.setValue(s.guidance)
            self.strength.setValue(s.strength)
            self.edge.setValue(s.edge)
            self.candidates.setValue(s.candidates)
            self.seed.setValue(s.seed)
        elif page == "Preparing":
            self.emb_steps.setValue(s.emb_steps)
            self.model_steps.setValue(s.model_steps)
            self.lora_rank.setValue(s.lora_rank)
            self.low_memory.setCurrentIndex(max(self.low_memory.findData(s.low_memory), 0))

    def _find_source(self) -> None:
        from ui import engine

        model, device = self.model.text(), self.device.currentText()
        precision = self.precision.currentText()
        self._download_row.setVisible(False)
        self._ask(
            self.source_state,
            "Looking for the model",
            lambda: engine.model_source(model, device, precision),
            then=lambda state, _: self._download_row.setVisible(
                self._download is not None and state == "note"
            ),
        )

    def _download_now(self) -> None:
        if self._download is None:
            return
        said = self._download(
            self.model.text(), self.device.currentText(), self.precision.currentText()
        )
        self._download_row.setVisible(False)
        _set_role(self.source_state, said, "hint")
        self._grow_soon()

    def _find_placement(self) -> None:
        from ui import engine

        model, device = self.model.text(), self.device.currentText()
        precision = self.precision.currentText()
        low_memory = self.low_memory.currentData() or "auto"
        self._instead_row.setVisible(False)
        self._ask(
            self.placement,
            "Finding where the model runs",
            lambda: engine.placement(model, device, precision, low_memory),
            then=self._offer_instead,
        )

    def _offer_instead(self, state: str, model: str) -> None:
        self._instead_row.setVisible(bool(model))
        if model:
            self.use_instead.setText(f"Use {model.rsplit('/', 1)[-1]}")
            self.use_instead.setToolTip(f"Set Model to {model}, which fits this GPU")
            self.use_instead.setProperty("model", model)

    def _use_instead(self) -> None:
        """Put the model offered in Model; both lines are found again for it."""
        self.model.edit.setText(self.use_instead.property("model") or "")

    def _ask(
        self,
        line: QLabel,
        title: str,
        work: Callable[[], Said | None],
        then: Callable[[str, str], None] | None = None,
    ) -> None:
        """Fill ``line`` with what ``work`` (run on the side thread) says, replacing an
        answer still to come for it; ``then(state, model instead)`` follows (state
        "ready", "note", "problem", or "" when nothing was found)."""
        if self._side is None:
            return
        self._side.forget(self._asking.get(line, 0))
        _set_role(line, f"{title}…", "hint")

        def found(said: Said | None) -> None:
            if said is None:  # no engine in this installation: nothing to say
                line.setVisible(False)
                state, instead = "", ""
            else:
                text, state, instead = said
                _set_role(line, text, {"note": "hint"}.get(state, state))
            if then is not None:
                then(state, instead)
            self._grow_soon()

        def failed(sentence: str) -> None:
            _set_role(line, sentence, "problem")
            if then is not None:
                then("", "")
            self._grow_soon()

        self._asking[line] = self._side.submit(title, work, found, failed)

    def _grow_soon(self, tries: int = 3) -> None:
        """Make the dialog taller by what the lines found after it was shown lack, once
        the pages have laid out what changed (the next turn of the event loop): a layout
        squeezes wrapped labels rather than growing the window by itself."""
        QTimer.singleShot(0, self, lambda: self._grow(tries))

    def _grow(self, tries: int) -> None:
        lines = [line for line in self._asking if line.isVisible()]
        short = max(
            (line.heightForWidth(line.width()) - line.height() for line in lines), default=0
        )
        if short > 0:
            self.resize(self.width(), self.height() + short)
            if tries > 1:  # the rows laid out again may still squeeze another line
                self._grow_soon(tries - 1)

    def done(self, result: int) -> None:
        """Closing (OK or Cancel) drops the answers still being found: they would reach
        a dialog that is gone."""
        if self._side is not None:
            for ticket in self._asking.values():
                self._side.forget(ticket)
        super().done(result)

    def _show_segmenter_state(self) -> None:
        reason = segmenter_readiness(
            self.segmenter.currentData() or "classical",
            self.sam.text(),
            self.grounding.text(),
            self.device.currentText(),
        )
        _set_role(
            self.segmenter_state,
            reason or "Ready: everything it needs is on this machine.",
            "problem" if reason else "ready",
        )

    def result_settings(self) -> EditorSettings:
        return dataclasses.replace(
            self._settings,
            model=self.model.text() or DEFAULT_MODEL,
            device=self.device.currentText(),
            precision=self.precision.currentText(),
            segmenter=self.segmenter.currentData() or "classical",
            sam_checkpoint=self.sam.text(),
            grounding_checkpoint=self.grounding.text(),
            steps=self.steps.value(),
            guidance=self.guidance.value(),
            strength=self.strength.value(),
            edge=self.edge.value(),
            candidates=self.candidates.value(),
            seed=self.seed.value(),
            emb_steps=self.emb_steps.value(),
            model_steps=self.model_steps.value(),
            lora_rank=self.lora_rank.value(),
            compile=self.compile.isChecked(),
            low_memory=self.low_memory.currentData() or "auto",
        ).clamped()


def _page() -> tuple[QWidget, QFormLayout]:
    """A Settings page and its form, whose rows stay together at the top when a taller
    page (or a line that grew) makes the dialog taller than this page needs."""
    page = QWidget()
    column = QVBoxLayout(page)
    form = QFormLayout()
    column.addLayout(form)
    column.addStretch(1)
    return page, form


def _button_row(button: QPushButton) -> QWidget:
    """``button`` at its own size under a line, hidden until it is offered."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(button)
    layout.addStretch(1)
    row.setVisible(False)
    return row


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setProperty("role", "hint")
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    return label


def _set_role(label: QLabel, text: str, role: str) -> None:
    """Show ``text`` in ``label`` styled as ``role`` ("hint", "ready", "problem")."""
    label.setText(text)
    label.setProperty("role", role)
    label.style().unpolish(label)  # a changed property restyles only when polished again
    label.style().polish(label)


def _switch(form: QFormLayout, text: str, hint: str) -> QCheckBox:
    """A check box with its explanation underneath, added to ``form``."""
    box = QCheckBox(text)
    form.addRow("", box)
    form.addRow("", _hint(hint))
    return box


def _combo(options: list[str]) -> QComboBox:
    box = QComboBox()
    box.addItems(options)
    return box


def _choose(box: QComboBox, text: str) -> None:
    """Select ``text`` in ``box``; its first choice when it has no such one."""
    box.setCurrentIndex(max(box.findText(text), 0))


def _spin(lo: int, hi: int, suffix: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSuffix(suffix)
    return box


def _dspin(lo: float, hi: float, step: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(2)
    return box
