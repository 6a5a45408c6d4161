"""A photo with 16 bits per channel keeps them wherever the editor changed nothing: the
editor works on its 8-bit rounding, and a PNG or TIFF export takes the file's own values
for the untouched pixels (docs/IMAGES.md "16 bits per channel")."""

from __future__ import annotations

import json
import struct

import cv2
import image_corpus as corpus
import numpy as np
import pytest
from PIL import Image

from dedit_app.imageio import (
    apply_orientation,
    deep_picture,
    eight_bits,
    load_image,
    save_image,
    writes_16_bits,
)
from dedit_app.project import Project


def deep_photo(tmp_path, ext: str = "png", channels: int = 3, seed: int = 0):
    """A 24 x 32 photo of random 16-bit values; returns its path and its values as RGB(A)."""
    values = np.random.default_rng(seed).integers(0, 65536, (24, 32, channels), dtype=np.uint16)
    path = tmp_path / f"deep{channels}.{ext}"
    order = [2, 1, 0, 3][:channels]  # OpenCV writes BGR(A)
    assert cv2.imwrite(str(path), values[..., order])
    return path, values


def read16(path) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert pixels is not None and pixels.dtype == np.uint16, path
    return pixels[..., ::-1]


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_a_16_bit_photo_comes_with_its_16_bit_picture(tmp_path, ext):
    path, values = deep_photo(tmp_path, ext)
    deep: list[np.ndarray] = []
    image = load_image(path, deep=deep)
    assert len(deep) == 1 and deep[0].dtype == np.uint16
    np.testing.assert_array_equal(deep[0], values)
    np.testing.assert_array_equal(image, eight_bits(values))
    np.testing.assert_array_equal(image, load_image(path))  # asking for it changes nothing


def test_the_16_bit_picture_is_opaque_and_upright_as_the_8_bit_one(tmp_path):
    deep: list[np.ndarray] = []
    image = load_image(corpus.make_rgba16_png(tmp_path), deep=deep)
    # opaque red; black at alpha 32768 over white: 65535 - 32768 = 32767, 8 bits 127
    np.testing.assert_array_equal(deep[0], [[[65535, 0, 0], [32767, 32767, 32767]]])
    np.testing.assert_array_equal(image, eight_bits(deep[0]))

    grey = np.arange(6 * 4, dtype=np.uint16).reshape(4, 6) * 2000 + 7
    grey[0, 0] = 7  # the transparent value below
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: turned a quarter clockwise to stand upright
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path, exif=exif, transparency=7)
    deep = []
    image = load_image(path, deep=deep)
    upright = np.rot90(np.where(grey == 7, 65535, grey), -1)
    np.testing.assert_array_equal(deep[0], np.repeat(upright[..., None], 3, axis=2))
    np.testing.assert_array_equal(image, eight_bits(deep[0]))


def with_orientation(tiff: bytes, value: int) -> bytes:
    """Classic TIFF bytes with an EXIF orientation tag (274) in the first directory: a
    copy of the directory with it goes at the end, and the header points there."""
    order = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
    entries = [tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i] for i in range(count)]
    entries.append(struct.pack(order + "HHIHH", 274, 3, 1, value, 0))  # one SHORT, inline
    entries.sort(key=lambda e: struct.unpack(order + "H", e[:2])[0])
    tail = tiff[ifd + 2 + 12 * count : ifd + 6 + 12 * count]  # the next directory's offset
    pad = b"\0" * (len(tiff) % 2)
    header = tiff[:4] + struct.pack(order + "I", len(tiff) + len(pad))
    return (
        header + tiff[8:] + pad + struct.pack(order + "H", len(entries)) + b"".join(entries) + tail
    )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_16_bit_tiff_stored_on_its_side_comes_upright_at_16_bits(tmp_path, orientation):
    """OpenCV, which decodes 16-bit colour, turns a TIFF upright as Pillow does: the 16
    bits come turned once, not twice, and agree with the 8-bit picture."""
    stored = np.random.default_rng(orientation).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    ok, encoded = cv2.imencode(".tiff", stored[..., ::-1])
    assert ok
    path = tmp_path / "turned.tif"
    path.write_bytes(with_orientation(encoded.tobytes(), orientation))
    deep: list[np.ndarray] = []
    image = load_image(path, deep=deep)
    np.testing.assert_array_equal(deep[0], apply_orientation(stored, orientation))
    np.testing.assert_array_equal(image, eight_bits(deep[0]))


def test_nothing_more_is_kept_of_an_8_bit_photo_or_of_8_bits_widened(tmp_path):
    deep: list[np.ndarray] = []
    load_image(corpus.make_oriented(tmp_path, 1, "PNG", corpus.noise(5, 7, 1)), deep=deep)
    widened = np.random.default_rng(1).integers(0, 256, (8, 9, 3)).astype(np.uint16) * 257
    assert cv2.imwrite(str(tmp_path / "widened.png"), widened)
    image = load_image(tmp_path / "widened.png", deep=deep)
    assert deep == []
    np.testing.assert_array_equal(image, widened[..., ::-1] // 257)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_an_export_keeps_the_files_own_values_wherever_no_edit_changed_them(tmp_path, ext):
    """The pixels no edit changed are the file's to the bit; an edited one rounds back to
    what the edit painted; the colour profile goes in as with an 8-bit export."""
    from image_corpus import p3_like_profile

    path, values = deep_photo(tmp_path, ext)
    deep: list[np.ndarray] = []
    image = load_image(path, deep=deep)
    edited = image.copy()
    painted = np.zeros(image.shape[:2], bool)
    painted[4:12, 6:20] = True
    edited[painted] = np.random.default_rng(2).integers(0, 256, (int(painted.sum()), 3))
    profile = p3_like_profile()
    out = tmp_path / f"out.{ext}"
    assert writes_16_bits(out, deep[0])
    save_image(out, edited, profile=profile, deep=deep[0])
    back = read16(out)
    np.testing.assert_array_equal(back[~painted], values[~painted])
    np.testing.assert_array_equal(eight_bits(back), edited)
    assert not np.array_equal(back[painted], values[painted])
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == profile
    np.testing.assert_array_equal(load_image(out), edited)  # opened again: the same 8 bits


def test_a_jpeg_or_webp_export_of_a_16_bit_photo_is_its_8_bits(tmp_path):
    path, _values = deep_photo(tmp_path)
    deep: list[np.ndarray] = []
    image = load_image(path, deep=deep)
    for ext in ("jpg", "webp"):
        assert not writes_16_bits(tmp_path / f"a.{ext}", deep[0])
        save_image(tmp_path / f"a.{ext}", image, deep=deep[0])
        save_image(tmp_path / f"b.{ext}", image)
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
    assert not writes_16_bits(tmp_path / "a.png", None)


def test_a_16_bit_picture_of_another_size_is_refused():
    with pytest.raises(ValueError, match="one size"):
        deep_picture(np.zeros((4, 5, 3), np.uint8), np.zeros((5, 4, 3), np.uint16))


def test_a_project_keeps_the_16_bits_and_opens_without_them_when_their_file_is_damaged(
    tmp_path, monkeypatch
):
    path, values = deep_photo(tmp_path)
    deep: list[np.ndarray] = []
    image = load_image(path, deep=deep)
    labels = np.zeros(image.shape[:2], np.int32)
    labels[:, 16:] = 1
    project = Project.new(image, labels, ["left", "right"], source=path.name, deep=deep[0])
    folder = project.save(tmp_path / "p.dedit")
    doc = json.loads((folder / "project.json").read_text())
    assert doc["deep"].startswith("deep-") and doc["version"] == 1  # older editors open it
    again = Project.load(folder)
    np.testing.assert_array_equal(again.deep, values)
    assert not again.deep.flags.writeable
    from dedit_app import bundle_files

    encoded: list[bool] = []  # for each PNG encoded: was it a 16-bit colour picture?
    real = bundle_files.png_bytes

    def counted(array: np.ndarray):
        encoded.append(array.dtype == np.uint16 and array.ndim == 3)  # item maps are 2-D
        return real(array)

    monkeypatch.setattr(bundle_files, "png_bytes", counted)
    target = tmp_path / "copy.dedit"  # "save as", the editor's way: pictures written ahead
    again.make_folder(target)
    Project.write_pictures(target, again.pictures())
    copy = Project.load(again.save(target))
    np.testing.assert_array_equal(copy.deep, values)
    assert encoded and not any(encoded)  # linked from the folder it came from, not encoded
    assert (target / doc["deep"]).read_bytes() == (folder / doc["deep"]).read_bytes()
    other = Project.load(copy.save(tmp_path / "other.dedit"))  # the plain way too
    np.testing.assert_array_equal(other.deep, values)
    assert not any(encoded)

    # another 16-bit picture put in its place: the photo opens, its exports are 8-bit
    _other, other = deep_photo(tmp_path, seed=5)
    assert cv2.imwrite(str(folder / doc["deep"]), other[..., ::-1])
    damaged = Project.load(folder)
    assert damaged.deep is None
    np.testing.assert_array_equal(damaged.image, image)

    plain = Project.new(image, labels, ["left", "right"])
    plain_doc = json.loads((plain.save(tmp_path / "plain.dedit") / "project.json").read_text())
    assert "deep" not in plain_doc
