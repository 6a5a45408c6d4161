"""The photo's sizes for the canvas (1, 1/2, 1/4, ... of it), each made the first time
it is drawn, and made off the UI thread when that would take longer than a frame.

Making the full-size level of a 24-megapixel photo held the UI thread for 88 ms, and
0.38 s for a Display P3 one (turned into the screen's colours), at every first view at
100 %, every zoom into a new level and every edit landing there; on a Retina screen the
level fit-to-view needs is four times as large. A level expected to take under a frame
(:data:`QUICK_MS`) is still made where it is drawn. A slower one (a wide-gamut photo's,
a 48 MP photo's full size) is made on the canvas's own thread
(:class:`ui.side_thread.SideThread`), and the canvas draws what it has meanwhile: a
level of the same picture already made (sharp or a little soft for a moment), or the
picture shown before at that size (an edit lands when its level is ready, not before;
the compare split's other side and the original held with the backslash key show the
picture on show until theirs is), or a small level made at once. A level that cannot be
made (out of memory) is said so in the window, and tried again at the next zoom.

A level is handed over as a QImage in Qt's own 32-bit format, made by OpenCV: turning it
into a pixmap on the UI thread then copies nothing (0.0 ms at 24 MP, against 41 ms from
24-bit RGB), and making it lets the UI thread run (Qt's conversion holds Python's lock).
A plain 24 MP photo's full-size level now takes 14 ms, not 88.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtGui import QImage, QPixmap

from ui.imaging import area_shrink, changed_box

# What making a level costs on 2 cores (measured with bench.py ui --only "photo levels"),
# in ms per megapixel of the level: 0.6 to shrink it and put it in Qt's format, 14 more
# to turn it into the screen's colours (a photo with a colour profile); and for any level
# but the full-size one, 0.15 per megapixel of the picture, which shrinking reads.
_MS_PER_MP = 0.6
_COLOURS_MS_PER_MP = 14.0
_SHRINK_MS_PER_MP = 0.15
# A level expected to cost less is made where it is drawn; a 24 MP photo's full-size
# level (14 ms) is, a Display P3 one's (0.35 s) and a 48 MP one's are not.
QUICK_MS = 16.0  # a frame
SMALLEST_SIDE = 64  # no level is made whose short side is below this


def screen_image(rgb: np.ndarray) -> tuple[QImage, np.ndarray]:
    """``(H, W, 3)`` uint8 RGB -> a QImage in Format_RGB32, which a pixmap takes without
    converting, and the ``(H, W, 4)`` array whose memory it reads: keep that as long as
    the image and every pixmap made from it. Any thread: OpenCV lets go of Python's lock
    while it converts (Qt's own conversion held it, and so the UI thread, 46 ms at 24 MP).
    """
    h, w = rgb.shape[:2]
    # Format_RGB32 is a native-endian 0xffRRGGBB word: bytes B, G, R, A on every machine
    # PySide6 is built for (x86-64 and ARM64, little-endian)
    bgra = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGRA)
    return QImage(bgra.data, w, h, 4 * w, QImage.Format.Format_RGB32), bgra


@dataclass
class Level:
    """Level ``k`` as made, before it becomes a pixmap: its values ``(h, w, 3)``, those
    in the screen's colours (None: the values are shown as they are), the image and the
    memory it reads (:func:`screen_image`)."""

    k: int
    values: np.ndarray
    shown: np.ndarray | None
    image: QImage
    memory: np.ndarray


class Mipmap:
    """One picture's levels. A picture is never changed in place, so a level made once
    stays right for as long as the mipmap lives.

    With ``colours`` (a photo with a colour profile other than sRGB) each level's values
    and their screen colours are kept (``shown``), and a mipmap made ``like`` another of
    the same picture's size converts only the box where its values differ from that one's:
    an edit, an undo or the picture before an edit changes a box, and converting a whole
    24 MP level took 0.18 s (2 cores) each time a picture landed at 100 %. The cost is one
    more copy of each level drawn, for such photos only."""

    def __init__(
        self,
        image: np.ndarray,
        colours: Callable | None = None,
        like: Mipmap | None = None,
        on_show: int | None = None,
    ) -> None:
        self.array = image
        self.colours = colours  # the photo's values to the screen's (None: as they are)
        self.levels: dict[int, QPixmap] = {}
        self._memory: dict[int, np.ndarray] = {}  # level -> what its pixmap reads
        # level -> (its values, those in the screen's colours); only with colours
        self.shown: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # the other mipmap's, taken now (not the mipmap: a chain of them would be held);
        # with ``on_show``, only the level on show: another one's two copies (144 MB at
        # 24 MP full size) were held until that level was drawn, if ever
        same = like is not None and colours is not None and like.colours is colours
        self._like = {
            k: pair
            for k, pair in (like.shown.items() if same else ())
            if on_show is None or k == on_show
        }
        self.asked: dict[int, int] = {}  # level -> ticket of its making on the canvas's thread
        # levels whose making failed: not asked again until the zoom changes
        self.refused: set[int] = set()
        h, w = image.shape[:2]
        self.top = 0  # the smallest level made
        while min(h, w) >> (self.top + 1) >= SMALLEST_SIDE:
            self.top += 1

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def pixels(self, k: int) -> int:
        h, w = self.array.shape[:2]
        return max(w >> k, 1) * max(h >> k, 1)

    def quick(self, k: int) -> bool:
        """Whether level ``k`` is expected to be made within a frame (:data:`QUICK_MS`)."""
        per_mp = _MS_PER_MP + (_COLOURS_MS_PER_MP if self.colours is not None else 0.0)
        ms = self.pixels(k) / 1e6 * per_mp
        if k:
            ms += self.pixels(0) / 1e6 * _SHRINK_MS_PER_MP
        return ms <= QUICK_MS

    def level(self, k: int) -> QPixmap:
        """The picture shrunk by ``2**k`` (area-averaged), as a pixmap; made here and now
        if it was not made before. UI thread."""
        pm = self.levels.get(k)
        return pm if pm is not None else self.keep(self.make(k))

    def make(self, k: int) -> Level:
        """Level ``k``, made on any thread: shrunk first and then turned into the screen's
        colours, so a wide-gamut photo pays the conversion for the level's pixels only,
        and only where they differ from the picture shown before. Reads the mipmap and
        writes nothing to it."""
        h, w = self.array.shape[:2]
        small = area_shrink(self.array, (max(w >> k, 1), max(h >> k, 1)))
        shown = self._on_screen(k, small) if self.colours is not None else None
        return Level(k, small, shown, *screen_image(small if shown is None else shown))

    def keep(self, level: Level) -> QPixmap:
        """Level ``level.k`` made (:meth:`make`) becomes this mipmap's pixmap. UI thread."""
        self._like.pop(level.k, None)
        if level.shown is not None:
            self.shown[level.k] = (level.values, level.shown)
        self._memory[level.k] = level.memory  # the pixmap may read it (Qt copies nothing)
        pm = self.levels[level.k] = QPixmap.fromImage(level.image)
        return pm

    def nearest(self, k: int) -> QPixmap | None:
        """The made level closest to ``k`` (of two as close, the larger: sharper); None
        if none is made. Not simply the largest: scaling a 24 MP level down at every
        repaint would cost more than making the right one."""
        if not self.levels:
            return None
        return self.levels[min(self.levels, key=lambda j: (abs(j - k), j))]

    def _on_screen(self, k: int, small: np.ndarray) -> np.ndarray:
        """Level ``k``'s values ``small`` in the screen's colours, from the other
        mipmap's level where only a box differs."""
        values, shown = self._like.get(k, (None, None))
        box = None
        if values is not None and values.shape == small.shape:
            box = changed_box(values, small)
            if box is None:  # the same values: the same colours (never changed in place)
                return shown
        if box is None or _area(box) * 2 > small.shape[0] * small.shape[1]:
            return self.colours(small)  # nothing to start from, or most of it changed
        out = shown.copy()
        out[box] = self.colours(small[box])
        return out


def _area(box: tuple[slice, slice]) -> int:
    rows, cols = box
    return (rows.stop - rows.start) * (cols.stop - cols.start)


__all__ = ["QUICK_MS", "Level", "Mipmap", "screen_image"]
