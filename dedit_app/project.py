"""The document: a photo, its item partition, the items' prompts, learned weights, history.

A project is a folder bundle ``NAME.dedit/``::

    project.json                  items, names, prompts, token strings, settings, training
                                  record, history, format version; names every file below
    image-<hash>.png              the current base image, 8-bit RGB, full resolution
    labels-<hash>.png             the item partition, 16-bit grayscale (pixel value = item)
                                  (and, named "drawn", the partition the image was made
                                  with when items were reshaped by hand since)
    weights-<id>.safetensors      learned token embeddings and UNet tensors (only those)
    profile-<hash>.icc            the photo's colour profile, when it had one
    deep-<hash>.png               the photo as opened at 16 bits per channel, when it had
                                  more than 8: what a PNG or TIFF export's untouched
                                  pixels are written from
    (older image-/labels- files)  the pictures from before each applied edit, named by
                                  ``history`` entries: after the first, the box the edit
                                  changed (:mod:`dedit_app.picture_patches`)

Each file is written and read by :mod:`dedit_app.bundle_files`; this module says which
files a project names, and when.

Saving is atomic as a whole: data files are written under new, content-derived names
first (each through temp file + fsync + rename), and only then is ``project.json``
replaced in one rename. A save interrupted at any point, ``kill -9`` included, leaves the
previous ``project.json`` and every file it names intact. Files no longer named are
deleted after the new ``project.json`` is in place.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dedit_app import __version__, bundle_files, colour_profiles, folder_lock, picture_patches
from dedit_app.atomic import (
    FILE_MODE,
    atomic_write_bytes,
    fsync_dir,
    make_temp,
    replace_file,
)
from dedit_app.errors import DEditError, EditError, ProjectError
from dedit_app.partition import check_labels
from dedit_app.project_file import (
    DATA_FILE,
    FORMAT,
    HISTORY_KEYS,
    OWN,
    PROJECT_FILE,
    Expect,
    as_os_error,
    check_shape,
    digest,
    named,
    named_in,
    os_sentence,
    project_bytes,
    read_document,
)

MAX_ITEMS = 65535  # labels are stored as 16-bit PNG
# An earlier picture is rebuilt by laying in the boxes of the edits after it, back to a
# picture kept whole. Boxes alone grow without end: going back to before edit 2 of 100 at
# 24 MP took 3.1 s on 2 cores. One whole picture per 32 edits keeps it near 1.7 s for 25 %
# more disk (one per 16: 1.2 s for 50 % more). It usually costs no encoding: it is the
# picture a save after the edit before had written as the picture on show.
BOXES_BETWEEN_WHOLE = 31
# Picture files read or written at once (rebuilding an earlier picture, saving): PNG
# decoding and encoding take most of the time, and let go of Python's lock.
PICTURE_THREADS = colour_profiles.PICTURE_THREADS


def _own_temp(name: str) -> bool:
    """True for a temporary file a save of ours left (``.<target>.<random>.tmp``, see
    :func:`dedit_app.atomic.make_temp`) whose target is a project file. Others are left
    alone: an export into the project's folder may be writing one right now."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    target = name[1:-4].rpartition(".")[0]
    return target == PROJECT_FILE or bool(DATA_FILE.match(target))


@dataclass
class Item:
    """One item of the partition.

    ``prompt`` is what the user typed for it ("" = its learned tokens); ``tokens`` is the
    learned token string (for example ``"#bag0 #bag0_1 #bag0_2"``), "" until prepared.
    """

    name: str
    prompt: str = ""
    tokens: str = ""


@dataclass
class Project:
    """An open document. ``image`` is ``(H, W, 3)`` uint8 RGB; ``labels`` is ``(H, W)`` int32
    with values ``0..len(items)-1`` (an item may own no pixels after a removal or merge)."""

    image: np.ndarray
    labels: np.ndarray
    items: list[Item]
    settings: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None  # set once prepared; names the weights file
    history: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""  # file name of the photo the project was made from
    folder: Path | None = None
    # The item map the image was made with, when items were reshaped by hand since (brush,
    # eraser, merge): what a redraw paints again. None: the image matches ``labels``.
    drawn: np.ndarray | None = None
    # The photo's RGB colour profile (ICC bytes), written into every export so that the
    # pixel values mean the photo's colours elsewhere (:mod:`dedit_app.colour_profiles`).
    profile: bytes | None = None
    # The photo as opened, ``(H, W, 3)`` uint16, when its file had 16 bits per channel
    # (:func:`dedit_app.imageio.load_image`); never changed. ``image`` is its 8-bit
    # rounding until edits change it; PNG and TIFF exports take the untouched pixels
    # from here (:func:`dedit_app.imageio.deep_picture`).
    deep: np.ndarray | None = None
    _pending_weights: tuple[dict, dict] | None = field(default=None, repr=False)
    # The project.json this project last read from or wrote to ``folder``: a save into
    # that folder finding another there knows someone else saved it meanwhile.
    _on_disk: bytes | None = field(default=None, repr=False)

    # ----- construction -------------------------------------------------------------

    @classmethod
    def new(
        cls,
        image: np.ndarray,
        labels: np.ndarray,
        names: list[str],
        source: str = "",
        profile: bytes | None = None,
        deep: np.ndarray | None = None,
    ) -> Project:
        """A fresh, unsaved project from a photo and its partition; ``profile`` is the
        photo's colour profile (:func:`dedit_app.colour_profiles.of_file`), ``deep`` the
        photo at 16 bits when it had them (``(H, W, 3)`` uint16, from
        :func:`dedit_app.imageio.load_image`; made read-only here)."""
        if deep is not None:
            deep.setflags(write=False)  # never changed: its content name is worked out once
        project = cls(
            image=image,
            labels=labels,
            items=[Item(n) for n in names],
            source=source,
            profile=colour_profiles.rgb_profile(profile),
            deep=deep,
        )
        project.validate()
        return project

    def validate(self) -> None:
        """Check the invariants; raise ProjectError with a sentence if one is broken."""
        img = self.image
        if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3):
            raise ProjectError(f"The project image must be (H, W, 3); got {np.shape(img)}.")
        if img.dtype != np.uint8:
            raise ProjectError(f"The project image must be 8-bit; got {img.dtype}.")
        try:
            self.labels = check_labels(self.labels)
        except DEditError as err:
            raise ProjectError(str(err)) from err
        if self.labels.shape != img.shape[:2]:
            raise ProjectError(
                f"The item map is {self.labels.shape[1]}x{self.labels.shape[0]} but the image "
                f"is {img.shape[1]}x{img.shape[0]}."
            )
        if not self.items:
            raise ProjectError("A project needs at least one item.")
        if len(self.items) > MAX_ITEMS:
            raise ProjectError(f"A project can hold at most {MAX_ITEMS} items.")
        top = int(self.labels.max())
        if top >= len(self.items):
            raise ProjectError(
                f"The item map uses item {top} but the project lists only {len(self.items)} items."
            )
        if self.drawn is not None and np.shape(self.drawn) != self.labels.shape:
            raise ProjectError("The item map the picture was made with is not the picture's size.")
        deep = self.deep
        if deep is not None and (np.shape(deep) != img.shape or deep.dtype != np.uint16):
            raise ProjectError(
                "The photo at 16 bits is not a 16-bit picture of the picture's size."
            )

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the photo in pixels."""
        return self.image.shape[0], self.image.shape[1]

    @property
    def prepared(self) -> bool:
        """True once the learned weights are saved in the project folder."""
        return self.training is not None and "weights" in self.training

    @property
    def refined(self) -> bool:
        """True when the items were changed by hand (brush, merge, new items) after the
        project was prepared: the learned weights fit the earlier partition best. The
        editor keeps this up to date; a new preparation clears it."""
        return bool((self.training or {}).get("refined_by_hand"))

    @refined.setter
    def refined(self, value: bool) -> None:
        if self.training is None:
            raise ProjectError("Only a prepared project can be marked as changed since preparing.")
        if value:
            self.training["refined_by_hand"] = True
        else:
            self.training.pop("refined_by_hand", None)

    @property
    def has_weights(self) -> bool:
        """True when learned weights can be used: saved, or stored and awaiting a save."""
        return self.prepared or self._pending_weights is not None

    def job_copy(self, history: bool = False) -> Project:
        """A copy a background job can read while the document moves on: items and
        settings are copied, the (never mutated in place) arrays and weights are shared.
        With ``history``, the history too (its earlier pictures shared): a copy another
        thread may :meth:`save` elsewhere, as the editor's recovery copies are."""
        return replace(
            self,
            items=[replace(i) for i in self.items],
            settings=copy.deepcopy(self.settings),
            training=copy.deepcopy(self.training),
            history=[dict(record) for record in self.history] if history else [],
        )

    def item(self, index: int) -> Item:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.items):
            raise ProjectError(
                f"There is no item {index}; this project has items 0 to {len(self.items) - 1}."
            )
        return self.items[index]

    def rename(self, index: int, name: str) -> None:
        name = name.strip()
        if not name:
            raise ProjectError("An item name cannot be empty.")
        self.item(index).name = name

    # ----- weights ----------------------------------------------------------------

    def store_weights(self, tensors: dict, metadata: dict[str, str], write: bool = True) -> None:
        """Keep learned tensors (``dict[str, torch.Tensor]``) with the project.

        Written at once when the project has a folder and ``write`` (they can be large; the
        project file is updated to name them in the same atomic step), else at the next
        save (the editor's saves write them off the UI thread: :meth:`write_pictures`).
        """
        if self.folder is None or not write:
            self._pending_weights = (tensors, dict(metadata))
            return
        name = self._write_weights(self.folder, tensors, metadata)
        training = dict(self.training or {})
        training["weights"] = name
        self.training = training
        self.save()

    def load_weights(self) -> tuple[dict, dict[str, str]]:
        """The learned tensors and their metadata; ProjectError if not prepared or corrupt."""
        if self._pending_weights is not None:
            return self._pending_weights
        if not self.prepared or self.folder is None:
            raise ProjectError("This project has not been prepared yet; prepare it first.")
        path = self.folder / self.training["weights"]
        if not path.is_file():
            raise ProjectError(
                f"The learned weights file {path} is missing; prepare the project again."
            )
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
            self.check_weights(path, metadata)
            return load_file(str(path)), metadata
        except (SafetensorError, OSError, ValueError) as err:
            raise ProjectError(
                f"The learned weights file {path} is corrupt ({err}); prepare the project again."
            ) from err

    def check_weights(self, path: Path, metadata: dict[str, str]) -> None:
        """ProjectError when the weights file at ``path`` (its ``metadata``) is not the one
        this project's preparation wrote: a file copied in from another project or another
        preparation would edit every item with the wrong learned look, without a word."""
        expected = (self.training or {}).get("weights_id")
        if expected and metadata.get("weights_id") != expected:
            raise ProjectError(
                f"The learned weights file {path} is not this project's (it comes from another "
                "preparation); prepare the project again."
            )

    def check_writable(self) -> None:
        """ProjectError with a sentence when the project's folder cannot take a new file
        (read-only, no permission): asked before hours of preparing, not after."""
        if self.folder is None:
            return
        try:
            os.unlink(make_temp(self.folder / PROJECT_FILE))
        except OSError as err:
            raise ProjectError(os_sentence(err, self.folder)) from err

    @property
    def pending_weights(self) -> tuple[dict, dict[str, str]] | None:
        """``(tensors, metadata)`` stored but not yet written to a file, or None."""
        return self._pending_weights

    def pending_bytes(self) -> int:
        """Size of the pending weights' tensors (0 when none): SDXL's cross-attention
        weights are about a gigabyte, worth writing off the UI thread."""
        if self._pending_weights is None:
            return 0
        return sum(t.numel() * t.element_size() for t in self._pending_weights[0].values())

    def adopt_weights(self, weights: tuple[dict, dict[str, str]], name: str) -> bool:
        """``weights`` (what :attr:`pending_weights` was) were written ahead as ``name`` by
        :meth:`write_pictures`: name them, unless other weights were stored since."""
        if self._pending_weights is not weights:
            return False
        self.training = {**(self.training or {}), "weights": name}
        self._pending_weights = None
        return True

    def forget_weights(self) -> None:
        """Drop the prepared state (for example after the partition changed)."""
        self.training = None
        self._pending_weights = None

    @staticmethod
    def _write_weights(folder: Path, tensors: dict, metadata: dict[str, str]) -> str:
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        name = f"weights-{uuid.uuid4().hex[:16]}.safetensors"
        tmp = None
        try:
            tmp = make_temp(folder / name)
            tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            save_file(tensors, tmp, metadata={k: str(v) for k, v in metadata.items()})
            # save_file recreates the file with owner-only permissions.
            with contextlib.suppress(OSError):
                os.chmod(tmp, FILE_MODE)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            replace_file(tmp, folder / name)
        except BaseException as err:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if isinstance(err, OSError):
                raise ProjectError(os_sentence(err, folder / name)) from err
            if isinstance(err, SafetensorError):  # its writer's I/O errors, in its own type
                raise ProjectError(os_sentence(as_os_error(err), folder / name)) from err
            raise
        fsync_dir(folder)
        return name

    # ----- history ------------------------------------------------------------------

    def apply(
        self,
        image: np.ndarray,
        labels: np.ndarray,
        entry: dict[str, Any],
        painted: np.ndarray | None = None,
        items: list[Item] | None = None,
    ) -> None:
        """Make an edited image the new base (multi-turn editing) and record it.

        ``entry`` describes the edit (JSON-serialisable: kind, item, prompt, seed, ...);
        the previous image, labels and items stay reachable from it for the history
        panel and for going back (:mod:`dedit_app.going_back`). A text edit's prompt
        becomes its item's.
        ``painted`` ``(H, W)`` bool: the pixels the edit made (its active region and soft
        band); items reshaped by hand and not yet redrawn elsewhere stay to redraw
        (:attr:`drawn`). None: the whole picture is made with ``labels``.
        ``items``: the items after the edit, when it changes the list (None: kept).
        """
        previous = (self.image, self.labels)
        previous_items = self.items
        drawn = self.drawn
        self.drawn = None
        if drawn is not None and painted is not None:
            left = np.where(painted, labels, drawn).astype(np.int32)
            self.drawn = None if np.array_equal(left, labels) else left
        self.image, self.labels = image, labels
        if items is not None:
            self.items = [replace(item) for item in items]
        try:
            self.validate()
        except ProjectError:
            self.image, self.labels = previous
            self.items = previous_items
            self.drawn = drawn
            raise
        record = dict(entry)
        record.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%S"))
        record.setdefault("items_before", recorded_items(previous_items))
        from dedit_app.looks import carry_look  # looks reads projects: imported here

        carry_look(record, self.training)
        record["_before"] = previous  # replaced by file names when saved
        self.history.append(record)
        item, kind = record.get("item"), record.get("kind")
        if kind in ("text", "swap") and isinstance(item, int) and 0 <= item < len(self.items):
            # the item now looks as typed (its field shows that prompt, as in the editor),
            # or as the reference's item: a prompt typed before no longer says how it looks
            self.items[item].prompt = str(record.get("prompt", "")) if kind == "text" else ""

    def first_picture(self) -> np.ndarray | Path:
        """The photo before the first applied edit: its ``(H, W, 3)`` uint8 RGB pixels when
        they are in memory (the current picture itself when no edit was applied), else
        the project file that holds them, for :func:`dedit_app.bundle_files.read_picture`
        (a 24 MP PNG takes a second to read: the caller chooses the thread)."""
        if not self.history:
            return self.image
        first = self.history[0]
        before = first.get("_before")
        if before is not None:
            return before[0]
        if self.folder is None or "image" not in first:
            raise ProjectError("This project has no saved picture of the photo before its edits.")
        return self.folder / first["image"]

    # ----- saving -------------------------------------------------------------------

    def save(
        self,
        folder: str | os.PathLike[str] | None = None,
        old_weights: list[Path] | None = None,
        expect: str | Expect | None = OWN,
    ) -> Path:
        """Write the bundle atomically to ``folder`` (default: where it was loaded/saved).

        Files the new project file no longer names are deleted, except that with
        ``old_weights`` given, weights files are added to it instead: unlinking SDXL's
        gigabyte takes about half a second, which the caller may spend on another thread.
        Weights names are never reused, so deleting them later is safe.

        A save is refused when ``folder`` holds a project.json other than ``expect``, the
        :func:`digest` of the one the caller last saw there: another program saved it
        meanwhile. By default (:data:`OWN`) that is this project's own when ``folder`` is
        the one it was read from or saved to; None saves over whatever is there."""
        target = Path(folder) if folder is not None else self.folder
        if target is None:
            raise ProjectError("Choose a folder to save the project in.")
        if expect is OWN:
            expect = self.digest_on_disk if target == self.folder else None
        self.validate()
        self.make_folder(target)
        with folder_lock.saving(target):
            there = project_bytes(target)
            if None not in (there, expect) and digest(there) != expect:
                raise ProjectError(
                    f"{target} was changed by another program (another dedit command or "
                    "D-Edit Studio window) since it was opened here, so it was not saved "
                    "over; save under another name to keep both versions."
                )
            try:
                doc = self._document(target)
                payload = json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8")
                atomic_write_bytes(target / PROJECT_FILE, payload)
            except OSError as err:
                raise ProjectError(os_sentence(err, target)) from err
            # Only now, with the new document in place, does the in-memory state follow
            # it: history snapshots are dropped from memory (they are files now).
            self.folder = target
            self.training = doc["training"]
            self.history = copy.deepcopy(doc["history"])
            self._pending_weights = None
            self._on_disk = payload
            self._collect_garbage(target, doc, old_weights, named_in(there))
        return target

    @property
    def digest_on_disk(self) -> str | None:
        """The :func:`digest` of the project.json this project last read from or wrote to
        :attr:`folder`; None when it has not been there."""
        return None if self._on_disk is None else digest(self._on_disk)

    def make_folder(self, target: Path) -> None:
        """Create ``target`` for a save; ProjectError if it cannot be made, or if it holds
        something other than a D-Edit project that a save would overwrite."""
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ProjectError(os_sentence(err, target)) from err
        if (target / PROJECT_FILE).exists() and target != self.folder:
            read_document(target)  # refuse to overwrite something that is not a project of ours

    def pictures(self) -> list[tuple[str, Any]]:
        """``(kind, array)`` for every picture a save writes: the image, the item map and
        the earlier pictures that history still holds in memory; an earlier picture kept
        as the box its edit changed is ``("patch", (before, after))``
        (:mod:`dedit_app.picture_patches`). The arrays are the project's own (never
        changed in place), so another thread may read them. The 16-bit photo, when this
        project's folder holds its file already, is ``("file", its path)``: linked, not
        encoded again."""
        found: list[tuple[str, Any]] = [("image", self.image), ("labels", self.labels)]
        if self.drawn is not None:
            found.append(("labels", self.drawn))
        if self.deep is not None:
            held = self._deep_file()
            found.append(("deep", self.deep) if held is None else ("file", held))
        for _k, before, after, whole in self._held_history():
            if whole:
                found.append(("image", before[0]))
            if after is not None:
                found.append(("patch", (before[0], after)))
            found.append(("labels", before[1]))
        return found

    def _held_history(self) -> list[tuple[int, tuple[np.ndarray, np.ndarray], Any, bool]]:
        """``(k, (image, labels) before edit k, the picture after it, whole)`` for each
        history entry that holds its earlier picture in memory, newest first. The
        earlier picture is saved as the box its edit changed when the picture after is
        not None, and whole when ``whole`` (the two together for one entry in 32).
        The picture after is None where there is no box to keep: the first edit's (the
        photo: nothing older is rebuilt from it) and any whose next picture is only on
        disk (entries hold their pictures as a run up to the newest, since a save drops
        them all from memory: this is for safety)."""
        out = []
        after: np.ndarray | None = self.image
        for k in range(len(self.history) - 1, -1, -1):
            before = self.history[k].get("_before")
            if before is None:
                after = None
                continue
            boxed = k > 0 and after is not None and np.shape(after) == np.shape(before[0])
            out.append((k, before, after if boxed else None, not boxed))
            after = before[0]
        return self._with_whole_pictures(out)

    def _with_whole_pictures(self, held: list) -> list:
        """``held`` (from :meth:`_held_history`) with an entry kept whole as well wherever
        the :data:`BOXES_BETWEEN_WHOLE` entries before it are boxes alone. Counted oldest
        first, so an entry's choice hangs only on the entries before it: it stays the same
        from the pictures written ahead of a save to the save, whatever edits come
        between. The box is kept too, so that going back to a nearer edit can still walk
        the boxes from the picture on show (:func:`picture_patches.start_before` picks
        the cheaper)."""
        index = {k: i for i, (k, *_rest) in enumerate(held)}
        boxes = 0  # boxes alone in a row since the last picture kept whole
        for k, record in enumerate(self.history):
            i = index.get(k)
            if i is None:  # on disk: as it was saved
                boxes = 0 if "image" in record else boxes + 1
                continue
            if boxes >= BOXES_BETWEEN_WHOLE:
                held[i] = (*held[i][:3], True)
            boxes = 0 if held[i][3] else boxes + 1
        return held

    @staticmethod
    def write_pictures(
        folder: Path,
        pictures: list[tuple[str, np.ndarray]],
        weights: tuple[dict, dict[str, str]] | None = None,
    ) -> str | None:
        """Write ``pictures`` (from :meth:`pictures`) and the ``weights`` (from
        :attr:`pending_weights`) into ``folder`` ahead of :meth:`save`. The slow part of a
        save: seconds at 24 MP for PNG encoding, and SDXL's weights are about a gigabyte.
        It touches only files of its own (pictures named for their content, weights under
        a fresh name), so it may run on any thread while the project moves on. Call
        :meth:`make_folder` first; then :meth:`adopt_weights` with the name returned (None
        without weights), and :meth:`save`, which finds the pictures written.

        The pictures are encoded on a few threads at once (OpenCV's PNG encoder lets go of
        Python's lock): the picture on show and the boxes and item maps of the edits since
        the last save are independent files."""

        def write(kind: str, array: Any) -> None:
            if kind == "patch":
                bundle_files.write_patch(folder, *array)
            elif kind == "file":
                bundle_files.copy_file(array, folder / array.name)
            else:
                bundle_files.write_png(folder, kind, array)

        # the same array named twice (an item map no edit changed) is written once
        unique = {
            (kind, id(a) if kind != "patch" else (id(a[0]), id(a[1]))): (kind, a)
            for kind, a in pictures
        }
        try:
            with ThreadPoolExecutor(PICTURE_THREADS, thread_name_prefix="dedit-write") as pool:
                for done in [pool.submit(write, *picture) for picture in unique.values()]:
                    done.result()  # the first failure is said; the others still finish
        except OSError as err:
            raise ProjectError(os_sentence(err, folder)) from err
        return None if weights is None else Project._write_weights(folder, *weights)

    def _document(self, folder: Path) -> dict[str, Any]:
        """Write every data file the document names (if absent) and return the document."""
        history = [dict(record) for record in self.history]
        for k, before, after, whole in self._held_history():
            record = history[k]
            for key in ("image", "image_patch", "image_box", "image_key"):
                record.pop(key, None)  # named again below, for the pictures of now
            record["labels"] = bundle_files.write_png(folder, "labels", before[1])
            if whole:
                record["image"] = bundle_files.write_png(folder, "image", before[0])
            if after is not None:
                record["image_patch"], box, record["image_key"] = bundle_files.write_patch(
                    folder, before[0], after
                )
                record["image_box"] = list(box)
        for record in history:
            record.pop("_before", None)
        training = copy.deepcopy(self.training)
        if self._pending_weights is not None:
            training = dict(training or {})
            training["weights"] = self._write_weights(folder, *self._pending_weights)
        elif training and "weights" in training and self.folder not in (None, folder):
            if (self.folder / training["weights"]).is_file():
                bundle_files.copy_file(
                    self.folder / training["weights"], folder / training["weights"]
                )
            else:  # gone since it was prepared: the copy is saved as not prepared
                training = None
        # Snapshot references carry over so a "save as" keeps the whole history.
        if self.folder not in (None, folder):
            for record in history:
                for key in HISTORY_KEYS:
                    if key in record and not (folder / record[key]).exists():
                        bundle_files.copy_file(self.folder / record[key], folder / record[key])
        doc = {
            "format": FORMAT,
            # the lowest version that reads it: an older editor opens what it can read
            "version": 2 if any("image_patch" in r for r in history) else 1,
            "app_version": __version__,
            "source": self.source,
            "size": [int(self.size[0]), int(self.size[1])],
            "image": bundle_files.write_png(folder, "image", self.image),
            "labels": bundle_files.write_png(folder, "labels", self.labels),
            "items": [asdict(item) for item in self.items],
            "settings": self.settings,
            "training": training,
            "history": history,
        }
        if self.drawn is not None:
            doc["drawn"] = bundle_files.write_png(folder, "labels", self.drawn)
        if self.profile is not None:
            doc["profile"] = bundle_files.write_profile(folder, self.profile)
        if self.deep is not None:
            held = self._deep_file()
            if held is None:
                doc["deep"] = bundle_files.write_png(folder, "deep", self.deep)
            else:
                bundle_files.copy_file(held, folder / held.name)  # nothing when it is there
                doc["deep"] = held.name
        return doc

    def _deep_file(self) -> Path | None:
        """The 16-bit photo's file in this project's folder, when it is there: a save
        into another folder (Save as, a recovery copy) links it there instead of encoding
        it again, 4.5 s at 24 MP. It never changes: it is the photo as opened."""
        if self.deep is None or self.folder is None:
            return None
        path = self.folder / bundle_files.content_name("deep", self.deep)
        return path if path.is_file() else None

    @staticmethod
    def _collect_garbage(
        folder: Path, doc: dict[str, Any], later: list[Path] | None, replaced: set[str]
    ) -> None:
        """Delete the data files ``doc`` does not name: those the replaced project.json
        named (``replaced``), and older leftovers of saves that died. A file written in
        the last minutes and never named may be another process's save under way."""
        keep = named(doc) | {PROJECT_FILE}
        for path in folder.iterdir():
            name = path.name
            unnamed = (DATA_FILE.match(name) and name not in keep) or _own_temp(name)
            if unnamed and (name in replaced or not folder_lock.young(path)):
                if later is not None and path.name.startswith("weights-"):
                    later.append(path)
                    continue
                with contextlib.suppress(OSError):
                    path.unlink()

    # ----- loading ------------------------------------------------------------------

    @staticmethod
    def peek_size(folder: str | os.PathLike[str]) -> tuple[int, int] | None:
        """``(height, width)`` of the project's photo from ``project.json`` alone (no
        pictures read), or None when the file does not say. Raises ProjectError as
        :meth:`load` does when there is no project there or it is from a newer version."""
        size = read_document(Path(folder)).get("size")
        if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
            return size[0], size[1]
        return None

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Project:
        """Open a bundle; ProjectError with a sentence naming the file if anything is off."""
        folder = Path(folder)
        raw = project_bytes(folder)
        doc = read_document(folder, raw)
        check_shape(folder / PROJECT_FILE, doc)
        try:
            items = [_item(i, it) for i, it in enumerate(doc["items"])]
            image_path, labels_path = folder / doc["image"], folder / doc["labels"]
            training = doc.get("training")
            history = list(doc.get("history", []))
            settings = dict(doc.get("settings") or {})
            source = str(doc.get("source", ""))
        except (KeyError, TypeError, AttributeError) as err:
            raise ProjectError(
                f"{folder / PROJECT_FILE} is missing a required entry ({err}); the file is damaged."
            ) from err
        # The pictures are decoded on threads of their own (PNG decoding lets go of
        # Python's lock): a 24 MP project with 16 bits opens in 1.2 s instead of 1.8.
        with ThreadPoolExecutor(PICTURE_THREADS, thread_name_prefix="dedit-read") as pool:
            reads = [
                pool.submit(bundle_files.read_png, image_path, "image"),
                pool.submit(bundle_files.read_png, labels_path, "labels"),
            ]
            if doc.get("drawn") is not None:
                reads.append(pool.submit(bundle_files.read_png, folder / doc["drawn"], "labels"))
            later = pool.submit(bundle_files.read_deep, folder, doc.get("deep"))
            image, labels, *drawn_map = [read.result() for read in reads]
            deep = later.result()
        labels = labels.astype(np.int32)
        drawn = drawn_map[0].astype(np.int32) if drawn_map else None
        if deep is not None and deep.shape != image.shape:
            deep = None  # another photo's: exports are 8-bit, as without it
        # A missing weights file does not keep the photo, items and history from opening:
        # the project opens and says, where it would be used, to prepare it again.
        profile = bundle_files.read_profile(folder, doc.get("profile"))
        project = cls(
            image,
            labels,
            items,
            settings,
            training,
            history,
            source,
            folder,
            drawn,
            profile,
            deep,
        )
        project._on_disk = raw
        try:
            project.validate()
        except ProjectError as err:
            raise ProjectError(f"{folder / PROJECT_FILE} does not match its files: {err}") from err
        return project

    def snapshot(self, record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The image and labels from before a history entry (one of :attr:`history`) was
        applied; ProjectError with a sentence when its files are missing or damaged."""
        k = next((i for i, r in enumerate(self.history) if r is record), None)
        if k is None:  # an equal entry: one read from another copy of the project
            plain = {key: v for key, v in record.items() if key != "_before"}
            k = next((i for i, r in enumerate(self.history) if r == plain), None)
        if k is None:
            raise ProjectError("That history entry is not one of this project's.")
        before = record.get("_before")
        if before is not None:
            return before
        if self.folder is None or "labels" not in record:
            raise ProjectError("This history entry has no saved picture to go back to.")
        labels = bundle_files.read_png(self.folder / record["labels"], "labels").astype(np.int32)
        return self._image_before(k), labels

    def _image_before(self, k: int) -> np.ndarray:
        """The picture before edit ``k``, rebuilt from a later picture by pasting the
        boxes the edits after it changed, newest first
        (:func:`dedit_app.picture_patches.start_before`). The files
        are read a few at a time on threads of their own (PNG decoding and hashing let go
        of Python's lock), while the boxes are laid in, in order, on this one."""
        try:
            start = picture_patches.start_before(self.history, k, self.size[0] * self.size[1])
        except ValueError as err:
            raise ProjectError("This history entry has no saved picture to go back to.") from err
        later = [self.history[j] for j in range(start - 1, k - 1, -1)]
        with contextlib.ExitStack() as stack:
            pool = stack.enter_context(
                ThreadPoolExecutor(PICTURE_THREADS, thread_name_prefix="dedit-read")
            )
            if start == len(self.history):
                picture = self.image
            elif self.history[start].get("_before") is not None:
                picture = self.history[start]["_before"][0]
            else:
                picture = pool.submit(
                    bundle_files.read_png, self.folder / self.history[start]["image"], "image"
                )
            crops = picture_patches.read_ahead(
                pool,
                lambda record: bundle_files.read_png(self.folder / record["image_patch"], "image"),
                later,
                PICTURE_THREADS + 1,
            )
            stack.enter_context(contextlib.closing(crops))  # a damaged box stops the reads
            if not isinstance(picture, np.ndarray):
                picture = picture.result()
            if later:
                picture = picture.copy()  # laid into below, a box at a time
            for record, crop in zip(later, crops, strict=True):
                try:
                    box = tuple(record["image_box"])
                    picture = picture_patches.paste(picture, crop, box, copy=False)
                except (KeyError, TypeError, ValueError) as err:
                    raise ProjectError(
                        f"{self.folder / PROJECT_FILE} names a box for {record['image_patch']} "
                        "that does not fit the picture; the file is damaged."
                    ) from err
        key = self.history[k].get("image_key")
        if later and bundle_files.content_name("image", picture) != key:
            raise ProjectError(
                f"The picture before edit {k + 1} of {self.folder} cannot be rebuilt from its "
                "files: one of them was altered or damaged."
            )
        return picture


# ----- history items, content keys ---------------------------------------------------


def recorded_items(items: list[Item]) -> list[dict[str, str]]:
    """The items' names and typed prompts as a history entry keeps them
    (``items_before``), for going back to before that edit (:mod:`dedit_app.going_back`);
    token strings are left out: they belong to the preparation."""
    return [{"name": item.name, "prompt": item.prompt} for item in items]


def items_recorded(record: dict[str, Any]) -> list[Item] | None:
    """The items a history entry keeps from before its edit (:func:`recorded_items`),
    without tokens; None when it keeps none (saved before versions recorded them) or the
    value is not a list of items."""
    then = record.get("items_before")
    if not (isinstance(then, list) and then and all(isinstance(e, dict) for e in then)):
        return None
    return [
        Item(str(e.get("name") or f"item {k}"), str(e.get("prompt") or ""))
        for k, e in enumerate(then)
    ]


def _item(index: int, entry: dict[str, Any]) -> Item:
    """An item of ``project.json``: a missing (null) text is empty, and an item without a
    name is called after its place, as the editor names new items."""
    item = Item(**{k: "" if v is None else str(v) for k, v in entry.items()})
    if not item.name.strip():
        item.name = f"item {index}"
    return item


def content_key(image: np.ndarray, labels: np.ndarray | None = None) -> str:
    """A short hash of a photo and its partition: names the reference a joint preparation
    used, so a swap can tell whether a reference project is the one prepared with. Without
    ``labels``, of the pixels alone: recognises a reference photo opened again before its
    items are known (:mod:`dedit_app.reference_items`)."""
    arrays = [np.ascontiguousarray(image, np.uint8)]
    if labels is not None:
        arrays.append(np.ascontiguousarray(labels, np.int32))
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(a.data)
    return h.hexdigest()[:16]


def weights_metadata(project: Project) -> dict[str, str]:
    """The metadata of a prepared project's weights, read without loading the tensors
    (nor importing torch: the editor asks on its UI thread when a project opens).

    Raises EditError when the project has not been prepared.
    """
    if not project.has_weights:
        raise EditError(
            "This project has not been prepared yet; prepare it first "
            "(the Prepare button, or `dedit finetune PROJECT --model MODEL`)."
        )
    if project.pending_weights is not None:
        # stored, not saved yet: newer than the file an earlier preparation saved, whose
        # weights_id the training record no longer names ("not this project's")
        return dict(project.pending_weights[1])
    from safetensors import safe_open

    path = project.folder / project.training["weights"]
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
    except Exception as err:  # missing or damaged file: the project's own sentence
        raise ProjectError(
            f"The learned weights file {path} is missing or damaged; prepare the project again."
        ) from err
    project.check_weights(path, metadata)
    return metadata
