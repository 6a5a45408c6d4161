"""The items panel: every item with its colour, name and prompt; the selected item's
properties (name, prompt); kept in sync with the canvas through the document."""

from __future__ import annotations

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QPoint,
    QRect,
    QSize,
    QStringListModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from dedit_app.looks import look_names
from dedit_app.wording import counted
from ui.document import Document
from ui.overlay import item_colours
from ui.theme import COLORS, scaled_font

ITEM_ROLE = Qt.ItemDataRole.UserRole
PROMPT_ROLE = Qt.ItemDataRole.UserRole + 1
SHARE_ROLE = Qt.ItemDataRole.UserRole + 2
LIST_MIN_ROWS = 2  # rows the item list keeps however short the window


class ItemDelegate(QStyledItemDelegate):
    """A row: colour swatch, name (bold), prompt (muted, elided), share of the picture."""

    ROW = 46

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(option.rect.width(), self.ROW)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = option.rect.adjusted(4, 2, -4, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#34415e"))
            painter.drawRoundedRect(r, 6, 6)
        elif hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(COLORS["raised"]))
            painter.drawRoundedRect(r, 6, 6)
        colour = index.data(Qt.ItemDataRole.DecorationRole)
        sw = QRect(r.left() + 10, r.center().y() - 8, 16, 16)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(sw, 4, 4)
        if selected:
            painter.setPen(QColor("white"))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(sw.adjusted(-2, -2, 2, 2), 5, 5)
        share = index.data(SHARE_ROLE) or ""
        fm = QFontMetrics(option.font)
        share_w = fm.horizontalAdvance(share) + 8
        text_x = sw.right() + 12
        text_w = r.right() - text_x - share_w - 6
        name_font = QFont(option.font)
        name_font.setWeight(QFont.Weight.DemiBold)
        painter.setFont(name_font)
        painter.setPen(QColor(COLORS["text"]))
        name = QFontMetrics(name_font).elidedText(
            index.data(Qt.ItemDataRole.DisplayRole), Qt.TextElideMode.ElideRight, text_w
        )
        painter.drawText(
            QRect(text_x, r.top() + 5, text_w, 18), Qt.AlignmentFlag.AlignVCenter, name
        )
        prompt = index.data(PROMPT_ROLE) or ""
        small = scaled_font(option.font, 0.9)
        painter.setFont(small)
        painter.setPen(QColor(COLORS["muted"]))
        prompt = QFontMetrics(small).elidedText(prompt, Qt.TextElideMode.ElideRight, text_w)
        painter.drawText(
            QRect(text_x, r.top() + 23, text_w, 16), Qt.AlignmentFlag.AlignVCenter, prompt
        )
        painter.setFont(option.font)
        painter.drawText(
            QRect(r.right() - share_w, r.top(), share_w - 4, r.height()),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
            share,
        )
        painter.restore()


class ItemsList(QListWidget):
    """The list of items; hovering a row highlights the item on the canvas, dragging
    rows out (``drag_started``) carries the selected items to another program."""

    hovered = Signal(object)  # item id or None
    drag_started = Signal()  # a drag of the selected rows began (see ui.clipboard.drag_out)
    menu_asked = Signal(int, QPoint)  # a right-click on an item's row: its id, global point

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("itemsList")
        self.setItemDelegate(ItemDelegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setMouseTracking(True)
        self.setMinimumHeight(self.sizeHint().height())
        self.setUniformItemSizes(True)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerItem)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_Hover)
        self.entered.connect(lambda idx: self.hovered.emit(idx.data(ITEM_ROLE)))
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)

    def sizeHint(self) -> QSize:
        # The list takes what the panel has left (it stretches); asking only for a few
        # rows lets a short dock show the name and prompt fields below it unscrolled.
        return QSize(super().sizeHint().width(), LIST_MIN_ROWS * ItemDelegate.ROW + 4)

    def startDrag(self, _actions) -> None:
        # Not Qt's drag of list rows: the window drags the items' cut-out (pixels the
        # panel does not hold).
        self.drag_started.emit()

    def leaveEvent(self, event: QEvent) -> None:
        self.hovered.emit(None)
        super().leaveEvent(event)

    def contextMenuEvent(self, event) -> None:
        """A right-click on a row asks for the item's commands, as on the picture: the
        row is selected first unless it is among the selected (a layers panel's way)."""
        row = self.itemAt(event.pos())
        if row is None:
            return
        if not row.isSelected():
            # it alone; the panel hands the selection on to the document
            self.setCurrentItem(row, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.menu_asked.emit(int(row.data(ITEM_ROLE)), event.globalPos())


class ItemsPanel(QWidget):
    """The list plus the selected item's name and prompt fields."""

    prompt_submitted = Signal(int, str)  # item, text: the user pressed Enter
    merge_requested = Signal()
    delete_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self._syncing = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(8)

        head = QHBoxLayout()
        self.count_label = QLabel("No photo")
        self.count_label.setProperty("role", "hint")
        head.addWidget(self.count_label)
        head.addStretch(1)
        lay.addLayout(head)

        self.list = ItemsList()
        lay.addWidget(self.list, 1)

        self.props = QWidget()
        form = QVBoxLayout(self.props)
        form.setContentsMargins(0, 4, 0, 0)
        form.setSpacing(6)
        name_label = QLabel("NAME")
        name_label.setProperty("role", "heading")
        form.addWidget(name_label)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("nameEdit")
        self.name_edit.setPlaceholderText("Item name")
        form.addWidget(self.name_edit)
        prompt_label = QLabel("PROMPT")
        prompt_label.setProperty("role", "heading")
        form.addWidget(prompt_label)
        self.prompt_edit = QLineEdit()
        self.prompt_edit.setObjectName("promptEdit")
        self.prompt_edit.setPlaceholderText("New look, e.g. a white handbag")
        self.prompt_edit.setClearButtonEnabled(True)
        # Prompts typed before, matched anywhere in them ("white" finds "a white handbag"):
        # a designer tries variations of a few ideas, across photos.
        self.prompt_completer = QCompleter(QStringListModel(self), self)
        self.prompt_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.prompt_completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.prompt_completer.setMaxVisibleItems(8)
        self.prompt_completer.popup().setStyleSheet(
            f"QListView {{ background: {COLORS['raised']}; border: 1px solid {COLORS['border']}; }}"
        )
        self.prompt_edit.setCompleter(self.prompt_completer)
        form.addWidget(self.prompt_edit)
        self.prompt_hint = QLabel("Press Enter to edit the selected item.")
        self.prompt_hint.setProperty("role", "hint")
        self.prompt_hint.setWordWrap(True)
        form.addWidget(self.prompt_hint)
        buttons = QHBoxLayout()
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("Merge the selected items into the first (Ctrl+M)")
        self.delete_button = QPushButton("Remove")
        self.delete_button.setToolTip("Remove the item from the picture (Delete)")
        # Enabled by the window (the Redraw action's state), whatever is selected: the
        # pixels to paint again are wherever items were reshaped.
        self.redraw_button = QPushButton("Redraw")
        self.redraw_button.setToolTip(
            "Paint the picture again where the brush, eraser or a merge changed an item's "
            "shape (Ctrl+R)"
        )
        self.redraw_button.setEnabled(False)
        buttons.addWidget(self.merge_button)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.redraw_button)
        buttons.addStretch(1)
        form.addLayout(buttons)
        lay.addWidget(self.props)

        self.list.itemSelectionChanged.connect(self._on_list_selection)
        self.list.hovered.connect(self._on_list_hover)
        self.list.itemDoubleClicked.connect(lambda _it: self.name_edit.setFocus())
        self.name_edit.editingFinished.connect(self._commit_name)
        self.prompt_edit.returnPressed.connect(self._submit_prompt)
        self.merge_button.clicked.connect(self.merge_requested)
        self.delete_button.clicked.connect(self.delete_requested)
        self._update_props()

    # ----- document ---------------------------------------------------------------------

    def set_document(self, doc: Document | None) -> None:
        if self.doc is not None:
            self.doc.changed.disconnect(self._on_doc_changed)
            self.doc.selection_changed.disconnect(self._on_doc_selection)
        self.doc = doc
        if doc is not None:
            doc.changed.connect(self._on_doc_changed)
            doc.selection_changed.connect(self._on_doc_selection)
        self.rebuild()

    def _on_doc_changed(self, parts: frozenset) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        self._syncing = True
        self.list.clear()
        doc = self.doc
        if doc is None:
            self.count_label.setText("No photo")
            self._syncing = False
            self._update_props()
            return
        colours = item_colours(len(doc.items))
        counts = doc.counts
        total = max(int(counts.sum()), 1)
        visible = doc.visible_items()
        swapped = look_names(doc.project)
        for k in visible:
            it = doc.items[k]
            row = QListWidgetItem(it.name)
            row.setData(ITEM_ROLE, k)
            row.setData(Qt.ItemDataRole.DecorationRole, QColor(*[int(c) for c in colours[k]]))
            look = f"looks like {swapped[k]}" if k in swapped else "learned look"
            row.setData(PROMPT_ROLE, it.prompt or (look if it.tokens else "no prompt"))
            share = 100.0 * counts[k] / total
            row.setData(SHARE_ROLE, f"{share:.0f}%" if share >= 1 else "<1%")
            row.setToolTip(f"{it.name} — {counts[k]:,} pixels")
            self.list.addItem(row)
        n = len(visible)
        self.count_label.setText(counted(n, "item"))
        self._syncing = False
        self._on_doc_selection()

    def _on_doc_selection(self) -> None:
        doc = self.doc
        self._syncing = True
        selected = set(doc.selection) if doc else set()
        current = None
        for i in range(self.list.count()):
            row = self.list.item(i)
            on = row.data(ITEM_ROLE) in selected
            row.setSelected(on)
            if doc and row.data(ITEM_ROLE) == doc.current:
                current = row
        if current is not None:
            # a row picked on the canvas comes into full view, not half of it at an edge
            row, view = self.list.visualItemRect(current), self.list.viewport().rect()
            if row.top() < view.top() or row.bottom() > view.bottom():
                self.list.scrollToItem(current, QAbstractItemView.ScrollHint.PositionAtCenter)
        self._syncing = False
        self._update_props()

    def _on_list_selection(self) -> None:
        if self._syncing or self.doc is None:
            return
        chosen = [r.data(ITEM_ROLE) for r in self.list.selectedItems()]
        # Keep the order the user picked them in: old selection first, new ones after.
        ordered = [k for k in self.doc.selection if k in chosen]
        ordered += [k for k in chosen if k not in ordered]
        self.doc.select(ordered)

    def _on_list_hover(self, item) -> None:
        if self.doc is not None:
            self.doc.set_hover(item)

    # ----- properties -------------------------------------------------------------------

    def _update_props(self) -> None:
        doc = self.doc
        k = doc.current if doc else None
        one = k is not None
        self.name_edit.setEnabled(one)
        self.prompt_edit.setEnabled(one)
        self.delete_button.setEnabled(one)
        self.merge_button.setEnabled(bool(doc and len(doc.selection) > 1))
        if one:
            it = doc.items[k]
            # a long name or prompt shows its start, not its end (where setText leaves
            # the cursor)
            if not self.name_edit.hasFocus():
                self.name_edit.setText(it.name)
                self.name_edit.setCursorPosition(0)
            if not self.prompt_edit.hasFocus():
                self.prompt_edit.setText(it.prompt)
                self.prompt_edit.setCursorPosition(0)
            if len(doc.selection) > 1:
                self.prompt_hint.setText(
                    f"{len(doc.selection)} items selected: Enter gives {it.name} this prompt "
                    "and regenerates the others to fit; a drag or the arrow keys move them "
                    "all, Shift+H flips them, Ctrl+D duplicates them, Delete removes them."
                )
            else:
                hint = f"Press Enter to regenerate {it.name} from this prompt."
                swapped = look_names(doc.project).get(k)
                if swapped:  # what "*" means is not what it was photographed as
                    hint += f" It looks like {swapped}; “*” in the prompt stands for that."
                self.prompt_hint.setText(hint)
        else:
            self.name_edit.clear()
            self.prompt_edit.clear()
            self.prompt_hint.setText("Select an item on the picture or in the list.")

    def _commit_name(self) -> None:
        doc = self.doc
        if doc is None or doc.current is None:
            return
        text = self.name_edit.text()
        if text.strip() and text.strip() != doc.items[doc.current].name:
            doc.rename(doc.current, text)

    def set_prompt_suggestions(self, prompts: list[str]) -> None:
        """The prompts the prompt field suggests as the user types, newest first."""
        self.prompt_completer.model().setStringList(prompts)

    def _submit_prompt(self) -> None:
        doc = self.doc
        if doc is None or doc.current is None:
            return
        self.prompt_submitted.emit(doc.current, self.prompt_edit.text().strip())
