"""A photo's embedded colour profile (ICC), kept with the project and written into exports.

A phone photo is often in Display P3, a camera's in Adobe RGB: the pixel values mean
those colours only together with the profile the file embeds. The editor uses the values
as they are (converting would change every untouched pixel) and keeps the profile, so an
export embeds it again and a colour-managed program (Photoshop, Figma, a browser) shows
the export's colours as it showed the photo's. Without it an export of a P3 photo looks
duller there than the photo did.

Only profiles of RGB data are kept: the pixels of a CMYK or Lab photo were converted to
sRGB on opening, and a gray profile does not describe the RGB picture the editor makes of
a gray photo. PNG and TIFF are encoded by OpenCV, which writes no profile, so the profile
is added to its bytes here (PNG: an ``iCCP`` chunk; TIFF: tag 34675 in the first IFD);
JPEG and WebP are encoded by Pillow, which takes it as ``icc_profile``.

For looking at, :func:`to_srgb` turns the values into the sRGB a screen shows (the editor
draws them on the canvas and in its thumbnails that way); the values kept never change.
For learning, :func:`between` turns a reference photo's values into the photo's profile
(:func:`dedit_app.finetune.finetune_project`), so a swapped-in item keeps its colours.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageCms

__all__ = [
    "between",
    "describe",
    "file_name",
    "of_file",
    "rgb_profile",
    "to_srgb",
    "with_png_profile",
    "with_tiff_profile",
]

_HEADER = 128  # an ICC profile's fixed header; then the tag table
_ICC_TAG = 34675  # TIFF's InterColorProfile
_UNDEFINED = 7  # TIFF field type: bytes


def rgb_profile(data: bytes | None) -> bytes | None:
    """``data`` when it is an ICC profile of RGB colours (its header's size, signature
    and colour space agree), else None: a profile of another colour space, or one too
    damaged to trust, is dropped and the pixel values are used as they are."""
    if not data or len(data) < _HEADER:
        return None
    size = struct.unpack(">I", data[:4])[0]
    if size != len(data) or data[36:40] != b"acsp" or data[16:20] != b"RGB ":
        return None
    return bytes(data)


def of_file(path: str | os.PathLike[str]) -> bytes | None:
    """The RGB colour profile the image file at ``path`` embeds (:func:`rgb_profile`), or
    None. Reads the header only; a file that cannot be read has none (opening it says
    why)."""
    from dedit_app.imageio import READ_FORMATS  # imageio writes with this module

    try:
        # only the formats the editor opens: another (EPS) may run a program when read
        with Image.open(path, formats=READ_FORMATS) as im:
            return rgb_profile(im.info.get("icc_profile"))
    except Exception:  # noqa: BLE001 - any failure: opening the pixels names it
        return None


def describe(profile: bytes) -> str:
    """The profile's own name ("Display P3", "Adobe RGB (1998)"), for the sentence that
    says a photo opened with it; "a colour profile" when it names none."""
    try:
        name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except (OSError, TypeError, ValueError, ImageCms.PyCMSError):
        name = ""
    name = " ".join(str(name).split())
    return name[:60] if name else "a colour profile"


def file_name(profile: bytes) -> str:
    """The project's file name for ``profile``, named for its content like the pictures."""
    return f"profile-{hashlib.sha256(b'profile:' + profile).hexdigest()[:16]}.icc"


def with_png_profile(png: bytes | memoryview, profile: bytes) -> list[bytes | memoryview]:
    """PNG file bytes with ``profile`` embedded as an ``iCCP`` chunk after ``IHDR`` (the
    PNG specification places it before the image data; it rules out an ``sRGB`` chunk,
    which OpenCV does not write), as pieces to write one after another: a 24 MP picture
    is not copied to add a few kilobytes."""
    png = memoryview(png).cast("B")
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR's length and type, its data, its CRC
    if bytes(png[12:16]) != b"IHDR":
        raise ValueError("not a PNG that starts with its header")
    body = b"ICC profile\x00\x00" + zlib.compress(profile, 9)  # name, compression method 0
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    return [png[:end_of_ihdr], chunk, png[end_of_ihdr:]]


def with_tiff_profile(tiff: bytes | memoryview, profile: bytes) -> list[bytes | memoryview]:
    """Classic TIFF file bytes with ``profile`` in the first IFD (tag 34675), as pieces
    to write one after another. The profile and a copy of the IFD with the tag added go
    at the end of the file and the header points at the copy; the image data stays where
    it was, so every offset in the file still holds."""
    tiff = memoryview(tiff).cast("B")
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        raise ValueError("not a classic TIFF")
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
    entries = [bytes(tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]) for i in range(count)]
    entries = [e for e in entries if struct.unpack(order + "H", e[:2])[0] != _ICC_TAG]
    next_ifd = bytes(tiff[ifd + 2 + 12 * count : ifd + 6 + 12 * count])
    tail = bytearray(b"\x00" * (len(tiff) % 2))  # TIFF values start on a word boundary
    at = len(tiff) + len(tail)
    tail += profile + b"\x00" * (len(profile) % 2)
    entries.append(struct.pack(order + "HHII", _ICC_TAG, _UNDEFINED, len(profile), at))
    entries.sort(key=lambda e: struct.unpack(order + "H", e[:2])[0])  # TIFF wants them sorted
    new_ifd = len(tiff) + len(tail)
    tail += struct.pack(order + "H", len(entries)) + b"".join(entries) + next_ifd
    header = bytes(tiff[:4]) + struct.pack(order + "I", new_ifd)
    return [header, tiff[8:], bytes(tail)]


_BAND_PIXELS = 1 << 20  # a band of rows converted on one thread
_POOL: list[ThreadPoolExecutor] = []  # made the first time a large picture is converted
# Threads for work on whole pictures (converting colours here; reading and writing PNGs in
# dedit_app.project), each of which lets go of Python's lock: one per core, two to four.
PICTURE_THREADS = max(2, min(4, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor:
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(PICTURE_THREADS, "dedit-colours"))
    return _POOL[0]


# between's functions by their two profiles' hashes: building a transform parses both
# profiles (milliseconds), and the canvas asks for each picture of the document.
_BETWEEN: dict[tuple[bytes, bytes], Callable[[np.ndarray], np.ndarray] | None] = {}


def to_srgb(profile: bytes | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function that turns ``(H, W, 3)`` uint8 values meant in ``profile`` into the sRGB
    values that show those colours on a screen, as a colour-managed viewer does (a Qt
    window is taken as sRGB, and colours outside sRGB are clipped); None where nothing
    would change (:func:`between`). For display only: the pixels the editor keeps and
    exports stay as they are."""
    return between(profile, None)


def between(
    source: bytes | None, target: bytes | None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function that turns ``(H, W, 3)`` uint8 values meant in the ``source`` profile
    into the values that mean the same colours in ``target`` (None: sRGB, as a file
    without a profile is shown), relative colorimetric, colours outside ``target``
    clipped; a new array. None where nothing would change: the same profile, two that
    agree within one level of 255 on every colour of a 17-step grid, or one LittleCMS
    cannot read (its values are then taken as they are, as without a profile)."""
    if source == target:
        return None
    key = tuple(hashlib.sha256(p or b"").digest() for p in (source, target))
    if key not in _BETWEEN:
        _BETWEEN[key] = _transform(source, target)
    return _BETWEEN[key]


def _cms_profile(profile: bytes | None):
    if profile is None:
        return ImageCms.createProfile("sRGB")
    return ImageCms.ImageCmsProfile(io.BytesIO(profile))


def _transform(
    source: bytes | None, target: bytes | None
) -> Callable[[np.ndarray], np.ndarray] | None:
    try:
        transform = ImageCms.buildTransform(
            _cms_profile(source),
            _cms_profile(target),
            "RGB",
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        )
    except (OSError, TypeError, ValueError, ImageCms.PyCMSError):
        return None

    def band(image: np.ndarray) -> np.ndarray:
        pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB")
        return np.asarray(ImageCms.applyTransform(pil, transform))

    def convert(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if h * w < _BAND_PIXELS * 2:
            return np.array(band(image))  # Pillow's array is read-only; torch warns of it
        # LittleCMS lets go of Python's lock: bands of rows on a few threads (a 24 MP
        # picture took 0.44 s whole, 0.18 s in bands on 2 cores)
        out = np.empty((h, w, 3), np.uint8)
        rows = max(1, _BAND_PIXELS // w)

        def one(top: int) -> None:
            out[top : top + rows] = band(image[top : top + rows])

        for done in [_pool().submit(one, top) for top in range(0, h, rows)]:
            done.result()
        return out

    steps = np.linspace(0, 255, 17).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(1, -1, 3)
    if np.abs(convert(grid).astype(np.int16) - grid).max() <= 1:
        return None
    return convert
