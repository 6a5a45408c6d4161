"""Builds the bad-input image corpus in a folder at test time (no binary fixtures in git).

Each ``make_*`` function writes one file into ``folder`` and returns its path; the pixel
content is chosen so that a test can say exactly what a correct loader returns.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 random RGB: incompressible, so truncating a file cuts real data."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def make_huge_header_png(folder: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid PNG header (correct CRCs) claiming width x height RGB pixels, with only a few
    bytes of image data: a decompression bomb's header without the bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    path = folder / f"huge_{width}x{height}.png"
    path.write_bytes(data)
    return path


def make_truncated_png(folder: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buf, "PNG")
    path = folder / "truncated.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def make_truncated_jpeg(folder: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buf, "JPEG", quality=95)
    path = folder / "truncated.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def make_bad_header_png(folder: Path) -> Path:
    """A PNG whose IHDR chunk fails its checksum (one flipped bit in the width): a damaged
    PNG, which Pillow reports as a file it cannot identify."""
    buf = io.BytesIO()
    Image.fromarray(noise(8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[18] ^= 0x01  # the width's third byte: 8 -> 264 wide, the checksum now wrong
    path = folder / "bad-header.png"
    path.write_bytes(bytes(data))
    return path


def make_zero_byte(folder: Path) -> Path:
    path = folder / "empty.png"
    path.write_bytes(b"")
    return path


def make_text_as_jpeg(folder: Path) -> Path:
    path = folder / "notes.jpg"
    path.write_text("These are my notes, not a photo.\n" * 20)
    return path


def make_eps(folder: Path) -> Path:
    """A PostScript file: Pillow could open it by running Ghostscript; we must refuse."""
    path = folder / "drawing.eps"
    path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    return path


# CMYK patches (C, M, Y, K) and the sRGB they should come back as (plain formula).
CMYK_PATCHES = [
    ((0, 0, 0, 0), (255, 255, 255)),  # paper white
    ((0, 0, 0, 255), (0, 0, 0)),  # black ink
    ((255, 0, 0, 0), (0, 255, 255)),  # cyan
    ((0, 255, 0, 0), (255, 0, 255)),  # magenta
    ((0, 0, 255, 0), (255, 255, 0)),  # yellow
]


def make_cmyk_jpeg(folder: Path) -> Path:
    """A 32 x 160 CMYK JPEG: five flat 32 x 32 patches from CMYK_PATCHES, left to right."""
    arr = np.zeros((32, 32 * len(CMYK_PATCHES), 4), np.uint8)
    for i, (cmyk, _) in enumerate(CMYK_PATCHES):
        arr[:, 32 * i : 32 * (i + 1)] = cmyk
    path = folder / "cmyk.jpg"
    Image.fromarray(arr, mode="CMYK").save(path, "JPEG", quality=95)
    return path


def marker_image(height: int = 48, width: int = 96) -> np.ndarray:
    """White (H, W, 3) with a 16 x 16 red block at the stored top-left corner and a blue one
    at the stored bottom-left corner: enough to tell all eight orientations apart."""
    arr = np.full((height, width, 3), 255, np.uint8)
    arr[:16, :16] = (255, 0, 0)
    arr[-16:, :16] = (0, 0, 255)
    return arr


def make_oriented(folder: Path, orientation: int, fmt: str = "JPEG", image=None) -> Path:
    """``image`` (default :func:`marker_image`) stored as-is with EXIF ``orientation``."""
    arr = marker_image() if image is None else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    ext = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "WEBP": "webp"}[fmt]
    path = folder / f"oriented{orientation}.{ext}"
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(arr).save(path, fmt, exif=exif, **kwargs)
    return path


def make_gray16_png(folder: Path) -> Path:
    """1 x 4 16-bit grayscale PNG with values 0, 257, 32768, 65535."""
    arr = np.array([[0, 257, 32768, 65535]], np.uint16)
    path = folder / "gray16.png"
    Image.fromarray(arr).save(path, "PNG")
    assert Image.open(path).mode.startswith("I;16")
    return path


DEEP_RGB = np.array([[[65535, 32768, 0], [255, 256, 32767]]], np.uint16)  # (1, 2, 3) RGB


def make_rgb16(folder: Path, ext: str = "png") -> Path:
    """1 x 2 16-bit RGB PNG or TIFF holding DEEP_RGB."""
    path = folder / f"rgb16.{ext}"
    assert cv2.imwrite(str(path), DEEP_RGB[..., ::-1])
    return path


def make_rgba16_png(folder: Path) -> Path:
    """1 x 2 16-bit RGBA PNG: opaque red, then half-transparent black."""
    rgba = np.array([[[65535, 0, 0, 65535], [0, 0, 0, 32768]]], np.uint16)
    path = folder / "rgba16.png"
    assert cv2.imwrite(str(path), rgba[..., [2, 1, 0, 3]])
    return path


def make_palette_png(folder: Path, transparent: bool) -> Path:
    """2 x 2 palette PNG: red, green / blue, red; with ``transparent`` the green entry is
    fully transparent."""
    pal = Image.new("P", (2, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2, 0])
    path = folder / ("palette_transparent.png" if transparent else "palette.png")
    if transparent:
        pal.save(path, "PNG", transparency=1)
    else:
        pal.save(path, "PNG")
    return path


def make_palette_partial_alpha_png(folder: Path) -> Path:
    """1 x 2 palette PNG with a tRNS table: black at alpha 0 and black at alpha 51 (20%)."""
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 0, 0, 0] + [0] * (256 * 3 - 6))
    pal.putdata([0, 1])
    path = folder / "palette_partial_alpha.png"
    pal.save(path, "PNG", transparency=bytes([0, 51]))
    return path


def make_rgba_png(folder: Path) -> Path:
    """1 x 3 RGBA PNG: opaque red, red at alpha 128, fully transparent black."""
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 128], [0, 0, 0, 0]]], np.uint8)
    path = folder / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    return path


def make_la_png(folder: Path) -> Path:
    """1 x 2 gray+alpha PNG: black at alpha 255, black at alpha 0."""
    la = np.array([[[0, 255], [0, 0]]], np.uint8)
    path = folder / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    return path


def make_multi_frame(folder: Path, fmt: str, frames: int = 3) -> Path:
    """An animated GIF, WebP or PNG, or a multi-page TIFF, of ``frames`` 6 x 4 noise
    frames; the first is ``noise(4, 6, 0)``."""
    pictures = [Image.fromarray(noise(4, 6, seed)) for seed in range(frames)]
    ext = {"GIF": "gif", "WEBP": "webp", "PNG": "png", "TIFF": "tif"}[fmt]
    path = folder / f"frames.{ext}"
    kwargs = {"duration": 100, "lossless": True} if fmt == "WEBP" else {}
    pictures[0].save(path, fmt, save_all=True, append_images=pictures[1:], **kwargs)
    return path


def make_gray_jpeg(folder: Path) -> Path:
    path = folder / "gray.jpg"
    Image.fromarray(np.full((16, 24), 100, np.uint8)).save(path, "JPEG", quality=100)
    return path


def make_float_tiff(folder: Path) -> Path:
    """1 x 4 32-bit float TIFF: -0.5, 0.0, 0.5, 2.0."""
    arr = np.array([[-0.5, 0.0, 0.5, 2.0]], np.float32)
    path = folder / "float.tif"
    Image.fromarray(arr, mode="F").save(path, "TIFF")
    return path


def make_lab_tiff(folder: Path) -> Path:
    """1 x 3 Lab TIFF (Pillow's 8-bit Lab: L 0..255 for 0..100, a and b offset by 128):
    white, black, and sRGB red (L 53, a 80, b 67)."""
    lab = Image.new("LAB", (3, 1))
    for x, value in enumerate([(255, 128, 128), (0, 128, 128), (135, 208, 195)]):
        lab.putpixel((x, 0), value)
    path = folder / "lab.tif"
    lab.save(path, "TIFF")
    return path


# Display P3's primaries, adapted to the D50 white of ICC profiles (X, Y, Z)
_P3_COLORANTS = {
    b"rXYZ": (0.5151, 0.2412, -0.0011),
    b"gXYZ": (0.2920, 0.6922, 0.0419),
    b"bXYZ": (0.1571, 0.0666, 0.7841),
}


def p3_like_profile() -> bytes:
    """An ICC profile with Display P3's primaries and sRGB's curves (what Apple's Display
    P3 is), made from LittleCMS's built-in sRGB by writing the three colorant tags: a
    wide-gamut RGB profile without any file to download."""
    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", data[128:132])
    for i in range(count):
        sig, offset, _size = struct.unpack(">4sII", data[132 + 12 * i : 144 + 12 * i])
        if sig in _P3_COLORANTS:  # an XYZ tag: 'XYZ ', 4 reserved bytes, 3 s15Fixed16
            values = _P3_COLORANTS[sig]
            data[offset + 8 : offset + 20] = struct.pack(">3i", *(round(v * 65536) for v in values))
    return bytes(data)
