"""Copy, paste and drag out: the way a designer moves pictures between programs.

- **Copy** (Ctrl+C): the selected items as a cut-out, cropped to them, transparent around
  them, ready to drop into a layout; with nothing selected, the whole picture. Always the
  full resolution.
- **Paste** (Ctrl+V): a picture on the clipboard (a screenshot, a layer copied in another
  program) opens as a new photo, as if it were a file; a copied image file opens as that
  file. Transparency is composited on white, as for files (:func:`dedit_app.imageio.from_pixels`).

- **Drag out**: a row of the items list dragged into another program drops the item as
  the same cut-out, as picture data and as a PNG file (programs differ in which they
  take). Both are made only when the program asks, at the drop, not when the drag starts.

A text field with the keyboard focus keeps Ctrl+C and Ctrl+V for its text: Qt gives the
focused line edit those standard keys before any window shortcut.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDrag, QImage, QPixmap
from PySide6.QtWidgets import QApplication

from dedit_app.colour_profiles import to_srgb
from dedit_app.errors import DEditError
from dedit_app.imageio import from_pixels
from ui.imaging import cutout_image, qimage_rgba, rgb_image, with_profile

log = logging.getLogger(__name__)

PASTED_NAME = "pasted.png"  # the pasted photo's name: Save suggests pasted.dedit
CUTOUT_MIME = "application/x-dedit-cutout"  # marks our own drag: the window ignores it
DRAG_PREVIEW = 160  # the long edge of the picture under the pointer while dragging, px


def copy(window) -> str:
    """Put the selected items (or the picture) on the clipboard; returns the sentence the
    status bar shows ("" when there is no picture)."""
    doc = window.doc
    if doc is None:
        return ""
    height, width = doc.image.shape[:2]
    profile = doc.project.profile  # the clipboard's PNG embeds it, as an export does
    if not doc.selection:
        QApplication.clipboard().setImage(with_profile(rgb_image(doc.image), profile))
        return f"Copied the picture ({width}×{height})."
    box = doc.items_box(doc.selection)
    cutout = items_cutout(doc.image, doc.labels, doc.selection, box)
    QApplication.clipboard().setImage(with_profile(cutout, profile))
    names = ", ".join(doc.item_name(k) for k in doc.selection)
    width, height = box[2] - box[0], box[3] - box[1]
    return f"Copied {names} as a cut-out ({width}×{height}, transparent around it)."


def cutout_stem(doc, items) -> str:
    """A file name (without extension) for the cut-out of ``items``: their names, with
    what a file system may refuse replaced ("bag + cup")."""
    names = " + ".join(doc.item_name(k) for k in items)
    return re.sub(r"[^\w +-]+", "_", names).strip(" _") or "item"


def items_cutout(
    image: np.ndarray,
    labels: np.ndarray,
    items: list[int],
    box: tuple,
    step: int = 1,
    colours: Callable | None = None,
) -> QImage:
    """``image`` ``(H, W, 3)`` inside ``box`` where ``labels`` ``(H, W)`` is one of
    ``items``, transparent elsewhere; every ``step``-th pixel (a quick small preview),
    turned into the screen's colours by ``colours`` for one to look at (None: the
    values as they are, for a copy)."""
    x0, y0, x1, y1 = box
    mask = np.isin(labels[y0:y1:step, x0:x1:step], items)
    crop = image[y0:y1:step, x0:x1:step]
    return cutout_image(crop if colours is None else colours(crop), mask)


def paste(window) -> bool:
    """Open what the clipboard holds as a new photo; False (with a sentence on show) when
    it holds no picture or the user kept the current one."""
    clip = QApplication.clipboard()
    mime = clip.mimeData()
    files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime else []
    if files:
        return window.open_path(files[0])
    img = clip.image()
    if img.isNull():
        window.show_error(
            "The clipboard holds no picture. Copy a picture or an image file in another "
            "program, then paste it here."
        )
        return False
    notes: list[str] = []
    try:
        image = from_pixels(qimage_rgba(img), "The pasted picture", notes=notes)
    except DEditError as err:
        window.show_error(str(err))
        return False
    if not window.may_replace():
        return False
    # transparency placed on white is said, as for a file; a screenshot on a Mac comes
    # tagged Display P3, and its exports should say so as a photo's do
    profile = bytes(img.colorSpace().iccProfile()) if img.colorSpace().isValid() else None
    window.files.open_pixels(image, PASTED_NAME, notes, profile)
    return True


class CutoutMime(QMimeData):
    """The drag data of a cut-out of items, made when a drop target first asks for it.

    Offers the picture (``image/png``, and Qt's own image type that each platform turns
    into its picture formats) and a PNG file named after the items (``text/uri-list``), in
    ``folder``. The pixels are those of the moment the drag started.
    """

    def __init__(self, doc, items: list[int], folder: Path, on_error) -> None:
        """``on_error(sentence)``: told when the file cannot be written (the drop then
        gets no file; the picture data still works)."""
        super().__init__()
        self._image_arr, self._labels = doc.image, doc.labels  # never changed in place
        self._profile = doc.project.profile
        self._items = list(items)
        self.box = doc.items_box(items)
        self.file = folder / f"{cutout_stem(doc, items)}.png"
        self._on_error = on_error
        self._image: QImage | None = None
        self._png: QByteArray | None = None
        self._written = False

    def preview(self) -> QImage:
        """A small cut-out, at most :data:`DRAG_PREVIEW` px on its long edge (quick)."""
        x0, y0, x1, y1 = self.box
        step = max(1, math.ceil(max(x1 - x0, y1 - y0) / DRAG_PREVIEW))
        colours = to_srgb(self._profile)  # seen under the pointer, as on the canvas
        return items_cutout(self._image_arr, self._labels, self._items, self.box, step, colours)

    def image(self) -> QImage:
        """The full-resolution cut-out."""
        if self._image is None:
            cutout = items_cutout(self._image_arr, self._labels, self._items, self.box)
            self._image = with_profile(cutout, self._profile)
        return self._image

    def formats(self) -> list[str]:
        return [CUTOUT_MIME, "image/png", "application/x-qt-image", "text/uri-list"]

    def hasFormat(self, mime: str) -> bool:
        return mime in self.formats()

    def retrieveData(self, mime: str, _type):
        if mime == "application/x-qt-image":
            return self.image()
        if mime == "image/png":
            if self._png is None:  # a drop target may ask more than once; encode once
                self._png = QByteArray()
                buffer = QBuffer(self._png)
                buffer.open(QIODevice.OpenModeFlag.WriteOnly)
                self.image().save(buffer, "PNG")
            return self._png
        if mime == "text/uri-list":
            return [QUrl.fromLocalFile(str(self.file))] if self._write() else []
        if mime == CUTOUT_MIME:
            return QByteArray(b"1")
        return None

    def _write(self) -> bool:
        if not self._written:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                part = self.file.with_name(self.file.name + ".part")
                if not self.image().save(str(part), "PNG"):
                    raise OSError("the PNG could not be written")
                part.replace(self.file)
                self._written = True
            except OSError as err:
                log.warning("drag file %s: %s", self.file, err)
                self._on_error(
                    f"Could not write the dragged cut-out to {self.file.parent} ({err}); "
                    "Ctrl+C copies it instead."
                )
        return self._written


def drag_folder() -> Path:
    """Where dragged cut-outs are written for programs that take files (the system's
    temporary folder; each item's file is replaced by its next drag)."""
    return Path(tempfile.gettempdir()) / "d-edit-studio-drag"


def drag_out(window, source) -> Qt.DropAction:
    """Start dragging the selected items out of ``source`` (the items list) as a cut-out;
    returns what the drop target did (IgnoreAction when nothing is selected)."""
    doc = window.doc
    if doc is None or not doc.selection:
        return Qt.DropAction.IgnoreAction
    mime = CutoutMime(doc, doc.selection, drag_folder(), window.show_error)
    drag = QDrag(source)
    drag.setMimeData(mime)
    preview = QPixmap.fromImage(mime.preview())
    drag.setPixmap(preview)
    drag.setHotSpot(QPoint(preview.width() // 2, preview.height() // 2))
    return drag.exec(Qt.DropAction.CopyAction)


def dropped_files(mime: QMimeData) -> list[str]:
    """The local files a drop brings, none when it is this window's own cut-out (dropping
    an item back onto the picture must not open it as a new photo)."""
    if mime.hasFormat(CUTOUT_MIME) or not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]


__all__ = [
    "CUTOUT_MIME",
    "PASTED_NAME",
    "CutoutMime",
    "copy",
    "drag_folder",
    "drag_out",
    "dropped_files",
    "items_cutout",
    "paste",
]
