"""The editor's pieces on their own: overlay rendering, the worker, previews, settings."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from dedit_app import partition  # noqa: E402
from dedit_app.errors import EditError  # noqa: E402
from dedit_app.jobs import JobState, Progress, run_job  # noqa: E402
from ui import overlay  # noqa: E402
from ui.preview import copy_preview, move_preview, remove_preview  # noqa: E402
from ui.settings import MAX_PROMPTS, EditorSettings  # noqa: E402
from ui.testing import painted_on, private_settings, synthetic_scene  # noqa: E402
from ui.worker import JobQueue, JobRequest  # noqa: E402

# ----- overlay ---------------------------------------------------------------------------


def _random_labels(h: int, w: int, k: int, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, k, (6, 8)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def test_sample_indices_maps_screen_pixel_centres_to_image_pixels():
    # 2 screen px per image px starting at image x = 0: pixels 0,0,1,1,2,2 then outside.
    idx = overlay.sample_indices(3, 0.0, 0.5, 8)
    assert idx.tolist() == [0, 0, 1, 1, 2, 2, -1, -1]
    # Image starts 3 screen px to the right (first = -1.5 image px at 2x): three blanks.
    idx = overlay.sample_indices(3, -1.5, 0.5, 6)
    assert idx.tolist() == [-1, -1, -1, 0, 0, 1]


def test_fast_and_general_overlay_paths_draw_the_same_picture():
    labels = _random_labels(90, 120, 9)
    tables = overlay.build_tables(9, selected=(2, 5), hover=3)
    fast_codes, fast_table = overlay._codes_u8(labels, tables)
    slow_codes, slow_table = overlay._codes_numpy(labels.astype(np.int32), tables)
    assert fast_codes.dtype == np.uint8
    np.testing.assert_array_equal(np.take(fast_table, fast_codes), np.take(slow_table, slow_codes))


def test_overlay_colours_items_outlines_boundaries_and_the_selection():
    labels = np.zeros((10, 10), np.uint8)
    labels[:, 5:] = 1
    tables = overlay.build_tables(2, selected=(1,))
    out = overlay.render(labels, tables)
    assert out[5, 0] == tables.fill[0]  # inside item 0
    assert out[5, 9] == tables.fill[1]  # inside item 1 (selected: its own fill)
    # The boundary between them is drawn in the selection colour, two pixels wide.
    assert out[5, 4] == tables.selected_line and out[5, 5] == tables.selected_line
    assert tables.fill[1] != tables.fill[0]
    # Without a selection the boundary is item 0's outline colour, one pixel wide.
    plain = overlay.render(labels, overlay.build_tables(2))
    assert plain[5, 4] == overlay.build_tables(2).line[0]
    assert plain[5, 5] == overlay.build_tables(2).fill[1]


def test_render_view_covers_only_the_photo_and_matches_a_full_resolution_lookup():
    labels = _random_labels(400, 300, 30)
    tables = overlay.build_tables(30)
    pos, out = overlay.render_view(
        labels, tables, origin=(50.0, 20.0), scale=0.5, size=(400, 300), outlines=False
    )
    assert pos == (50, 20)
    assert out.shape == (200, 150)
    # Reference: the full-resolution table lookup, sampled at the same pixel centres.
    full = np.take(tables.fill, labels)
    np.testing.assert_array_equal(out, full[1::2, 1::2])


def test_hidden_overlays_keep_only_the_selection_outline():
    labels = np.zeros((6, 6), np.uint8)
    labels[3:] = 1
    tables = overlay.build_tables(2, selected=(0,), hidden=True)
    out = overlay.render(labels, tables)
    assert out[0, 0] >> 24 == 0  # fully transparent fill
    assert out[2, 0] == tables.selected_line


@pytest.mark.parametrize("width", [2, 3])
def test_overlay_lines_are_as_wide_as_asked_and_both_paths_agree(width):
    """On a high-density screen the overlay is drawn in device pixels with lines ``width``
    device pixels wide (one logical pixel), so it keeps its look there."""
    labels = np.zeros((12, 12), np.uint8)
    labels[:, 6:] = 1
    plain = overlay.build_tables(2)
    out = overlay.render(labels, plain, width=width)
    line = np.nonzero(out[5] == plain.line[0])[0].tolist()
    assert line == list(range(6 - width, 6))  # item 0's side of the boundary
    assert (out[5, 6:] == plain.fill[1]).all()
    chosen = overlay.build_tables(2, selected=(1,))
    out = overlay.render(labels, chosen, width=width)
    band = np.nonzero(out[5] == chosen.selected_line)[0].tolist()
    assert band == list(range(6 - width, 6 + width))  # both sides: twice as wide
    many = _random_labels(60, 80, 9)
    tables = overlay.build_tables(9, selected=(2, 5), hover=3)
    fast_codes, fast_table = overlay._codes_u8(many, tables, width)
    slow_codes, slow_table = overlay._codes_numpy(many.astype(np.int32), tables, width)
    np.testing.assert_array_equal(np.take(fast_table, fast_codes), np.take(slow_table, slow_codes))


def test_the_photo_is_drawn_from_the_level_a_high_density_screen_needs(qtbot):
    """At 50 % on a Retina screen every image pixel has a device pixel of its own: the
    photo is drawn from its full-size level, not the half-size one an ordinary screen
    shows, so one-pixel detail stays sharp."""
    from ui.canvas_items import PhotoItem

    photo = np.full((128, 192, 3), 40, np.uint8)
    photo[:, ::2] = 230  # one-pixel stripes: a level too small turns them grey
    for ratio, level in ((1.0, 1), (2.0, 0), (1.5, 0)):
        item = PhotoItem()
        item.set_image(photo)
        drawn = painted_on(item, ratio, 0.5, (96, 64))
        assert set(item._photo.levels) == {level}, ratio
        if ratio == 2.0:  # device pixel i shows image column i: the stripes as they are
            np.testing.assert_array_equal(drawn[10, :20, 1], photo[20, :20, 1])
    item = PhotoItem()
    item.set_image(photo)
    painted_on(item, 2.0, 0.25, (48, 32))  # a quarter: half-size is enough for 2x
    assert set(item._photo.levels) == {1}


def test_actual_pixels_shows_one_photo_pixel_per_screen_pixel_and_says_100(qtbot):
    """Ctrl+1 and the zoom in the status bar count the screen's pixels, as design tools
    do: on a Retina screen (2 device pixels per logical one) 100 % is half the logical
    scale, and the level drawn is the full-size one."""
    from dedit_app.project import Project
    from ui.canvas import CanvasView
    from ui.document import Document

    image = np.full((400, 600, 3), 90, np.uint8)
    labels = np.zeros((400, 600), np.int32)
    view = CanvasView()
    qtbot.addWidget(view)
    view.resize(300, 240)
    view.set_document(Document(Project.new(image, labels, ["all"])))
    said: list[float] = []
    view.zoom_changed.connect(said.append)
    view.actual_pixels()
    assert view.zoom == pytest.approx(1.0) and said[-1] == pytest.approx(1.0)  # this screen
    view.screen_ratio = lambda: 2.0  # as the canvas on a Retina screen reads it
    view.actual_pixels()
    assert view.zoom == pytest.approx(0.5) and said[-1] == pytest.approx(1.0)
    view.zoom_by(2.0)
    assert said[-1] == pytest.approx(2.0)  # 200 %: 2 x 2 screen pixels per photo pixel


def test_the_overlay_is_drawn_in_device_pixels_on_a_high_density_screen(qtbot):
    """The item colours and outlines are rendered for the screen's device pixels, not for
    its logical ones and then scaled up (which blurred every outline on a Retina screen):
    the outline is two device pixels of the item's colour, with no blended fringe, just
    left of where the items meet."""
    from dedit_app.project import Project
    from ui.canvas import CanvasView
    from ui.document import Document

    image = np.full((100, 100, 3), 128, np.uint8)
    labels = np.zeros((100, 100), np.int32)
    labels[:, 50:] = 1
    doc = Document(Project.new(image, labels, ["left", "right"]))
    view = CanvasView()
    qtbot.addWidget(view)
    view.resize(300, 240)
    view.show()
    view.set_document(doc)
    view.set_zoom(2.0)
    t = view.viewportTransform()
    vp = view.viewport().size()
    drawn = painted_on(view.overlay_item, 2.0, 0.0, (vp.width(), vp.height()), view=view)
    # 2 device px per logical px, zoom 2: image x = 50 is device x = 2 * (dx + 2 * 50)
    edge = round(2 * (t.dx() + 2 * 50))
    y = round(2 * (t.dy() + 2 * 30))
    tables = view.tables()
    line = tables.line[0]
    colour = np.array([(line >> 16) & 255, (line >> 8) & 255, line & 255])
    row = drawn[y, edge - 6 : edge + 6].astype(int)
    # the outline is opaque enough to dominate: the two pixels before the edge carry it
    strength = np.abs(row - 128).sum(axis=1)
    assert (strength[4:6] > 3 * strength[:4].max()).all()
    assert (strength[6:] < strength[4:6].min() / 3).all()
    assert np.abs(row[4] - row[5]).max() <= 1  # one colour: no blended fringe
    assert np.abs(row[4] - (0.9 * colour + 0.1 * 128)).max() <= 3


# ----- preview -----------------------------------------------------------------------------


def test_a_wide_gamut_picture_is_converted_for_the_screen_only_where_it_changed(qtbot):
    """An edit, an undo or the picture before an edit differs from the picture on show
    in a box: only that box is turned into the screen's colours again, and what is drawn
    is what converting the whole picture gives."""
    from image_corpus import p3_like_profile

    from dedit_app.colour_profiles import to_srgb
    from ui.canvas_items import PhotoItem
    from ui.imaging import area_shrink, changed_box, qimage_rgb

    whole = to_srgb(p3_like_profile())
    converted: list[int] = []

    def colours(values):
        converted.append(values.shape[0] * values.shape[1])
        return whole(values)

    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (120, 160, 3), np.uint8)
    edited = photo.copy()
    edited[30:50, 100:140] ^= 0x55
    assert changed_box(photo, edited) == (slice(30, 50), slice(100, 140))
    assert changed_box(photo, photo.copy()) is None
    item = PhotoItem()
    item.colours = colours

    def drawn(mipmap, k):
        return qimage_rgb(mipmap.level(k).toImage())

    item.set_image(photo)
    np.testing.assert_array_equal(drawn(item._photo, 0), whole(photo))
    assert converted == [120 * 160]
    item.set_image(edited)  # an edit lands
    np.testing.assert_array_equal(drawn(item._photo, 0), whole(edited))
    assert converted[1:] == [20 * 40]
    half = area_shrink(edited, (80, 60))  # a level not drawn before: converted whole
    np.testing.assert_array_equal(drawn(item._photo, 1), whole(half))
    assert converted[2:] == [80 * 60]
    # the compare split: the picture before the edit, from the one on show
    item.set_before(photo, 0.3)
    before = item._before
    np.testing.assert_array_equal(drawn(before, 0), whole(photo))
    assert converted[3:] == [20 * 40]
    item.set_before(photo, 0.6)  # dragging the split: the same picture, nothing made
    assert item._before is before and item.split == 0.6 and len(converted) == 4
    other = rng.integers(0, 256, (120, 160, 3), np.uint8)  # another picture altogether
    item.set_image(other)
    np.testing.assert_array_equal(drawn(item._photo, 0), whole(other))
    assert converted[4:] == [120 * 160]
    item.colours = None  # another photo, without a profile: its values as they are
    item.set_image(edited)
    np.testing.assert_array_equal(drawn(item._photo, 0), edited)
    assert len(converted) == 5


def test_move_preview_uses_the_partition_labels_and_keeps_untouched_pixels():
    image, labels = synthetic_scene(120, 160)
    moves = [partition.Move(2, dx=30, dy=-10, scale=0.8)]
    preview, new_labels = move_preview(image, labels, moves)
    np.testing.assert_array_equal(new_labels, partition.move_items(labels, moves))
    assert preview.shape == image.shape and preview.dtype == np.uint8
    touched = (labels == 2) | (new_labels == 2)
    np.testing.assert_array_equal(preview[~touched], image[~touched])
    # The bag (dark blue) now sits where the partition put it.
    moved = new_labels == 2
    assert preview[moved][:, 2].mean() > preview[moved][:, 0].mean() + 40


@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_move_preview_warps_only_the_new_place_and_matches_a_whole_frame_warp(angle):
    import cv2

    image, labels = synthetic_scene(150, 200)
    moves = [partition.Move(2, dx=-25, dy=12, scale=1.3, angle=angle)]
    preview, new_labels = move_preview(image, labels, moves)
    m = partition.move_matrix(moves[0], partition.item_bbox(labels, 2))
    whole = cv2.warpAffine(
        image, m, (200, 150), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    moved = new_labels == 2
    # the window's shifted map interpolates at the same points (fixed-point rounding aside)
    assert np.abs(preview[moved].astype(int) - whole[moved]).max() <= 1


def test_a_flipped_item_s_preview_is_its_pixels_mirrored_in_its_own_box():
    image, labels = synthetic_scene(120, 160)
    image = image.copy()
    image[:, ::2] //= 2  # stripes, so that a mirror shows in every column
    x0, y0, x1, y1 = partition.item_bbox(labels, 2)
    moves = partition.flip_moves({2: (x0, y0, x1, y1)})
    preview, new_labels = move_preview(image, labels, moves)
    np.testing.assert_array_equal(new_labels, partition.move_items(labels, moves))
    box = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    mirrored = image[box][:, ::-1]
    moved = new_labels[box] == 2
    np.testing.assert_array_equal(preview[box][moved], mirrored[moved])
    assert (preview[box][moved] != image[box][moved]).any()


def test_a_copy_s_preview_is_the_item_s_pixels_at_the_copy_and_the_item_stays():
    image, labels = synthetic_scene(120, 160)
    n = int(labels.max()) + 1
    moves = [partition.Move(3, dx=-25, dy=4)]
    preview, new_labels = copy_preview(image, labels, moves, n)
    np.testing.assert_array_equal(new_labels, partition.copy_items(labels, moves, n))
    copy = new_labels == n
    ys, xs = np.nonzero(copy)
    np.testing.assert_array_equal(preview[ys, xs], image[ys - 4, xs + 25])  # shifted whole
    np.testing.assert_array_equal(preview[~copy], image[~copy])  # nothing else, no hole


def test_remove_preview_fills_the_item_from_its_surroundings():
    image, labels = synthetic_scene(120, 160)
    preview, new_labels = remove_preview(image, labels, (3,))
    assert not (new_labels == 3).any()
    hole = labels == 3
    np.testing.assert_array_equal(preview[~hole], image[~hole])
    # The orange ball is gone: the filled pixels look like the wall and table around it.
    assert abs(int(preview[hole][:, 0].mean()) - int(preview[hole][:, 2].mean())) < 60


def test_move_preview_refuses_a_move_off_the_picture():
    from dedit_app.errors import ItemError

    image, labels = synthetic_scene(60, 80)
    with pytest.raises(ItemError, match="outside the picture"):
        move_preview(image, labels, [partition.Move(3, dx=500, dy=0)])


# ----- worker -------------------------------------------------------------------------------


class Steps:
    """A test task: ``n`` steps of ``pause`` seconds, honouring cancel; returns ``n``."""

    def __init__(self, n: int, pause: float = 0.01, fail: Exception | None = None) -> None:
        self.n, self.pause, self.fail = n, pause, fail

    def run(self, ctx, cancel):
        for i in range(self.n):
            cancel.raise_if_cancelled()
            time.sleep(self.pause)
            if self.fail is not None and i == 2:
                raise self.fail
            yield Progress(i + 1, self.n, stage="Testing", loss=1.0 / (i + 1))
        return self.n


class Held:
    """A test task that runs until ``release`` is set (or it is cancelled): a download or
    a preparation of minutes. Returns ``result``."""

    def __init__(self, result: str) -> None:
        import threading

        self.release, self.result = threading.Event(), result

    def run(self, ctx, cancel):
        while not self.release.wait(0.01):
            cancel.raise_if_cancelled()
        return self.result


@pytest.fixture
def jobs(qtbot):
    queue = JobQueue()
    yield queue
    queue.shutdown()


def test_worker_runs_a_job_reports_progress_and_returns_its_result(qtbot, jobs):
    results, progress = [], []
    rec = jobs.submit(
        JobRequest("steps", Steps(20)),
        on_finished=results.append,
        on_progress=lambda r: progress.append(r.progress.step),
    )
    qtbot.waitUntil(lambda: rec.state is JobState.DONE, timeout=10000)
    assert results == [20]
    assert progress and progress[-1] == 20
    # Losses are never dropped, even when progress messages are coalesced.
    assert [s for s, _ in rec.losses] == list(range(1, 21))


def test_a_download_then_training_each_say_their_own_time_left(qtbot, jobs):
    import threading

    from ui.jobs_panel import time_left
    from ui.side_panels import PreparePanel
    from ui.worker import JobProgress

    hold = threading.Event()

    class Wait:
        def run(self, ctx, cancel):
            hold.wait(10)
            return 0

    rec = jobs.submit(JobRequest("Prepare", Wait(), kind="prepare"))

    def say(step: int, total: int, stage: str, elapsed: float, message: str = "") -> None:
        p = Progress(step, total, stage=stage, message=message)
        jobs._on_message(JobProgress(rec.request.id, p, elapsed=elapsed))

    panel = PreparePanel()
    qtbot.addWidget(panel)
    say(1000, 7000, "downloading", 100.0, "Downloading owner/model: 1.0 GB of 7.0 GB")
    say(2000, 7000, "downloading", 200.0, "Downloading owner/model: 2.0 GB of 7.0 GB")
    assert time_left(rec) == pytest.approx(500.0)  # 5000 MB left at 10 MB a second
    panel.show_running(rec)
    assert panel.status.text() == (
        "Downloading owner/model: 2.0 GB of 7.0 GB · about 8 min 20 s left"
    )
    # Training's time left is its own pace, not the download's minutes over its steps.
    say(10, 1000, "tokens", 230.0)
    say(20, 1000, "tokens", 240.0)
    assert time_left(rec) == pytest.approx(980.0)
    panel.show_running(rec)
    assert panel.status.text() == "Learning item prompts · step 20 of 1000 · about 16 min 20 s left"
    hold.set()


class StageThenWait:
    """Announces a stage right after another, then blocks until released."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()

    def run(self, ctx, cancel):
        yield Progress(0, 0, stage="Loading the model")
        yield Progress(0, 4, stage="compiling")  # well within the coalescing interval
        self.release.wait(10)
        yield Progress(4, 4, stage="sampling")
        return 4


def test_a_new_stage_is_shown_at_once_even_between_coalesced_steps(qtbot, jobs):
    """Progress messages are coalesced, but a stage change (say, a compile that is about to
    take minutes) reaches the UI before the wait, not after it."""
    task = StageThenWait()
    rec = jobs.submit(JobRequest("stages", task))
    try:
        qtbot.waitUntil(lambda: rec.progress is not None and rec.progress.stage == "compiling")
    finally:
        task.release.set()
    qtbot.waitUntil(lambda: rec.state is JobState.DONE, timeout=10000)


def test_a_notice_reaches_the_ui_and_the_job_goes_on(qtbot, jobs):
    from ui.worker import NOTICE

    class Noticing:
        def run(self, ctx, cancel):
            yield Progress(1, 2, stage="Testing")
            yield Progress(0, 0, stage=NOTICE, message="Compiling the model failed (...).")
            yield Progress(2, 2, stage="Testing")
            return "done"

    notices, results = [], []
    jobs.noticed.connect(lambda _id, text: notices.append(text))
    rec = jobs.submit(JobRequest("notice", Noticing()), on_finished=results.append)
    qtbot.waitUntil(lambda: rec.state is JobState.DONE, timeout=10000)
    assert notices == ["Compiling the model failed (...)."] and results == ["done"]
    assert rec.progress.stage == "Testing"


def test_tasks_tell_when_the_compiler_failed_during_their_job():
    from ui.engine import _telling_compile_failures
    from ui.worker import NOTICE

    model = _FakeModel("cuda")

    def job(fail: bool):
        yield Progress(1, 1, stage="sampling")
        if fail:
            model.compile_error = "Compiling the model failed, so it runs uncompiled (X: y)."
        return "picture"

    def drive(j):
        seen = []
        result = run_job(j, seen.append)
        return seen, result

    seen, result = drive(_telling_compile_failures(model, job(False)))
    assert result == "picture" and [p.stage for p in seen] == ["sampling"]
    seen, result = drive(_telling_compile_failures(model, job(True)))
    assert result == "picture" and [p.stage for p in seen] == ["sampling", NOTICE]
    assert seen[-1].message.startswith("Compiling the model failed")
    seen, _ = drive(_telling_compile_failures(model, job(False)))  # told once, not again
    assert [p.stage for p in seen] == ["sampling"]


def test_cancel_is_confirmed_by_the_worker(qtbot, jobs):
    cancelled = []
    rec = jobs.submit(
        JobRequest("long", Steps(10_000, 0.005)), on_cancelled=lambda: cancelled.append(True)
    )
    qtbot.waitUntil(lambda: rec.progress is not None, timeout=10000)
    jobs.cancel(rec.request.id)
    assert rec.state is JobState.CANCELLING  # asked, not yet confirmed
    qtbot.waitUntil(lambda: rec.state is JobState.CANCELLED, timeout=10000)
    assert cancelled == [True]
    assert rec.progress.step < 10_000


def test_a_queued_job_cancelled_before_it_starts_never_runs(qtbot, jobs):
    first = jobs.submit(JobRequest("first", Steps(30, 0.01)))
    ran = []
    second = jobs.submit(JobRequest("second", Steps(3)), on_finished=ran.append)
    jobs.cancel(second.request.id)
    qtbot.waitUntil(lambda: second.state is JobState.CANCELLED, timeout=10000)
    qtbot.waitUntil(lambda: first.state is JobState.DONE, timeout=10000)
    assert ran == []


def test_a_download_runs_beside_other_jobs_not_in_front_of_them(qtbot, jobs):
    """A model download (kind "download") takes minutes and needs no model: it runs on a
    worker of its own, so the jobs queued after it (finding items) do not wait for it."""
    held = Held("downloaded")
    download = jobs.submit(JobRequest("Download owner/model", held, kind="download"))
    found = jobs.submit(JobRequest("Find items", Steps(3), kind="segment"))
    qtbot.waitUntil(lambda: found.state is JobState.DONE, timeout=10000)
    assert download.state is JobState.RUNNING  # still going, beside it
    held.release.set()
    qtbot.waitUntil(lambda: download.state is JobState.DONE, timeout=10000)
    jobs.shutdown()  # closing the window stops both workers
    assert not any(w.isRunning() for w in (jobs.worker, jobs.downloads, jobs.modelless))


def test_items_found_without_a_model_are_found_beside_a_long_preparation(qtbot, jobs):
    """The weights-free segmenter needs no model: a photo or reference opened while a
    preparation of minutes runs gets its items at once, not after it. A segmenter with a
    model (SAM) shares the model worker, and waits."""
    from ui.tasks import SegmentAuto, readonly

    held = Held("prepared")
    image = readonly(synthetic_scene(60, 80)[0])
    prepare = jobs.submit(JobRequest("Prepare", held, kind="prepare"))
    results = []
    found = jobs.submit(
        JobRequest("Find items", SegmentAuto(image, "ref"), kind="segment"),
        on_finished=results.append,
    )
    with_model = jobs.submit(
        JobRequest("Find items", SegmentAuto(image, "ref", backend="sam"), kind="segment")
    )
    qtbot.waitUntil(lambda: found.state is JobState.DONE, timeout=20000)
    assert prepare.state is JobState.RUNNING and with_model.state is JobState.QUEUED
    assert len(results[0].names) >= 2
    jobs.cancel(with_model.request.id)
    held.release.set()
    qtbot.waitUntil(lambda: prepare.state is JobState.DONE, timeout=10000)
    qtbot.waitUntil(lambda: with_model.state is JobState.CANCELLED, timeout=10000)


def test_a_prepare_waits_for_the_download_of_its_model_under_way(monkeypatch):
    """Prepare clicked while Settings' Download now fetches the same model waits for that
    job (told in its progress) instead of fetching the same files beside it; then its own
    quick check runs, and cancelling stops the wait."""
    import threading

    from dedit_app import hub
    from dedit_app.errors import Cancelled
    from dedit_app.jobs import CancelToken
    from ui import engine
    from ui.worker import WorkerContext

    fetched = []

    def fetch(source, **kw):
        fetched.append(source)
        return None
        yield  # a job, as hub.fetch is

    monkeypatch.setattr(hub, "fetch", fetch)
    ended = threading.Event()
    job = engine.PrepareTask(engine.ModelSpec("owner/model"), None, after=ended).run(
        WorkerContext(), CancelToken()
    )
    assert next(job).message == "Waiting for the download of owner/model (in the Jobs panel)"
    assert next(job).stage == "downloading" and fetched == []  # still waiting
    ended.set()
    assert next(job).stage == "Loading the model" and fetched == ["owner/model"]
    job.close()
    cancel = CancelToken()
    waiting = engine.PrepareTask(engine.ModelSpec("owner/model"), None, after=threading.Event())
    steps = waiting.run(WorkerContext(), cancel)
    next(steps)
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(steps)


def test_failures_reach_the_ui_as_sentences(qtbot, jobs):
    errors = []
    rec = jobs.submit(
        JobRequest("Edit", Steps(5, fail=EditError("Item 7 does not exist."))),
        on_failed=errors.append,
    )
    qtbot.waitUntil(lambda: rec.state is JobState.FAILED, timeout=10000)
    assert errors == ["Item 7 does not exist."]
    bug = jobs.submit(JobRequest("Prepare project", Steps(5, fail=KeyError("unet"))))
    qtbot.waitUntil(lambda: bug.state is JobState.FAILED, timeout=10000)
    assert bug.message.startswith("Prepare project stopped because of an internal error")
    assert "Nothing was changed" in bug.message
    oom = jobs.submit(
        JobRequest("Edit", Steps(5, fail=RuntimeError("CUDA out of memory.")), kind="edit")
    )
    qtbot.waitUntil(lambda: oom.state is JobState.FAILED, timeout=10000)
    assert "ran out of GPU memory" in oom.message
    assert "fewer results per edit in Settings > Editing" in oom.message
    prep = jobs.submit(
        JobRequest("Prepare", Steps(5, fail=RuntimeError("CUDA out of memory.")), kind="prepare")
    )
    qtbot.waitUntil(lambda: prep.state is JobState.FAILED, timeout=10000)
    assert "set Low memory to On in Settings > Preparing" in prep.message


# ----- side thread (previews off the UI thread) ------------------------------------------


@pytest.fixture
def side(qtbot):
    from ui.side_thread import SideThread

    s = SideThread()
    yield s
    s.shutdown()


def test_a_sketch_runs_off_the_ui_thread_and_answers_on_it(qtbot, side):
    import threading

    ui_thread = threading.get_ident()
    ran_on, answered_on, results = [], [], []
    started = threading.Event()
    go = threading.Event()

    def sketch():
        ran_on.append(threading.get_ident())
        started.set()
        go.wait(10)  # the UI thread is free while the sketch works
        return np.full((2, 2), 7)

    def done(result):
        answered_on.append(threading.get_ident())
        results.append(result)

    side.submit("The preview", sketch, done, lambda m: results.append(m))
    assert started.wait(10) and side.busy
    assert results == []  # never answered inside submit
    go.set()
    qtbot.waitUntil(lambda: bool(results), timeout=10000)
    assert ran_on != [ui_thread] and answered_on == [ui_thread]
    np.testing.assert_array_equal(results[0], np.full((2, 2), 7))
    assert not side.busy


def test_a_sketchs_error_is_a_sentence_and_a_forgotten_sketch_answers_nobody(qtbot, side):
    errors, answers = [], []

    def refuse():
        raise EditError("Moving item 3 by (+9000, +0) px puts it entirely outside the picture.")

    def broken():
        raise KeyError("labels")

    side.submit("The preview of “Move bag”", refuse, answers.append, errors.append)
    side.submit("The preview of “Move bag”", broken, answers.append, errors.append)
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=10000)
    assert errors[0].endswith("entirely outside the picture.")
    assert errors[1].startswith("The preview of “Move bag” stopped because of an internal error")
    forgotten = side.submit("late", lambda: 1, answers.append, errors.append)
    side.forget(forgotten)
    last = side.submit("last", lambda: 2, answers.append, errors.append)
    qtbot.waitUntil(lambda: answers == [2], timeout=10000)
    assert last > forgotten and len(errors) == 2
    side.shutdown()
    side.submit("after closing", lambda: 3, answers.append, errors.append)
    qtbot.wait(50)
    assert answers == [2]
    side.shutdown()  # idempotent


def test_quick_work_is_still_answered_later_and_forgotten_work_never_runs(qtbot, side):
    import threading
    import time

    ran, answers = [], []
    for n in range(20):  # work this quick often ends before submit() returns
        side.submit("quick", lambda n=n: n, answers.append, answers.append)
        assert answers == []
    qtbot.waitUntil(lambda: len(answers) == 20, timeout=10000)
    gate = threading.Event()
    side.submit("first", lambda: (gate.wait(10), ran.append(1)), answers.append, print)
    second = side.submit("second", lambda: ran.append(2), answers.append, print)
    third = side.submit("third", lambda: (ran.append(3), 3)[1], answers.append, print)
    side.forget(second)
    gate.set()
    assert side.take(third) == 3  # waits for the first, then the third; answers here
    assert ran == [1, 3]
    with pytest.raises(LookupError):
        side.take(second)  # it never ran
    # Closing skips what has not started, unless asked to finish it.
    for finish, expected in ((False, [4]), (True, [4, 5])):
        from ui.side_thread import SideThread

        other, done = SideThread(), []
        other.submit("slow", lambda d=done: (time.sleep(0.3), d.append(4)), print, print)
        other.submit("queued", lambda d=done: d.append(5), print, print)
        other.shutdown(finish=finish)
        assert done == expected


# ----- settings -----------------------------------------------------------------------------


def test_settings_round_trip_through_a_private_store(tmp_path):
    qs = private_settings(tmp_path)
    s = EditorSettings(
        model="/models/sdxl",
        steps=30,
        guidance=4.5,
        candidates=3,
        seed=7,
        segmenter="sam",
        sam_checkpoint="/w/sam.pth",
        recent=["/a.png", "/b.png"],
        prompts=["a red, shiny bag", "a white handbag"],
        low_memory="on",
        compile=True,
    )
    s.save(qs)
    loaded = EditorSettings.load(private_settings(tmp_path))
    assert loaded == s
    assert (tmp_path / "settings.ini").is_file()


@pytest.mark.parametrize(
    "stored, choice", [(True, "on"), (False, "auto"), ("off", "off"), ("maybe", "auto")]
)
def test_low_memory_saved_as_a_switch_reads_as_a_choice(tmp_path, stored, choice):
    qs = private_settings(tmp_path)
    qs.setValue("low_memory", stored)  # before there was Automatic, it was a check box
    qs.sync()
    assert EditorSettings.load(private_settings(tmp_path)).low_memory == choice


@pytest.mark.parametrize("prompts", [["a red, shiny bag"], ["one"], []])
def test_a_short_list_of_prompts_comes_back_as_it_was(tmp_path, prompts):
    EditorSettings(prompts=prompts).save(private_settings(tmp_path))
    assert EditorSettings.load(private_settings(tmp_path)).prompts == prompts


def test_prompts_are_remembered_newest_first_once_and_at_most_fifty():
    s = EditorSettings()
    for k in range(60):
        s.add_prompt(f"prompt {k}")
    s.add_prompt("  prompt 30 ")
    s.add_prompt("   ")
    assert s.prompts[:2] == ["prompt 30", "prompt 59"] and len(s.prompts) == MAX_PROMPTS
    assert s.prompts.count("prompt 30") == 1


def test_damaged_or_out_of_range_settings_fall_back_to_sensible_values(tmp_path):
    qs = private_settings(tmp_path)
    qs.setValue("steps", "many")
    qs.setValue("strength", 7)
    qs.setValue("candidates", 0)
    qs.sync()
    s = EditorSettings.load(private_settings(tmp_path))
    assert s.steps == EditorSettings().steps
    assert s.strength == 1.0
    assert s.candidates == 1


# ----- Qt bindings -----------------------------------------------------------------------


def test_qt_bindings_keep_reference_counts_of_none_and_true(qtbot):
    """PySide6 6.12 on CPython 3.11 loses a reference to True on every emit and to None on
    every void call; the editor then aborts after a few hundred signals. pyproject.toml
    excludes that release; this catches any other that does the same."""
    import sys

    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QWidget

    class Emitter(QObject):
        fired = Signal()

    emitter, widget = Emitter(), QWidget()
    qtbot.addWidget(widget)
    before_true, before_none = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(50):
        emitter.fired.emit()
        widget.setEnabled(True)
    # A few references may come and go through unrelated code; a leak would be -50.
    assert sys.getrefcount(True) - before_true > -10
    assert sys.getrefcount(None) - before_none > -10


class _FakeModel:
    """What ``ui.engine._model`` touches of a loaded model."""

    def __init__(self, device: str = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.compiled = False
        self.compile_error = ""
        self.backends: list[str | None] = []

    def compile_unet(self, backend="inductor", cache_dir=None):
        self.backends.append(backend)
        self.compiled = backend is not None


def test_segmenter_gives_memory_back_only_when_sdxl_needs_the_most(monkeypatch):
    """SAM leaves the GPU to load SDXL and to train; an edit with SDXL loaded keeps it."""
    import dedit_app.models
    from ui import engine
    from ui.worker import WorkerContext

    class Segmenter:
        released = 0

        def release(self):
            self.released += 1

    loads = []
    monkeypatch.setattr(
        dedit_app.models, "load_model", lambda *a, **k: loads.append(a) or _FakeModel()
    )
    ctx, seg = WorkerContext(), Segmenter()
    ctx.cache["segmenter"] = ("classical", seg)
    spec = engine.ModelSpec("some/model", "cpu", "float32")
    engine._model(ctx, spec)  # loading
    assert (seg.released, len(loads)) == (1, 1)
    engine._model(ctx, spec)  # an edit: loaded already
    assert (seg.released, len(loads)) == (1, 1)
    engine._model(ctx, spec, training=True)  # preparing
    assert (seg.released, len(loads)) == (2, 1)
    engine._model(ctx, engine.ModelSpec("other/model", "cpu", "float32"))  # another model
    assert (seg.released, len(loads)) == (3, 2)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_compile_setting_switches_the_loaded_model_without_loading_again(monkeypatch, device):
    """Settings > Compile compiles the UNet on CUDA (on a CPU inductor costs more than it
    saves, so it stays plain), and turning it off or on keeps the loaded weights."""
    import dedit_app.models
    from ui import engine
    from ui.worker import WorkerContext

    loads = []
    monkeypatch.setattr(
        dedit_app.models, "load_model", lambda *a, **k: loads.append(a) or _FakeModel(device)
    )
    ctx = WorkerContext()
    on = engine.ModelSpec.from_settings(EditorSettings(model="m", compile=True))
    model = engine._model(ctx, on)
    assert model.compiled == (device == "cuda")
    engine._model(ctx, on)
    off = engine.ModelSpec.from_settings(EditorSettings(model="m", compile=False))
    assert engine._model(ctx, off) is model and not model.compiled
    assert len(loads) == 1
    assert model.backends == (["inductor", None] if device == "cuda" else [])


def test_a_compile_that_failed_is_not_tried_again_for_the_loaded_model(monkeypatch):
    import dedit_app.models
    from ui import engine
    from ui.worker import WorkerContext

    monkeypatch.setattr(dedit_app.models, "load_model", lambda *a, **k: _FakeModel("cuda"))
    ctx = WorkerContext()
    on = engine.ModelSpec.from_settings(EditorSettings(model="m", compile=True))
    model = engine._model(ctx, on)
    model.compiled, model.compile_error = False, "Compiling the model failed (...)."
    assert engine._model(ctx, on) is model
    assert model.backends == ["inductor"] and not model.compiled


def test_a_hub_model_is_asked_of_the_hub_once_per_load(tmp_path, tiny_sdxl_path, monkeypatch):
    """A job's download step asks the hub once for a cached hub model (to top up what an
    interrupted download left out); the load right after it reads that cache instead of
    asking again, and a model already loaded asks nothing."""
    import shutil

    import huggingface_hub.constants
    from engine_fixtures import hub_snapshot

    from dedit_app import hub
    from dedit_app.jobs import CancelToken
    from ui import engine
    from ui.worker import WorkerContext

    snapshot = shutil.copytree(tiny_sdxl_path, hub_snapshot(tmp_path / "hub-cache", "owner/tiny"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the hub itself is the stand-in below
    asked = []

    def download(source, what, variant, local, **more):
        asked.append((source, variant, local))
        return str(snapshot)

    monkeypatch.setattr(hub, "_download", download)
    ctx, spec = WorkerContext(), engine.ModelSpec("owner/tiny", "cpu", "float32")
    run_job(engine._download(ctx, spec, CancelToken()))
    model = engine._model(ctx, spec)
    assert asked == [("owner/tiny", None, False)]  # the full set it holds, online, once
    assert model.device.type == "cpu"
    run_job(engine._download(ctx, spec, CancelToken()))  # the next job: loaded already
    assert engine._model(ctx, spec) is model and len(asked) == 1


@pytest.mark.parametrize(
    "low_memory, advice",
    [("off", "set Low memory to On in Settings > Preparing"),
     ("on", "choose a smaller model in Settings > Model")],
)  # fmt: skip
def test_preparing_out_of_gpu_memory_advises_what_is_not_on_already(
    monkeypatch, tmp_path, low_memory, advice
):
    import dedit_app.finetune
    from dedit_app.jobs import CancelToken
    from ui import engine
    from ui.worker import WorkerContext, user_message

    def out_of_memory(*args, **kwargs):
        yield Progress(1, 2, stage="tokens")
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(dedit_app.finetune, "finetune_project", out_of_memory)
    monkeypatch.setattr(engine, "_model", lambda ctx, spec, training=False: _FakeModel("cuda"))
    settings = EditorSettings(model=str(tmp_path), low_memory=low_memory)
    task = engine.PrepareTask(engine.ModelSpec(str(tmp_path)), None, None,
                              engine.finetune_options(settings))  # fmt: skip
    with pytest.raises(Exception) as caught:
        run_job(task.run(WorkerContext(), CancelToken()))
    text, _ = user_message(caught.value, "Prepare project", "prepare")
    assert "ran out of GPU memory" in text and advice in text
    assert ("low-memory mode" in text) == (low_memory == "on")


def test_low_memory_on_turns_on_both_memory_savers_and_auto_leaves_it_to_the_gpu():
    from dedit_app.project import Project
    from ui import engine

    low = engine.finetune_options(EditorSettings(low_memory="on"))
    assert low.gradient_checkpointing and low.offload_idle
    for choice in ("off", "auto"):
        plain = engine.finetune_options(EditorSettings(low_memory=choice))
        assert not plain.gradient_checkpointing and not plain.offload_idle
    project = Project.new(*synthetic_scene(), ["a", "b", "c", "d"])
    assert engine.prepare_task(project, EditorSettings()).auto_memory  # the default
    assert not engine.prepare_task(project, EditorSettings(low_memory="off")).auto_memory


def test_automatic_low_memory_is_used_where_the_gpu_is_too_small_and_told_once(monkeypatch):
    from types import SimpleNamespace

    import torch

    from dedit_app.recompute import LOW_MEMORY_BELOW
    from ui import engine
    from ui.settings import LOW_MEMORY_HINT
    from ui.worker import NOTICE, WorkerContext

    memory = {"total_memory": 24 * 2**30 - 2**20}
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(**memory))
    task = engine.PrepareTask(
        engine.ModelSpec("m"), None, options=engine.finetune_options(EditorSettings()),
        auto_memory=True,
    )  # fmt: skip
    sdxl = SimpleNamespace(family="sdxl", device=torch.device("cuda"))
    ctx = WorkerContext()

    def options_for(task, model):
        seen = []
        options = run_job(task._memory_mode(ctx, model), seen.append)
        return options, [(p.stage, p.message) for p in seen]

    options, told = options_for(task, sdxl)
    assert options.gradient_checkpointing and options.offload_idle
    assert len(told) == 1 and told[0][0] == NOTICE and "this GPU has 24 GB" in told[0][1]
    assert told[0][1].endswith("Change it in Settings > Preparing > Low memory.")
    assert f"under {LOW_MEMORY_BELOW // 2**30} GB" in LOW_MEMORY_HINT  # the dialog says the line
    options, told = options_for(task, sdxl)  # the next Prepare: the same, not told again
    assert options.gradient_checkpointing and told == []
    sd15 = SimpleNamespace(family="sd15", device=torch.device("cuda"))
    assert options_for(task, sd15) == (task.options, [])
    off = dataclasses.replace(task, auto_memory=False)  # Low memory: Off
    assert options_for(off, sdxl) == (task.options, [])
    memory["total_memory"] = 80 * 2**30
    assert options_for(task, sdxl) == (task.options, [])


def test_a_cancelled_or_failing_edit_warm_up_keeps_the_preparation(tiny_sdxl, tiny_photo):
    """Prepare warms a compiled model up for edits after training; stopping the job then,
    or the warm-up failing, must not cost the finished preparation (the task still returns
    it)."""
    import torch

    from dedit_app.jobs import CancelToken, run_job
    from dedit_app.project import Project
    from ui import engine

    image, labels, names = tiny_photo
    project = Project.new(image, labels, list(names), source="tiny.png")
    options = engine.sampling_options(EditorSettings(), seed=0)
    cancel = CancelToken()
    cancel.cancel()
    torch._dynamo.reset()
    tiny_sdxl.compile_unet(backend="eager")
    try:
        assert run_job(engine._warm_up_edits(tiny_sdxl, project, options, cancel)) is None
        broken = dataclasses.replace(options, candidates=0)  # refused by the sampler
        assert run_job(engine._warm_up_edits(tiny_sdxl, project, broken, CancelToken())) is None
    finally:
        tiny_sdxl.compile_unet(None)
        torch._dynamo.reset()


# ----- pictures at a photo's own resolution ----------------------------------------------


def test_area_shrink_averages_like_one_area_resize():
    import cv2

    from ui.imaging import area_shrink

    rng = np.random.default_rng(4)
    image = cv2.resize(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), (1000, 750))
    for size in [(500, 375), (125, 93), (61, 47), (1000, 750)]:
        out = area_shrink(image, size)
        assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
        one_step = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # the same average, its boxes aligned on the halvings' pixels (a factor of 2
        # gives exactly the one-step result)
        diff = np.abs(out.astype(int) - one_step)
        assert diff.mean() < 3 and (diff.max() == 0 or size[0] * 2 != image.shape[1])
        assert abs(out.mean() - image.mean()) < 0.5


def test_thumbnails_fit_the_side_both_ways(qtbot):
    from ui.imaging import thumbnail

    wide = np.zeros((300, 1200, 3), np.uint8)
    wide[:, 600:] = 200
    pm = thumbnail(wide, 96)
    assert (pm.width(), pm.height()) == (96, 24)
    img = pm.toImage()
    assert img.pixelColor(10, 12).red() == 0 and img.pixelColor(85, 12).red() == 200
    small = thumbnail(np.zeros((20, 10, 3), np.uint8), 56)  # a small picture grows to fit
    assert (small.width(), small.height()) == (28, 56)
    # on a Retina screen: twice the pixels, shown at the same logical size
    sharp = thumbnail(wide, 96, ratio=2.0)
    assert (sharp.width(), sharp.height()) == (192, 48) and sharp.devicePixelRatio() == 2.0
    assert sharp.deviceIndependentSize().toSize().width() == 96


def test_the_result_strip_makes_thumbnails_for_the_screen_it_is_on(qtbot):
    """Twice the pixels on an ordinary screen (sharp if the window moves to a Retina
    one), three times on a 3x screen: the strip's thumbnails are never scaled up."""
    from ui.widgets import CandidatesStrip

    strip = CandidatesStrip()
    qtbot.addWidget(strip)
    picture = np.zeros((400, 400, 3), np.uint8)
    side = CandidatesStrip.THUMB
    for ratio, pixels in ((1.0, 2 * side), (3.0, 3 * side)):
        strip.devicePixelRatioF = lambda ratio=ratio: ratio  # the screen's, as Qt says it
        pm = strip.set_thumbnail(0, picture)
        assert (pm.width(), pm.devicePixelRatio()) == (pixels, max(2.0, ratio))
        assert pm.deviceIndependentSize().toSize().width() == side


def test_the_canvas_makes_only_the_picture_size_it_shows(qtbot):
    from dedit_app.project import Project
    from ui.canvas import CanvasView
    from ui.document import Document

    h, w = 1200, 1600
    image = np.random.default_rng(5).integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = np.zeros((h, w), np.int32)
    labels[:, w // 2 :] = 1
    view = CanvasView()
    qtbot.addWidget(view)
    view.resize(420, 320)
    view.show()
    view.set_document(Document(Project.new(image, labels, ["left", "right"])))
    view.fit()
    view.viewport().grab()
    shown = view.photo._photo.levels
    assert 0 not in shown and len(shown) == 1  # fit-to-view of a large photo: one small level
    (k,) = shown
    assert shown[k].width() == w >> k and 2 ** (k + 1) * view.zoom > 1.0
    view.set_compare(image[::-1].copy(), 0.5)
    view.viewport().grab()
    assert set(view.photo._before.levels) == {k}  # the "before" side at the same size
    view.set_zoom(1.0)
    view.viewport().grab()
    assert 0 in shown  # at 100 % the full-size level is made, when it is needed


_COLLECT_DOCUMENTS = r"""
import gc, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import numpy as np
from ui.app import create_app
from ui.document import Document
from dedit_app.project import Project

create_app()
photo = np.zeros((60, 80, 3), np.uint8)
edited = photo.copy()
edited[10:30, 10:30] = 200
labels = np.zeros((60, 80), np.int32)


def let_go():
    doc = Document(Project.new(photo, labels, ["all"]))
    for picture in (edited, photo, edited):
        doc.apply_result(picture, labels, {"kind": "text"}, "edit")
    doc.undo.undo()
    doc.me = doc  # a cycle of its own, besides the one through its steps


for _ in range(40):
    let_go()
    gc.collect()
print("collected")
"""


def test_documents_let_go_without_delete_later_are_collected_without_a_crash():
    """A document with undo steps, dropped in a reference cycle and taken apart by the
    garbage collector, crashed Qt (QUndoStack::clear, in roughly one run of two with a
    few documents): its steps are deleted first now. In processes of their own, as the
    crash killed them; the collector's order follows the hash seed (seeds 0, 2, 4 and 5
    crashed, 1 and 3 did not)."""
    import os
    import subprocess
    import sys

    for seed in range(6):
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONHASHSEED=str(seed))
        out = subprocess.run(
            [sys.executable, "-c", _COLLECT_DOCUMENTS],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert out.returncode == 0 and "collected" in out.stdout, (seed, out.stderr[-2000:])
