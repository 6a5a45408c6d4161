"""File ▸ Open: one dialog for photos and projects, where a ``.dedit`` project is a file.

A project is a folder (``holiday.dedit/`` holding ``project.json`` and its pictures), so a
plain file dialog shows it as a folder: double-clicking it goes inside, and the project
could only be opened by finding ``project.json`` there. This dialog is Qt's own (a native
one cannot be told otherwise) and treats a folder whose name ends in ``.dedit`` as a file:
it is listed among the photos with a picture icon and the type "D-Edit project", and
choosing it (selecting it and Open, double-clicking it, or typing its name) chooses the
project. It is also sorted among the photos, not at the top with the folders
(:class:`ProjectsAmongFiles`). Picking ``project.json`` inside one still opens that project.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import (
    QCollator,
    QFileInfo,
    QModelIndex,
    QPointF,
    QRectF,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QDialog, QFileDialog, QFileIconProvider, QLineEdit, QTreeView, QWidget

from ui.files import PROJECT_SUFFIX, is_project_path
from ui.theme import COLORS

PHOTO_PATTERNS = "*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp *.gif"
# The first is what the dialog shows; "D-Edit projects" keeps project.json pickable.
OPEN_FILTERS = (
    f"Photos and projects ({PHOTO_PATTERNS} *{PROJECT_SUFFIX})",
    f"Photos ({PHOTO_PATTERNS})",
    f"D-Edit projects (*{PROJECT_SUFFIX} project.json)",
    "All files (*)",
)
PROJECT_TYPE = "D-Edit project"


def is_bundle(path: Path) -> bool:
    """True for a ``.dedit`` project folder, which the Open dialog lists as a file."""
    return path.suffix.lower() == PROJECT_SUFFIX and path.is_dir()


def opened_path(path: Path) -> Path:
    """What choosing ``path`` opens: the project for its ``project.json``, else ``path``."""
    if path.name == "project.json" and is_project_path(path.parent):
        return path.parent
    return path


def _project_icon() -> QIcon:
    """Two stacked pictures, the front one filled: a project, set apart from the folders'
    icon at a list's 16 pixels as at larger sizes."""
    ic = QIcon()
    for size in (16, 24, 32, 48):
        pm = QPixmap(size, size)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.scale(size / 16, size / 16)
        p.setPen(QPen(QColor(COLORS["muted"]), 1.2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRoundedRect(QRectF(4.5, 1.5, 10.5, 8.5), 1.5, 1.5)  # the picture behind
        p.setPen(QPen(QColor(COLORS["text"]), 1))  # also seen on a selected row's accent
        p.setBrush(QColor(COLORS["accent"]))
        p.drawRoundedRect(QRectF(1, 5, 11.5, 9.5), 1.5, 1.5)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#ffffff"))
        p.drawEllipse(QPointF(4.2, 8), 1.2, 1.2)
        hills = QPainterPath(QPointF(2, 13.5))
        hills.lineTo(6, 9.5)
        hills.lineTo(8.5, 12)
        hills.lineTo(10, 10.5)
        hills.lineTo(11.5, 12)
        hills.lineTo(11.5, 13.5)
        hills.closeSubpath()
        p.drawPath(hills)
        p.end()
        ic.addPixmap(pm)
        ic.addPixmap(pm, QIcon.Mode.Selected)  # as drawn, not tinted with the selection
    return ic


class ProjectIcons(QFileIconProvider):
    """The system's icons, but a project's own icon and type for a ``.dedit`` folder.

    The file model asks from its own thread, so the icon is made here, once."""

    def __init__(self) -> None:
        super().__init__()
        self.project = _project_icon()

    def icon(self, what):  # noqa: ANN001 - an IconType or a QFileInfo
        if isinstance(what, QFileInfo) and is_bundle(Path(what.absoluteFilePath())):
            return self.project
        return super().icon(what)

    def type(self, info: QFileInfo) -> str:
        if is_bundle(Path(info.absoluteFilePath())):
            return PROJECT_TYPE
        return super().type(info)


_DIGITS = re.compile(r"(\d+)")


def natural_less(collator: QCollator, a: str, b: str) -> bool:
    """``a`` sorts before ``b`` with runs of digits read as numbers ("photo 2" before
    "photo 10") and the text between compared by ``collator``. Done here because
    ``QCollator``'s numeric mode needs ICU, which not every Qt build has (PySide6's
    wheels for Linux do not)."""
    parts_a, parts_b = _DIGITS.split(a), _DIGITS.split(b)  # text, digits, text, ...
    for k, (x, y) in enumerate(zip(parts_a, parts_b)):
        if k % 2:
            if int(x) != int(y):
                return int(x) < int(y)
        elif (order := collator.compare(x, y)) != 0:
            return order < 0
    if len(parts_a) != len(parts_b):
        return len(parts_a) < len(parts_b)
    return collator.compare(a, b) < 0  # "photo 02" and "photo 2": still an order


class ProjectsAmongFiles(QSortFilterProxyModel):
    """The dialog's folder listing, sorted as Qt's file model sorts it (folders first,
    names case aside) but in natural order, "photo 2" before "photo 10"
    (:func:`natural_less`), and with a ``.dedit`` project sorted as the file it stands
    for: "holiday.dedit" between "holiday.png" and "house.jpg", not above every photo
    with the folders."""

    def __init__(self, parent=None) -> None:  # noqa: ANN001 - a QObject
        super().__init__(parent)
        self.names = QCollator()
        self.names.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802 - Qt's
        model = self.sourceModel()
        a, b = model.fileInfo(left), model.fileInfo(right)
        folder_a = a.isDir() and not is_bundle(Path(a.absoluteFilePath()))
        folder_b = b.isDir() and not is_bundle(Path(b.absoluteFilePath()))
        if folder_a != folder_b:  # folders first, whichever way the column is sorted
            return folder_a != (self.sortOrder() == Qt.SortOrder.DescendingOrder)
        column = left.column()
        if column == 1 and a.size() != b.size():  # Size
            return a.size() < b.size()
        if column == 3 and a.lastModified() != b.lastModified():  # Date Modified
            return a.lastModified() < b.lastModified()
        if column == 2:  # Type
            type_a, type_b = model.type(left), model.type(right)
            if type_a != type_b:
                return natural_less(self.names, type_a, type_b)
        return natural_less(self.names, a.fileName(), b.fileName())


class OpenDialog(QFileDialog):
    """The Open dialog, starting in ``folder`` ("" for the current one). When it is
    accepted, :meth:`chosen` is the photo or project to open."""

    def __init__(self, parent: QWidget | None = None, folder: str = "") -> None:
        super().__init__(parent, "Open a photo or a project", folder, ";;".join(OPEN_FILTERS))
        self.setOption(QFileDialog.Option.DontUseNativeDialog)
        self.setFileMode(QFileDialog.FileMode.ExistingFile)
        self.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        self.icons = ProjectIcons()  # kept: the dialog does not own its icon provider
        self.setIconProvider(self.icons)
        self.setProxyModel(ProjectsAmongFiles(self))
        self._project: Path | None = None
        self._fit_columns()
        self.currentChanged.connect(self._current)
        # Double-clicking a folder (or reaching one by the sidebar or Back) enters it.
        self.directoryEntered.connect(self._entered)

    def _fit_columns(self) -> None:
        """Widen the details' Size and Type columns (never narrow them) so that "D-Edit
        project" and a photo's size are read whole, not as "D-E…ect"."""
        tree = self.findChild(QTreeView, "treeView")
        if tree is None:
            return
        header, metrics = tree.header(), tree.fontMetrics()
        for column, widest in ((1, "1023.9 KiB"), (2, PROJECT_TYPE)):
            width = metrics.horizontalAdvance(widest) + 2 * metrics.averageCharWidth() + 8
            header.resizeSection(column, max(header.sectionSize(column), width))

    def chosen(self) -> Path | None:
        """The photo or project chosen; None before the dialog is accepted."""
        if self._project is not None:
            return self._project
        if self.result() != QDialog.DialogCode.Accepted:
            return None
        files = self.selectedFiles()
        return opened_path(Path(files[0])) if files else None

    def accept(self) -> None:
        """Open, or Enter: a selected (or typed) project is chosen; a folder is entered."""
        files = self.selectedFiles()
        if len(files) == 1 and is_bundle(Path(files[0])):
            self._choose(Path(files[0]))
        else:
            super().accept()

    def _current(self, path: str) -> None:
        """A selected project's name goes in the name box, as a selected photo's does (Qt
        leaves it as it was for a folder)."""
        name_box = self.findChild(QLineEdit, "fileNameEdit")
        if is_bundle(Path(path)) and name_box is not None and not name_box.hasFocus():
            name_box.setText(Path(path).name)

    def _entered(self, folder: str) -> None:
        path = Path(folder)
        if is_bundle(path):  # a project is opened, not looked into
            self.setDirectory(str(path.parent))
            self._choose(path)

    def _choose(self, project: Path) -> None:
        self._project = project
        self.fileSelected.emit(str(project))
        self.done(QDialog.DialogCode.Accepted)


__all__ = [
    "OPEN_FILTERS",
    "OpenDialog",
    "ProjectIcons",
    "ProjectsAmongFiles",
    "is_bundle",
    "opened_path",
]
