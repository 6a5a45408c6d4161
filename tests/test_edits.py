"""The edits on a prepared tiny project: images, item maps, regions, and refusals."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from dedit_app.edits import (
    DuplicateRequest,
    MoveRequest,
    ReconRequest,
    RedrawRequest,
    RemoveRequest,
    SwapRequest,
    TextRequest,
    check_edit,
    edit,
    plan_edit,
    run_edit,
)
from dedit_app.errors import Cancelled, EditError, ItemError, ModelLoadError
from dedit_app.jobs import CancelToken, run_job
from dedit_app.partition import Move, paint, stroke_mask
from dedit_app.project import Project, weights_metadata
from dedit_app.sampler import SamplingOptions

FAST = SamplingOptions(steps=2, edge=8)


@pytest.fixture
def project(prepared_project_dir):
    return Project.load(prepared_project_dir / "tiny.dedit")


@pytest.fixture
def reference(prepared_project_dir):
    return Project.load(prepared_project_dir / "reference.dedit")


def _snapshot(p):
    return (
        p.image.copy(),
        p.labels.copy(),
        copy.deepcopy(p.items),
        copy.deepcopy(p.training),
        list(p.history),
    )


def _same(a, b):
    return (
        np.array_equal(a[0], b[0])
        and np.array_equal(a[1], b[1])
        and a[2] == b[2]
        and a[3] == b[3]
        and a[4] == b[4]
    )


def _check_output(project, result):
    for image in result.images:
        assert image.shape == project.image.shape and image.dtype == np.uint8
        keep = result.hard
        assert (image[keep] == project.image[keep]).all()
    assert ((result.active.astype(int) + result.soft + result.hard) == 1).all()


def test_recon_regenerates_everything(tiny_sdxl, project):
    result = edit(tiny_sdxl, project, ReconRequest(FAST))
    assert result.active.all() and not result.hard.any() and result.labels is None
    assert set(result.prompts) == {0, 1, 2, 3}
    assert result.prompts[3] == project.items[3].tokens
    _check_output(project, result)


def test_text_edit_regenerates_only_the_item(tiny_sdxl, project):
    before = _snapshot(project)
    result = edit(tiny_sdxl, project, TextRequest(3, "a white *", extra_active=(2,), options=FAST))
    assert result.prompts[3] == f"a white {project.items[3].tokens}"
    assert result.prompts[0] == project.items[0].tokens
    assert (result.active == np.isin(project.labels, [2, 3])).all()
    assert result.hard.any() and result.soft.any()
    _check_output(project, result)
    assert result.entry()["prompt"] == "a white *" and result.entry()["extra_active"] == [2]
    assert _same(before, _snapshot(project))


def test_swap_takes_the_reference_items_tokens(tiny_sdxl, project, reference):
    import json

    from dedit_app.finetune import weights_metadata

    result = edit(tiny_sdxl, project, SwapRequest(1, 0, options=FAST), reference=reference)
    ref_tokens = json.loads(weights_metadata(project)["reference_items"])
    assert result.prompts[1] == ref_tokens[0] and ref_tokens[0].startswith("$")
    assert (result.active == (project.labels == 1)).all()
    _check_output(project, result)
    entry = result.entry()  # what the item looks like from now on, and its name
    assert entry["weights_id"] == project.training["weights_id"]
    assert entry["reference_name"] == reference.items[0].name


def test_move_resize_with_stacking_order(tiny_sdxl, project):
    moves = (Move(3, dx=40, dy=30, scale=0.5), Move(2, dx=0, dy=-20))
    result = edit(tiny_sdxl, project, MoveRequest(moves, order=(3, 2), options=FAST))
    old, new = project.labels, result.labels
    assert new is not None and new.shape == old.shape
    moved = np.isin(new, [2, 3]) | np.isin(old, [2, 3])
    assert (result.active == moved).all()
    assert (new == 3).sum() < (old == 3).sum()  # half size
    _check_output(project, result)


def test_a_flip_repaints_the_mirrored_items_and_its_entry_says_they_were_flipped(
    tiny_sdxl, project
):
    from dedit_app.partition import flip_moves, item_bbox
    from dedit_app.wording import edit_words

    moves = flip_moves({k: item_bbox(project.labels, k) for k in (2, 3)})
    result = edit(tiny_sdxl, project, MoveRequest(moves, options=FAST))
    old, new = project.labels, result.labels
    assert (result.active == (np.isin(new, [2, 3]) | np.isin(old, [2, 3]))).all()
    for k in (2, 3):
        assert (new == k).sum() == (old == k).sum()  # mirrored, not resized
    entry = result.entry()
    assert [m[4] for m in entry["moves"]] == [True, True]
    assert edit_words(entry, [i.name for i in project.items]).startswith("flip: ")
    moved = MoveRequest((Move(2, 5, 0),), options=FAST)
    assert len(edit(tiny_sdxl, project, moved).entry()["moves"][0]) == 4  # as before
    _check_output(project, result)


def test_a_duplicate_paints_a_new_item_that_looks_as_its_item_and_leaves_the_item(
    tiny_sdxl, project
):
    from dedit_app.wording import edit_words

    n = len(project.items)
    moves = (Move(3, dx=-30, dy=0), Move(3, dx=0, dy=-25, scale=0.5, flip=True))
    result = edit(tiny_sdxl, project, DuplicateRequest(moves, options=FAST))
    old, new = project.labels, result.labels
    assert result.items is not None and len(result.items) == n + 2
    assert [i.name for i in result.items[n:]] == [
        f"{project.items[3].name} copy",
        f"{project.items[3].name} copy 2",
    ]
    assert (result.active == (new >= n)).all()  # only the copies are painted
    assert ((new == old) | (new >= n)).all()  # every other pixel keeps its item
    assert (new == n + 1).sum() > 0 and (new >= n).sum() > (old == 3).sum()  # the second on top
    tokens = json.loads(weights_metadata(project)["items"])
    assert result.prompts[n] == result.prompts[n + 1] == tokens[3]
    entry = result.entry()
    assert entry["copies"] == [n, n + 1] and [m[0] for m in entry["moves"]] == [3, 3]
    assert entry["moves"][1][4] is True  # the second copy was mirrored
    assert entry["weights_id"] == project.training["weights_id"]
    words = edit_words(entry, [i.name for i in project.items])
    assert words == f"duplicate: {project.items[3].name}, {project.items[3].name}"
    _check_output(project, result)


def test_a_copy_edits_with_its_items_look_until_prepared_again(project):
    tokens = json.loads(weights_metadata(project)["items"])
    n = len(project.items)
    project.apply(project.image, project.labels, {"kind": "text", "item": 3, "prompt": "a red *"})
    plan = plan_edit(project, DuplicateRequest((Move(3, dx=-30),)))
    assert plan.prompts[n] == f"a red {tokens[3]}" and plan.items[n].prompt == "a red *"
    entry = {"kind": "duplicate", "moves": [[3, -30.0, 0.0, 1.0]], "copies": [n]}
    entry["weights_id"] = project.training["weights_id"]
    project.apply(project.image, plan.new_labels, entry, items=plan.items)
    # the copy takes any edit as its item would: "*" is the item's learned tokens
    assert plan_edit(project, TextRequest(n, "a blue *")).prompts[n] == f"a blue {tokens[3]}"
    assert plan_edit(project, MoveRequest((Move(n, dx=5),))).prompts[n] == f"a red {tokens[3]}"
    # the item swapped afterwards: the copy keeps the look it was copied with
    project.apply(
        project.image,
        project.labels,
        {"kind": "swap", "item": 3, "reference_item": 0, "weights_id": entry["weights_id"]},
    )
    assert plan_edit(project, TextRequest(n, "a blue *")).prompts[n] == f"a blue {tokens[3]}"
    # made with an earlier preparation: the copy had no tokens of its own then
    project.history[-2]["weights_id"] = "an earlier preparation"
    with pytest.raises(EditError, match="Items were added after this project was prepared"):
        plan_edit(project, TextRequest(n, "a blue *"))


def test_a_duplicate_landing_after_the_project_was_prepared_again_keeps_its_copies(project):
    n = len(project.items)
    plan = plan_edit(project, DuplicateRequest((Move(3, dx=-30),)))
    entry = {"kind": "duplicate", "moves": [[3, -30.0, 0.0, 1.0]], "copies": [n]}
    project.apply(
        project.image, plan.new_labels, {**entry, "weights_id": "an earlier one"}, items=plan.items
    )
    assert project.history[-1]["weights_id"] == project.training["weights_id"]
    assert plan_edit(project, TextRequest(n, "a blue *")).prompts[n].startswith("a blue ")


def test_going_back_to_before_a_duplicate_takes_its_copies_away_and_forth_again(project):
    from dedit_app.going_back import back_before
    from dedit_app.wording import free_name

    n = len(project.items)
    plan = plan_edit(project, DuplicateRequest((Move(3, dx=-30),)))
    entry = {"kind": "duplicate", "moves": [[3, -30.0, 0.0, 1.0]], "copies": [n]}
    entry["weights_id"] = project.training["weights_id"]
    project.apply(project.image, plan.new_labels, entry, items=plan.items)
    way = back_before(project, 1)
    assert len(way.items) == n and int(way.labels.max()) < n
    project.apply(way.image, way.labels, way.entry, items=way.items)
    with pytest.raises(ItemError, match=f"There is no item {n}"):
        check_edit(project, TextRequest(n, "a blue *"))
    way = back_before(project, 2)  # to before the going back: the copy again
    project.apply(way.image, way.labels, way.entry, items=way.items)
    assert project.items[n].name == plan.items[n].name
    assert plan_edit(project, TextRequest(n, "a blue *")).prompts[n].startswith("a blue ")
    assert free_name("bag copy 2", {"bag copy 2", "bag copy 3"}) == "bag copy 4"
    assert free_name("bag", {"bag copy"}) == "bag"


def test_a_copy_is_refused_in_words_where_it_would_hide_its_item(project):
    with pytest.raises(ItemError, match="would cover it whole; put the copy somewhere else"):
        plan_edit(project, DuplicateRequest((Move(3),)))
    with pytest.raises(EditError, match="Choose at least one item to copy"):
        check_edit(project, DuplicateRequest(()))
    with pytest.raises(ItemError, match="There is no item 99"):
        check_edit(project, DuplicateRequest((Move(99, dx=4),)))


def test_remove_gives_pixels_to_neighbours(tiny_sdxl, project):
    result = edit(tiny_sdxl, project, RemoveRequest(3, options=FAST))
    assert result.labels is not None and not (result.labels == 3).any()
    assert (result.active == (project.labels == 3)).all()
    assert 3 not in result.prompts
    np.testing.assert_array_equal(
        result.areas, np.bincount(result.labels.ravel(), minlength=len(project.items))
    )
    _check_output(project, result)


def test_remove_several_items_in_one_edit(tiny_sdxl, project):
    result = edit(tiny_sdxl, project, RemoveRequest(3, options=FAST, also=(1,)))
    gone = np.isin(project.labels, [1, 3])
    assert result.labels is not None and not np.isin(result.labels, [1, 3]).any()
    assert (result.active == gone).all()
    assert 1 not in result.prompts and 3 not in result.prompts
    assert result.entry()["item"] == 3 and result.entry()["also"] == [1]
    _check_output(project, result)
    everything = tuple(range(len(project.items)))
    with pytest.raises(ItemError, match="cover the whole picture, so no other item"):
        check_edit(project, RemoveRequest(0, also=everything[1:]))


def test_redraw_regenerates_only_the_pixels_whose_item_was_reshaped(tiny_sdxl, project):
    drawn = project.labels
    with pytest.raises(EditError, match="No item was reshaped"):
        check_edit(project, RedrawRequest(drawn.copy()))
    # A brush stroke from item 3 out over its neighbours, as the editor's brush makes it.
    ys, xs = np.nonzero(drawn == 3)
    y, x0 = int(ys.mean()), int(xs.min())
    project.labels = paint(drawn, stroke_mask(drawn.shape, [(x0 + 2, y), (x0 - 12, y)], 4), 3)
    changed = drawn != project.labels
    assert changed.sum() > 50 and (project.labels[changed] == 3).all()
    before = _snapshot(project)
    result = edit(tiny_sdxl, project, RedrawRequest(drawn, options=FAST))
    assert _same(before, _snapshot(project))  # the edit itself applies nothing
    assert result.labels is None  # the reshaped map is already the project's
    np.testing.assert_array_equal(result.active, changed)
    assert set(result.prompts) == set(np.unique(project.labels).tolist())
    assert result.entry()["kind"] == "redraw" and result.entry()["pixels"] == changed.sum()
    _check_output(project, result)


def test_several_candidates(tiny_sdxl, project):
    result = edit(
        tiny_sdxl, project, RemoveRequest(3, options=SamplingOptions(steps=2, candidates=2, seed=4))
    )
    assert result.seeds == [4, 5] and len(result.images) == 2


BAD_REQUESTS = [
    (TextRequest(9, "a cat"), ItemError, "no item 9"),
    (TextRequest(-1, "a cat"), ItemError, "no item -1"),
    (TextRequest(1, "   "), EditError, "Type a prompt"),
    (TextRequest(1, "a cat", extra_active=(7,)), ItemError, "extra active item 7"),
    (RemoveRequest(12), ItemError, "no item 12"),
    (MoveRequest((Move(3, 5000, 0),)), ItemError, "outside the picture"),
    (MoveRequest((Move(3, 0, 0, 0.0),)), ItemError, "above zero"),
    (MoveRequest((Move(3, 0, 0, -1.0),)), ItemError, "above zero"),
    (MoveRequest(()), EditError, "at least one item"),
    (SwapRequest(1, 0), EditError, "needs the reference project"),
    (TextRequest(1, "a cat", options=SamplingOptions(strength=2.0)), EditError, "strength"),
    (RedrawRequest(np.zeros((3, 3), np.int32)), EditError, "not the picture's size"),
]


@pytest.mark.parametrize(("request_", "error", "words"), BAD_REQUESTS)
def test_bad_requests_fail_before_work_and_change_nothing(
    tiny_sdxl, project, request_, error, words
):
    before = _snapshot(project)
    tiny_sdxl.reset()
    with pytest.raises(error, match=words):
        run_edit(tiny_sdxl, project, request_)
    assert _same(before, _snapshot(project))
    assert tiny_sdxl.applied == ""  # refused before the learned weights were even loaded


@pytest.mark.parametrize(("request_", "error", "words"), BAD_REQUESTS)
def test_the_ui_threads_check_refuses_all_but_what_the_new_item_map_refuses(
    project, request_, error, words
):
    # The editor checks on the UI thread with check_edit; a move's new item map is the
    # preview's and the job's to work out (and to refuse), so only those errors pass it.
    if words in ("outside the picture", "above zero"):
        check_edit(project, request_)
        with pytest.raises(error, match=words):
            plan_edit(project, request_)
    else:
        with pytest.raises(error, match=words):
            check_edit(project, request_)


def test_a_prompt_too_long_for_the_items_learned_tokens_is_refused_by_the_job(tiny_sdxl, project):
    """CLIP would cut a learned prompt's tokens off at 40: the item's look would be lost.
    The tokenizer is the model's, so the job refuses (before any work), not the UI's
    check."""
    long = TextRequest(1, "red " * 36 + "*", options=FAST)
    check_edit(project, long)
    before = _snapshot(project)
    tiny_sdxl.reset()
    with pytest.raises(EditError, match="too long to hold .* learned look: .* about \\d+ words"):
        run_edit(tiny_sdxl, project, long)
    assert _same(before, _snapshot(project)) and tiny_sdxl.applied == ""
    assert edit(tiny_sdxl, project, TextRequest(1, "red " * 20 + "*", options=FAST)).images
    # typed text alone is read to CLIP's full length, and refused past it, not cut
    before = _snapshot(project)
    with pytest.raises(
        EditError, match="too long: .* about 75 words and signs, and this one has 80"
    ):
        run_edit(tiny_sdxl, project, TextRequest(1, "red " * 80, options=FAST))
    assert _same(before, _snapshot(project))
    assert edit(tiny_sdxl, project, TextRequest(1, "red " * 75, options=FAST)).images


def test_project_not_prepared(tiny_sdxl, tiny_photo):
    image, labels, names = tiny_photo
    fresh = Project.new(image, labels, list(names))
    with pytest.raises(EditError, match="not been prepared"):
        run_edit(tiny_sdxl, fresh, ReconRequest(FAST))


def test_reference_not_prepared_together(tiny_sdxl, project, tiny_photo):
    image, labels, names = tiny_photo
    stranger = Project.new(image[::-1].copy(), labels, list(names))
    with pytest.raises(EditError, match="not prepared together"):
        run_edit(tiny_sdxl, project, SwapRequest(1, 0), reference=stranger)
    with pytest.raises(ItemError, match="no item 8 in the reference"):
        run_edit(tiny_sdxl, project, SwapRequest(1, 8), reference=stranger)


def test_a_reference_prepared_again_alone_on_another_model_still_swaps(
    tiny_sdxl, project, reference
):
    """The swap's tokens are in this project's weights, learned when the two photos were
    prepared together; the reference's own later preparation does not change them."""
    before = edit(tiny_sdxl, project, SwapRequest(1, 0, options=FAST), reference=reference)
    reference.training = {"fingerprint": "sdxl-ffffffffffff", "base_model": "other-sdxl"}
    after = edit(tiny_sdxl, project, SwapRequest(1, 0, options=FAST), reference=reference)
    assert np.array_equal(before.images[0], after.images[0])


def test_weights_of_another_base_model_are_refused(tiny_sdxl_other_path, project):
    from dedit_app.models import load_model

    other = load_model(tiny_sdxl_other_path, device="cpu")
    with pytest.raises(ModelLoadError, match="prepared on tiny-sdxl"):
        run_edit(other, project, ReconRequest(FAST))


def test_cancelled_edit_changes_nothing(tiny_sdxl, project):
    before = _snapshot(project)
    cancel = CancelToken()
    job = run_edit(
        tiny_sdxl, project, RemoveRequest(3, options=SamplingOptions(steps=4)), cancel=cancel
    )
    with pytest.raises(Cancelled):
        run_job(job, lambda p: cancel.cancel() if p.stage == "sampling" else None)
    assert _same(before, _snapshot(project))


def test_plan_is_cheap_and_pure(project):
    plan = plan_edit(project, RemoveRequest(3))
    assert plan.new_labels is not None and not (plan.new_labels == 3).any()
    assert (project.labels == 3).any()
    assert isinstance(plan.metadata, dict)


def test_an_item_retyped_keeps_its_new_look_when_it_is_moved_or_others_are_edited(project):
    tokens = json.loads(weights_metadata(project)["items"])
    moved = MoveRequest((Move(3, dx=40, dy=30, scale=0.5),))
    assert plan_edit(project, moved).prompts[3] == tokens[3]  # never retyped: its own look
    project.apply(project.image, project.labels, {"kind": "text", "item": 3, "prompt": "a white *"})
    assert project.items[3].prompt == "a white *"
    for request in (moved, TextRequest(1, "a red bag"), RemoveRequest(1)):
        plan = plan_edit(project, request)
        assert plan.prompts[3] == f"a white {tokens[3]}", request
        assert plan.prompts[0] == tokens[0]  # the others keep their learned look
    # retyped again, the newest prompt counts
    assert plan_edit(project, TextRequest(3, "a red bag")).prompts[3] == "a red bag"
    # swapped: the typed prompt no longer says how it looks, and is dropped
    project.apply(project.image, project.labels, {"kind": "swap", "item": 3, "reference_item": 0})
    assert project.items[3].prompt == "" and plan_edit(project, moved).prompts[3] == tokens[3]


def test_a_swapped_item_keeps_the_references_look_until_it_is_prepared_again(project):
    metadata = weights_metadata(project)
    tokens, ref = json.loads(metadata["items"]), json.loads(metadata["reference_items"])
    swap = {"kind": "swap", "item": 3, "reference_item": 0}
    project.apply(
        project.image, project.labels, {**swap, "weights_id": project.training["weights_id"]}
    )
    moved = MoveRequest((Move(3, dx=40, dy=30, scale=0.5),))
    for request in (moved, TextRequest(1, "a red bag"), RemoveRequest(1)):
        assert plan_edit(project, request).prompts[3] == ref[0], request
        assert plan_edit(project, request).prompts[0] == tokens[0]
    # "*" in a prompt typed afterwards stands for the swapped-in item, and stays so
    assert plan_edit(project, TextRequest(3, "a red *")).prompts[3] == f"a red {ref[0]}"
    project.apply(project.image, project.labels, {"kind": "text", "item": 3, "prompt": "a red *"})
    assert plan_edit(project, moved).prompts[3] == f"a red {ref[0]}"
    # swapped again, from another reference item: the newest swap counts
    project.apply(
        project.image,
        project.labels,
        {**swap, "reference_item": 1, "weights_id": project.training["weights_id"]},
    )
    assert plan_edit(project, moved).prompts[3] == ref[1]
    # swaps made before the preparation the project holds now do not count: preparing
    # learned the item's own tokens from it as it looked then
    for record in project.history:
        record["weights_id"] = "an earlier preparation"
    assert plan_edit(project, moved).prompts[3] == tokens[3]


def test_a_swap_landing_after_the_project_was_prepared_again_keeps_its_look(project):
    """Queued behind a new preparation, or waiting for a click in the results strip, a
    swap made with the earlier preparation lands on the new one: prepared jointly with
    the same reference, it keeps painting the item with the reference item's tokens."""
    ref = json.loads(weights_metadata(project)["reference_items"])
    made_with = {"weights_id": "an earlier preparation", "reference_key": "the key"}
    swap = {"kind": "swap", "item": 3, "reference_item": 1, **made_with}
    moved = MoveRequest((Move(3, dx=40, dy=30, scale=0.5),))
    project.training["reference_key"] = "the key"
    project.apply(project.image, project.labels, dict(swap))
    assert project.history[-1]["weights_id"] == project.training["weights_id"]
    assert plan_edit(project, moved).prompts[3] == ref[1]
    # prepared with another reference photo: its tokens are not the reference item's
    project.training["reference_key"] = "another photo"
    project.apply(project.image, project.labels, dict(swap))
    assert project.history[-1]["weights_id"] == "an earlier preparation"
    assert plan_edit(project, moved).prompts[3] != ref[1]


@pytest.mark.parametrize(
    "request_", [RemoveRequest(3), MoveRequest((Move(3, dx=40, dy=30, scale=0.5),))]
)
def test_a_new_item_map_comes_with_its_pixel_counts(project, request_):
    plan = plan_edit(project, request_)
    n = len(project.items)
    expected = np.bincount(plan.new_labels.ravel(), minlength=n)
    np.testing.assert_array_equal(plan.areas, expected)  # what the editor's list shows
    assert sorted(plan.prompts) == [int(k) for k in np.flatnonzero(expected)]
    assert plan_edit(project, TextRequest(1, "a red bag")).areas is None  # map unchanged
