"""The photo's levels on the canvas (ui.photo_levels): a large one is made off the UI
thread, and what is drawn meanwhile is the same picture or the one shown before, never
a wait."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from ui import photo_levels  # noqa: E402
from ui.testing import painted_on  # noqa: E402

SIZE = (192, 128)  # the logical pixels painted: the whole photo at 100 %


@pytest.fixture(autouse=True)
def only_small_levels_are_quick(monkeypatch):
    """Only levels of up to 6144 pixels count as quick here: a 128 x 192 photo's
    half-size level is made where it is drawn and its full-size one (24576 pixels) off
    the UI thread, as a 48 MP photo's is in the editor."""
    monkeypatch.setattr(photo_levels.Mipmap, "quick", lambda self, k: self.pixels(k) <= 6144)


@pytest.fixture
def item(qtbot, monkeypatch):
    """A PhotoItem with its own level thread, noting where each level was made."""
    from ui.canvas_items import PhotoItem
    from ui.side_thread import SideThread

    thread = SideThread(name="test-levels")
    made_on: list[tuple[int, bool]] = []  # (level, made on the UI thread)
    make = photo_levels.Mipmap.make

    def watched(self, k):
        made_on.append((k, threading.current_thread() is threading.main_thread()))
        return make(self, k)

    monkeypatch.setattr(photo_levels.Mipmap, "make", watched)
    photo = PhotoItem(thread)
    photo.made_on = made_on
    yield photo
    thread.shutdown()


def _stripes(value: int) -> np.ndarray:
    rng = np.random.default_rng(value)
    photo = rng.integers(0, 256, (128, 192, 3), np.uint8)
    photo[:, ::2] = value  # one-pixel detail: a stand-in level turns it soft
    return photo


def _window_at_100(tmp_path, qtbot):
    """An editor window showing a 128 x 192 photo at 100 %, its full-size level asked."""
    import cv2

    from ui.testing import make_window

    window = make_window(tmp_path)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), _stripes(230)[:, :, ::-1])
    window.open_path(path)
    qtbot.waitUntil(lambda: window.doc is not None and not window.files.busy, timeout=20000)
    window.canvas.actual_pixels()
    window.canvas.viewport().grab()
    return window


def test_a_large_level_is_made_off_the_ui_thread_and_drawn_when_it_comes(item, qtbot):
    photo = _stripes(230)
    item.set_image(photo)
    first = painted_on(item, 1.0, 1.0, SIZE)
    # drawn at once from the quick half-size level
    assert 0 not in item._photo.levels and not item.ready()
    assert not np.array_equal(first, photo)
    assert np.abs(first.astype(int) - photo).mean() < 60  # the same picture, softer
    qtbot.waitUntil(item.ready, timeout=5000)
    np.testing.assert_array_equal(painted_on(item, 1.0, 1.0, SIZE), photo)
    assert (0, False) in item.made_on  # the full-size level: on the level thread
    assert all(not on_ui or item._photo.quick(k) for k, on_ui in item.made_on)


def test_an_edit_lands_sharp_the_picture_before_standing_in_until_its_level_is_made(item, qtbot):
    photo, edited = _stripes(230), _stripes(20)
    item.set_image(photo)
    painted_on(item, 1.0, 1.0, SIZE)
    qtbot.waitUntil(item.ready, timeout=5000)
    item.set_image(edited)  # an edit lands at 100 %
    np.testing.assert_array_equal(painted_on(item, 1.0, 1.0, SIZE), photo)
    assert not item.ready()
    qtbot.waitUntil(item.ready, timeout=5000)
    np.testing.assert_array_equal(painted_on(item, 1.0, 1.0, SIZE), edited)
    assert item._stale is None  # the picture before is let go once the new one shows


def test_a_picture_of_another_size_never_stands_in(item, qtbot):
    item.set_image(_stripes(230))
    painted_on(item, 1.0, 1.0, SIZE)
    qtbot.waitUntil(item.ready, timeout=5000)
    other = np.zeros((160, 192, 3), np.uint8)
    item.set_image(other)
    drawn = painted_on(item, 1.0, 1.0, (192, 160))
    assert drawn.max() == 0  # the new, black picture (a quick level of it), not the old
    qtbot.waitUntil(item.ready, timeout=5000)


def test_a_level_asked_for_a_picture_no_longer_shown_is_dropped(item, qtbot):
    photo, edited = _stripes(230), _stripes(20)
    item.set_image(photo)
    painted_on(item, 1.0, 1.0, SIZE)
    asked = item._photo
    item.set_image(edited)  # before the level came
    assert not asked.asked  # forgotten: the canvas's thread skips it if not yet started
    qtbot.waitUntil(lambda: not item._maker.busy, timeout=5000)
    assert 0 not in asked.levels  # an answer that came anyway was not kept
    painted_on(item, 1.0, 1.0, SIZE)
    qtbot.waitUntil(item.ready, timeout=5000)
    np.testing.assert_array_equal(painted_on(item, 1.0, 1.0, SIZE), edited)


def test_a_level_that_cannot_be_made_says_so_and_is_tried_again_after_a_zoom(
    item, qtbot, monkeypatch, caplog
):
    """Out of memory making the full-size level: the stand-in stays, the user is told
    in a sentence (once), and zooming away and back tries again."""
    make = photo_levels.Mipmap.make
    short = [True]

    def short_of_memory(self, k):
        if k == 0 and short[0]:
            raise MemoryError
        return make(self, k)

    monkeypatch.setattr(photo_levels.Mipmap, "make", short_of_memory)
    told: list[str] = []
    item._refused = told.append
    photo = _stripes(230)
    item.set_image(photo)
    first = painted_on(item, 1.0, 1.0, SIZE)
    qtbot.waitUntil(item.ready, timeout=5000)
    assert item._photo.refused == {0} and "was not made" in caplog.text
    assert len(told) == 1 and "ran out of memory" in told[0]
    np.testing.assert_array_equal(painted_on(item, 1.0, 1.0, SIZE), first)
    assert item.ready() and len(told) == 1  # not asked again at this zoom
    short[0] = False  # memory freed; the designer zooms out and in again
    painted_on(item, 1.0, 0.5, (96, 64))
    painted_on(item, 1.0, 1.0, SIZE)
    qtbot.waitUntil(item.ready, timeout=5000)
    np.testing.assert_array_equal(painted_on(item, 1.0, 1.0, SIZE), photo)


def test_the_window_says_when_the_photo_cannot_be_shown_at_a_zoom(tmp_path, qtbot, monkeypatch):

    make = photo_levels.Mipmap.make

    def short_of_memory(self, k):
        if k == 0:
            raise MemoryError
        return make(self, k)

    monkeypatch.setattr(photo_levels.Mipmap, "make", short_of_memory)
    window = _window_at_100(tmp_path, qtbot)
    qtbot.waitUntil(lambda: "ran out of memory" in window.message_text(), timeout=5000)
    assert "Showing the photo at this zoom" in window.message_text()
    window.close()


def test_the_screen_image_is_the_picture_in_the_format_a_pixmap_takes_as_it_is(qtbot):
    from PySide6.QtGui import QImage, QPixmap

    from ui.imaging import qimage_rgb

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (37, 53, 3), np.uint8)  # an odd width: rows are padded
    image, memory = photo_levels.screen_image(rgb[:, 1:])  # a view, not contiguous
    assert image.format() == QImage.Format.Format_RGB32
    np.testing.assert_array_equal(qimage_rgb(image), rgb[:, 1:])
    pixmap = QPixmap.fromImage(image)
    del image
    np.testing.assert_array_equal(qimage_rgb(pixmap.toImage()), rgb[:, 1:])


def test_the_compare_split_draws_the_picture_before_as_soon_as_its_level_is_made(item, qtbot):
    photo, edited = _stripes(230), _stripes(20)
    item.set_image(edited)
    painted_on(item, 1.0, 1.0, SIZE)
    qtbot.waitUntil(item.ready, timeout=5000)
    item.set_before(photo, 0.5)
    # until the level comes, the picture on show stands in on both sides (of the split
    # line, at x = 96), sharp
    shown = painted_on(item, 1.0, 1.0, SIZE)
    np.testing.assert_array_equal(shown[:, :90], edited[:, :90])
    np.testing.assert_array_equal(shown[:, 100:], edited[:, 100:])
    qtbot.waitUntil(item.ready, timeout=5000)
    drawn = painted_on(item, 1.0, 1.0, SIZE)
    np.testing.assert_array_equal(drawn[:, :90], photo[:, :90])
    np.testing.assert_array_equal(drawn[:, 100:], edited[:, 100:])


def test_the_canvas_shows_a_large_photo_at_100_percent_without_making_its_level_there(
    qtbot, monkeypatch
):
    """The canvas's own thread makes the level; the view shows the photo pixel for
    pixel once it has come, and a closed canvas makes no more."""
    from dedit_app.project import Project
    from ui.canvas import CanvasView
    from ui.document import Document
    from ui.imaging import qimage_rgb

    photo = _stripes(230)
    view = CanvasView()
    qtbot.addWidget(view)
    view.resize(260, 200)
    view.show()
    view.set_document(Document(Project.new(photo, np.zeros((128, 192), np.int32), ["all"])))
    view.overlays_visible = False
    view.actual_pixels()
    view.viewport().grab()
    assert view.photo._maker is view.levels and not view.photo.ready()
    qtbot.waitUntil(view.photo.ready, timeout=5000)
    shown = qimage_rgb(view.viewport().grab().toImage())
    corner = view.mapFromScene(0, 0)
    x, y = corner.x(), corner.y()
    np.testing.assert_array_equal(shown[y + 10 : y + 100, x + 10 : x + 150], photo[10:100, 10:150])
    view.shutdown()
    view.photo.set_image(_stripes(20))
    view.viewport().grab()  # drawn from a quick level; nothing is made any more
    assert not view.levels.busy


def test_an_edit_converts_again_at_the_level_on_show_and_holds_no_other_level(qtbot):
    """A wide-gamut picture's new version converts only its changed box at the level the
    canvas shows; the other levels' copies from before are not held for it (two 24 MP
    copies, 144 MB, were held until that level was drawn, if ever)."""
    from image_corpus import p3_like_profile

    from dedit_app.colour_profiles import to_srgb
    from ui.canvas_items import PhotoItem
    from ui.imaging import area_shrink, changed_box

    whole = to_srgb(p3_like_profile())
    converted: list[int] = []

    def colours(values):
        converted.append(values.shape[0] * values.shape[1])
        return whole(values)

    photo = _stripes(230)
    edited = photo.copy()
    edited[40:80, 100:160] ^= 0x55
    item = PhotoItem()
    item.colours = colours
    item.set_image(photo)
    painted_on(item, 1.0, 1.0, SIZE)  # full size, then half size: on show
    painted_on(item, 1.0, 0.5, (96, 64))
    assert converted == [128 * 192, 64 * 96]
    item.set_image(edited)
    drawn = painted_on(item, 1.0, 0.5, (96, 64))
    rows, cols = changed_box(area_shrink(photo, (96, 64)), area_shrink(edited, (96, 64)))
    assert converted[2:] == [(rows.stop - rows.start) * (cols.stop - cols.start)]
    np.testing.assert_array_equal(drawn, whole(area_shrink(edited, (96, 64))))
    painted_on(item, 1.0, 1.0, SIZE)  # full size: converted whole, nothing kept for it
    assert converted[3:] == [128 * 192]


def test_the_picture_before_stands_in_only_as_sharp_as_the_level_asked(item, qtbot):
    """Zoomed in right after an edit, the picture before has no level that size: the
    new picture's own smaller level stands in (soft, but the edit), not the old one."""
    photo, edited = _stripes(230), _stripes(20)
    item.set_image(photo)
    painted_on(item, 1.0, 0.5, (96, 64))  # the half-size level, made at once
    item.set_image(edited)
    drawn = painted_on(item, 1.0, 1.0, SIZE).astype(int)
    # soft (each pixel a 2 x 2 average), so compared by brightness: the edit's stripes
    # are dark, the old picture's bright
    assert abs(drawn.mean() - edited.mean()) < 5 < 50 < abs(drawn.mean() - photo.mean())
    qtbot.waitUntil(item.ready, timeout=5000)
    np.testing.assert_array_equal(painted_on(item, 1.0, 1.0, SIZE), edited)


def test_closing_the_window_while_a_level_is_made_waits_for_it_and_says_nothing(
    tmp_path, qtbot, monkeypatch, caplog
):
    import time

    make = photo_levels.Mipmap.make
    started: list[int] = []

    def slow(self, k):
        started.append(k)
        time.sleep(0.3)
        return make(self, k)

    monkeypatch.setattr(photo_levels.Mipmap, "make", slow)
    window = _window_at_100(tmp_path, qtbot)
    qtbot.waitUntil(lambda: 0 in started, timeout=5000)  # being made now
    assert window.close()
    assert 0 in started and not window.canvas.levels.busy  # waited for; nothing pending
    qtbot.wait(400)  # an answer sent now would reach a closed canvas
    said = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
    assert not said, said


def test_a_zoom_passing_through_levels_makes_only_the_one_it_stops_at(qtbot, monkeypatch):
    """Levels asked for and not yet started when another is asked are not made: the one
    on show comes right after the one under way."""
    import time

    from ui.canvas_items import PhotoItem
    from ui.side_thread import SideThread

    make = photo_levels.Mipmap.make
    made: list[int] = []

    def slow(self, k):
        made.append(k)
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.2)  # the level thread's: a large level
        return make(self, k)

    monkeypatch.setattr(photo_levels.Mipmap, "make", slow)
    thread = SideThread(name="test-levels")
    item = PhotoItem(thread)
    photo = np.random.default_rng(2).integers(0, 256, (512, 768, 3), np.uint8)
    item.set_image(photo)  # levels 0..3; only level 3 (64 x 96) is quick
    painted_on(item, 1.0, 0.5, (384, 256))  # level 1 asked: under way at once
    qtbot.waitUntil(lambda: 1 in made, timeout=5000)
    painted_on(item, 1.0, 1.0, (768, 512))  # level 0 asked: waits its turn
    painted_on(item, 1.0, 0.25, (192, 128))  # level 2 asked: level 0 is dropped
    qtbot.waitUntil(item.ready, timeout=5000)
    assert set(item._photo.levels) == {1, 2, 3} and 0 not in made
    thread.shutdown()
