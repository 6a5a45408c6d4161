"""Recovery copies: unsaved work survives a crash, a killed process or a power cut.

A designer may spend minutes preparing a photo and many edits after it; none of that is in
the project until they save. So while the open picture has unsaved changes, the editor
keeps a copy of it beside itself, a minute after the first change since the last copy
(five seconds after an edit lands, one after a preparation does), and brings it back at
the next start if the editor did not close normally.

Where: ``<data folder>/recovery/<slot>.dedit``, an ordinary project bundle
(:mod:`dedit_app.project`, so it is written atomically and read with every check a project
gets) plus ``recovery.json``, which says where the work belongs (``home``: the project it
came from, or none for a photo never saved) and when it was copied. Each running editor
holds ``<slot>.lock`` (a ``QLockFile``, which knows when the process that held it is gone),
so a copy is offered only when its editor is no longer running.

Cost: the copy is written on the files thread (:mod:`ui.files`) from arrays the document
never changes in place, like a large save. Pictures are named for their content and
learned weights are written once (a saved project's are hard-linked), so a later copy
writes only what changed.

The copy is removed when the work is saved, when it is discarded (another picture opened,
or "Discard" on closing), and when the window closes normally. A copy left by a crash
stays until it is restored, or discarded from the start page or the File menu.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QStandardPaths, QTimer
from PySide6.QtWidgets import QMessageBox

from dedit_app.atomic import atomic_write_bytes
from dedit_app.errors import DEditError
from dedit_app.project import PROJECT_FILE, Project
from ui.document import Document
from ui.files import picture_size

log = logging.getLogger(__name__)

RECOVERY_FILE = "recovery.json"
EDIT_DELAY_MS = 5000  # a landed edit is copied this soon; other changes within delay_ms
FORMAT = "dedit-recovery"


def default_root() -> Path:
    """The user's data folder for this application (``~/.local/share/...`` on Linux)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
    return Path(base or Path.home() / ".dedit-studio") / "recovery"


@dataclass
class Copy:
    """A recovery copy left by an editor that is no longer running."""

    folder: Path
    home: Path | None  # the project the work belongs to; None for a photo never saved
    home_digest: str | None  # the digest of home's project.json the work was made from
    source: str  # the photo's file name
    saved: float  # when it was copied (seconds since the epoch)
    lock: QLockFile  # held by this editor from the moment it is found

    @property
    def title(self) -> str:
        return self.home.name if self.home is not None else self.source or "Untitled"

    @property
    def when(self) -> str:
        return time.strftime("%d %b %H:%M", time.localtime(self.saved))


def _lock(folder: Path) -> QLockFile:
    lock = QLockFile(str(folder.with_suffix(".lock")))
    lock.setStaleLockTime(0)  # held for as long as the editor runs; a dead holder frees it
    return lock


def find_copies(root: Path, exclude: Path | None = None) -> list[Copy]:
    """The copies in ``root`` whose editor is gone, newest first, each locked for this
    editor. A slot with no complete copy in it (its editor stopped during the first
    copy, or had nothing to copy) is removed."""
    found: list[Copy] = []
    if not root.is_dir():
        return found
    for folder in sorted(root.glob("*.dedit")):
        if folder == exclude or not folder.is_dir():
            continue
        lock = _lock(folder)
        if not lock.tryLock(0):
            continue  # its editor is still running
        if not (folder / PROJECT_FILE).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlock()
            continue
        meta = _read_meta(folder)
        home, digest = meta.get("home"), meta.get("home_digest")
        found.append(
            Copy(
                folder=folder,
                home=Path(home) if isinstance(home, str) and home else None,
                home_digest=digest if isinstance(digest, str) else None,
                source=str(meta.get("source") or ""),
                saved=float(meta.get("saved") or (folder / PROJECT_FILE).stat().st_mtime),
                lock=lock,
            )
        )
    found.sort(key=lambda c: c.saved, reverse=True)
    return found


def _read_meta(folder: Path) -> dict:
    try:
        meta = json.loads((folder / RECOVERY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the project itself is what matters; it says its own source
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else {}


# Learned weights already written into a slot: (a weak reference to one of their tensors,
# the file's name). A weak reference, so that the tensors are not kept alive by it.
Written = tuple[weakref.ref, str]


def write_copy(slot: Path, project: Project, meta: dict, written: Written | None) -> Written | None:
    """Save ``project`` (a :meth:`Project.job_copy` with history) as the recovery copy in
    ``slot``; any thread. Pending learned weights are written unless ``written`` says this
    slot already holds them. Returns what to pass as ``written`` next time."""
    project.make_folder(slot)
    pending = project.pending_weights
    mark = None
    if pending is not None:
        first = next(iter(pending[0].values()), None)
        name = None
        if written is not None and first is not None and written[0]() is first:
            name = written[1] if (slot / written[1]).is_file() else None
        if name is None:
            name = Project.write_pictures(slot, [], pending)
        project.adopt_weights(pending, name)
        mark = (weakref.ref(first), name) if first is not None else None
    # the pictures of the edits since the last copy, a few at once; the save finds them
    Project.write_pictures(slot, project.pictures())
    project.save(slot, expect=None)  # the slot is this editor's alone: it holds its lock
    atomic_write_bytes(slot / RECOVERY_FILE, json.dumps(meta, indent=1).encode("utf-8"))
    return mark


class Recovery(QObject):
    """The window's recovery copies (``window.recovery``): writes this editor's, offers
    those of editors that did not close normally."""

    def __init__(self, window, root: Path | None = None) -> None:
        super().__init__(window)
        self.w = window
        self.root = Path(root) if root is not None else default_root()
        self.delay_ms = 60_000  # the most work a crash can take: about a minute of it
        self.enabled = True  # benchmarks turn copies off, so none competes with what they time
        self.found: list[Copy] = []
        self._slot: Path | None = None
        self._lock: QLockFile | None = None
        self._written: Written | None = None
        self._stale = False  # the document changed since its last copy
        self._told = False  # a failed copy is explained once, not every minute
        self._doc: Document | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.write)

    @property
    def slot(self) -> Path | None:
        """This editor's copy folder, once it has written one."""
        return self._slot

    # ----- keeping a copy ---------------------------------------------------------------

    def watch(self, doc: Document | None) -> None:
        """``doc`` replaces the window's document: the previous one was saved or its
        changes discarded, so its copy goes."""
        if self._doc is not None:
            self._doc.changed.disconnect(self._changed)
            self._doc.dirty_changed.disconnect(self._changed)
        self._doc = doc
        self._clear()
        if doc is not None:
            doc.changed.connect(self._changed)
            doc.dirty_changed.connect(self._changed)

    def _changed(self, *_args) -> None:
        doc = self.w.doc
        if not self.enabled:
            return
        if doc is None or not doc.dirty:
            self._clear()  # saved (or undone back to the saved state)
            return
        self._stale = True
        parts = _args[0] if _args and isinstance(_args[0], frozenset) else frozenset()
        if self._new_weights(doc):  # minutes of preparing: copied within a second
            self._timer.start(min(self.delay_ms, 1000))
        elif "image" in parts:  # an edit landed (GPU time, a result chosen): within seconds
            remaining = self._timer.remainingTime() if self._timer.isActive() else self.delay_ms
            self._timer.start(min(remaining, EDIT_DELAY_MS))
        elif not self._timer.isActive():
            self._timer.start(self.delay_ms)

    def _new_weights(self, doc: Document) -> bool:
        pending = doc.project.pending_weights
        if pending is None:
            return False
        first = next(iter(pending[0].values()), None)
        return self._written is None or self._written[0]() is not first

    def write(self) -> bool:
        """Copy the document's unsaved work now (on the files thread) if it changed since
        the last copy. True when a copy was started."""
        doc = self.w.doc
        if doc is None or not doc.dirty or not self._stale:
            return False
        if self.w.files.saving:  # the save under way may make the copy unnecessary
            self._timer.start(min(self.delay_ms, 5000))
            return False
        slot = self._claim()
        if slot is None:
            return False
        project = doc.project.job_copy(history=True)
        home = doc.folder
        meta = {
            "format": FORMAT,
            "home": str(home.resolve()) if home is not None else None,
            # home's project.json as this editor last saw it: saving the restored work
            # there is refused if another program saved it since
            "home_digest": doc.home_digest,
            "source": doc.project.source,
            "saved": time.time(),
        }
        written, self._stale = self._written, False
        self.w.files.thread.submit(
            "Keeping a recovery copy",
            lambda: write_copy(slot, project, meta, written),
            self._copied,
            self._copy_failed,
        )
        return True

    def _claim(self) -> Path | None:
        if self._slot is not None:
            return self._slot
        name = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        slot = self.root / f"{name}.dedit"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self._copy_failed(f"Could not create {self.root} ({err.strerror or err}).")
            return None
        lock = _lock(slot)
        if not lock.tryLock(0):
            self._copy_failed(f"Could not create a lock file in {self.root}.")
            return None
        self._slot, self._lock = slot, lock
        return slot

    def _copied(self, written: Written | None) -> None:
        self._written = written
        self._told = False

    def _copy_failed(self, message: str) -> None:
        self._stale = True  # try again at the next change
        log.warning("Recovery copy failed: %s", message)
        if not self._told:
            self._told = True
            self.w.show_error(
                f"No recovery copy of your unsaved work could be kept: {message} "
                "Save your work to keep it safe."
            )

    def _clear(self) -> None:
        """Drop this editor's copy (the work it held was saved or discarded)."""
        self._timer.stop()
        self._stale = False
        self._written = None
        slot = self._slot
        doc = self.w.doc
        if slot is None or (doc is not None and doc.project.folder == slot):
            return  # a restored document not saved yet still reads its pictures there
        self._remove(slot)

    def _remove(self, slot: Path, then=lambda: None) -> None:
        """Delete ``slot`` on the files thread, after any copy still being written there;
        ``then()`` runs on the UI thread when it is gone."""
        self.w.files.thread.submit(
            "Removing the recovery copy",
            lambda: shutil.rmtree(slot, ignore_errors=True),
            lambda _none: then(),
            lambda message: log.warning("%s", message),
        )

    def shutdown(self) -> None:
        """The window closed normally (its work saved or discarded): remove this editor's
        copy and let go of every lock. Call after the files thread has finished."""
        self._timer.stop()
        if self._slot is not None:
            shutil.rmtree(self._slot, ignore_errors=True)
        for lock in [self._lock, *(c.lock for c in self.found)]:
            if lock is not None:
                lock.unlock()
        self._slot = self._lock = None
        self.found = []

    # ----- bringing a copy back -----------------------------------------------------------

    def offer(self) -> None:
        """Look for copies left by editors that did not close normally; offer the newest
        above the picture (the File menu lists them all)."""
        self.found += find_copies(self.root, exclude=self._slot)
        self.w.recovery_changed()
        if self.found:
            newest = self.found[0]
            more = (
                f" ({len(self.found) - 1} more in File ▸ Restore unsaved work)"
                if len(self.found) > 1
                else ""
            )
            self.w.show_info(  # stays until answered or dismissed; the menu keeps it
                f"D-Edit Studio closed before “{newest.title}” was saved. Its work from "
                f"{newest.when} was kept{more}.",
                timeout_ms=0,
                action=("Restore", lambda: self.restore(newest)),
            )

    def restore(self, copy: Copy) -> bool:
        """Open ``copy`` as the document (after asking about the current one's changes).
        It saves to the project it came from; this editor keeps copying into its folder.
        False when refused or it could not be read (said above the picture)."""
        if copy not in self.found or not self.w.may_replace():
            return False
        try:
            size = picture_size(copy.folder)
            self.w.files.read(
                copy.folder,
                size,
                lambda project: self._restored(copy, project),
                lambda message: self._failed(copy, message),
            )
        except DEditError as err:
            self._failed(copy, str(err))
            return False
        return True

    def _restored(self, copy: Copy, project: Project) -> None:
        if copy not in self.found:
            return
        self.found.remove(copy)
        old_slot, old_lock = self._slot, self._lock
        self._slot, self._lock, self._written = copy.folder, copy.lock, None
        if old_slot is not None:  # the document it held was just saved or discarded
            self._remove(old_slot, then=old_lock.unlock)
        self.w.set_document(Document.restored(project, copy.home, self.w, copy.home_digest))
        self.w.recovery_changed()
        self.w.show_info(
            f"Restored “{copy.title}” as it was at {copy.when}. Save it to keep it.", "ok"
        )

    def discard(self, copies: list[Copy]) -> bool:
        """Delete ``copies`` for good, after asking (unless ``window.ask_to_save`` is off).
        True when they go."""
        copies = [c for c in copies if c in self.found]
        if not copies:
            return False
        one = len(copies) == 1
        if self.w.ask_to_save:
            what = (
                f"The work on “{copies[0].title}” kept at {copies[0].when} was never saved."
                if one
                else f"The work in these {len(copies)} copies was never saved."
            )
            answer = QMessageBox.question(
                self.w,
                "Discard unsaved work?",
                f"{what} Discarding deletes {'it' if one else 'them'} for good.",
                QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Discard:
                return False
        for copy in copies:
            self.found.remove(copy)
            self._remove(copy.folder, then=copy.lock.unlock)
        self.w.recovery_changed()
        self.w.show_info(
            f"Discarded the unsaved work on “{copies[0].title}”."
            if one
            else f"Discarded {len(copies)} copies of unsaved work.",
            "ok",
        )
        return True

    def _failed(self, copy: Copy, message: str) -> None:
        # Not offered again this session, and left on disk: the folder may still hold
        # pictures worth rescuing by hand.
        if copy in self.found:
            self.found.remove(copy)
            self.w.recovery_changed()
        self.w.show_error(f"The recovery copy in {copy.folder} could not be opened: {message}")


__all__ = ["Copy", "Recovery", "default_root", "find_copies", "write_copy"]
