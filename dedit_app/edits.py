"""The D-Edit edits: one immutable request in, candidate pictures and regions out.

    result = run_job(run_edit(model, project, TextRequest(item=0, prompt="a white handbag")))
    result.images[0]            # (H, W, 3) uint8 at the photo's resolution
    result.labels               # the new item map (move, remove), else None
    result.active / .soft / .hard

- ReconRequest: every item with its learned tokens, no masks; everything is generated.
- TextRequest: item i's prompt becomes the typed text (``*`` in it stands for the item's
  tokens, e.g. "a white *": its own, or the reference item's after a swap); active =
  item i (plus any extra active items).
- SwapRequest: item i takes the tokens of item j of a reference photo prepared jointly
  with this one; active = item i (plus extras).
- MoveRequest: items are scaled (mirrored when flipped, and turned) about their
  bounding-box centres, shifted and laid on top in the given stacking order; vacated
  pixels go to the nearest item that did not move; active = their new area plus the
  pixels they vacated (plus extras).
- DuplicateRequest: copies of items are laid where their moves take them, as new items
  that look as their items do (:mod:`dedit_app.looks`); the items stay where they are;
  active = the copies' pixels (plus extras).
- RemoveRequest: the item's pixels (and those of the items ``also`` names) go to the
  nearest items that stay, and the removed items are left out of the prompts; active =
  their former pixels (plus extras).
- RedrawRequest: the paper's reshape. Items were reshaped by hand (brush, eraser, merge)
  after the picture was made; the pixels whose item changed are generated again, each
  with its new item's tokens; active = those pixels (plus extras).

Every item an edit does not retype is painted as it looks now (:mod:`dedit_app.looks`):
with the prompt a text edit gave it, or the reference tokens a swap gave it.

Every check a user can fail (unknown item, empty prompt, a move off the picture, scale <= 0,
a reference prepared on another base model or not with this project, a project not prepared
yet) raises :class:`~dedit_app.errors.EditError` or ``ItemError`` *before* any heavy work.
Edits never modify the project; applying a result is the caller's choice
(``project.apply(result.images[k], result.labels or project.labels, result.entry())``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from dedit_app.errors import EditError, ItemError
from dedit_app.finetune import apply_trained, content_key, weights_metadata
from dedit_app.jobs import CancelToken, Job, Progress, run_job
from dedit_app.looks import item_looks, missing_looks
from dedit_app.models import DiffusionModel, check_weights_match
from dedit_app.partition import (
    Move,
    copy_items,
    holds_any,
    item_areas,
    move_items,
    present_items,
    remove_items,
)
from dedit_app.project import Item
from dedit_app.sampler import SampleRequest, SamplingOptions, sample
from dedit_app.tokens import PLAIN_LENGTH, TOKEN_LENGTH
from dedit_app.wording import free_name

__all__ = [
    "DuplicateRequest",
    "EditRequest",
    "EditResult",
    "MoveRequest",
    "ReconRequest",
    "RedrawRequest",
    "RemoveRequest",
    "SwapRequest",
    "TextRequest",
    "check_edit",
    "copies_of",
    "edit",
    "plan_edit",
    "run_edit",
]


@dataclass(frozen=True)
class ReconRequest:
    """Re-render the whole picture from every item's learned tokens (a check of preparing)."""

    options: SamplingOptions = SamplingOptions()
    kind = "recon"


@dataclass(frozen=True)
class TextRequest:
    """Item ``item`` becomes ``prompt``; ``*`` in the prompt stands for the item's own
    learned tokens ("a white *")."""

    item: int
    prompt: str
    extra_active: tuple[int, ...] = ()  # more items to regenerate, as the paper allows
    options: SamplingOptions = SamplingOptions()
    kind = "text"


@dataclass(frozen=True)
class SwapRequest:
    """Item ``item`` takes the look of item ``reference_item`` of the reference photo (the
    two projects must have been prepared together)."""

    item: int
    reference_item: int
    extra_active: tuple[int, ...] = ()
    options: SamplingOptions = SamplingOptions()
    kind = "swap"


@dataclass(frozen=True)
class MoveRequest:
    """Move/resize items (each scaled about its bounding-box centre, then shifted by
    ``(dx, dy)`` pixels, x right, y down); ``order`` stacks them, bottom first."""

    moves: tuple[Move, ...]
    order: tuple[int, ...] | None = None
    extra_active: tuple[int, ...] = ()
    options: SamplingOptions = SamplingOptions()
    kind = "move"


@dataclass(frozen=True)
class DuplicateRequest:
    """Copy items: each move takes a copy of its item (scaled, mirrored, turned about the
    item's bounding-box centre, then shifted by ``(dx, dy)`` pixels, x right, y down) to
    where it goes, on top, as a new item; the items themselves stay."""

    moves: tuple[Move, ...]
    extra_active: tuple[int, ...] = ()
    options: SamplingOptions = SamplingOptions()
    kind = "duplicate"


@dataclass(frozen=True)
class RemoveRequest:
    """Delete item ``item`` (and the items of ``also`` with it); their pixels go to the
    nearest item that stays and are regenerated."""

    item: int
    extra_active: tuple[int, ...] = ()
    options: SamplingOptions = SamplingOptions()
    also: tuple[int, ...] = ()  # more items deleted in the same edit
    kind = "remove"

    @property
    def removed(self) -> tuple[int, ...]:
        return (self.item, *(i for i in self.also if i != self.item))


@dataclass(frozen=True, eq=False)
class RedrawRequest:
    """Generate again the pixels whose item differs between ``drawn`` and the project's
    item map: ``drawn`` is the ``(H, W)`` item map the picture was made with, before the
    items were reshaped by hand. The item map itself stays as it is."""

    drawn: np.ndarray
    extra_active: tuple[int, ...] = ()
    options: SamplingOptions = SamplingOptions()
    kind = "redraw"

    def changed(self, labels: np.ndarray) -> np.ndarray:
        """``(H, W)`` bool: the pixels whose item is not the one they were drawn as."""
        return np.asarray(self.drawn) != labels


EditRequest = (
    ReconRequest
    | TextRequest
    | SwapRequest
    | MoveRequest
    | DuplicateRequest
    | RemoveRequest
    | RedrawRequest
)


@dataclass
class EditResult:
    """Candidates at full resolution and what produced them (maps are ``(H, W)``)."""

    kind: str
    images: list[np.ndarray]
    labels: np.ndarray | None  # the new item map when the edit changed it
    active: np.ndarray
    soft: np.ndarray
    hard: np.ndarray
    seeds: list[int]
    prompts: dict[int, str]
    request: EditRequest = field(repr=False)
    weights_id: str | None = None  # the preparation it was made with
    reference_name: str = ""  # a swap's: the name of the reference item taken
    reference_key: str | None = None  # and the reference photo that preparation learned
    # Pixels per item of ``labels`` ((len(items),) int64) when the edit changed the map:
    # counted anyway to find the items left, and at 24 MP a count is 40 ms the editor's
    # UI thread need not spend again.
    areas: np.ndarray | None = field(default=None, repr=False)
    # The items after the edit when it adds some (a duplicate's copies); None: kept.
    items: list[Item] | None = None

    def entry(self, candidate: int = 0) -> dict:
        """A JSON-ready description for the project history."""
        r = self.request
        o = r.options
        out = {
            "kind": self.kind,
            "seed": self.seeds[candidate],
            "steps": o.steps,
            "guidance": o.guidance,
            "strength": o.strength,
            "edge": o.edge,
            "scheduler": o.scheduler,
        }
        if isinstance(r, (TextRequest, SwapRequest, RemoveRequest)):
            out["item"] = r.item
        if isinstance(r, TextRequest):
            out["prompt"] = r.prompt
        if isinstance(r, SwapRequest):
            # with the preparation it came from, the entry says how the item looks from
            # now on (dedit_app.looks): a later move paints the reference's item again
            out["reference_item"] = r.reference_item
            out["reference_name"] = self.reference_name
            if self.weights_id:
                out["weights_id"] = self.weights_id
            if self.reference_key:
                out["reference_key"] = self.reference_key
        if isinstance(r, RemoveRequest) and r.also:
            out["also"] = list(r.removed[1:])
        if isinstance(r, RedrawRequest):
            out["pixels"] = int(np.count_nonzero(self.active))
        if isinstance(r, MoveRequest):
            out["moves"] = [_move_record(m) for m in r.moves]
            out["order"] = list(r.order) if r.order is not None else None
        if isinstance(r, DuplicateRequest) and self.items is not None:
            out["moves"] = [_move_record(m) for m in r.moves]
            first = len(self.items) - len(r.moves)
            out["copies"] = list(range(first, len(self.items)))
            if self.weights_id:  # the copies look as their items did with it
                out["weights_id"] = self.weights_id
        if getattr(r, "extra_active", ()):
            out["extra_active"] = list(r.extra_active)
        return out


def _move_record(m: Move) -> list:
    """``[item, dx, dy, scale]``, then whether it was flipped and its angle, each only
    when it, or what follows it, is not the plain move's (docs/FORMAT.md)."""
    out = [m.item, m.dx, m.dy, m.scale]
    if m.flip or m.angle:
        out.append(bool(m.flip))
    if m.angle:
        out.append(float(m.angle))
    return out


@dataclass(frozen=True)
class _Plan:
    """Everything an edit needs, computed cheaply and checked before rendering."""

    labels: np.ndarray
    new_labels: np.ndarray | None
    prompts: dict[int, str]
    active: np.ndarray | None  # None: everything
    metadata: dict[str, str]
    areas: np.ndarray | None = None  # pixels per item of new_labels, when there is one
    reference_name: str = ""  # a swap's: the reference item's name
    items: list[Item] | None = None  # the items after the edit, when it adds some


def _check_item(project, item: int, what: str = "item") -> None:
    n = len(project.items)
    if not isinstance(item, (int, np.integer)) or isinstance(item, bool) or not 0 <= item < n:
        raise ItemError(f"There is no {what} {item}; this picture has items 0 to {n - 1}.")
    if not (project.labels == item).any():
        raise ItemError(f"Item {item} ({project.items[item].name}) has no pixels to edit.")


def _tokens(metadata: dict[str, str], key: str) -> list[str]:
    try:
        return [str(s) for s in json.loads(metadata.get(key, "[]"))]
    except (ValueError, TypeError) as err:
        raise EditError("The project's learned weights are damaged; prepare it again.") from err


def check_edit(
    project, request: EditRequest, reference=None, model: DiffusionModel | None = None
) -> dict[str, str]:
    """Refuse what :func:`plan_edit` refuses, short of working out a move's or a
    removal's new item map (the editor's preview works that out, and the job again):
    cheap enough for the UI thread on a large photo. Returns the project's weights
    metadata. Raises EditError/ItemError/ModelLoadError with a sentence; changes nothing."""
    request.options.check()
    metadata = weights_metadata(project)
    if model is not None:
        check_weights_match(model, metadata)
    if missing_looks(project, _tokens(metadata, "items"), _tokens(metadata, "reference_items")):
        raise EditError(
            "Items were added after this project was prepared; prepare it again to edit them."
        )
    for extra in getattr(request, "extra_active", ()):
        _check_item(project, extra, "extra active item")
    if isinstance(request, ReconRequest):
        pass
    elif isinstance(request, TextRequest):
        _check_item(project, request.item)
        text = (request.prompt or "").strip()
        if not text:
            raise EditError(
                f"Type a prompt for item {request.item} ({project.items[request.item].name})."
            )
        if text == "*":
            raise EditError(
                "“*” alone is the item as it already is; add words around it, as in “a white *”."
            )
    elif isinstance(request, SwapRequest):
        _check_item(project, request.item)
        _check_reference(project, reference, metadata, request.reference_item)
    elif isinstance(request, MoveRequest):
        if not request.moves:
            raise EditError("Choose at least one item to move.")
        for mv in request.moves:
            _check_item(project, mv.item)
    elif isinstance(request, DuplicateRequest):
        if not request.moves:
            raise EditError("Choose at least one item to copy.")
        for mv in request.moves:
            _check_item(project, mv.item)
    elif isinstance(request, RemoveRequest):
        for item in request.removed:
            _check_item(project, item)
        if holds_any(project.labels, request.removed).all():
            names = " and ".join(project.items[i].name for i in request.removed)
            raise ItemError(
                f"{names} cover{'s' if len(request.removed) == 1 else ''} the whole picture, "
                "so no other item is left to fill the place."
            )
    elif isinstance(request, RedrawRequest):
        if np.shape(request.drawn) != project.labels.shape:
            raise EditError("The item map to redraw from is not the picture's size.")
        if not request.changed(project.labels).any():
            raise EditError(
                "No item was reshaped since the picture was made: brush or erase an item "
                "first, then redraw."
            )
    else:
        raise EditError(f"Unknown edit {type(request).__name__}.")
    return metadata


def plan_edit(
    project, request: EditRequest, reference=None, model: DiffusionModel | None = None
) -> _Plan:
    """Check ``request`` against ``project`` (and the reference project, for a swap) and
    work out prompts, item map and active region (see :func:`check_edit`). Raises
    EditError/ItemError/ModelLoadError with a sentence; changes nothing."""
    metadata = check_edit(project, request, reference, model)
    tokens = _tokens(metadata, "items")
    ref_tokens = _tokens(metadata, "reference_items")
    bases, looks = item_looks(project, tokens, ref_tokens)
    labels = project.labels
    prompts = {int(k): looks[int(k)] for k in present_items(labels)}
    new_labels = areas = items = None
    active = None
    reference_name = ""

    if isinstance(request, TextRequest):
        if model is not None:
            _check_fits(model, project, request, bases[request.item])
        prompts[request.item] = request.prompt.strip().replace("*", bases[request.item])
        active = labels == request.item
    elif isinstance(request, SwapRequest):
        prompts[request.item] = ref_tokens[request.reference_item]
        reference_name = reference.items[request.reference_item].name
        active = labels == request.item
    elif isinstance(request, MoveRequest):
        new_labels = move_items(labels, list(request.moves), request.order)
        moved = [mv.item for mv in request.moves]
        active = holds_any(new_labels, moved) | holds_any(labels, moved)
    elif isinstance(request, DuplicateRequest):
        first = len(project.items)
        new_labels = copy_items(labels, request.moves, first)
        sources = [mv.item for mv in request.moves]
        items = copies_of(project.items, sources)
        looks = [*looks, *(looks[k] for k in sources)]
        active = new_labels >= first
    elif isinstance(request, RemoveRequest):
        new_labels = remove_items(labels, request.removed)
        active = holds_any(labels, request.removed)
    elif isinstance(request, RedrawRequest):
        active = request.changed(labels)
    if new_labels is not None:
        areas = item_areas(new_labels, len(looks))
        prompts = {int(k): looks[int(k)] for k in np.flatnonzero(areas)}
    if isinstance(request, DuplicateRequest):
        _check_copies_leave(project, areas, sources)

    if active is not None:
        layout = labels if new_labels is None else new_labels
        for extra in getattr(request, "extra_active", ()):
            active = active | (layout == extra)
    return _Plan(
        labels if new_labels is None else new_labels,
        new_labels,
        prompts,
        active,
        metadata,
        areas,
        reference_name,
        items,
    )


def copies_of(items: list[Item], sources: list[int]) -> list[Item]:
    """``items`` followed by a copy of each item ``sources`` names, in that order: called
    "bag copy" ("bag copy 2" when that is taken), with the item's typed prompt and learned
    token string, so that it looks as its item does."""
    out = [replace(item) for item in items]
    names = {item.name for item in items}
    for k in sources:
        name = free_name(f"{items[k].name} copy", names)
        names.add(name)
        out.append(replace(items[k], name=name))
    return out


def _check_copies_leave(project, areas: np.ndarray, sources: list[int]) -> None:
    """ItemError when a copy would lie over its own item whole (``areas``: pixels per
    item after the copies): the picture would hold one item, not two, as if nothing was
    copied."""
    for k in dict.fromkeys(sources):
        if areas[k] == 0:
            raise ItemError(
                f"The copy of {project.items[k].name} would cover it whole; put the copy "
                "somewhere else."
            )


def _check_fits(model: DiffusionModel, project, request: TextRequest, tokens: str) -> None:
    """EditError when the prompt is longer than CLIP reads: a prompt holding ``*`` past
    the TOKEN_LENGTH a learned prompt is encoded at, with the item's learned tokens
    (``tokens``, one id each), where CLIP would cut them off and the edit would lose what
    the item looks like; typed text alone past CLIP's PLAIN_LENGTH, whose end CLIP would
    silently leave out."""
    text = request.prompt.strip()
    stars = text.count("*")
    words = len(model.tokenizers[0](text.replace("*", " ")).input_ids)  # with start, end
    if not stars:
        if words > PLAIN_LENGTH:
            raise EditError(
                f"The prompt is too long: the model reads about {PLAIN_LENGTH - 2} words and "
                f"signs, and this one has {words - 2}, so its end would be left out; shorten it."
            )
        return
    learned = len(tokens.split())
    if words + stars * learned > TOKEN_LENGTH:
        room = TOKEN_LENGTH - 2 - stars * learned
        name = project.items[request.item].name
        raise EditError(
            f"The prompt is too long to hold {name}'s learned look: with “*” in it, it may "
            f"have about {max(room, 0)} words and signs; shorten it, or leave out “*”."
        )


def _check_reference(project, reference, metadata: dict[str, str], item: int) -> list[str]:
    if reference is None:
        raise EditError("A swap needs the reference project to take the item from.")
    n = len(reference.items)
    if not isinstance(item, (int, np.integer)) or not 0 <= item < n:
        raise ItemError(
            f"There is no item {item} in the reference photo; it has items 0 to {n - 1}."
        )
    if not (reference.labels == item).any():
        raise ItemError(f"Item {item} of the reference photo has no pixels to take.")
    # The reference's own preparation does not matter: this project's weights hold the
    # tokens learned from it when the two were prepared together, which the key tells.
    if metadata.get("reference_key") != content_key(reference.image, reference.labels):
        raise EditError(
            "This project was not prepared together with that reference photo; prepare the two "
            "together first (`dedit finetune PROJECT --reference REFERENCE`)."
        )
    ref_tokens = _tokens(metadata, "reference_items")
    if item >= len(ref_tokens):
        raise EditError("The reference photo has items that were not prepared; prepare again.")
    return ref_tokens


def run_edit(
    model: DiffusionModel,
    project,
    request: EditRequest,
    *,
    reference=None,
    cancel: CancelToken | None = None,
) -> Job[EditResult]:
    """Check ``request`` at once (errors raise here, before the job starts), then return
    the job: it installs the project's learned weights into ``model`` if they are not
    installed yet, renders, and returns an :class:`EditResult`."""
    plan = plan_edit(project, request, reference, model)
    return _run(model, project, request, plan, cancel or CancelToken())


def _run(model, project, request, plan: _Plan, cancel: CancelToken) -> Job[EditResult]:
    if model.applied != plan.metadata.get("weights_id"):
        yield Progress(0, 1, stage="loading", message="Loading the project's learned weights")
        tensors, metadata = project.load_weights()
        apply_trained(model, tensors, metadata)
    cancel.raise_if_cancelled()
    image = project.image if plan.active is not None else None
    job = sample(
        model,
        SampleRequest(plan.labels, plan.prompts, image, plan.active, request.options),
        cancel,
    )
    result = yield from job
    return EditResult(
        kind=request.kind,
        images=result.images,
        labels=plan.new_labels,
        active=result.active,
        soft=result.soft,
        hard=result.hard,
        seeds=result.seeds,
        prompts=plan.prompts,
        request=request,
        weights_id=plan.metadata.get("weights_id"),
        reference_name=plan.reference_name,
        reference_key=plan.metadata.get("reference_key") if request.kind == "swap" else None,
        areas=plan.areas,
        items=plan.items,
    )


def edit(
    model: DiffusionModel,
    project,
    request: EditRequest,
    *,
    reference=None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
) -> EditResult:
    """Run an edit to completion (see :func:`run_edit`)."""
    return run_job(
        run_edit(model, project, request, reference=reference, cancel=cancel), on_progress
    )
