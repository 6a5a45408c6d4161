"""The recent photos and projects: File ▸ Open recent, the start page's list, and the
thumbnails that list shows (``window.recent``).

The list itself lives in the editor's settings (:class:`ui.settings.EditorSettings`);
this keeps the menu, the start page and the thumbnails (:mod:`ui.thumbnails`) in step with
it. Opening a recent file that has gone takes it off the list, with a sentence.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject

from dedit_app.colour_profiles import to_srgb
from ui import thumbnails
from ui.start_page import MAX_SHOWN

log = logging.getLogger(__name__)


def _ignore(_result) -> None:
    pass


class RecentFiles(QObject):
    """Recent files of ``window``; thumbnails are kept in ``thumbnail_dir``."""

    def __init__(self, window, thumbnail_dir: Path) -> None:
        super().__init__(window)
        self.w = window
        self.thumbnail_dir = thumbnail_dir

    @property
    def paths(self) -> list[str]:
        """Absolute paths, most recent first."""
        return self.w.settings.recent

    def remember(
        self, path: Path, image: np.ndarray | None = None, profile: bytes | None = None
    ) -> None:
        """Put ``path`` first among the recent files, and keep a thumbnail of its picture
        ``image`` ``(H, W, 3)`` uint8 RGB, whose colours mean what ``profile`` says
        (shrunk and written on the files thread)."""
        w = self.w
        key = str(path.resolve())
        w.settings.add_recent(key)
        w.settings.save(w.qsettings)
        if image is not None:
            folder, keep = self.thumbnail_dir, list(self.paths)

            colours = to_srgb(profile)

            def keep_thumbnail() -> None:
                thumbnails.write(folder, key, image, colours)
                thumbnails.prune(folder, keep)

            # A thumbnail is a nicety: one that cannot be written is only logged.
            w.files.thread.submit("Keeping a thumbnail", keep_thumbnail, _ignore, log.info)
        self.rebuild()

    def open(self, path: str) -> bool:
        """Open a recent file; one that is no longer there is taken off the list, with a
        sentence saying so. False when nothing was opened."""
        w = self.w
        p = Path(path)
        if not p.exists():
            w.settings.recent = [r for r in self.paths if r != path]
            w.settings.save(w.qsettings)
            self.rebuild()
            w.show_error(
                f"“{p.name}” is no longer in {p.parent} (moved, renamed or deleted), "
                "so it was taken off the recent files."
            )
            return False
        return w.open_path(p)

    def rebuild(self) -> None:
        """Show the list in the menu and on the start page; read its thumbnails."""
        w = self.w
        w.recent_menu.clear()
        for p in self.paths:
            a = w.recent_menu.addAction(Path(p).name.replace("&", "&&"))  # "&" is no mnemonic
            a.setToolTip(p)
            a.triggered.connect(lambda _=False, p=p: self.open(p))
        w.recent_menu.setEnabled(bool(self.paths))
        w.start_page.set_recent(self.paths)
        folder, shown = self.thumbnail_dir, self.paths[:MAX_SHOWN]
        if shown:  # read after any thumbnail written just before (one files thread)
            w.files.thread.submit(
                "Reading thumbnails",
                lambda: thumbnails.read(folder, shown),
                w.start_page.set_thumbnails,
                log.info,
            )


__all__ = ["RecentFiles"]
