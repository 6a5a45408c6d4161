"""The data files of a ``.dedit`` bundle: pictures and item maps as PNG named for their
content, an earlier picture kept as the box its edit changed, the colour profile, and
copies between bundles. :mod:`dedit_app.project` says which files a project names and
when they are written; this module writes and reads one file at a time, and may run on
any thread.

A picture's name is ``kind-<hash>.png``, the first 16 hex digits of a SHA-256 of
``kind:shape:dtype`` and the pixels (item maps as 16-bit), checked on reading: a file
that was altered or swapped is reported as damaged. Pictures are ``(H, W, 3)`` uint8 RGB,
item maps ``(H, W)`` int32 (stored as uint16), and the photo at 16 bits, when it had
them, ``(H, W, 3)`` uint16 RGB (``deep-<hash>.png``).
"""

from __future__ import annotations

import hashlib
import os
import weakref
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dedit_app import colour_profiles, picture_patches
from dedit_app.atomic import atomic_write_bytes
from dedit_app.errors import ProjectError
from dedit_app.imageio import png_bytes
from dedit_app.project_file import DATA_FILE

__all__ = [
    "content_name",
    "copy_file",
    "read_deep",
    "read_picture",
    "read_png",
    "read_profile",
    "share_names",
    "stored",
    "unchangeable",
    "write_patch",
    "write_png",
    "write_profile",
]

# Content names of pictures that cannot change: hashing a 24 MP image takes about 0.1 s,
# and every save and every recovery copy names the same pictures again. Keyed by the
# array's identity, so only arrays nothing can write to are kept (the editor marks its
# document's arrays read-only); a wrong name would be a project that fails to load.
_NAMES: dict[tuple[str, int], tuple[weakref.ref, str]] = {}


def unchangeable(array: np.ndarray) -> bool:
    """True when neither ``array`` nor any array it views can be written through."""
    while True:
        if array.flags.writeable:
            return False
        if isinstance(array, np.memmap) and array.mode == "r":
            return True  # a file mapped read-only (dedit_app.spill): no one here writes it
        if array.base is None or isinstance(array.base, bytes):  # decoders give bytes
            return True
        if not isinstance(array.base, np.ndarray):
            return False  # a view of some other buffer, which may be writable
        array = array.base


def stored(kind: str, array: np.ndarray) -> np.ndarray:
    """The array as its PNG holds it: item maps as 16-bit."""
    return np.ascontiguousarray(array, dtype=np.uint16) if kind == "labels" else array


def content_name(kind: str, array: np.ndarray) -> str:
    """``array``'s file name as a ``kind`` (``"image"`` or ``"labels"``) of a bundle,
    remembered for an array nothing can change (:func:`unchangeable`)."""
    key = (kind, id(array))
    known = _NAMES.get(key)
    if known is not None and known[0]() is array and unchangeable(array):
        return known[1]
    held = stored(kind, array)
    h = hashlib.sha256()
    h.update(f"{kind}:{held.shape}:{held.dtype}".encode())
    h.update(np.ascontiguousarray(held).data)
    name = f"{kind}-{h.hexdigest()[:16]}.png"
    _remember(kind, array, name)
    return name


def _remember(kind: str, array: np.ndarray, name: str) -> None:
    if not unchangeable(array):
        return
    key = (kind, id(array))

    def forget(ref: weakref.ref, key: tuple[str, int] = key) -> None:
        if _NAMES.get(key, (None,))[0] is ref:
            del _NAMES[key]

    _NAMES[key] = (weakref.ref(array, forget), name)


def share_names(old: np.ndarray, new: np.ndarray) -> None:
    """``new`` holds the very bytes of ``old`` (a copy moved out of RAM,
    :mod:`dedit_app.spill`): it takes the content names worked out for ``old``, so that a
    save does not hash it again (0.1 s at 24 MP, read back from its file)."""
    for kind in ("image", "labels", "deep"):
        known = _NAMES.get((kind, id(old)))
        if known is not None and known[0]() is old:
            _remember(kind, new, known[1])


def write_png(folder: Path, kind: str, array: np.ndarray) -> str:
    """Write ``array`` as ``kind-<hash>.png`` unless that exact content is already there."""
    name = content_name(kind, array)
    path = folder / name
    if path.is_file():
        return name
    atomic_write_bytes(path, png_bytes(stored(kind, array)))
    return name


def write_patch(folder: Path, before: np.ndarray, after: np.ndarray) -> tuple[str, tuple, str]:
    """Write the box of ``before`` that differs from ``after`` (the next picture); returns
    ``(its file name, the box, the content name of the whole of before)``."""
    fixed = unchangeable(before) and unchangeable(after)
    box = picture_patches.box_of(before, after, fixed)
    name = picture_patches.known_name(before, after)
    if name is None or not (folder / name).is_file():
        name = write_png(folder, "image", picture_patches.crop(before, box))
        picture_patches.remember_name(before, after, name)
    return name, box, content_name("image", before)


def read_png(path: Path, kind: str) -> np.ndarray:
    """The ``kind`` file at ``path``: a picture ``(H, W, 3)`` uint8 RGB, an item map
    ``(H, W)`` uint16, or the photo at 16 bits (``"deep"``) ``(H, W, 3)`` uint16 RGB;
    ProjectError with a sentence when it is missing, not a PNG of that kind, or does not
    match its name."""
    if not DATA_FILE.match(path.name) or not path.name.startswith(kind):
        raise ProjectError(f"{path.name!r} is not a file name of a project {kind}; it is damaged.")
    if not path.is_file():
        raise ProjectError(f"The project file {path} is missing.")
    data = np.fromfile(path, dtype=np.uint8)
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if pixels is None:
        raise ProjectError(f"The project file {path} is not a readable PNG; it is damaged.")
    if kind == "labels":
        if pixels.ndim != 2 or pixels.dtype != np.uint16:
            raise ProjectError(f"The item map {path} is not a 16-bit grayscale PNG.")
        array = pixels
    elif kind == "deep":
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint16:
            raise ProjectError(f"The project file {path} is not a 16-bit RGB PNG.")
        array = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    else:
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ProjectError(f"The project image {path} is not an 8-bit RGB PNG.")
        array = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if content_name(kind, array) != path.name:
        raise ProjectError(f"The project file {path} does not match its checksum; it is damaged.")
    return array


def read_picture(path: Path) -> np.ndarray:
    """A project's image file as ``(H, W, 3)`` uint8 RGB, checked against its name;
    ProjectError with a sentence when it is missing or damaged."""
    return read_png(Path(path), "image")


def read_deep(folder: Path, name: Any) -> np.ndarray | None:
    """The photo at 16 bits the project names (``(H, W, 3)`` uint16 RGB, read-only), or
    None when it names none, or its file is missing or damaged: the picture and edits
    open regardless, and exports are then 8-bit, as before 16 bits were kept."""
    if not isinstance(name, str):
        return None
    try:
        deep = read_png(folder / name, "deep")
    except ProjectError:
        return None
    deep.setflags(write=False)  # never changed: its content name is worked out once
    return deep


def write_profile(folder: Path, profile: bytes) -> str:
    """Write the colour profile as ``profile-<hash>.icc`` unless it is there already."""
    name = colour_profiles.file_name(profile)
    if not (folder / name).is_file():
        atomic_write_bytes(folder / name, profile)
    return name


def read_profile(folder: Path, name: Any) -> bytes | None:
    """The colour profile the project names, or None when it names none, or its file is
    missing or altered: the picture and edits open regardless (exports then carry no
    profile, as before profiles were kept)."""
    if not isinstance(name, str):
        return None
    try:
        data = (folder / name).read_bytes()
    except OSError:
        return None
    profile = colour_profiles.rgb_profile(data)
    return profile if profile is not None and colour_profiles.file_name(profile) == name else None


def copy_file(src: Path, dst: Path) -> None:
    """Give ``dst`` the content of ``src``: a hard link where the file system allows it
    (instant for a gigabyte of weights, and safe: data files are never changed in place,
    only replaced by rename), else an atomic copy."""
    if dst.exists():
        return
    if not src.is_file():
        raise ProjectError(f"The project file {src} is missing.")
    try:
        os.link(src, dst)
        return
    except OSError:  # another file system, or one without links
        pass
    atomic_write_bytes(dst, src.read_bytes())
