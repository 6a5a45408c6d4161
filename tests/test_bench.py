"""The benchmark harness: rows print as they are measured, and a failing part is reported
as a row (with the error) while the parts after it still run, and the run exits 1."""

from __future__ import annotations

import bench

from benchmarks.common import FAILED, Row, guarded, print_table


def _part_that_fails_after_one_row():
    yield Row("case a", "ours", 0.5, 1.0)
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")


def test_a_failing_part_keeps_its_rows_and_names_the_error(capsys):
    rows = list(guarded("case a", _part_that_fails_after_one_row))
    assert [r.impl for r in rows] == ["ours", f"{FAILED}: case a"]
    assert rows[1].note == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "Traceback" in capsys.readouterr().err


def test_rows_print_as_they_arrive_and_failures_are_counted(capsys):
    printed_before_second = []

    def rows():
        yield Row("case a", "ours", 0.25, None, 2.0, "first")
        printed_before_second.append(capsys.readouterr().out)
        yield from guarded("case b", _part_that_fails_after_one_row)

    assert print_table(rows()) == 1
    assert "first" in printed_before_second[0]  # printed before the next row was measured
    out = capsys.readouterr().out
    assert "failed" in out and "CUDA out of memory" in out


def test_bench_exits_1_when_a_part_fails(monkeypatch, capsys):
    import types

    from benchmarks import common

    monkeypatch.setattr(common, "ONLY", ())  # bench.main sets it from --only

    fake = types.SimpleNamespace(run=lambda profile: guarded("x", _part_that_fails_after_one_row))
    monkeypatch.setattr(bench.importlib, "import_module", lambda name: fake)
    assert bench.main(["partition", "--quick", "--only", "x"]) == 1
    assert "1 benchmark part(s) failed" in capsys.readouterr().out


def test_only_runs_the_named_parts(monkeypatch):
    from benchmarks import common

    ran = []

    def part(name):
        return lambda: ran.append(name) or [Row("c", name, 1.0, None)]

    monkeypatch.setattr(common, "ONLY", ("job compiled", "switches"))
    names = ["micro-step", "job default", "job compiled (inductor)", "switches"]
    rows = [r for name in names for r in guarded(name, part(name))]
    assert ran == ["job compiled (inductor)", "switches"]
    assert [r.impl for r in rows] == ran


def test_full_resolution_host_work_agrees_with_the_whole_frame_formulas():
    from benchmarks.fullres import host_rows

    ours, whole = host_rows(300, 400, 2, 1, "host")
    assert ours.note.endswith("max pixel diff 0")
    assert ours.impl == "0.12 MP, 2 pictures: ours (window)" and whole.ratio == 1.0
    assert ours.ratio == whole.seconds / ours.seconds


def test_going_back_far_reads_the_same_pictures_both_ways_and_whole_ones_cost_disk():
    """The benchmark's two ways of keeping a long history give back the same pictures
    (it raises otherwise), and keeping whole pictures now and then takes more disk."""
    from benchmarks.history_disk import _boxes_only, _far

    ours = _far(90, 120, 40, (2, 32, 33, 40))
    with _boxes_only():
        boxes = _far(90, 120, 40, (2, 32, 33, 40))
    assert ours[1] > boxes[1] > 0


def test_history_on_disk_saves_less_with_boxes_than_whole_pictures():
    from benchmarks.history_disk import _run, _whole_pictures

    ours = _run(90, 120, 3)
    with _whole_pictures():
        whole = _run(90, 120, 3)
    assert ours[1] < whole[1]
