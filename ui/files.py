"""Opening, saving and exporting pictures without freezing the window.

At a photo's own resolution these are slow. On the 2-core machine, 24 megapixels with a
photo's grain: decoding a PNG 0.9 s, opening a project 1.1 s, a project's first save 3.3 s
(PNG encoding), exporting a PNG 3.4 s and a WebP 2.6 s. So work on a picture of
``aside_from`` pixels or more runs on a thread of its own, the *files thread*, and its
answer lands on the UI thread when it is ready; the window stays live meanwhile. Smaller
pictures are read and written at once, so they show without a flicker.

The files thread is not the previews' side thread (:mod:`ui.side_thread`): an export may
take seconds, and a drop's preview should never wait behind one.

A save writes its pictures on the files thread (content-named PNGs that nothing else
touches, :meth:`Project.write_pictures`), and the learned weights when they are new (for
SDXL about a gigabyte), then completes on the UI thread, where the ordinary save finds
them written and only adds the project file. The project file is
therefore always written from the document as it is at that moment, even if it changed
while the pictures were being written.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from dedit_app import colour_profiles
from dedit_app.errors import DEditError
from dedit_app.going_back import picture_before
from dedit_app.imageio import (
    SAVE_FORMATS,
    cut_out,
    image_size,
    load_image,
    readable_suffixes,
    save_format,
    save_image,
    writes_16_bits,
)
from dedit_app.partition import item_areas
from dedit_app.project import Project
from ui.clipboard import cutout_stem
from ui.document import Document, know_areas
from ui.side_thread import SideThread

log = logging.getLogger(__name__)

PROJECT_SUFFIX = ".dedit"


def is_project_path(path: Path) -> bool:
    return path.suffix.lower() == PROJECT_SUFFIX or (path / "project.json").is_file()


def first_openable(paths: list[str]) -> str | None:
    """Of several dropped files, the first photo or project the editor opens (the first
    file when none is, so that its sentence says why); None for none."""
    readable = readable_suffixes()
    for p in paths:
        if is_project_path(Path(p)) or Path(p).suffix.lower() in readable:
            return p
    return paths[0] if paths else None


def picture_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of a photo or a project's photo without reading its pixels;
    None for a project that does not say. Raises DEditError for what cannot be opened at
    all (missing, not an image, too large, a project from a newer version)."""
    if is_project_path(path):
        size = Project.peek_size(path)
        return None if size is None else (size[1], size[0])
    return image_size(path)


def read_picture(path: Path, notes: list[str] | None = None) -> Project:
    """The project at ``path``, or a new one-item project of the photo at ``path``. Its
    items' pixel counts are worked out here too (:func:`ui.document.know_areas`): this
    runs on the files thread for a large picture, and the items list needs them.
    ``notes`` gets the sentences of :func:`dedit_app.imageio.load_image` about what the
    photo's file held that the picture leaves out."""
    if is_project_path(path):
        project = Project.load(path)
        know_areas(project.labels, item_areas(project.labels, len(project.items)))
        return project
    deep: list[np.ndarray] = []
    image = load_image(path, notes=notes, deep=deep)
    return photo_project(image, path.name, colour_profiles.of_file(path), *deep)


def photo_project(
    image: np.ndarray, source: str, profile: bytes | None = None, deep: np.ndarray | None = None
) -> Project:
    """A new project of ``image`` ``(H, W, 3)`` uint8 RGB with one item, the whole picture,
    until its items are found; ``source`` is the photo's file name, ``profile`` its colour
    profile (ICC bytes) or None, ``deep`` the photo at 16 bits (``(H, W, 3)`` uint16) when
    its file had them."""
    labels = np.zeros(image.shape[:2], np.int32)
    know_areas(labels, np.array([labels.size], np.int64))  # one item: every pixel
    return Project.new(image, labels, ["picture"], source=source, profile=profile, deep=deep)


def _delete(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):  # already gone, or will go at the next save
            path.unlink()


@contextlib.contextmanager
def wait_cursor() -> Iterator[None]:
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        yield
    finally:
        QApplication.restoreOverrideCursor()


@dataclass
class _Saving:
    doc: Document
    target: Path
    ticket: int
    weights: tuple | None  # the pending weights being written with the pictures


class FileController(QObject):
    """The window's File menu: open, save, save as, export. ``window.files``."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.w = window
        self.thread = SideThread(self, "dedit-files")
        self.aside_from = 4_000_000  # pixels: larger pictures are read and written aside
        self.weights_aside_from = 64 << 20  # bytes of learned weights written aside
        self._opening: int | None = None  # ticket of a photo or project being read
        self._saving: _Saving | None = None
        self._save_next: Path | None = None  # asked for while a save was under way

    def is_large(self, size: tuple[int, int] | None) -> bool:
        return size is None or size[0] * size[1] >= self.aside_from

    @property
    def busy(self) -> bool:
        """True while anything is being read or written."""
        return self.thread.busy

    @property
    def opening(self) -> bool:
        """True while a photo or project is being read on the files thread."""
        return self._opening is not None

    @property
    def saving(self) -> bool:
        return self._saving is not None

    def shutdown(self) -> None:
        """The window is closing: exports asked for are written; nothing else lands."""
        self.thread.shutdown(finish=True)

    # ----- opening ----------------------------------------------------------------------

    def open_path(self, path: str | Path) -> bool:
        """Open a photo (and find its items) or a ``.dedit`` project. False when refused at
        once (missing, not an image, too large, a newer project, or the user kept the
        current picture). A large one arrives later, or its error if it turns out
        damaged; one chosen later wins over one still being read."""
        path = Path(path)
        if not self.w.may_replace():
            return False
        doc = self.w.doc
        since = doc.undo.index() if doc is not None else None
        try:
            size = picture_size(path)
            self.stop_opening()  # a newer choice replaces a picture still being read
            self._opening = self.read(
                path,
                size,
                lambda project: self._opened(path, project, doc, since),
                self._open_failed,
            )
        except DEditError as err:
            self.w.show_error(str(err))
            return False
        if self._opening is not None:
            dims = f" ({size[0]}×{size[1]})" if size else ""
            self.w.status_message.setText(f"Opening {path.name}{dims}…")
        return True

    def read(self, path: Path, size, on_read, on_failed) -> int | None:
        """Read the photo or project at ``path`` (``size`` from :func:`picture_size`) into
        a Project for ``on_read(project)``. Large: on the files thread, returning its
        ticket; ``on_read`` or ``on_failed(sentence)`` runs later. Small: at once, with
        ``on_read`` run inside this call and None returned; DEditError if it fails. What
        the photo's file held that the picture leaves out (transparency, later frames) is
        said once it shows."""
        notes: list[str] = []

        def arrived(project: Project) -> None:
            on_read(project)
            self._say_left_out(project, notes)

        if self.is_large(size):
            return self.thread.submit(
                f"Opening {path.name}", lambda: read_picture(path, notes), arrived, on_failed
            )
        with wait_cursor():
            project = read_picture(path, notes)
        arrived(project)
        return None

    def _say_left_out(self, project: Project, notes: list[str]) -> None:
        # only for a picture that is shown: not when the user kept the current one instead
        shown = (self.w.doc, self.w.reference_photo.doc)
        if notes and any(doc is not None and doc.project is project for doc in shown):
            self.w.show_info(" ".join(notes))

    def stop_opening(self) -> None:
        if self._opening is not None:
            self.thread.forget(self._opening)
            self._opening = None

    def _opened(self, path: Path, project: Project, doc: Document | None, since) -> None:
        self._opening = None
        # Keeping or discarding the current picture was asked before reading; if it was
        # changed meanwhile, those changes are worth asking about again.
        changed = self.w.doc is doc and doc is not None and doc.undo.index() != since
        if changed and not self.w.maybe_discard():
            self.w.status_message.setText(f"Kept the current picture; {path.name} not opened.")
            return
        self._show(path, project)

    def _open_failed(self, message: str) -> None:
        self._opening = None
        self.w.status_message.setText("")
        self.w.show_error(message)

    def _show(self, path: Path, project: Project) -> None:
        height, width = project.size
        if project.folder is not None:
            self._present(project, f"Opened the project {path.name}.", path)
        else:
            deep = "" if project.deep is None else ", 16 bits per channel"
            self._present(project, f"Opened {path.name} ({width}×{height}{deep}).", path)

    def open_pixels(
        self,
        image: np.ndarray,
        source: str,
        notes: Sequence[str] = (),
        profile: bytes | None = None,
    ) -> None:
        """Show ``image`` ``(H, W, 3)`` uint8 RGB, which came from no file (pasted), as a new
        photo named ``source``, and find its items; ``notes`` (what it lost on the way, from
        :func:`dedit_app.imageio.from_pixels`) are said with it; ``profile``: the colour
        profile the clipboard gave with it, or None. The caller has asked about the current
        picture's changes already."""
        self.stop_opening()  # the pasted picture is the newer choice
        project = photo_project(image, source, profile)
        height, width = project.size
        said = f"Pasted a picture ({width}×{height}); it is not saved yet."
        self._present(project, " ".join([said, *notes]))

    def _present(self, project: Project, said: str, path: Path | None = None) -> None:
        """Make ``project`` the window's document (a recent file when it has a ``path``),
        say ``said``, and find a new photo's items."""
        w = self.w
        w.set_document(Document(project, w))
        if path is not None:
            w.remember(path, project.image, project.profile)
        w.dismiss_message()
        w.status_message.setText(said)
        if project.folder is None:
            w.segmenting.segment_auto(first=True)

    # ----- saving -----------------------------------------------------------------------

    def save(self, wait: bool = False) -> bool:
        doc = self.w.doc
        if doc is None:
            return False
        if doc.folder is None:
            return self.save_as(wait)
        return self.save_project(doc.folder, wait)

    def save_as(self, wait: bool = False) -> bool:
        doc = self.w.doc
        if doc is None:
            return False
        stem = Path(doc.project.source or "untitled").stem
        path, _ = QFileDialog.getSaveFileName(
            self.w, "Save the project", stem + PROJECT_SUFFIX, "D-Edit projects (*.dedit)"
        )
        if not path:
            return False
        return self.save_project(path, wait)

    def save_project(self, path: str | Path, wait: bool = False) -> bool:
        """Save the document as a ``.dedit`` folder. A small picture without new learned
        weights, or ``wait``: saved when this returns True. Otherwise True when the save
        has started; it completes when its pictures and weights are written (or its error
        is shown). False, with a message, when refused at once."""
        doc = self.w.doc
        if doc is None:
            return False
        path = Path(path)
        if path.suffix.lower() != PROJECT_SUFFIX:
            path = path.with_name(path.name + PROJECT_SUFFIX)
        if self._saving is not None:
            if not wait:  # one save at a time: this one follows the one under way
                self._save_next = path
                return True
            self.finish_saving()
        project = doc.project
        pictures = project.pictures()
        # every earlier picture the history holds in memory is encoded too: forty edits of
        # a 3 MP photo held the window 11 s when only the picture on show was counted
        # a patch (an earlier picture kept as the box its edit changed) compares two
        # pictures to find its box: it counts as one
        # (a file linked from the project's folder costs no encoding)
        shapes = [
            np.shape(a[0] if k == "patch" else a)
            for k, a in pictures
            if k not in ("labels", "file")
        ]
        pixels = sum(shape[0] * shape[1] for shape in shapes)
        heavy = project.pending_bytes() >= self.weights_aside_from or pixels >= self.aside_from
        if wait or not (heavy or self.is_large(doc.image.shape[1::-1])):
            return self._save_now(doc, path)
        try:
            project.validate()
            project.make_folder(path)
        except DEditError as err:
            self.w.show_error(str(err))
            return False
        weights = project.pending_weights
        ticket = self.thread.submit(
            f"Saving {path.name}",
            lambda: Project.write_pictures(path, pictures, weights),
            self._pictures_written,
            self._save_failed,
        )
        self._saving = _Saving(doc, path, ticket, weights)
        self.w.status_message.setText(f"Saving {path.name}…")
        return True

    def finish_saving(self) -> None:
        """Complete a save under way now, waiting for its pictures, and the save asked for
        after it: before the document is replaced or the window closes, so that a save
        asked for is never lost."""
        saving = self._saving
        if saving is None:
            return
        with wait_cursor():
            try:
                name = self.thread.take(saving.ticket)
            except Exception:  # noqa: BLE001 - the save below meets the same trouble and says so
                log.warning("Writing the pictures of %s ahead failed", saving.target, exc_info=True)
                name = None
            self._complete(name, wait=True)

    def _pictures_written(self, name: str | None) -> None:
        self._complete(name, wait=False)

    def _complete(self, name: str | None, wait: bool) -> None:
        """The save under way has its pictures (and its weights as ``name``) written: save
        the project file, then start the save asked for meanwhile, if any."""
        saving, self._saving = self._saving, None
        following, self._save_next = self._save_next, None
        if saving is None or saving.doc is not self.w.doc:
            return  # the document was closed (and its changes discarded) meanwhile
        if name is not None:
            saving.doc.project.adopt_weights(saving.weights, name)
        saved = self._save_now(saving.doc, saving.target)
        if saved and following is not None and (saving.doc.dirty or following != saving.target):
            self.save_project(following, wait)

    def _save_failed(self, message: str) -> None:
        self._saving = self._save_next = None
        self.w.status_message.setText("")
        self.w.show_error(message)

    def _save_now(self, doc: Document, path: Path) -> bool:
        old_weights: list[Path] = []
        try:
            with wait_cursor():
                saved = doc.save(path, old_weights)
        except DEditError as err:
            self.w.show_error(str(err))
            return False
        if old_weights:  # no longer named by any project file: deleted off the UI thread
            self.thread.submit(
                f"Deleting the old learned weights of {saved.name}",
                lambda: _delete(old_weights),
                lambda _none: None,
                lambda message: log.warning("%s", message),
            )
        self.w.remember(saved, doc.image, doc.project.profile)
        self.w.status_message.setText(f"Saved {saved.name}.")
        self.w.update_title()
        return True

    # ----- exporting --------------------------------------------------------------------

    def export_cutout_dialog(self) -> None:
        """Ask where to export the selected items as a cut-out (PNG or WebP)."""
        doc = self.w.doc
        if doc is None:
            return
        if not doc.selection:
            self.w.show_error("Select the items to export first: click them on the picture.")
            return
        offered = f"{cutout_stem(doc, doc.selection)}.png"
        deep = doc.project.deep is not None
        path, chosen = QFileDialog.getSaveFileName(
            self.w,
            "Export the selected items, transparent around them",
            offered,
            ";;".join(DEEP_CUTOUT_FILTERS if deep else CUTOUT_FILTERS),
        )
        if path:
            eight = chosen in EIGHT_BIT_FILTERS
            self.export_cutout(export_name(path, chosen, offered), doc.selection, eight)

    def export_cutout(self, path: str | Path, items, eight_bits: bool = False) -> bool:
        """Write ``items`` at full resolution, cropped to the box round them and
        transparent around them (a PNG at 16 bits for a 16-bit photo, unless
        ``eight_bits``), on the files thread; True when started."""
        doc = self.w.doc
        if doc is None:
            return False
        path, items = Path(path), tuple(items)
        image, labels, profile = doc.image, doc.labels, doc.project.profile
        deep = None if eight_bits else doc.project.deep
        x0, y0, x1, y1 = doc.items_box(items)
        said = functools.partial(self._exported, path, (y1 - y0, x1 - x0), profile, deep)

        def write() -> None:
            crop, alpha, deep_crop = cut_out(image, labels, items, deep)
            save_image(path, crop, quality=100, profile=profile, deep=deep_crop, alpha=alpha)

        self.thread.submit(f"Exporting {path.name}", write, lambda _none: said(), self.w.show_error)
        self.w.status_message.setText(f"Exporting {path.name}…")
        return True

    def export_dialog(self, before: int | None = None) -> None:
        """Ask where to export the picture (``before``: the one from before that edit,
        1-based, as Activity ▸ Edits numbers them)."""
        doc = self.w.doc
        if doc is None:
            return
        stem = Path(doc.project.source or "picture").stem
        offered, title = f"{stem}-edited.png", "Export the picture"
        if before is not None:
            offered, title = f"{stem}-before-edit-{before}.png", f"{title} before edit {before}"
        # a 16-bit photo: PNG and TIFF at 16 bits first, and at 8 for a smaller file
        deep = doc.project.deep is not None
        path, chosen = QFileDialog.getSaveFileName(
            self.w, title, offered, ";;".join(DEEP_EXPORT_FILTERS if deep else EXPORT_FILTERS)
        )
        if path:
            eight = chosen in EIGHT_BIT_FILTERS
            self.export_image(export_name(path, chosen, offered), before=before, eight_bits=eight)

    def export_image(
        self,
        path: str | Path,
        wait: bool = False,
        before: int | None = None,
        eight_bits: bool = False,
    ) -> bool:
        """Write the current picture at its full resolution, or with ``before`` the one
        from before that edit (1-based; read from the project on the files thread). A
        large one is written on the files thread (True when started; the message says
        when it is written); a bad file name is refused at once. A PNG or TIFF of a
        16-bit photo is written at 16 bits, unless ``eight_bits``."""
        doc = self.w.doc
        if doc is None:
            return False
        path = Path(path)
        image, profile = doc.image, doc.project.profile
        deep = None if eight_bits else doc.project.deep
        said = functools.partial(self._exported, path, image.shape, profile, deep)
        try:
            save_format(path, image.shape[:2])
        except DEditError as err:
            self.w.show_error(str(err))
            return False
        if before is not None:
            if not 1 <= before <= len(doc.project.history):
                self.w.show_error(f"There is no edit {before} any more; choose another.")
                return False
            copy = doc.project.job_copy(history=True)
            ticket = self.thread.submit(
                f"Exporting {path.name}",
                lambda: save_image(
                    path, picture_before(copy, before)[0], profile=copy.profile, deep=deep
                ),
                lambda _none: said(),
                self.w.show_error,
            )
            if wait:
                try:
                    self.thread.take(ticket)
                except DEditError as err:
                    self.w.show_error(str(err))
                    return False
                said()
            else:
                self.w.status_message.setText(f"Exporting {path.name}…")
            return True
        if wait or not self.is_large(image.shape[1::-1]):
            try:
                with wait_cursor():
                    save_image(path, image, profile=profile, deep=deep)
            except DEditError as err:
                self.w.show_error(str(err))
                return False
            said()
            return True

        self.thread.submit(
            f"Exporting {path.name}",
            lambda: save_image(path, image, profile=profile, deep=deep),
            lambda _none: said(),
            self.w.show_error,
        )
        self.w.status_message.setText(f"Exporting {path.name}…")
        return True

    def _exported(
        self, path: Path, shape: tuple[int, ...], profile: bytes | None, deep: np.ndarray | None
    ) -> None:
        self.w.status_message.setText("")
        # said, so that a designer knows the colours will look as the photo's elsewhere
        space = ", 16 bits per channel" if writes_16_bits(path, deep) else ""
        if profile is not None:
            space += f", colour profile {colour_profiles.describe(profile)}"
        self.w.show_info(f"Exported {path.name} ({shape[1]}×{shape[0]}{space}).", "ok")


# The Export dialog's types; the first extension of each is what a name without one gets
EXPORT_FILTERS = (
    "PNG (*.png)",
    "JPEG (*.jpg *.jpeg)",
    "WebP (*.webp)",
    "TIFF (*.tif *.tiff)",
)
# The cut-out's: the formats that keep its transparency (WebP lossless, at quality 100)
CUTOUT_FILTERS = ("PNG (*.png)", "WebP (*.webp)")
# A 16-bit photo's: PNG and TIFF at 16 bits per channel (the file's own values where no
# edit painted, docs/IMAGES.md), or at 8 for a smaller file
EIGHT_BIT_FILTERS = ("PNG, 8 bits per channel (*.png)", "TIFF, 8 bits per channel (*.tif *.tiff)")
DEEP_EXPORT_FILTERS = (
    "PNG, 16 bits per channel (*.png)",
    EIGHT_BIT_FILTERS[0],
    *EXPORT_FILTERS[1:3],
    "TIFF, 16 bits per channel (*.tif *.tiff)",
    EIGHT_BIT_FILTERS[1],
)
DEEP_CUTOUT_FILTERS = ("PNG, 16 bits per channel (*.png)", EIGHT_BIT_FILTERS[0], CUTOUT_FILTERS[1])


def export_name(path: str, chosen: str, offered: str) -> Path:
    """The file the Export dialog's answer means: ``path`` as typed, with the extension
    of the type ``chosen`` in the dialog when it has none the editor writes, or when
    it is still the ``offered`` name and only the type was changed (Qt's own dialog
    does not change the name's extension with the type, as the native ones do)."""
    target = Path(path)
    found = re.search(r"\*(\.\w+)", chosen or "")
    if found is None:
        return target
    suffix = found.group(1)
    if target.suffix.lower() not in SAVE_FORMATS:
        return target.with_name(target.name + suffix)
    if target.name == offered and SAVE_FORMATS[target.suffix.lower()] != SAVE_FORMATS[suffix]:
        return target.with_suffix(suffix)
    return target


__all__ = ["FileController", "PROJECT_SUFFIX", "is_project_path", "picture_size", "read_picture"]
