"""Going back to the picture from before an earlier edit (dedit_app.going_back, `dedit back`)."""

from __future__ import annotations

import numpy as np
import pytest

from dedit_app.cli import main
from dedit_app.errors import EditError, ProjectError
from dedit_app.going_back import back_before, standing
from dedit_app.looks import look_names, swapped_items
from dedit_app.project import Project


def _edited(tmp_path):
    """A saved project with three edits: a retyped prompt, a move (a new item map) and a
    swap, each also painting a band of the picture. Returns it and the (image, labels,
    [(name, prompt)]) before each edit, and after the last."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    labels = np.zeros((40, 56), np.int32)
    labels[:, 28:] = 1
    labels[10:20, 5:15] = 2
    project = Project.new(image, labels, ["wall", "floor", "cup"], source="room.png")
    project.training = {"weights_id": "w1"}
    states = []

    def state():
        items = [(i.name, i.prompt) for i in project.items]
        return project.image.copy(), project.labels.copy(), items

    moved = labels.copy()
    moved[10:20, 5:15] = 0
    moved[25:35, 40:50] = 2
    edits = [
        ({"kind": "text", "item": 1, "prompt": "a red floor"}, labels),
        ({"kind": "move", "moves": [[2, 35, 15, 1.0]]}, moved),
        ({"kind": "swap", "item": 2, "reference_item": 0, "reference_name": "mug",
          "weights_id": "w1"}, moved),
    ]  # fmt: skip
    for n, (entry, after) in enumerate(edits):
        states.append(state())
        painted = project.image.copy()
        painted[n * 8 : n * 8 + 6] = 60 * (n + 1)
        project.apply(painted, after, entry)
    project.items[0].name = "the wall"  # renamed after the last edit
    states.append(state())
    project.save(tmp_path / "room.dedit")
    return Project.load(tmp_path / "room.dedit"), states


def _assert_state(project, state):
    image, labels, items = state
    np.testing.assert_array_equal(project.image, image)
    np.testing.assert_array_equal(project.labels, labels)
    assert [(i.name, i.prompt) for i in project.items] == items


def test_going_back_brings_the_picture_items_and_prompts_of_then_and_keeps_every_edit(tmp_path):
    project, states = _edited(tmp_path)
    project.items[2].tokens = "#cup0 #cup0_1"  # learned: going back keeps the preparation's
    way = back_before(project, 2)
    assert way.entry == {"kind": "back", "before": 2}
    project.apply(way.image, way.labels, way.entry, items=way.items)
    _assert_state(project, states[1])  # as before the move: the red floor, the cup unmoved
    assert project.items[2].tokens == "#cup0 #cup0_1"
    assert swapped_items(project) == {}  # the swap was gone back before
    project.save()

    again = Project.load(project.folder)
    assert [r["kind"] for r in again.history] == ["text", "move", "swap", "back"]
    _assert_state(again, states[1])
    # going back to before the going back is where it started, the swap's look included
    way = back_before(again, 4)
    again.apply(way.image, way.labels, way.entry, items=way.items)
    _assert_state(again, states[3])
    assert look_names(again) == {2: "“mug” from the reference"}
    assert [r.get("before") for r in standing(again.history)] == [None, None, None, 4]


def test_each_earlier_state_is_reached_from_a_reopened_project(tmp_path):
    project, states = _edited(tmp_path)
    for number in (1, 2, 3):
        way = back_before(project, number)
        np.testing.assert_array_equal(way.image, states[number - 1][0])
        np.testing.assert_array_equal(way.labels, states[number - 1][1])
        assert [(i.name, i.prompt) for i in way.items] == states[number - 1][2]
    assert len(project.history) == 3  # asking changes nothing


def test_an_edit_saved_before_items_were_recorded_keeps_todays_items(tmp_path):
    project, states = _edited(tmp_path)
    for record in project.history:
        del record["items_before"]
    project.items = project.items[:2]  # as if the map then used an id today's list lacks
    way = back_before(project, 1)
    assert [i.name for i in way.items] == ["the wall", "floor", "item 2"]
    np.testing.assert_array_equal(way.labels, states[0][1])
    project.apply(way.image, way.labels, way.entry, items=way.items)  # the ids fit
    assert project.history[-1]["items_before"] == [
        {"name": "the wall", "prompt": ""},
        {"name": "floor", "prompt": "a red floor"},
    ]


@pytest.mark.parametrize("number", [0, 4, -1, True])
def test_an_edit_the_history_lacks_is_refused_in_words(tmp_path, number):
    project, _ = _edited(tmp_path)
    with pytest.raises(EditError) as err:
        back_before(project, number, "room.dedit")
    assert str(err.value) == (
        f"There is no edit {number} in room.dedit; it has edits 1 to 3 (dedit info)."
    )


def test_standing_sets_aside_the_edits_gone_back_before():
    a, b, c = {"kind": "text"}, {"kind": "move"}, {"kind": "swap"}
    back = {"kind": "back", "before": 2}
    assert standing([a, b, c, back]) == [a, back]
    again = {"kind": "back", "before": 4}
    assert standing([a, b, c, back, again]) == [a, b, c, again]
    assert standing([a, {"kind": "back", "before": 9}]) == [a, {"kind": "back", "before": 9}]


def test_dedit_back_saves_going_back_as_an_edit(tmp_path, capsys):
    project, states = _edited(tmp_path)
    folder = str(project.folder)
    assert main(["back", folder, "1"]) == 0
    said = capsys.readouterr().out.strip()
    assert said == f"{project.folder}: edit 4, back: to before edit 1"
    _assert_state(Project.load(folder), states[0])
    assert main(["info", folder]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("4 edits in the history")
    assert [line.endswith("  set aside by going back") for line in lines[at + 1 : at + 5]] == [
        True, True, True, False
    ]  # fmt: skip
    assert lines[at + 4].startswith("    4 back: to before edit 1  (")
    assert main(["back", folder, "7"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"dedit: error: There is no edit 7 in {folder}; it has edits 1 to 4 (dedit info)."
    _assert_state(Project.load(folder), states[0])  # unchanged by the refusal


def test_an_edit_whose_items_do_not_fit_its_map_changes_nothing(tmp_path):
    project, states = _edited(tmp_path)
    way = back_before(project, 1)
    with pytest.raises(ProjectError, match="lists only 2 items"):
        project.apply(way.image, way.labels, way.entry, items=way.items[:2])
    _assert_state(project, states[-1])
    assert len(project.history) == 3


def test_an_edit_is_named_with_the_names_its_items_had_then():
    from dedit_app.wording import edit_words

    record = {"kind": "text", "item": 0, "prompt": "a red *"}
    then = [{"name": "bag", "prompt": ""}]
    assert edit_words({**record, "items_before": then}, ["handbag"]) == "text: bag → “a red *”"
    assert edit_words(record, ["handbag"]) == "text: handbag → “a red *”"  # saved before
    assert edit_words({**record, "items_before": []}, ["handbag"]) == "text: handbag → “a red *”"


def test_a_missing_earlier_picture_is_said_in_words_and_changes_nothing(tmp_path, capsys):
    project, states = _edited(tmp_path)
    patch = project.folder / project.history[1]["image_patch"]
    patch.unlink()
    with pytest.raises(ProjectError) as err:
        back_before(project, 2)  # rebuilt from the picture now through edit 2's box
    assert str(err.value) == f"The project file {patch} is missing."
    np.testing.assert_array_equal(back_before(project, 3).image, states[2][0])  # the rest reads
    assert main(["back", str(project.folder), "2"]) == 1
    assert capsys.readouterr().err.strip() == f"dedit: error: The project file {patch} is missing."
    _assert_state(Project.load(project.folder), states[-1])
