"""Copy and paste, the way a designer moves pictures between programs.

- **Copy** (Ctrl+C): the selected items as a cut-out, cropped to them, transparent around
  them, ready to drop into a layout; with nothing selected, the whole picture. Always the
  full resolution.
- **Paste** (Ctrl+V): a picture on the clipboard (a screenshot, a layer copied in another
  program) opens as a new photo, as if it were a file; a copied image file opens as that
  file. Transparency is composited on white, as for files (:func:`dedit_app.imageio.from_pixels`).

A text field with the keyboard focus keeps Ctrl+C and Ctrl+V for its text: Qt gives the
focused line edit those standard keys before any window shortcut.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QApplication

from dedit_app.errors import DEditError
from dedit_app.imageio import from_pixels
from ui.imaging import cutout_image, qimage_rgba, rgb_image

PASTED_NAME = "pasted.png"  # the pasted photo's name: Save suggests pasted.dedit


def copy(window) -> str:
    """Put the selected items (or the picture) on the clipboard; returns the sentence the
    status bar shows ("" when there is no picture)."""
    doc = window.doc
    if doc is None:
        return ""
    height, width = doc.image.shape[:2]
    if not doc.selection:
        QApplication.clipboard().setImage(rgb_image(doc.image))
        return f"Copied the picture ({width}×{height})."
    boxes = np.array([doc.bbox(k) for k in doc.selection])
    x0, y0 = boxes[:, :2].min(axis=0)
    x1, y1 = boxes[:, 2:].max(axis=0) + 1
    mask = np.isin(doc.labels[y0:y1, x0:x1], doc.selection)
    QApplication.clipboard().setImage(cutout_image(doc.image[y0:y1, x0:x1], mask))
    names = ", ".join(doc.item_name(k) for k in doc.selection)
    return f"Copied {names} as a cut-out ({x1 - x0}×{y1 - y0}, transparent around it)."


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
    try:
        image = from_pixels(qimage_rgba(img), "The pasted picture")
    except DEditError as err:
        window.show_error(str(err))
        return False
    if not window.maybe_discard():
        return False
    window.files.open_pixels(image, PASTED_NAME)
    return True


__all__ = ["PASTED_NAME", "copy", "paste"]
