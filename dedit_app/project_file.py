"""Reading and checking a bundle's ``project.json``, and the sentences for file-system
failures while saving (:func:`os_sentence`, shared with :mod:`dedit_app.folder_lock`).

What a document names, what kind of value each entry holds, and which names are the
bundle's own files (``image-<hash>.png``, ``labels-<hash>.png``, ``deep-<hash>.png``,
``weights-<id>.safetensors``: no paths) are checked here before any picture is read, so
a hand-edited or damaged file is refused in a sentence that names the entry.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from dedit_app.atomic import held_by_another_program
from dedit_app.errors import ProjectError

FORMAT = "dedit-project"
# 2: an earlier picture may be kept as the box its edit changed (``image_patch``,
# dedit_app.picture_patches). A save writes 1 when no entry needs that, so an older
# version still opens projects it can read whole.
FORMAT_VERSION = 2
HISTORY_KEYS = ("image", "labels", "image_patch")  # the data files a history entry names
PROJECT_FILE = "project.json"
DATA_FILE = re.compile(
    r"^(image|labels|deep)-[0-9a-f]{16}\.png$|^weights-[0-9a-f]{16}\.safetensors$"
    r"|^profile-[0-9a-f]{16}\.icc$"
)


def named(doc: dict[str, Any]) -> set[str]:
    """The data files a project document names."""
    found = {doc.get(key) for key in ("image", "labels", "drawn", "profile", "deep")}
    training = doc.get("training")
    if isinstance(training, dict) and training.get("weights"):
        found.add(training["weights"])
    for record in doc.get("history") or []:
        if isinstance(record, dict):
            found.update(record.get(k) for k in HISTORY_KEYS)
    return {n for n in found if isinstance(n, str)}


# What each entry of project.json holds, for a sentence that names the entry (not
# Python's words) when a hand-edited or damaged file holds something else.
_SHAPE = {
    "items": (list, "a list"),
    "image": (str, "a file name"),
    "labels": (str, "a file name"),
    "drawn": ((str, type(None)), "a file name"),
    "profile": ((str, type(None)), "a file name"),
    "deep": ((str, type(None)), "a file name"),
    "training": ((dict, type(None)), "a set of named values"),
    "history": (list, "a list"),
    "settings": ((dict, type(None)), "a set of named values"),
}


def check_shape(path: Path, doc: dict[str, Any]) -> None:
    """ProjectError naming the entry of ``doc`` (read from ``path``) that holds the wrong
    kind of value, and any file it names that is not a file of this bundle (a path out
    of the folder, ``../other.dedit/image-….png``)."""
    for key, (kind, words) in _SHAPE.items():
        if key in doc and not isinstance(doc[key], kind):
            raise ProjectError(f"{path} is damaged: its entry {key!r} is not {words}.")
    for key in ("items", "history"):
        if not all(isinstance(entry, dict) for entry in doc.get(key) or []):
            raise ProjectError(f"{path} is damaged: an entry of {key!r} is not a record.")
    for name in sorted(named(doc)):
        if not DATA_FILE.match(name):
            raise ProjectError(
                f"{path} names {name!r}, which is not a file name of a project; it is damaged."
            )


def project_bytes(folder: Path) -> bytes | None:
    """``folder``'s project.json as it is on disk, or None when there is none."""
    try:
        return (folder / PROJECT_FILE).read_bytes()
    except OSError:
        return None


class Expect(enum.Enum):
    """What :meth:`dedit_app.project.Project.save` expects in the folder it saves to."""

    OWN = "the project.json this project last read or wrote there"


OWN = Expect.OWN


def digest(raw: bytes) -> str:
    """A project.json's bytes as a short fingerprint (sha256, hex) a save compares with
    what is on disk, and a recovery copy remembers of the project it belongs to."""
    return hashlib.sha256(raw).hexdigest()


def named_in(raw: bytes | None) -> set[str]:
    """The data files a project.json's bytes name (none when it is not one)."""
    try:
        doc = json.loads(raw.decode("utf-8-sig")) if raw else {}
    except ValueError:
        return set()
    return named(doc) if isinstance(doc, dict) else set()


def read_document(folder: Path, raw: bytes | None = None) -> dict[str, Any]:
    """``folder``'s project document (from ``raw``, its bytes, when already read)."""
    path = folder / PROJECT_FILE
    if not folder.exists():
        raise ProjectError(f"There is no project at {folder}.")
    if raw is None and not path.is_file():
        raise ProjectError(f"{folder} is not a D-Edit project: it has no {PROJECT_FILE}.")
    try:
        raw = path.read_bytes() if raw is None else raw
        doc = json.loads(raw.decode("utf-8-sig"))  # a BOM, as Notepad writes, is fine
    except UnicodeDecodeError as err:
        raise ProjectError(f"{path} is not a text file; it is damaged.") from err
    except json.JSONDecodeError as err:
        raise ProjectError(f"{path} is damaged: {err.msg} (line {err.lineno}).") from err
    except OSError as err:
        raise ProjectError(os_sentence(err, path)) from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ProjectError(f"{path} is not a D-Edit project file.")
    version = doc.get("version")
    if not isinstance(version, int):
        raise ProjectError(f"{path} has no valid format version; it is damaged.")
    if version > FORMAT_VERSION:
        raise ProjectError(
            f"{folder} was saved by a newer D-Edit Studio (format {version}; this version "
            f"reads up to {FORMAT_VERSION}). Update D-Edit Studio to open it."
        )
    return doc


def as_os_error(err: Exception) -> OSError:
    """The OSError a library's own error type stands for, from its text ("No space left
    on device (os error 28)"), so that it gets the same sentence."""
    found = re.search(r"os error (\d+)", str(err))
    code = int(found.group(1)) if found else errno.EIO
    return OSError(code, os.strerror(code))


def os_sentence(err: OSError, path: Path) -> str:
    """The user's sentence for ``err`` raised while saving to ``path``."""
    if err.errno == errno.ENOSPC:
        return f"The disk is full: could not save to {path}. The previous save is unchanged."
    if held_by_another_program(err):
        return (
            f"Another program has {path} open, so it could not be saved; close it there and "
            "save again. The previous save is unchanged."
        )
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"No permission to write {path}. The previous save is unchanged."
    return f"Could not save to {path} ({err.strerror or err}). The previous save is unchanged."
