"""The main window: canvas in the centre, items and preparation on the right, jobs and
history below them, the reference photo on the left; status bar. Its actions, menus and
tool bars are made in :mod:`ui.actions`.

The window turns what the user does into document commands (refining items, undoable) and
jobs (segmentation, preparing, edits; see :mod:`ui.editing`). Every error a user can cause
ends as a sentence in the message bar above the canvas, with the document unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from dedit_app.errors import DEditError
from dedit_app.wording import counted
from ui import actions, clipboard, thumbnails
from ui.canvas import CanvasView, Tool
from ui.document import Document
from ui.downloads import ModelDownloads
from ui.editing import EditController
from ui.edits_panel import EditsPanel, GoingBack
from ui.files import FileController, first_openable
from ui.history_view import HistoryView
from ui.items_panel import ItemsPanel
from ui.jobs_panel import JobsPanel
from ui.open_dialog import PHOTO_PATTERNS, OpenDialog
from ui.original import OriginalPhoto
from ui.recent import RecentFiles
from ui.recovery import Recovery
from ui.reference import ReferenceController
from ui.segmenting import SegmentController
from ui.settings import EditorSettings
from ui.settings_dialog import SettingsDialog
from ui.side_panels import PreparePanel, ReferencePanel
from ui.side_thread import SideThread
from ui.start_page import StartPage
from ui.widgets import CandidatesStrip, MessageBar
from ui.worker import JobQueue
from ui.zoom_field import ZoomField

log = logging.getLogger(__name__)

IMAGE_FILTER = f"Images ({PHOTO_PATTERNS});;All files (*)"
ITEMS_DOCK_MIN_HEIGHT = 320  # px of the Items dock's scrolled content always in view


class MainWindow(QMainWindow):
    """D-Edit Studio's window. ``qsettings`` is where settings and recent files live."""

    def __init__(
        self, qsettings: QSettings | None = None, recovery_dir: Path | None = None
    ) -> None:
        """``recovery_dir``: where unsaved work is copied (default: the user's data folder;
        tests give a folder of their own). The recent files' thumbnails are kept beside it."""
        super().__init__()
        self.qsettings = qsettings if qsettings is not None else QSettings()
        self.settings = EditorSettings.load(self.qsettings)
        self.ask_to_save = True  # tests and scripts turn the "save changes?" question off
        self.doc: Document | None = None
        self.jobs = JobQueue(self)
        app = QApplication.instance()
        # Quick work that needs no model (previews), beside the jobs; and the File menu,
        # whose reading and writing of large pictures has a thread of its own.
        self.side = SideThread(self)
        self.files = FileController(self)
        self.downloads = ModelDownloads(self)  # a model's files, before Prepare needs them
        self.recovery = Recovery(self, recovery_dir)
        self.recent = RecentFiles(
            self,
            recovery_dir.parent / "thumbnails"
            if recovery_dir is not None
            else thumbnails.default_folder(),
        )
        if app is not None:  # a running QThread must never be destroyed: stop it on quit
            app.aboutToQuit.connect(self.jobs.shutdown)
            app.aboutToQuit.connect(self.side.shutdown)
            app.aboutToQuit.connect(self.files.shutdown)
        self.setWindowTitle("D-Edit Studio")
        self.setAcceptDrops(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
        )

        self._build_central()
        self._build_docks()
        self.reference_photo = ReferenceController(self)
        self.editing = EditController(self)
        self.segmenting = SegmentController(self)
        self.original = OriginalPhoto(self)
        actions.build_actions(self)
        actions.build_menus(self)
        actions.build_toolbars(self)
        self._build_status()
        self._connect()
        self.set_tool(Tool.SELECT)
        self._update_actions()
        self.resize(1440, 900)
        geometry = self.qsettings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    # ----- building ---------------------------------------------------------------------

    def _build_central(self) -> None:
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.message_bar = MessageBar()
        holder = QWidget()
        hl = QVBoxLayout(holder)
        hl.setContentsMargins(10, 8, 10, 0)
        hl.addWidget(self.message_bar)
        self._message_holder = holder
        holder.setVisible(False)
        self.canvas = CanvasView()
        self.start_page = StartPage()
        self.pages = QStackedWidget()  # the start page until a picture is open
        self.pages.addWidget(self.start_page)
        self.pages.addWidget(self.canvas)
        self.candidates = CandidatesStrip()
        lay.addWidget(holder)
        lay.addWidget(self.pages, 1)
        lay.addWidget(self.candidates)
        self.setCentralWidget(central)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        right = Qt.DockWidgetArea.RightDockWidgetArea
        items_box = QWidget()
        lay = QVBoxLayout(items_box)
        lay.setContentsMargins(8, 8, 8, 0)
        lay.setSpacing(4)
        self.prepare_panel = PreparePanel()
        lay.addWidget(self.prepare_panel)
        self.items_panel = ItemsPanel()
        self.items_panel.set_prompt_suggestions(self.settings.prompts)
        self.items_panel.layout().setContentsMargins(0, 4, 0, 8)
        lay.addWidget(self.items_panel, 1)
        # On a short window (a laptop at 1024 x 640) the dock is given less than its
        # fields need: it scrolls then, where Qt would squash the fields until their text
        # is cut in half.
        scroller = QScrollArea()
        scroller.setWidget(items_box)
        scroller.setWidgetResizable(True)
        scroller.setFrameShape(QFrame.Shape.NoFrame)
        scroller.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # ...but never so short that the activity below takes the room: the card, a few
        # rows and the name field stay in view.
        scroller.setMinimumHeight(ITEMS_DOCK_MIN_HEIGHT)
        self.items_dock = self._dock("ITEMS", "itemsDock", scroller, right)
        self.items_dock.setMinimumWidth(300)

        self.jobs_panel = JobsPanel(self.jobs)
        self.history_view = HistoryView(self._before_history_jump)
        self.edits_panel = EditsPanel()
        self.going_back = GoingBack(self, self.edits_panel)
        self.activity = QTabWidget()
        self.activity.addTab(self.jobs_panel, "Jobs")
        self.activity.addTab(self.history_view, "History")
        self.activity.addTab(self.edits_panel, "Edits")
        self.activity_dock = self._dock("ACTIVITY", "activityDock", self.activity, right)
        self.splitDockWidget(self.items_dock, self.activity_dock, Qt.Orientation.Vertical)
        self.resizeDocks([self.items_dock, self.activity_dock], [640, 220], Qt.Orientation.Vertical)

        # \ compares with the picture before (hold), 1-9 choose a result: a list with the
        # focus would take them for the start of a row to find, so it hands them over.
        self._compare_key = _CompareKeyToWindow(self)
        for view in (self.items_panel.list, self.history_view, self.edits_panel.list):
            view.installEventFilter(self._compare_key)

        self.reference_panel = ReferencePanel()
        self.reference_dock = self._dock(
            "REFERENCE PHOTO",
            "referenceDock",
            self.reference_panel,
            Qt.DockWidgetArea.LeftDockWidgetArea,
        )
        self.reference_dock.setMinimumWidth(240)
        self.reference_panel.items.installEventFilter(self._compare_key)
        self.reference_dock.hide()

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.status_message = QLabel()
        self.status_message.setObjectName("statusMessage")
        self.cursor_label = QLabel()
        self.zoom_field = ZoomField()
        self.busy_label = QLabel()
        sb.addWidget(self.status_message, 1)
        sb.addPermanentWidget(self.busy_label)
        sb.addPermanentWidget(self.cursor_label)
        sb.addPermanentWidget(self.zoom_field)
        self.zoom_field.show_zoom(None)  # until a picture is open

    def _connect(self) -> None:
        c = self.canvas
        c.item_clicked.connect(self._on_item_clicked)
        c.item_double_clicked.connect(self._on_item_double_clicked)
        c.empty_clicked.connect(self.select_none)
        c.stroke_finished.connect(self._on_stroke)
        c.click_point.connect(self.segmenting.add_click)
        c.move_requested.connect(self.editing.move_items)
        c.copy_requested.connect(self.editing.duplicate_items)
        c.swap_dropped.connect(self.editing.swap_item)
        c.files_dropped.connect(self._on_files_dropped)
        c.cursor_info.connect(self._on_cursor)
        c.zoom_changed.connect(self.zoom_field.show_zoom)
        c.level_failed.connect(self.show_error)
        c.menu_asked.connect(lambda item, at: actions.show_canvas_menu(self, item, at))
        self.reference_panel.canvas.level_failed.connect(self.show_error)
        self.zoom_field.zoom_asked.connect(c.set_screen_zoom)
        self.zoom_field.fit_asked.connect(c.fit)
        start = self.start_page
        start.open_clicked.connect(self.open_dialog)
        start.recent_clicked.connect(self.recent.open)
        start.restore_clicked.connect(self.recovery.restore)
        start.discard_clicked.connect(lambda copy: self.recovery.discard([copy]))
        start.files_dropped.connect(self._on_files_dropped)
        self.items_panel.prompt_submitted.connect(self.editing.text_edit)
        self.items_panel.list.drag_started.connect(
            lambda: clipboard.drag_out(self, self.items_panel.list)
        )
        self.items_panel.list.menu_asked.connect(
            lambda item, at: actions.show_canvas_menu(self, item, at)
        )
        self.items_panel.merge_requested.connect(self.merge_selected)
        self.items_panel.redraw_button.clicked.connect(self.act_redraw.trigger)
        self.items_panel.delete_requested.connect(self.editing.remove_selected)
        self.prepare_panel.prepare_clicked.connect(self.editing.prepare)
        self.prepare_panel.cancel_clicked.connect(self.editing.cancel_prepare)
        self.reference_panel.open_clicked.connect(self.open_reference_dialog)
        self.reference_panel.close_clicked.connect(self.reference_photo.close)
        self.reference_panel.files_dropped.connect(
            lambda paths: self._on_files_dropped(paths, reference=True)
        )
        self.size_slider.valueChanged.connect(self._set_brush_size)
        self.size_spin.valueChanged.connect(self._set_brush_size)
        self.jobs.changed.connect(lambda _id: self._update_busy())
        self.jobs.noticed.connect(lambda _id, text: self.show_info(text, timeout_ms=0))
        self.candidates.chosen.connect(self.editing.choose_candidate)
        self.candidates.split_changed.connect(self.editing.set_split)
        self.candidates.discard.connect(self.editing.discard_result)
        self.candidates.done.connect(self.editing.close_candidates)
        self.candidates.more.connect(self.editing.more_results)

    # ----- messages ---------------------------------------------------------------------

    def show_error(self, text: str, action: tuple[str, object] | None = None) -> None:
        """Tell the user what went wrong, in words, above the canvas and in the status bar."""
        log.info("error shown: %s", text)
        self._message_holder.setVisible(True)
        self.message_bar.show_message(text, "error", action=action)
        self.status_message.setText(text)

    def settings_action(self, tab: str) -> tuple[str, object]:
        """The message bar's button for a problem mended in Settings, on page ``tab``."""
        return ("Open settings", lambda: self.open_settings(tab=tab))

    def show_info(
        self,
        text: str,
        level: str = "info",
        timeout_ms: int | None = None,
        action: tuple[str, object] | None = None,
    ) -> None:
        self._message_holder.setVisible(True)
        self.message_bar.show_message(text, level, timeout_ms=timeout_ms, action=action)
        self.status_message.setText(text)

    def dismiss_message(self) -> None:
        self.message_bar.dismiss()

    def message_text(self) -> str:
        """The message on show (empty when none): what tests and scripts read."""
        return self.message_bar.label.text() if self.message_bar.isVisible() else ""

    # ----- documents --------------------------------------------------------------------

    def set_document(self, doc: Document | None) -> None:
        old = self.doc
        if old is not None:
            # Its jobs stop and leave the Activity list, with those that ended: they were
            # about a picture that is no longer open.
            self.editing.forget_document(old)
            self.segmenting.forget_document()
            self.original.forget()
            self.going_back.forget()
            self.jobs.clear_finished()
            old.dirty_changed.disconnect(self.update_title)
            old.changed.disconnect(self._on_doc_changed)
            old.selection_changed.disconnect(self._update_actions)
        self.segmenting.clear()
        self.doc = doc
        self.recovery.watch(doc)
        self.pages.setCurrentWidget(self.canvas if doc is not None else self.start_page)
        self.canvas.set_document(doc)
        # results and job previews in the colours the canvas shows (ui.canvas_items)
        self.candidates.colours = self.jobs_panel.colours = self.canvas.photo.colours
        self.items_panel.set_document(doc)
        self.history_view.setStack(doc.undo if doc else None)
        earlier = doc is not None and bool(doc.project.history)
        self.history_view.setEmptyLabel(
            "Opened · earlier edits: see Edits" if earlier else "Opened"
        )
        self.going_back.refresh()
        if doc is not None:
            doc.dirty_changed.connect(self.update_title)
            doc.changed.connect(self._on_doc_changed)
            doc.selection_changed.connect(self._update_actions)
            doc.undo.indexChanged.connect(self._update_actions)
        self.editing.document_changed()
        # a project prepared with the open reference photo gives it back the items it
        # was prepared with (found afresh, they may be split otherwise)
        self.reference_photo.take_prepared_items()
        self.update_title()
        self._update_actions()
        if old is not None:
            old.deleteLater()

    def _on_doc_changed(self, parts: frozenset) -> None:
        self._update_actions()
        if "items" in parts:  # every step says so: the history or the names may differ
            self.going_back.refresh()

    def may_replace(self, quitting: bool = False) -> bool:
        """True when the picture on show may go (closed, another opened in its place, or
        the editor ``quitting``): its running jobs and waiting results may be lost
        (:meth:`may_stop_jobs`) and its changes are saved or may be discarded
        (:meth:`maybe_discard`)."""
        return self.may_stop_jobs(quitting) and self.maybe_discard()

    def maybe_discard(self) -> bool:
        """True when the current document may be replaced (saved, discarded or clean)."""
        self.files.finish_saving()
        if self.doc is None or not self.doc.dirty or not self.ask_to_save:
            return True
        answer = QMessageBox.question(
            self,
            "Save changes?",
            "The current picture has changes that are not saved. Save them first?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.files.save(wait=True)
        return answer == QMessageBox.StandardButton.Discard

    def close_picture(self) -> bool:
        """Back to the start page, after asking about unsaved changes and running jobs.
        False when the user kept the picture."""
        if self.doc is None:
            return True
        if not self.may_replace():
            return False
        self.set_document(None)
        self.dismiss_message()  # what it and the status bar said was about that picture
        for label in (self.status_message, self.cursor_label):
            label.clear()
        self.zoom_field.show_zoom(None)
        return True

    def open_dialog(self) -> OpenDialog:
        """File ▸ Open: a window-modal dialog, in the folder of the most recent file, that
        opens the photo or ``.dedit`` project chosen in it. Returned at once (for tests)."""
        start = self.settings.recent[0] if self.settings.recent else ""
        dialog = OpenDialog(self, str(Path(start).parent) if start else "")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.open_path(dialog.chosen()))
        dialog.open()
        return dialog

    def open_path(self, path: str | Path) -> bool:
        """Open a photo (and find its items) or a ``.dedit`` project; see
        :meth:`FileController.open_path`. False when refused at once."""
        return self.files.open_path(path)

    @property
    def opening(self) -> bool:
        """True while a photo or project is being read on the files thread."""
        return self.files.opening

    def remember(
        self, path: Path, image: np.ndarray | None = None, profile: bytes | None = None
    ) -> None:
        """Put ``path`` first among the recent files; see :meth:`RecentFiles.remember`."""
        self.recent.remember(path, image, profile)

    def recovery_changed(self) -> None:
        """List the recovery copies that can be restored under File and on the start page."""
        found = self.recovery.found
        self.restore_menu.clear()
        for copy in found:
            a = self.restore_menu.addAction(f"{copy.title} ({copy.when})".replace("&", "&&"))
            a.setToolTip(str(copy.folder))
            a.triggered.connect(lambda _=False, c=copy: self.recovery.restore(c))
        if found:
            self.restore_menu.addSeparator()
            a = self.restore_menu.addAction("Discard all…" if len(found) > 1 else "Discard…")
            a.triggered.connect(lambda: self.recovery.discard(list(self.recovery.found)))
        self.restore_menu.setEnabled(bool(found))
        self.start_page.set_copies(found)

    def _on_files_dropped(self, paths: list[str], reference: bool = False) -> None:
        """Open the first of ``paths`` that opens: as the photo, or as the reference."""
        path = first_openable(paths)
        if path is not None:
            (self.reference_photo.open if reference else self.open_path)(path)

    def dragEnterEvent(self, event) -> None:
        if clipboard.dropped_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self._on_files_dropped(clipboard.dropped_files(event.mimeData()))

    def save_project(self, path: str | Path, wait: bool = False) -> bool:
        """Save as a ``.dedit`` folder; see :meth:`FileController.save_project`."""
        return self.files.save_project(path, wait)

    def export_image(self, path: str | Path, wait: bool = False) -> bool:
        """Write the picture at full resolution; see :meth:`FileController.export_image`."""
        return self.files.export_image(path, wait)

    # ----- refining ---------------------------------------------------------------------

    def _on_item_clicked(self, item: int, modifiers) -> None:
        if self.doc is None:
            return
        if modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier):
            self.doc.toggle(item)
        else:
            self.doc.select([item])

    def _on_item_double_clicked(self, item: int) -> None:
        """Double-click an item: it alone is selected and its prompt is ready to retype."""
        if self.doc is None:
            return
        self.doc.select([item])
        self.focus_prompt()

    def _on_stroke(self, points: list, radius: float, erase: bool) -> None:
        if self.doc is None:
            return
        try:
            if erase:
                self.doc.erase(points, radius, self.doc.current)
            else:
                self.doc.paint(points, radius, self.doc.current)
        except DEditError as err:
            self.show_error(str(err))

    def merge_selected(self) -> None:
        if self.doc is None:
            return
        try:
            self.doc.merge(self.doc.selection)
        except DEditError as err:
            self.show_error(str(err))

    def rename_selected(self) -> None:
        if self.doc is None or self.doc.current is None:
            self.show_error("Select an item first: click it on the picture or in the list.")
            return
        self.items_panel.name_edit.setFocus()
        self.items_panel.name_edit.selectAll()

    def focus_prompt(self) -> None:
        if self.doc is None or self.doc.current is None:
            self.show_error("Select an item first: click it on the picture or in the list.")
            return
        self.items_panel.prompt_edit.setFocus()
        self.items_panel.prompt_edit.selectAll()

    def select_none(self) -> None:
        if self.doc is not None:
            self.doc.select([])

    def step_item(self, step: int) -> None:
        doc = self.doc
        if doc is None:
            return
        visible = doc.visible_items()
        if not visible:
            return
        if doc.current in visible:
            i = (visible.index(doc.current) + step) % len(visible)
        else:
            i = 0 if step > 0 else len(visible) - 1
        doc.select([visible[i]])

    def set_tool(self, tool: Tool) -> None:
        if tool is not Tool.CLICK:
            self.segmenting.clear()
        self.canvas.set_tool(tool)
        self.act_tools[tool].setChecked(True)
        brush = tool in (Tool.BRUSH, Tool.ERASER)
        for a in self._size_actions:
            a.setVisible(brush)
        for a in self._click_actions:
            a.setVisible(tool is Tool.CLICK)
        self.opt_label.setText(
            {
                Tool.SELECT: (
                    "Click an item to select it · double-click to retype its prompt · "
                    "drag or arrow keys to move · Alt+drag copies · corners resize, just "
                    "outside them turn · Shift+H flips"
                ),
                Tool.BRUSH: "Brush size",
                Tool.ERASER: "Eraser size",
                Tool.CLICK: "Left-click includes, right-click excludes",
            }[tool]
        )
        self._update_actions()

    def _set_brush_size(self, value: int) -> None:
        for w in (self.size_slider, self.size_spin):
            if w.value() != value:
                w.blockSignals(True)
                w.setValue(value)
                w.blockSignals(False)
        self.canvas.set_brush_radius(value)

    def step_brush(self, factor: float) -> None:
        v = self.size_slider.value()
        new = round(v * factor)
        if new == v:
            new = v + (1 if factor > 1 else -1)
        self._set_brush_size(min(max(new, 1), 400))

    def toggle_overlays(self) -> None:
        self.canvas.set_overlays_visible(self.act_overlays.isChecked())

    def _undo_redo(self, undo: bool) -> None:
        if undo and self.canvas.drop_nudge():
            return  # the arrow presses not yet asked are what undo takes back
        if undo and self._only_saved_edits_behind():
            self.going_back.offer()
            return
        if self._before_history_jump():
            (self.doc.undo.undo if undo else self.doc.undo.redo)()

    def _only_saved_edits_behind(self) -> bool:
        """Undo has nothing left, but the project keeps edits from before it was opened:
        Undo then points to Activity ▸ Edits instead of doing nothing."""
        doc = self.doc
        return doc is not None and not doc.undo.canUndo() and bool(doc.project.history)

    def _before_history_jump(self) -> bool:
        """Undo, redo or a click in History is about to change the step on show: False
        while a stroke or drag is in progress; else the results strip of an edit that
        stops being the latest closes first."""
        if self.doc is None or self.canvas._press is not None:
            return False
        self.editing.before_undo()
        return True

    # ----- keys -------------------------------------------------------------------------

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key == Qt.Key.Key_Escape:
            if self.canvas.tool is Tool.CLICK and self.segmenting.click_points:
                self.segmenting.clear()
            elif self.message_bar.isVisible():
                self.dismiss_message()
            else:
                self.select_none()
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.canvas.tool is Tool.CLICK:
            self.segmenting.commit()
            return
        # A text field lets its Enter through to the window after using it: the prompt's
        # Enter starts an edit and must not also close the results of the last one.
        typing = isinstance(QApplication.focusWidget(), (QLineEdit, QAbstractSpinBox))
        enter = key in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and self.candidates.isVisible() and not typing:
            self.candidates.done_button.click()
            return
        if key == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.editing.hold_compare(True)
            return
        if Qt.Key.Key_1 <= key <= Qt.Key.Key_9 and self.candidates.isVisible():
            self.editing.choose_candidate(key - Qt.Key.Key_1)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.editing.hold_compare(False)
            return
        super().keyReleaseEvent(event)

    # ----- misc -------------------------------------------------------------------------

    def open_settings(self, *, tab: str = "") -> None:
        """The Settings dialog, on page ``tab`` ("Model", "Segmentation") when given."""
        dialog = SettingsDialog(
            self.settings, self, tab=tab, side=self.side, download=self.downloads.start
        )
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, settings: EditorSettings) -> None:
        self.settings = settings.clamped()
        self.settings.save(self.qsettings)
        self.items_panel.set_prompt_suggestions(self.settings.prompts)
        self.editing.settings_changed()

    def open_reference_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a reference photo", "", IMAGE_FILTER)
        if path:
            self.reference_photo.open(path)

    def remember_prompt(self, prompt: str) -> None:
        """Keep ``prompt`` among the prompt field's suggestions (and in the settings)."""
        self.settings.add_prompt(prompt)
        self.settings.save(self.qsettings)
        self.items_panel.set_prompt_suggestions(self.settings.prompts)

    def copy_picture(self) -> None:
        """Edit ▸ Copy: the selected items as a cut-out, or the picture (:mod:`ui.clipboard`)."""
        said = clipboard.copy(self)
        if said:
            self.status_message.setText(said)

    def cancel_all_jobs(self) -> None:
        self.jobs.cancel_all()

    def _on_cursor(self, info) -> None:
        if info is None or self.doc is None:
            self.cursor_label.setText("")
            return
        x, y, item = info
        self.cursor_label.setText(f"{self.doc.item_name(item)}  ·  {int(x)}, {int(y)}")

    def _update_busy(self) -> None:
        active = [r for r in self.jobs.jobs.values() if r.active and not r.request.quiet]
        self.busy_label.setText(f"{counted(len(active), 'job')} running" if active else "")
        self.editing.jobs_changed()

    def update_title(self, *_args) -> None:
        if self.doc is None:
            self.setWindowTitle("D-Edit Studio")
            return
        name = self.doc.folder.name if self.doc.folder else self.doc.project.source or "Untitled"
        star = " •" if self.doc.dirty else ""
        self.setWindowTitle(f"{name}{star} — D-Edit Studio")

    def _update_actions(self, *_args) -> None:
        doc = self.doc
        has = doc is not None
        sel = bool(has and doc.selection)
        for a in (
            self.act_close,
            self.act_copy,
            self.act_save,
            self.act_save_as,
            self.act_export,
            self.act_segment,
            self.act_prepare,
            self.act_fit,
            self.act_actual,
            self.act_zoom_in,
            self.act_zoom_out,
            *self.act_tools.values(),
        ):
            a.setEnabled(has)
        self.act_merge.setEnabled(bool(has and len(doc.selection) > 1))
        self.act_rename.setEnabled(sel)
        self.act_remove.setEnabled(sel)
        self.act_flip.setEnabled(sel)
        self.act_flip_v.setEnabled(sel)
        self.act_duplicate.setEnabled(sel)
        self.act_export_items.setEnabled(sel)
        self.act_edit_prompt.setEnabled(sel)
        self.act_redraw.setEnabled(bool(has and doc.reshaped))
        self.items_panel.redraw_button.setEnabled(self.act_redraw.isEnabled())
        seg = getattr(self, "segmenting", None)
        self.act_add_item.setEnabled(bool(seg and seg.click_mask is not None))
        self.act_clear_clicks.setEnabled(bool(seg and seg.click_points))
        behind = self._only_saved_edits_behind()
        self.act_undo.setEnabled(bool(has and (doc.undo.canUndo() or behind)))
        self.act_redo.setEnabled(bool(has and doc.undo.canRedo()))
        if has:  # the text names the step, and so does the tool bar's tool tip
            undo_step = "(earlier edits: Activity ▸ Edits)" if behind else doc.undo.undoText()
            for act, verb, step in (
                (self.act_undo, "Undo", undo_step),
                (self.act_redo, "Redo", doc.undo.redoText()),
            ):
                act.setText(f"&{verb} {step}".rstrip())
                act.setToolTip(f"{verb} {step}".rstrip() + f"  ({act.shortcut().toString()})")
        self.editing.update_state()

    def may_stop_jobs(self, quitting: bool = True) -> bool:
        """True when no job the user is waiting for runs and no edit's results wait for a
        click, or they agree to lose them: closing ends a preparation that may have run
        for minutes, and drops results that were never applied. Only ``quitting`` stops
        the reference photo's job too (it stays open when the picture goes)."""
        spared = None if quitting else self.reference_photo.finding
        running = [
            r.request.title
            for r in self.jobs.active()
            # a job already being stopped (its picture was closed) is not asked about again
            if not (r.request.quiet or r.retired or r.request.id == spared)
        ]
        waiting = self.editing.unapplied()
        if not (running or waiting) or not self.ask_to_save:
            return True
        said = []
        if running:
            it, its = ("it", "its") if len(running) == 1 else ("them", "their")
            said.append(
                f"Still running: {_some(running)}. Closing stops {it}, and {its} work so far "
                "is lost."
            )
        if waiting:
            its = "its" if len(waiting) == 1 else "their"
            said.append(f"Waiting for a click: {_some(waiting)}. Closing drops {its} results.")
        answer = QMessageBox.question(
            self,
            "Stop the running jobs?" if running else "Drop the results?",
            " ".join(said),
            QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Close

    def closeEvent(self, event) -> None:
        if not self.may_replace(quitting=True):
            event.ignore()
            return
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self.qsettings.sync()
        self.hide()  # the window goes at once; the worker may need a moment to stop
        self.jobs.shutdown()
        self.side.shutdown()
        self.files.shutdown()  # waits for exports still being written
        self.canvas.shutdown()
        self.reference_panel.canvas.shutdown()
        self.recovery.shutdown()  # the work was saved or discarded: its copy goes
        super().closeEvent(event)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self.canvas.fit if self.canvas._fit else lambda: None)


def _some(titles: list[str]) -> str:
    """Up to three titles, and how many more."""
    said = "; ".join(titles[:3])
    return said + (f"; and {len(titles) - 3} more" if len(titles) > 3 else "")


class _CompareKeyToWindow(QObject):
    """An event filter that gives \\ pressed or let go in a view to ``window``'s own key
    handlers (:meth:`MainWindow.keyPressEvent`), where it holds the comparison; and 1 to 9
    while a results strip is on show, where they choose a result."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        keys = (QEvent.Type.KeyPress, QEvent.Type.KeyRelease)
        if kind not in keys:
            return False
        if (
            kind == QEvent.Type.KeyPress
            and Qt.Key.Key_1 <= event.key() <= Qt.Key.Key_9
            and self._window.candidates.isVisible()
        ):  # choosing a result of the strip on show, not a row starting with that digit
            self._window.keyPressEvent(event)
            return True
        if event.key() != Qt.Key.Key_Backslash:
            return False
        if kind == QEvent.Type.KeyPress:
            self._window.keyPressEvent(event)
        else:
            self._window.keyReleaseEvent(event)
        return True
