"""Image files in and out, SDXL buckets, and full-resolution compositing.

Conventions: images are ``(H, W, 3)`` uint8 RGB arrays, label maps ``(H, W)`` int arrays,
sizes are ``(height, width)``, x = column (right), y = row (down).

Loading turns whatever a user drops on the editor into an opaque 8-bit sRGB-ish photo, or
raises :class:`~dedit_app.errors.ImageLoadError` with one sentence naming the file and the
problem. Nothing partially decoded ever comes back. A photo with 16 bits per channel also
comes back at 16 bits (``deep``): the editor works on the 8-bit picture, and a PNG or TIFF
export takes its untouched pixels from the 16-bit one (:func:`deep_picture`). The model
works in a *bucket* (about one megapixel for SDXL, sides multiples of 64, the photo's
aspect ratio); :func:`composite` puts the generated bucket image back at the photo's own
resolution so that every kept pixel is byte-identical to the input. docs/IMAGES.md is the
user-facing version of this.
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import re
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

from dedit_app import colour_profiles
from dedit_app.atomic import atomic_writer, held_by_another_program, make_temp
from dedit_app.errors import ImageLoadError, ImageSaveError, ItemError, short_error
from dedit_app.partition import bounding_window, holds_any

# Our own limit, checked on the header before any pixel is decoded. 100 MP covers every
# camera we know of (a 100 MP photo is already ~300 MB as RGB) and stops decompression bombs.
MAX_PIXELS = 100_000_000

# Pillow can open many more formats; some (EPS) run external programs on load, so we accept
# only plain raster formats. (Multi-picture JPEGs from phones, "MPO", come through "JPEG".)
READ_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
# The longest side each format's encoder can write (libjpeg's JPEG_MAX_DIMENSION; WebP's
# 14-bit sizes); PNG and TIFF hold any picture the editor opens.
SAVE_SIDE_LIMITS = {"JPEG": 65500, "WEBP": 16383}

_ORIENTATION_TAG = 0x0112


class _UnsupportedMode(Exception):
    """Pillow decoded the pixels but has no conversion from their mode to RGB."""


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = MAX_PIXELS,
    notes: list[str] | None = None,
    deep: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Read an image file as an opaque ``(H, W, 3)`` uint8 RGB array, upright.

    Accepts PNG, JPEG (including multi-picture JPEGs), WebP, TIFF, BMP and GIF (first frame
    or page of multi-frame files). The EXIF orientation is applied to the pixels. Conversions:

    - grayscale and bilevel: copied to the three channels;
    - palette: expanded; palette transparency is treated as alpha;
    - alpha (LA, RGBA, transparent palette or tRNS colour): composited on **white**, because
      the editor edits opaque photos and a white page is what a designer sees behind a cut-out;
    - 16 bits per channel (gray or colour, PNG or TIFF): scaled ``round(v * 255 / 65535)``,
      so 65535 -> 255 and 32768 -> 128 (never clipped);
    - 32-bit float (TIFF): read as 0.0 = black, 1.0 = white, clipped to that range;
    - CMYK (JPEG, TIFF): converted through its embedded ICC profile when it has one, else by
      Pillow's formula (Adobe's inverted CMYK JPEGs are handled by Pillow); Lab (TIFF):
      converted to sRGB.

    ``notes``, when given, gets a sentence naming the file for each of these that left
    something of the file out: transparent pixels placed on white, and the frames or pages
    after the first. The caller tells the user; nothing is said of a conversion that loses
    nothing a designer would miss (an opaque alpha channel, 16 bits, orientation).

    ``deep``, when given, gets the picture at 16 bits, ``(H, W, 3)`` uint16 RGB, upright and
    opaque like the 8-bit one, when the file holds more than 8 bits per channel (16-bit PNG
    and TIFF, gray or colour): what :func:`save_image` writes the untouched pixels of a PNG
    or TIFF export from. The 8-bit picture returned is then exactly :func:`eight_bits` of
    it. Nothing is added for a file whose 16-bit values are 8-bit ones widened (all
    multiples of 257): it holds nothing more.

    Raises ImageLoadError for missing, unreadable, empty, non-image, truncated or corrupt
    files, for images over ``max_pixels`` (checked on the header, before decoding), and
    for a colour TIFF of values no photo holds (floating-point, signed), named as such.
    """
    name = os.fspath(path)
    f = _open_file(name)
    try:
        rgb, wide = _load_from(f, name, max_pixels, notes)
    finally:
        f.close()
    if deep is not None and wide is not None and not _widened(rgb, wide):
        deep.append(wide)
    return rgb


def image_size(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of an image file as it is shown (after its EXIF orientation:
    a portrait photo stored on its side is tall), from the header alone: milliseconds,
    where decoding a 24-megapixel PNG takes most of a second. Raises ImageLoadError as
    :func:`load_image` does for everything it refuses before decoding (missing,
    unreadable, empty, not an image, too large, no pixels); a file that passes may still
    turn out truncated or corrupt when it is decoded."""
    name = os.fspath(path)
    f = _open_file(name)
    try:
        im = _checked_header(f, name, max_pixels)
        width, height = im.size
        # Orientations 5 to 8 turn the picture a quarter: its sides swap. Pillow's TIFF
        # plug-in has swapped them already (it turns TIFF pixels upright itself on load).
        turned = _orientation(im) >= 5 and im.format != "TIFF"
        return (height, width) if turned else (width, height)
    finally:
        f.close()


def _open_file(name: str) -> io.BufferedReader:
    try:
        return open(name, "rb")  # noqa: SIM115 -- the callers close it
    except FileNotFoundError:
        raise ImageLoadError(f"{name} does not exist.") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{name} is a folder, not an image file.") from None
    except PermissionError:
        raise ImageLoadError(f"{name} cannot be opened: permission denied.") from None
    except OSError as e:
        raise ImageLoadError(f"{name} cannot be opened: {_reason(e)}.") from None


def _checked_header(f: io.BufferedReader, name: str, max_pixels: int) -> Image.Image:
    """The parsed header (no pixels yet), refused when empty, too large or pixel-less."""
    if os.fstat(f.fileno()).st_size == 0:
        raise ImageLoadError(f"{name} is empty (0 bytes), so it is not an image.")
    im = _open(f, name, max_pixels)
    width, height = im.size
    if width * height > max_pixels:
        raise ImageLoadError(_too_big(name, (width, height), max_pixels))
    if width == 0 or height == 0:
        raise ImageLoadError(f"{name} has no pixels ({width} × {height}).")
    return im


def _load_from(
    f: io.BufferedReader, name: str, max_pixels: int, notes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The upright 8-bit picture, and the 16-bit one it was rounded from (or None)."""
    im = _checked_header(f, name, max_pixels)
    width, height = im.size

    deep = _is_deep_colour(im)  # before anything loads pixels: loading clears the tile list
    try:
        with contextlib.ExitStack() as stack:
            decoding = None
            if deep:
                # Deep colour files are decoded twice: OpenCV's decode keeps the 16 bits,
                # and Pillow's pass below proves the file complete. Both let go of
                # Python's lock, so side by side they take about the time of one.
                f.seek(0)
                data = np.frombuffer(f.read(), dtype=np.uint8)
                pool = stack.enter_context(ThreadPoolExecutor(1, "dedit-decode"))
                decoding = pool.submit(cv2.imdecode, data, cv2.IMREAD_UNCHANGED)
            # LOAD_TRUNCATED_IMAGES stays False: a short file raises here instead of
            # coming back grey at the bottom.
            im.load()
            orientation = _orientation(im)
            wide = _deep_colour(decoding.result(), im) if decoding else _deep_gray(im)
        rgb = _to_rgb8(im) if wide is None else eight_bits(wide)
    except MemoryError:
        raise ImageLoadError(
            f"{name} ({width} × {height} pixels) is too large to decode in the memory available."
        ) from None
    except _UnsupportedMode:
        raise ImageLoadError(
            f"{name} uses the colour mode {im.mode}, which the editor cannot convert to RGB."
        ) from None
    except Exception as e:  # decoders report damage as OSError, SyntaxError, EOFError, ...
        raise ImageLoadError(f"{name} is truncated or corrupt ({_reason(e)}).") from None
    if notes is not None:
        notes.extend(_left_out(im, name))
    if wide is not None:
        wide = np.ascontiguousarray(apply_orientation(wide, orientation))
    return np.ascontiguousarray(apply_orientation(rgb, orientation)), wide


def _left_out(im: Image.Image, name: str) -> list[str]:
    """Sentences for what loading the decoded ``im`` left out: transparency, later frames."""
    said = []
    if _transparent(im):
        said.append(_on_white(name))
    try:
        frames = int(getattr(im, "n_frames", 1))
    except Exception:  # a damaged later frame: the first one, read whole, is what counts
        frames = 1
    # A multi-picture JPEG's other pictures are a phone's previews or depth maps, no loss.
    if frames > 1 and im.format != "MPO":
        what = "pages" if im.format == "TIFF" else "frames"
        said.append(f"{name} has {frames} {what}; the editor took the first.")
    return said


def _on_white(name: str) -> str:
    return (
        f"{name} has transparent pixels; the editor placed them on white, so the project "
        "and its exports are opaque."
    )


def _transparent(im: Image.Image) -> bool:
    """Whether any pixel of the decoded ``im`` is less than opaque (an alpha channel below
    255, a transparent palette entry in use, a transparent colour present)."""
    bands = im.getbands()
    alpha = next((b for b in ("A", "a") if b in bands), None)
    if alpha is not None:
        return im.getchannel(alpha).getextrema()[0] < 255
    key = im.info.get("transparency")
    if key is None:
        return False
    if im.mode.startswith("I") and isinstance(key, int):  # Pillow's RGBA ignores this key
        return bool((np.asarray(im) == key).any())
    return im.convert("RGBA").getchannel("A").getextrema()[0] < 255


def _open(f: io.BufferedReader, name: str, max_pixels: int) -> Image.Image:
    """Parse the header (no pixels yet), mapping every failure to ImageLoadError."""
    try:
        f.seek(0)
        # Pillow warns from ~89 MP on; the editor's own limit (checked from the header by
        # the caller) rules, and a photo under it opens without a warning printed. A
        # damaged header warns too ("Corrupt EXIF data") before it fails: the failure's
        # sentence says it, once.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(f, formats=READ_FORMATS)
    except Image.DecompressionBombError as e:
        # Pillow refused on the header alone (its limit is ~179 MP). Re-read the header
        # without its check only to say how big the image is.
        raise ImageLoadError(_too_big(name, _header_size(f), max_pixels, e)) from None
    except Image.UnidentifiedImageError:
        kind = _signature_format(f)
        samples = _tiff_samples(f) if kind == "TIFF" else None
        if samples is not None:  # a sound TIFF of values no photo editor's 8/16 bits hold
            raise ImageLoadError(
                f"{name} holds {samples} pixel values, which the editor does not read; save "
                "it as a 16-bit or 8-bit TIFF or PNG from the program that made it."
            ) from None
        if kind is not None:  # a photo whose header is damaged, not a file of another kind
            raise ImageLoadError(
                f"{name} is truncated or corrupt (it starts as a {kind} file, but its header "
                "cannot be read)."
            ) from None
        raise ImageLoadError(
            f"{name} is not an image the editor can read "
            "(it reads PNG, JPEG, WebP, TIFF, BMP and GIF)."
        ) from None
    except Exception as e:  # any other failure while parsing an untrusted header
        raise ImageLoadError(f"{name} is truncated or corrupt ({_reason(e)}).") from None


_SAMPLE_FORMATS = {2: "signed integer", 3: "floating-point"}  # TIFF's SampleFormat (1 is unsigned)


def _tiff_samples(f: io.BufferedReader) -> str | None:
    """What the colour values of a TIFF Pillow cannot open are, from its first directory
    ("32-bit floating-point", as Photoshop's 32 bits per channel writes; "16-bit signed
    integer"),
    when they are not the unsigned integers a photo holds; None when its tags say
    nothing of the kind (then the file is taken as damaged)."""
    from PIL import TiffImagePlugin

    try:
        f.seek(0)
        directory = TiffImagePlugin.ImageFileDirectory_v2(f.read(8))
        f.seek(directory.next)
        with warnings.catch_warnings():  # a damaged directory warns, then comes back short
            warnings.simplefilter("ignore")
            directory.load(f)
        bits, form = directory.get(258), directory.get(339)
    except Exception:  # noqa: BLE001 - an unreadable directory: the file is damaged
        return None
    bits = bits[0] if isinstance(bits, tuple) and bits else bits
    form = form[0] if isinstance(form, tuple) and form else form
    kind = _SAMPLE_FORMATS.get(form) if isinstance(form, int) else None
    if kind is None:
        return f"{bits}-bit integer" if isinstance(bits, int) and bits > 16 else None
    return f"{bits}-bit {kind}" if isinstance(bits, int) else kind


def _reason(e: BaseException) -> str:
    text = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)) or type(e).__name__
    return text.strip().rstrip(".")


def _too_big(
    name: str, size: tuple[int, int] | None, max_pixels: int, err: Exception | None = None
) -> str:
    limit = f"{max_pixels / 1e6:g} megapixels"
    if size is not None:
        w, h = size
        return (
            f"{name} is {w} × {h} pixels ({_megapixels(w * h)} megapixels); the limit is {limit}."
        )
    match = re.search(r"\((\d+) pixels\)", str(err or ""))
    if match:
        mp = _megapixels(int(match.group(1)))
        return f"{name} is {mp} megapixels; the limit is {limit}."
    return f"{name} has more pixels than the limit of {limit}."


def _megapixels(pixels: int) -> str:
    mp = pixels / 1e6
    return f"{mp:.0f}" if mp >= 10 else f"{mp:.1f}"


def _signature_format(f: io.BufferedReader) -> str | None:
    """Which of READ_FORMATS the file's first bytes say it is (by each Pillow plug-in's own
    signature test), or None."""
    try:
        Image.init()
        f.seek(0)
        prefix = f.read(16)
        return next((fmt for fmt in READ_FORMATS if Image.OPEN[fmt][1](prefix)), None)
    except Exception:
        return None


def _header_size(f: io.BufferedReader) -> tuple[int, int] | None:
    """Width and height from the header by the format plug-in itself, bypassing Pillow's
    bomb check (it runs after the plug-in has parsed the header). Best effort: only used to
    word the error message."""
    fmt = _signature_format(f)
    if fmt is None:
        return None
    try:
        f.seek(0)
        return tuple(Image.OPEN[fmt][0](f, None).size)  # type: ignore[return-value]
    except Exception:
        return None


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:
        return 1  # unreadable EXIF: the pixels are fine, show them as stored
    return value if 1 <= value <= 8 else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an array stored with EXIF ``orientation`` (1..8) upright, like
    ``PIL.ImageOps.exif_transpose``. Works on any ``(H, W, ...)`` array; returns a view."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # mirror left-right
        3: lambda a: a[::-1, ::-1],  # rotate 180
        4: lambda a: a[::-1, :],  # mirror top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transpose
        6: lambda a: a.swapaxes(0, 1)[:, ::-1],  # rotate 90 clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transverse
        8: lambda a: a.swapaxes(0, 1)[::-1, :],  # rotate 90 counter-clockwise
    }
    return ops.get(orientation, ops[1])(image)


def from_pixels(
    pixels: np.ndarray,
    name: str,
    *,
    max_pixels: int = MAX_PIXELS,
    notes: list[str] | None = None,
) -> np.ndarray:
    """A picture that arrived as pixels, not as a file (pasted from the clipboard), the way
    :func:`load_image` reads a file: ``pixels`` ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA
    with straight alpha, uint8; returns ``(H, W, 3)`` uint8 RGB, transparency composited
    on white. ``name`` names it in the ImageLoadError raised when it is empty or too large,
    and in the sentence ``notes`` gets when transparent pixels were placed on white."""
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype != np.uint8:
        raise ImageLoadError(f"{name} is not an 8-bit RGB picture.")
    h, w = pixels.shape[:2]
    if h == 0 or w == 0:
        raise ImageLoadError(f"{name} has no pixels.")
    if h * w > max_pixels:
        raise ImageLoadError(_too_big(name, (w, h), max_pixels))
    if pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels)
    if (pixels[..., 3] == 255).all():
        return np.ascontiguousarray(pixels[..., :3])
    if notes is not None:
        notes.append(_on_white(name))
    return _composite_on_white(pixels[..., :3], pixels[..., 3], 255)


def _composite_on_white(
    rgb: np.ndarray, alpha: np.ndarray, full: int, dtype: type = np.uint8
) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` over white with ``alpha`` ``(H, W)`` (both integer, 0..full)
    -> ``(H, W, 3)`` of ``dtype`` (uint8 0..255, or uint16 0..65535), rounded. In bands of
    rows: the float32 temporaries of a whole 100 MP picture took several GB at once."""
    top_value = float(np.iinfo(dtype).max)
    out = np.empty(rgb.shape, dtype)
    step = max(1, _BAND_PIXELS // max(1, rgb.shape[1]))
    for top in range(0, rgb.shape[0], step):
        rows = slice(top, top + step)
        a = alpha[rows].astype(np.float32)[..., None] / full
        c = rgb[rows].astype(np.float32) * (top_value / full)
        out[rows] = np.clip(np.rint(c * a + top_value * (1.0 - a)), 0, top_value)
    return out


_BAND_PIXELS = 1 << 22  # pixels per band of a composite: 4 M, about 100 MB of float32


def eight_bits(values: np.ndarray) -> np.ndarray:
    """16-bit values (any shape; values past 0..65535 are clipped) -> uint8 as
    round(v / 257); there are no ties because 257 is odd. In bands of rows, as
    :func:`_composite_on_white`, for the uint32 temporaries."""
    out = np.empty(values.shape, np.uint8)
    width = int(np.prod(values.shape[1:])) if values.ndim > 1 else 1
    step = max(1, _BAND_PIXELS // max(1, width))
    for top in range(0, values.shape[0], step):
        v = np.clip(values[top : top + step], 0, 65535).astype(np.uint32)
        out[top : top + step] = (v + 128) // 257
    return out


def _widened(rgb: np.ndarray, wide: np.ndarray) -> bool:
    """Whether the 16-bit ``wide`` is the 8-bit ``rgb`` widened (every value v * 257), so
    that it holds nothing more; in bands of rows."""
    step = max(1, _BAND_PIXELS // max(1, rgb.shape[1]))
    for top in range(0, rgb.shape[0], step):
        rows = slice(top, top + step)
        if not np.array_equal(wide[rows], rgb[rows].astype(np.uint16) * 257):
            return False
    return True


def _gray3(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _to_rgb8(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return np.asarray(im)
    if mode in ("1", "L") and "transparency" not in im.info:
        return _gray3(np.asarray(im.convert("L")))
    if mode in ("P", "PA", "L", "RGB", "LA", "La", "RGBA", "RGBa"):
        if mode == "P" and "transparency" not in im.info:
            return np.asarray(im.convert("RGB"))
        rgba = np.asarray(im.convert("RGBA"))  # applies palette / tRNS transparency
        return _composite_on_white(rgba[..., :3], rgba[..., 3], 255)
    if mode == "F":
        f = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return _gray3(np.clip(np.rint(np.clip(f, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8))
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im))
    if mode == "LAB":  # Pillow's plain convert() misreads Lab as if it were YCbCr
        lab_to_srgb = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        return np.asarray(ImageCms.applyTransform(im, lab_to_srgb))
    try:
        return np.asarray(im.convert("RGB"))  # YCbCr, LAB, HSV, ...
    except ValueError as e:
        raise _UnsupportedMode(mode) from e


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                return out
        except Exception:
            pass  # a broken profile: fall back to the plain formula below
    return im.convert("RGB")


def _is_deep_colour(im: Image.Image) -> bool:
    """16-bit colour PNG/TIFF: Pillow keeps only the high byte, so decode those ourselves."""
    if im.mode not in ("RGB", "RGBA") or im.format not in ("PNG", "TIFF"):
        return False
    for tile in im.tile or []:
        args = tile[3] if len(tile) > 3 else None
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    # Some TIFF layouts have no tile list to read; ask the TIFF tags instead.
    bits = getattr(im, "tag_v2", {}).get(258) if im.format == "TIFF" else None
    return bool(bits) and max(bits if isinstance(bits, tuple) else (bits,)) == 16


def _deep_gray(im: Image.Image) -> np.ndarray | None:
    """A 16-bit gray picture (Pillow's ``I;16`` modes; ``I``, 32-bit, comes from 16-bit
    sources in older Pillow and some TIFF writers and is read on the 16-bit scale) as
    ``(H, W, 3)`` uint16, a transparent grey value (tRNS) made white; None for any other
    mode."""
    if not (im.mode.startswith("I;16") or im.mode == "I"):
        return None
    raw = np.asarray(im)
    gray = np.clip(raw, 0, 65535).astype(np.uint16)
    key = im.info.get("transparency")  # a tRNS grey value: that value is transparent
    if isinstance(key, int):
        gray[raw == key] = 65535  # over white, as every transparent pixel
    return _gray3(gray)


def _deep_colour(arr: np.ndarray | None, im: Image.Image) -> np.ndarray | None:
    """A 16-bit colour PNG/TIFF as OpenCV decoded it (``arr``, BGR(A), or None) as
    ``(H, W, 3)`` uint16 RGB, alpha placed on white. None when OpenCV disagrees about the
    file (then Pillow's high byte is used)."""
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        return None
    if arr.shape[:2] != (im.size[1], im.size[0]) or arr.shape[2] not in (3, 4):
        return None
    rgb = arr[..., 2::-1]  # OpenCV is BGR(A)
    if arr.shape[2] == 4:
        return _composite_on_white(rgb, arr[..., 3], 65535, np.uint16)
    return np.ascontiguousarray(rgb)


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def save_image(
    path: str | os.PathLike[str],
    image: np.ndarray,
    quality: int = 95,
    profile: bytes | None = None,
    deep: np.ndarray | None = None,
    alpha: np.ndarray | None = None,
) -> None:
    """Write ``image`` ((H, W, 3) uint8 RGB, or (H, W) gray) to ``path`` atomically.

    The format comes from the extension: .png, .jpg/.jpeg, .webp, .tif/.tiff. ``quality``
    (1..100) applies to JPEG and WebP; WebP at 100 is lossless; JPEG at 90 or above keeps
    full colour resolution (4:4:4). PNG and TIFF are lossless. ``profile``, an RGB ICC
    colour profile (the photo's, :mod:`dedit_app.colour_profiles`), is embedded with an
    RGB image. No other metadata is written: the pixels are already upright, so no EXIF
    orientation is needed.

    ``deep``, the photo at 16 bits ((H, W, 3) uint16, from :func:`load_image`), makes a
    PNG or TIFF of an RGB image 16 bits per channel: :func:`deep_picture` of the two.
    JPEG and WebP hold 8 bits, and are written from ``image`` alone.

    ``alpha``, ``(H, W)`` bool (True: opaque), makes an RGB picture a cut-out, transparent
    where it is False (:func:`cut_out`): PNG (at 16 bits too) and WebP keep it; JPEG has
    no transparency, and a TIFF's would be written without saying which channel it is
    (OpenCV's), so both are refused.

    The file is encoded in memory first and then replaces ``path`` in one rename, so a
    failure (full disk, no permission, missing folder) leaves any existing file untouched
    and raises ImageSaveError with a sentence naming the file.
    """
    name = os.fspath(path)
    image = np.asarray(image)
    fmt = save_format(name, image.shape[:2])
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise ValueError(
            f"save_image needs (H, W, 3) or (H, W) uint8, got {image.dtype} {image.shape}"
        )
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")
    if alpha is not None and (image.ndim != 3 or np.shape(alpha) != image.shape[:2]):
        raise ValueError(f"alpha must be (H, W) of an RGB image, got {np.shape(alpha)}")
    if alpha is not None and fmt not in CUTOUT_FORMATS:
        raise ImageSaveError(
            f"{name} cannot hold a cut-out: its transparency is kept in .png and .webp; "
            "save it as one of those."
        )
    _check_not_read_only(name)

    profile = colour_profiles.rgb_profile(profile) if image.ndim == 3 else None
    if writes_16_bits(name, deep) and image.ndim == 3:
        image = deep_picture(image, deep)
    if alpha is not None:
        opaque = np.iinfo(image.dtype).max
        image = np.dstack([image, np.where(alpha, opaque, 0).astype(image.dtype)])
    try:
        lossless = {"PNG": png_bytes, "TIFF": tiff_bytes}.get(fmt)
        if lossless is None:
            pieces = [_pil_bytes(image, fmt, int(quality), profile)]
        elif profile is None:
            pieces = [lossless(image)]
        elif fmt == "PNG":
            pieces = colour_profiles.with_png_profile(lossless(image), profile)
        else:
            pieces = colour_profiles.with_tiff_profile(lossless(image), profile)
    except (OSError, ValueError) as e:  # an encoder's own limit: nothing was written
        raise ImageSaveError(
            f"{name} could not be encoded as {fmt} ({short_error(e)}); save it as .png or "
            ".tif, and any existing file there is unchanged."
        ) from e
    try:
        with atomic_writer(name) as f:
            for piece in pieces:
                f.write(piece)
    except OSError as e:
        raise ImageSaveError(_save_failure(name, e)) from e


def writes_16_bits(path: str | os.PathLike[str], deep: np.ndarray | None) -> bool:
    """Whether :func:`save_image` writes a picture with ``deep`` (the photo at 16 bits, or
    None) to ``path`` at 16 bits per channel: a PNG or TIFF of a 16-bit photo. False for
    an extension it does not save."""
    return deep is not None and SAVE_FORMATS.get(Path(path).suffix.lower()) in ("PNG", "TIFF")


def deep_picture(image: np.ndarray, deep: np.ndarray) -> np.ndarray:
    """The picture ``image`` ((H, W, 3) uint8 RGB, the photo as edited) at 16 bits, from
    ``deep`` ((H, W, 3) uint16, the photo as opened): each value that is still the 8-bit
    rounding of the photo's (:func:`eight_bits`) takes the photo's own 16-bit value, and
    every other, an edit's, is widened (v * 257). So the pixels no edit changed are the
    file's to the bit, and every value rounds back to ``image``'s. A value an edit happens
    to paint as it was takes the photo's too, which is within the rounding of what was
    painted. Returns a new (H, W, 3) uint16 array; computed in bands of rows."""
    if deep.shape != image.shape or deep.dtype != np.uint16 or image.dtype != np.uint8:
        raise ValueError(
            f"deep_picture needs (H, W, 3) uint8 and uint16 of one size, got {image.dtype} "
            f"{image.shape} and {deep.dtype} {deep.shape}"
        )
    out = np.empty(image.shape, np.uint16)
    step = max(1, _BAND_PIXELS // max(1, image.shape[1]))
    for top in range(0, image.shape[0], step):
        rows = slice(top, top + step)
        own, now = deep[rows], image[rows]
        np.copyto(out[rows], now, casting="unsafe")
        out[rows] *= 257
        np.copyto(out[rows], own, where=eight_bits(own) == now)
    return out


def check_save_target(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> None:
    """Raise ImageSaveError with the sentence :func:`save_image` would give for ``path``
    (a picture of ``size`` ``(height, width)``), asked before the work that makes the
    picture: an unknown extension, a picture too large for the format, a folder that is
    missing or cannot be written into, or a name that is a folder. Writes nothing."""
    name = os.fspath(path)
    save_format(name, size)
    target = Path(name)
    if target.is_dir():
        raise ImageSaveError(_save_failure(name, IsADirectoryError(errno.EISDIR, "a folder")))
    _check_not_read_only(name)
    if not target.parent.is_dir():
        raise ImageSaveError(_save_failure(name, FileNotFoundError(errno.ENOENT, "no folder")))
    try:
        os.unlink(make_temp(target))
    except OSError as e:  # a folder that exists but takes no files (/proc, read-only)
        if isinstance(e, FileNotFoundError):
            e = PermissionError(errno.EACCES, "permission denied")
        raise ImageSaveError(_save_failure(name, e)) from e


def _check_not_read_only(name: str) -> None:
    """Refuse to replace a file marked read-only. Saving renames a new file over the old
    one, which Linux and macOS allow whatever the old file's mode (Windows refuses it):
    the mark is the user's, so say so instead of quietly replacing the file."""
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return  # nothing there (or nothing readable): the save itself says what is wrong
    if stat.S_ISREG(mode) and not mode & 0o222:
        raise ImageSaveError(
            f"{name} is read-only, so it was not replaced; save under another name or make "
            "the file writable first."
        )


def readable_suffixes() -> frozenset[str]:
    """The file extensions of the formats :func:`load_image` reads (".png", ".jpg",
    ".tif", ...), as Pillow registers them: for picking a picture among dropped files."""
    return frozenset(
        ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in READ_FORMATS
    )


def save_format(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> str:
    """The format :func:`save_image` writes ``path`` in ("PNG", "JPEG", "WEBP", "TIFF"),
    from its extension; ImageSaveError with a sentence for any other extension, or when a
    picture of ``size`` ``(height, width)`` is larger than that format can hold."""
    name = os.fspath(path)
    suffix = Path(name).suffix.lower()
    fmt = SAVE_FORMATS.get(suffix)
    if fmt is None:
        what = f"the extension '{suffix}'" if suffix else "no extension"
        raise ImageSaveError(
            f"{name} has {what}; images are saved as .png, .jpg, .jpeg, .webp, .tif or .tiff."
        )
    limit = SAVE_SIDE_LIMITS.get(fmt)
    if size is not None and limit is not None and max(size) > limit:
        h, w = size
        kind = {"JPEG": "JPEG", "WEBP": "WebP"}[fmt]
        raise ImageSaveError(
            f"{name} cannot be saved: a {w} x {h} picture is larger than {kind} allows "
            f"({limit} pixels on a side); save it as .png or .tif."
        )
    return fmt


def png_bytes(image: np.ndarray) -> memoryview:
    """``image`` ((H, W, 3) RGB, (H, W, 4) RGBA, or (H, W) gray; uint8 or uint16) as PNG
    file bytes.

    OpenCV at zlib level 3: on a 24-megapixel photo 3.4 s and 34 MB, where Pillow's default
    (level 6) takes 13.7 s for 31.5 MB. Lossless either way; the wait is what a designer
    notices, the 8 % not."""
    ok, buf = cv2.imencode(".png", _bgr(image), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ImageSaveError("The picture could not be encoded as PNG.")
    return memoryview(buf)


_TIFF_DEFLATE = 8  # libtiff's COMPRESSION_ADOBE_DEFLATE, what Pillow's tiff_deflate writes


def tiff_bytes(image: np.ndarray) -> memoryview:
    """``image`` ((H, W, 3) RGB, or (H, W) gray; uint8 or uint16) as deflate-compressed
    TIFF file bytes. OpenCV's encoder lets go of Python's lock while it works, so an export
    on a side thread leaves the window live; Pillow's holds it throughout (the window
    froze 4.5 s for a 24-megapixel photo, against 0.13 s here, and it took twice as long)."""
    ok, buf = cv2.imencode(".tiff", _bgr(image), [cv2.IMWRITE_TIFF_COMPRESSION, _TIFF_DEFLATE])
    if not ok:
        raise ImageSaveError("The picture could not be encoded as TIFF.")
    return memoryview(buf)


def _bgr(image: np.ndarray) -> np.ndarray:
    """``image`` in OpenCV's channel order (gray stays gray)."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)


CUTOUT_FORMATS = ("PNG", "WEBP")  # the formats save_image writes a cut-out (alpha) in


def cut_out(
    image: np.ndarray, labels: np.ndarray, items, deep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``items`` cut out of the picture at full resolution, for :func:`save_image`'s
    ``alpha``: ``(crop, alpha, deep crop)``, the ``(h, w, 3)`` pixels of the box round the
    items, ``(h, w)`` bool True on their pixels, and the same box of ``deep`` (the photo at
    16 bits, or None). ``labels`` ``(H, W)``; ItemError when none of them has pixels."""
    window = bounding_window(holds_any(labels, list(items)), 0)
    if window is None:
        raise ItemError("The items to cut out have no pixels.")
    alpha = holds_any(labels[window], list(items))
    return image[window], alpha, None if deep is None else deep[window]


def _pil_bytes(image: np.ndarray, fmt: str, quality: int, profile: bytes | None) -> memoryview:
    buf = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(image))
    extra = {} if profile is None else {"icc_profile": profile}
    if fmt == "JPEG":
        pil.save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2, **extra)
    else:
        pil.save(buf, "WEBP", quality=quality, lossless=quality >= 100, **extra)
    return buf.getbuffer()


def _save_failure(name: str, e: OSError) -> str:
    kept = "any existing file there is unchanged"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{name} could not be saved because the disk is full; {kept}."
    if held_by_another_program(e):
        return (
            f"{name} could not be saved because another program has it open; close it there "
            f"and try again; {kept}."
        )
    if isinstance(e, PermissionError) or e.errno == errno.EROFS:
        return f"{name} could not be saved: permission denied; {kept}."
    if isinstance(e, IsADirectoryError):
        return f"{name} could not be saved because it is a folder."
    if isinstance(e, FileNotFoundError):
        return f"{name} could not be saved because the folder {Path(name).parent} does not exist."
    return f"{name} could not be saved ({_reason(e)}); {kept}."


# --------------------------------------------------------------------------------------
# Buckets and resizing
# --------------------------------------------------------------------------------------


def choose_bucket(
    height: int,
    width: int,
    *,
    area: int = 1024 * 1024,
    multiple: int = 64,
    max_aspect: float = 4.0,
) -> tuple[int, int]:
    """The model resolution ``(bucket_h, bucket_w)`` for a ``height x width`` photo.

    Both sides are multiples of ``multiple``, the area is at most ``area`` and, whenever the
    grid allows it, at least 90% of it; among those, the aspect ratio is the closest to the
    photo's (ties go to the larger area). SDXL: the defaults (about one megapixel, e.g. a 3:2
    photo -> 832 x 1216); SD 1.5: ``area=512*512``.

    Aspect ratios beyond ``max_aspect`` : 1 (default 4:1, either way) are clamped to it: a
    panorama gets a 4:1 bucket and is squeezed into it, and :func:`composite` stretches the
    result back, because SDXL was never trained on narrower strips. The function is
    symmetric: swapping height and width swaps the bucket.
    """
    if height <= 0 or width <= 0 or multiple <= 0 or area <= 0:
        raise ValueError(f"choose_bucket needs positive sizes, got {height}x{width}")
    if height > width:
        bw, bh = choose_bucket(width, height, area=area, multiple=multiple, max_aspect=max_aspect)
        return bh, bw
    target = math.log(min(width / height, max(1.0, max_aspect)))  # log(w/h) >= 0
    cells = area // (multiple * multiple)  # the area budget in multiple x multiple cells
    if cells < 1:
        return multiple, multiple
    best: tuple[float, int, int, int] | None = None
    for h in range(1, math.isqrt(cells) + 1):  # h <= w since the photo is landscape
        # Widths that keep the area in [90%, 100%] of the budget (h = 1, w = cells always
        # does, so the band is never empty); for a fixed h the best aspect is the ideal width
        # rounded either way and clamped into the band.
        w_lo, w_hi = max(h, math.ceil(0.9 * cells / h)), cells // h
        if w_lo > w_hi:
            continue
        ideal = h * math.exp(target)
        for w in {min(max(math.floor(ideal), w_lo), w_hi), min(max(math.ceil(ideal), w_lo), w_hi)}:
            key = (abs(math.log(w / h) - target), -h * w, h, w)  # aspect, then larger area
            if best is None or key < best:
                best = key
    assert best is not None
    h, w = best[2], best[3]
    return h * multiple, w * multiple


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``image`` ((H, W) or (H, W, C), uint8 or float32) to ``size = (h, w)``.

    Area averaging where a side shrinks (no aliasing), bicubic where it grows (sharp), each
    axis on its own when one shrinks and the other grows; pixel-centre aligned; uint8 results
    are saturated to 0..255. Returns a new array (a copy when the size is unchanged).
    """
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"resize_image needs a positive size, got {size}")
    src_h, src_w = image.shape[:2]
    if (h, w) == (src_h, src_w):
        return image.copy()

    def interp(shrink: bool) -> int:
        return cv2.INTER_AREA if shrink else cv2.INTER_CUBIC

    image = np.ascontiguousarray(image)
    if (h <= src_h) == (w <= src_w) or h == src_h or w == src_w:
        out = cv2.resize(image, (w, h), interpolation=interp(h <= src_h and w <= src_w))
    else:
        out = cv2.resize(image, (w, src_h), interpolation=interp(w <= src_w))
        out = cv2.resize(out, (w, h), interpolation=interp(h <= src_h))
    if out.ndim == 2 and image.ndim == 3:  # OpenCV drops a single channel axis
        out = out[..., None]
    return out


def _nearest_index(src: int, dst: int) -> np.ndarray:
    """Source index for each destination index, sampling at pixel centres: the source pixel
    ``floor((i + 0.5) * src / dst)`` under the centre of output pixel ``i``. Integer
    arithmetic, so it is exact; where that point lies exactly on a pixel boundary (e.g. every
    pixel of a 2x shrink) OpenCV and Pillow may pick the other side through float rounding."""
    i = np.arange(dst, dtype=np.int64)
    return (2 * i + 1) * src // (2 * dst)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map ``(H, W)`` to ``size = (h, w)`` by nearest sampling at pixel centres.

    The output keeps the dtype and contains only values of the input. Every item that
    contains a ``ceil(H / h) x ceil(W / w)`` rectangle of pixels (one output pixel's
    footprint, rounded up) is still present; thinner items may vanish when shrinking.
    Enlarging keeps every item. The same as ``cv2.INTER_NEAREST_EXACT`` except where a sample
    point lies exactly on a pixel boundary; works for any integer dtype.
    """
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"resize_labels needs a positive size, got {size}")
    src_h, src_w = labels.shape[:2]
    rows = _nearest_index(src_h, h)
    cols = _nearest_index(src_w, w)
    return labels[rows[:, None], cols[None, :]]


# --------------------------------------------------------------------------------------
# Compositing
# --------------------------------------------------------------------------------------

_BAND_ROWS = 512  # rows blended at a time: bounds float temporaries on 100 MP photos


def composite(
    original: np.ndarray,
    generated: np.ndarray,
    keep: np.ndarray,
    feather: np.ndarray | None = None,
) -> np.ndarray:
    """Put a generated image back into the full-resolution photo.

    original: (H, W, 3) uint8, the photo at its own resolution.
    generated: (h, w, 3) uint8 at any size (usually the bucket); resized to (H, W) with
        :func:`resize_image` (bicubic up, area down).
    keep: (H, W) bool; these pixels are copied from ``original`` byte for byte, whatever
        ``feather`` says.
    feather: optional (H, W) float in [0, 1] (clipped): the weight of the generated image on
        pixels outside ``keep`` (default 1 everywhere), e.g. :func:`feather_weights`.

    Returns a new (H, W, 3) uint8 array: ``original`` on keep, elsewhere
    ``round(original + feather * (generated - original))``.
    """
    if original.dtype != np.uint8 or original.ndim != 3 or original.shape[2] != 3:
        raise ValueError(f"original must be (H, W, 3) uint8, got {original.dtype} {original.shape}")
    if generated.dtype != np.uint8 or generated.ndim != 3 or generated.shape[2] != 3:
        raise ValueError(
            f"generated must be (h, w, 3) uint8, got {generated.dtype} {generated.shape}"
        )
    height, width = original.shape[:2]
    if keep.shape != (height, width):
        raise ValueError(f"keep is {keep.shape}, the original is {(height, width)}")
    if feather is not None and feather.shape != (height, width):
        raise ValueError(f"feather is {feather.shape}, the original is {(height, width)}")

    gen = resize_image(generated, (height, width))
    out = original.copy()
    edit = ~keep.astype(bool, copy=False)
    window = bounding_window(edit, 0)
    if window is None:
        return out
    # Only the edited region's bounding box changes; masked copies write in place, where
    # boolean indexing would first list every edited pixel.
    edit, gen, orig, dst = edit[window], gen[window], original[window], out[window]
    if feather is None:
        copy_pixels(dst, gen, edit)
        return out
    f = np.clip(np.asarray(feather[window], dtype=np.float32), 0.0, 1.0)
    # The formula gives the generated pixel exactly where f is 1 and the original where it
    # is 0, so only the band in between is blended, in row bands to bound the temporaries.
    copy_pixels(dst, gen, edit & (f >= 1.0))
    band = edit & (f > 0.0) & (f < 1.0)
    for r0 in range(0, band.shape[0], _BAND_ROWS):
        rows = slice(r0, r0 + _BAND_ROWS)
        b = band[rows]
        if not b.any():
            continue
        w = f[rows][b][:, None]
        o = orig[rows][b].astype(np.float32)
        g = gen[rows][b].astype(np.float32)
        dst[rows][b] = np.clip(np.rint(o + w * (g - o)), 0, 255).astype(np.uint8)
    return out


def copy_pixels(dst: np.ndarray, src: np.ndarray, where: np.ndarray) -> None:
    """``dst[where] = src[where]`` for ``(h, w, 3)`` uint8 arrays or views whose pixels are
    contiguous, in place; ``where`` ``(h, w)`` bool. Each pixel moves as one 3-byte item:
    a mask broadcast over the channels was 9x slower, boolean indexing slower still."""
    pixel = np.dtype((np.void, 3))
    np.copyto(dst.view(pixel)[..., 0], src.view(pixel)[..., 0], where=where)


def feather_weights(keep: np.ndarray, width: float) -> np.ndarray:
    """Blend weights for a seamless edge just inside the generated side of ``keep``.

    keep: (H, W) bool. Returns (H, W) float32: 0 on keep, ``d / width`` at Euclidean distance
    ``d`` (pixel centres) from the nearest keep pixel, reaching 1 at ``width`` pixels and
    beyond. ``width <= 0`` gives a hard edge (1 everywhere outside keep); no keep pixel at
    all gives 1 everywhere.
    """
    keep = np.asarray(keep, dtype=bool)
    outside = ~keep
    with np.errstate(over="ignore"):  # a width beyond float32 is infinite: weights 0
        width32 = np.float32(width)
    # (a width too small for float32 is a hard edge too, not a division by zero)
    if not width32 > 0 or not keep.any() or keep.all():
        return outside.astype(np.float32)
    # A weight below 1 means a keep pixel within ``width``, and every such pixel lies in
    # this window around the generated side; outside it everything is keep, weight 0.
    # No distance exceeds the picture's height plus width, so that bounds the margin.
    reach = min(float(width), float(sum(keep.shape)))
    window = bounding_window(outside, math.ceil(reach) + 1)
    weights = np.zeros(keep.shape, np.float32)
    near = outside[window]
    if near.all():  # no keep pixel within reach: fully generated
        weights[window] = 1.0
        return weights
    # OpenCV measures the distance to the nearest zero pixel; the precise mask is exact L2.
    dist = cv2.distanceTransform(
        near.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE, dstType=cv2.CV_32F
    )
    with np.errstate(over="ignore"):  # a tiny width overflows to inf: weight 1
        weights[window] = np.minimum(dist / width32, np.float32(1.0))
    return weights
