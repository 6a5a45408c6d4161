"""A wide-gamut photo on the canvas at 100 %: what turning it into the screen's colours
holds the UI thread for when a picture lands, and while the compare split is dragged.

A Display P3 photo's values are turned into sRGB for the screen (:mod:`ui.canvas_items`).
An edit or an undo changes a box of the picture, so the canvas converts only that box
again, from the picture shown before, beside converting the whole level as it did first.
Dragging the compare split sets the same "before" picture at every move: the canvas keeps
its levels, beside making them again at each move as it did first. Both are checked to
draw the same pixels.

    python scripts/bench.py ui [--quick | --full] --only "screen colours"
"""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import Row, measure, with_ratios  # noqa: E402


def p3_profile() -> bytes:
    """A Display P3 ICC profile, as the test corpus makes it from LittleCMS's sRGB: no
    file to download."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from image_corpus import p3_like_profile

    return p3_like_profile()


def photo_and_edit(profile: str) -> tuple[np.ndarray, np.ndarray]:
    """A smooth ``(H, W, 3)`` photo of 6 MP (24 MP with ``--full``) and the picture after
    an item's edit: a box a ninth of it, its values inverted."""
    height, width = (4000, 6000) if profile == "full" else (2000, 3000)
    rng = np.random.default_rng(5)
    photo = cv2.resize(
        rng.integers(0, 255, (48, 72, 3), dtype=np.uint8), (width, height), cv2.INTER_LINEAR
    )
    edited = photo.copy()
    box = (
        slice(height // 4, height // 4 + height // 3),
        slice(width // 3, width // 3 + width // 3),
    )
    edited[box] = 255 - edited[box]
    return photo, edited


def rows(profile: str) -> Iterator[Row]:
    from dedit_app.colour_profiles import to_srgb
    from ui.app import create_app
    from ui.canvas_items import PhotoItem
    from ui.imaging import qimage_rgb
    from ui.photo_levels import Mipmap

    create_app()
    colours = to_srgb(p3_profile())
    photo, edited = photo_and_edit(profile)
    mp = f"{photo.shape[0] * photo.shape[1] / 1e6:g} MP"

    item = PhotoItem()
    item.colours = colours
    item.set_image(photo)
    item._photo.level(0)  # on show at 100 %
    pictures = [edited, photo]  # an edit, then its undo, then the edit again ...

    def ours():
        item.set_image(pictures[0])
        item._photo.level(0)
        pictures.reverse()

    def whole():
        Mipmap(edited, colours).level(0)

    t_ours, m_ours = measure(ours, repeats=5)
    t_ref, m_ref = measure(whole, repeats=5)
    item.set_image(edited)
    agree = np.array_equal(
        qimage_rgb(item._photo.level(0).toImage()),
        qimage_rgb(Mipmap(edited, colours).level(0).toImage()),
    )
    case = f"P3 picture lands at 100 % @{mp}"
    yield from with_ratios(
        Row(
            case, "convert the changed box", t_ours, m_ours, note=f"a ninth changed; agree={agree}"
        ),
        Row(case, "convert the whole level", t_ref, m_ref),
    )

    splits = iter(np.linspace(0.1, 0.9, 1000))

    def drag():
        item.set_before(photo, next(splits))
        item._before.level(0)

    def remake():
        Mipmap(photo, colours).level(0)

    t_ours, m_ours = measure(drag, repeats=9)
    t_ref, m_ref = measure(remake, repeats=5)
    case = f"compare split dragged, P3 @{mp}"
    yield from with_ratios(
        Row(case, "keep the before picture's levels", t_ours, m_ours, note="per move"),
        Row(case, "make them at every move", t_ref, m_ref),
    )
