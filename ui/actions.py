"""The main window's actions, menus, tool bars and the list of keyboard shortcuts.

Every command a user can give by menu, tool bar or key is a ``QAction`` on the window
(``window.act_open``, ``window.act_tools[Tool.BRUSH]``, ...): tests and scripts trigger
those, so a shortcut and its menu entry always do the same thing. What the actions do
lives in the window and its controllers; this module only wires them up.
"""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import QPoint, QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QLabel,
    QMenu,
    QMessageBox,
    QSlider,
    QSpinBox,
    QToolBar,
    QToolButton,
    QWidget,
)

from ui import clipboard
from ui.canvas import Tool
from ui.icons import icon


class ToolHint(QLabel):
    """The tool bar's sentence about the tool. On a narrow window it gives way, ending
    in "…" (the whole sentence is its tool tip), instead of pushing the buttons after
    it, Settings among them, off the tool bar."""

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def paintEvent(self, _event) -> None:
        box = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, box.width())
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        QPainter(self).drawText(box, int(align), text)


def key_sequences(spec) -> list[QKeySequence]:
    """Every key sequence ``spec`` names, first the one menus show, without repeats.

    ``spec`` is a key ("Ctrl+W"), a standard key, or a list of them. A standard key brings
    every binding the platform gives it, and only those: on some Linux desktops Close is
    Ctrl+F4 alone, Quit and Preferences have none and Redo starts with Ctrl+Y; so the keys
    the documentation promises are named as well, first.
    """
    out: dict[str, QKeySequence] = {}
    for one in spec if isinstance(spec, (list, tuple)) else [spec]:
        if isinstance(one, QKeySequence.StandardKey):
            found = QKeySequence.keyBindings(one)
        else:
            found = [QKeySequence(one)]
        for seq in found:
            if not seq.isEmpty():
                out.setdefault(seq.toString(), seq)
    return list(out.values())


def make_action(
    w,
    text: str,
    slot,
    shortcut=None,
    tip: str = "",
    icon_name: str = "",
    checkable: bool = False,
) -> QAction:
    """A window action: ``shortcut`` is a key, a standard key or a list of them; the tool
    tip names the key so that hovering teaches it."""
    a = QAction(text, w)
    if icon_name:
        a.setIcon(icon(icon_name))
    if shortcut is not None:
        a.setShortcuts(key_sequences(shortcut))
    keys = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    plain = text.replace("&", "").replace("…", "")  # menu text without its mnemonic
    a.setToolTip((tip or plain) + (f"  ({keys})" if keys else ""))
    a.setStatusTip(tip or plain)
    a.setCheckable(checkable)
    if slot is not None:
        a.triggered.connect(slot)
    w.addAction(a)
    return a


def build_actions(w) -> None:
    """Make every ``w.act_*`` action (and ``w.tool_group``, ``w.act_tools``)."""
    A = partial(make_action, w)
    SK = QKeySequence.StandardKey
    w.act_open = A("&Open…", w.open_dialog, SK.Open, "Open a photo or a project", "open")
    w.act_open_ref = A(
        "Open &reference photo…",
        w.open_reference_dialog,
        "Ctrl+Shift+O",
        "Open a second photo to swap items from",
        "reference",
    )
    w.act_save = A("&Save", lambda: w.files.save(), SK.Save, "Save the project", "save")
    w.act_save_as = A("Save &as…", lambda: w.files.save_as(), SK.SaveAs, "Save the project as…")
    w.act_export = A(
        "&Export image…",
        lambda: w.files.export_dialog(),
        "Ctrl+E",
        "Export the picture at full resolution (PNG or JPEG)",
        "export",
    )
    w.act_export_items = A(
        "Export selected &items…",
        lambda: w.files.export_cutout_dialog(),
        "Ctrl+Shift+E",
        "Export the selected items at full resolution, transparent around them (PNG or WebP)",
    )
    w.act_close = A(
        "&Close picture", w.close_picture, ["Ctrl+W", SK.Close], "Close the picture (asks to save)"
    )
    w.act_quit = A("&Quit", w.close, ["Ctrl+Q", SK.Quit])
    w.act_undo = undo_action(w, True)
    w.act_redo = undo_action(w, False)
    w.act_copy = A(
        "&Copy",
        w.copy_picture,
        SK.Copy,
        "Copy the selected items as a cut-out, or the whole picture when none is selected",
    )
    w.act_paste = A(
        "&Paste as new photo",
        lambda: clipboard.paste(w),
        SK.Paste,
        "Open the picture on the clipboard as a new photo",
    )
    w.act_settings = A("Se&ttings…", w.open_settings, ["Ctrl+,", SK.Preferences], "", "settings")

    w.tool_group = QActionGroup(w)
    w.act_tools = {}
    for tool, text, key, tip, name in (
        (
            Tool.SELECT,
            "Select and move",
            "V",
            "Click to select, drag to move, corners to resize",
            "select",
        ),
        (Tool.BRUSH, "Brush", "B", "Paint pixels into the selected item", "brush"),
        (Tool.ERASER, "Eraser", "E", "Take pixels away from the selected item", "eraser"),
        (
            Tool.CLICK,
            "Add item by clicking",
            "C",
            "Click on a thing to make it an item (right-click excludes)",
            "click",
        ),
    ):
        a = A(text, lambda _=False, t=tool: w.set_tool(t), key, tip, name, True)
        w.tool_group.addAction(a)
        w.act_tools[tool] = a
    w.act_segment = A(
        "&Find items again",
        lambda: w.segmenting.segment_auto(),
        "Ctrl+Shift+F",
        "Split the picture into items automatically (replaces the items)",
    )
    w.act_add_item = A(
        "Add clicked item",
        lambda: w.segmenting.commit(),
        None,
        "Make the highlighted area a new item (Enter)",
    )
    w.act_clear_clicks = A(
        "Clear clicks", lambda: w.segmenting.clear(), None, "Start the new item over (Esc)"
    )
    w.act_merge = A(
        "&Merge items",
        w.merge_selected,
        "Ctrl+M",
        "Merge the selected items into the first one",
    )
    w.act_rename = A("&Rename item", w.rename_selected, "F2")
    w.act_remove = A(
        "&Remove item",
        w.editing.remove_selected,
        [QKeySequence.StandardKey.Delete, "Backspace"],
        "Remove the selected item from the picture",
    )
    w.act_flip = A(
        "&Flip horizontally",
        w.editing.flip_selected,
        "Shift+H",
        "Mirror the selected items left to right; the model paints them again",
    )
    w.act_flip_v = A(
        "Flip &vertically",
        lambda: w.editing.flip_selected(vertical=True),
        "Shift+V",
        "Mirror the selected items top to bottom; the model paints them again",
    )
    w.act_duplicate = A(
        "&Duplicate",
        w.editing.duplicate_selected,
        "Ctrl+D",
        "Copy the selected items beside them, as new items that look the same (Alt+drag "
        "copies them where you drop them)",
    )
    w.act_select_none = A("Select &none", w.select_none, "Ctrl+Shift+A")
    w.act_next_item = A("Next item", lambda: w.step_item(1), "Tab")
    w.act_prev_item = A("Previous item", lambda: w.step_item(-1), "Shift+Tab")
    for a in (w.act_next_item, w.act_prev_item):
        a.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        w.canvas.addAction(a)
    w.act_bigger = A("Bigger brush", lambda: w.step_brush(1.25), "]")
    w.act_smaller = A("Smaller brush", lambda: w.step_brush(0.8), "[")
    w.act_overlays = A(
        "Show &items",
        w.toggle_overlays,
        "H",
        "Show or hide the item colours",
        "overlay",
        True,
    )
    w.act_overlays.setChecked(True)

    w.act_prepare = A(
        "&Prepare",
        w.editing.prepare,
        "Ctrl+P",
        "Learn a prompt for every item (fine-tuning)",
        "prepare",
    )
    w.act_edit_prompt = A(
        "Edit &prompt", w.focus_prompt, "Ctrl+L", "Type a new prompt for the selected item"
    )
    w.act_more = A(
        "&More results",
        lambda: w.editing.more_results(),
        "M",
        "Run the latest edit again with new seeds; its results join the strip",
    )
    w.act_more.setEnabled(False)  # until an edit's results are on show
    w.act_redraw = A(
        "Re&draw reshaped items",
        lambda: w.editing.redraw(),
        "Ctrl+R",
        "Paint the picture again where the brush, eraser or a merge gave pixels to another item",
    )
    w.act_cancel_jobs = A("&Cancel all jobs", w.cancel_all_jobs, "Ctrl+.")

    w.act_fit = A("&Fit to window", w.canvas.fit, "Ctrl+0", "", "fit")
    w.act_actual = A("&Actual pixels", w.canvas.actual_pixels, "Ctrl+1")
    w.act_zoom_selection = A("Zoom to &selection", w.canvas.fit_selection, "Ctrl+2")
    w.act_zoom_in = A(
        "Zoom &in",
        lambda: w.canvas.zoom_by(1.25),
        [QKeySequence.StandardKey.ZoomIn, "Ctrl+="],
    )
    w.act_zoom_out = A("Zoom &out", lambda: w.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut)
    w.act_shortcuts = A("&Keyboard shortcuts", partial(show_shortcuts, w), "F1")


def undo_action(w, undo: bool) -> QAction:
    """Undo or Redo; their text names the step ("Undo Brush"), see ``_update_actions``."""
    SK = QKeySequence.StandardKey
    return make_action(
        w,
        "&Undo" if undo else "&Redo",
        lambda: w._undo_redo(undo),
        SK.Undo if undo else ["Ctrl+Shift+Z", "Ctrl+Y", SK.Redo],
        icon_name="undo" if undo else "redo",
    )


def build_menus(w) -> None:
    """The menu bar; also fills Open recent and Restore unsaved work."""
    mb = w.menuBar()
    m = mb.addMenu("&File")
    m.addActions([w.act_open, w.act_open_ref])
    w.recent_menu = m.addMenu("Open &recent")
    w.restore_menu = m.addMenu("Restore &unsaved work")
    m.addSeparator()
    m.addActions([w.act_save, w.act_save_as, w.act_export, w.act_export_items])
    m.addSeparator()
    m.addActions([w.act_close, w.act_quit])
    m = mb.addMenu("&Edit")
    m.addActions([w.act_undo, w.act_redo])
    m.addSeparator()
    m.addActions([w.act_copy, w.act_paste])
    m.addSeparator()
    m.addActions(
        [
            w.act_prepare,
            w.act_edit_prompt,
            w.act_more,
            w.act_redraw,
            w.act_flip,
            w.act_flip_v,
            w.act_duplicate,
            w.act_remove,
            w.act_cancel_jobs,
        ]
    )
    m.addSeparator()
    m.addAction(w.act_settings)
    m = mb.addMenu("&Items")
    m.addActions(list(w.act_tools.values()))
    m.addSeparator()
    m.addActions([w.act_add_item, w.act_clear_clicks, w.act_segment])
    m.addSeparator()
    m.addActions(
        [
            w.act_merge,
            w.act_rename,
            w.act_select_none,
            w.act_next_item,
            w.act_prev_item,
        ]
    )
    m.addSeparator()
    m.addActions([w.act_bigger, w.act_smaller])
    m = mb.addMenu("&View")
    m.addActions([w.act_fit, w.act_actual, w.act_zoom_selection, w.act_zoom_in, w.act_zoom_out])
    m.addSeparator()
    m.addAction(w.act_overlays)
    for dock in (w.items_dock, w.activity_dock, w.reference_dock):
        m.addAction(dock.toggleViewAction())
    m = mb.addMenu("&Help")
    m.addAction(w.act_shortcuts)
    w.recent.rebuild()
    w.recovery_changed()


def build_toolbars(w) -> None:
    """The main tool bar (with the brush size and click-tool buttons that show with their
    tool) and the tools on the left."""
    main = QToolBar("Main")
    main.setObjectName("mainToolbar")
    main.setMovable(False)
    main.setIconSize(QSize(20, 20))
    main.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    main.addActions([w.act_open, w.act_save, w.act_export])
    main.addSeparator()
    main.addActions([w.act_undo, w.act_redo])
    main.addSeparator()
    main.addAction(w.act_open_ref)
    main.addAction(w.act_overlays)
    main.addAction(w.act_fit)
    main.addSeparator()
    # Tool options: change with the tool.
    w.opt_label = ToolHint()
    w.opt_label.setProperty("role", "hint")
    main.addWidget(w.opt_label)
    w.size_slider = QSlider(Qt.Orientation.Horizontal)
    w.size_slider.setRange(1, 400)
    w.size_slider.setFixedWidth(160)
    w.size_slider.setValue(int(w.canvas.brush_radius))
    w.size_slider.setToolTip("Brush size in photo pixels ([ and ])")
    w.size_spin = QSpinBox()
    w.size_spin.setRange(1, 400)
    w.size_spin.setSuffix(" px")
    w.size_spin.setValue(int(w.canvas.brush_radius))
    w._size_actions = [main.addWidget(w.size_slider), main.addWidget(w.size_spin)]
    add = QToolButton()
    add.setDefaultAction(w.act_add_item)
    add.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    clear = QToolButton()
    clear.setDefaultAction(w.act_clear_clicks)
    clear.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    w._click_actions = [main.addWidget(add), main.addWidget(clear)]
    spacer = QWidget()
    spacer.setSizePolicy(
        spacer.sizePolicy().horizontalPolicy().Expanding,
        spacer.sizePolicy().verticalPolicy().Preferred,
    )
    main.addWidget(spacer)
    main.addAction(w.act_settings)
    w.addToolBar(Qt.ToolBarArea.TopToolBarArea, main)
    w.main_toolbar = main

    tools = QToolBar("Tools")
    tools.setObjectName("tools")
    tools.setMovable(False)
    tools.setIconSize(QSize(22, 22))
    tools.addActions(list(w.act_tools.values()))
    w.addToolBar(Qt.ToolBarArea.LeftToolBarArea, tools)
    w.tools_toolbar = tools


def shortcut_rows(w) -> list[tuple[str, str]]:
    """(what, keys) for every action with a key, and the keys that are not actions;
    sorted by what they do."""
    rows = []
    for a in w.findChildren(QAction):
        keys = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if keys and a.text():
            rows.append((a.text().replace("&", ""), keys))
    rows += [
        (
            "Compare with the picture before the edit, before every edit, or before the "
            "edit chosen under Activity ▸ Edits (hold)",
            "\\",
        ),
        ("Nudge the selected items (Shift: ten times as far)", "arrow keys"),
        ("Copy the selected items where they are dropped", "Alt+drag"),
        ("Drag freely, without snapping to edges and middles", "Ctrl while dragging"),
        ("Drag level or upright", "Shift while dragging"),
        ("Turn the selected item (Shift: in steps of 15°)", "drag just outside a corner"),
        ("The commands for the items under the pointer", "right-click"),
        ("Pan", "Space+drag, or two fingers on a trackpad"),
        ("Zoom at the pointer", "mouse wheel, or pinch on a trackpad"),
        ("Add the clicked item", "Enter"),
        ("Choose result 1–9", "1…9"),
        ("Keep the chosen result (Done)", "Enter"),
    ]
    return sorted(set(rows))


def canvas_menu(w, item: int | None) -> QMenu:
    """What a right-click on the picture offers: the commands for the selected items
    (the one under the pointer among them), or, off the items, the view's. The actions
    are the window's own, so each shows its key and is enabled as in the menus."""
    menu = QMenu(w)
    if item is not None:
        menu.addActions([w.act_edit_prompt, w.act_rename, w.act_flip, w.act_flip_v])
        menu.addActions([w.act_duplicate, w.act_merge, w.act_remove])
        menu.addSeparator()
        menu.addActions([w.act_copy, w.act_export_items, w.act_zoom_selection])
    else:
        menu.addActions([w.act_fit, w.act_actual, w.act_paste])
    return menu


def show_canvas_menu(w, item: int | None, at: QPoint) -> None:
    menu = canvas_menu(w, item)
    menu.exec(at)
    menu.deleteLater()


def show_shortcuts(w) -> None:
    """Help ▸ Keyboard shortcuts: every key in one table."""
    html = (
        "<table cellpadding=4>"
        + "".join(f"<tr><td>{t}</td><td><b>{k}</b></td></tr>" for t, k in shortcut_rows(w))
        + "</table>"
    )
    box = QMessageBox(w)
    box.setWindowTitle("Keyboard shortcuts")
    box.setText(html)
    box.exec()


__all__ = [
    "build_actions",
    "build_menus",
    "build_toolbars",
    "canvas_menu",
    "key_sequences",
    "make_action",
    "shortcut_rows",
    "show_canvas_menu",
    "show_shortcuts",
    "undo_action",
]
