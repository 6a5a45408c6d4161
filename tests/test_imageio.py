"""Image I/O: bad-input corpus, modes and orientation, saving, buckets, resizing, compositing."""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import warnings
from pathlib import Path

import cv2
import image_corpus as corpus
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import dedit_app.imageio as imageio
from dedit_app.atomic import atomic_writer
from dedit_app.errors import DEditError, ImageLoadError
from dedit_app.imageio import (
    ImageSaveError,
    check_save_target,
    choose_bucket,
    composite,
    cut_out,
    feather_weights,
    load_image,
    resize_image,
    resize_labels,
    save_format,
    save_image,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_error(path) -> str:
    """The message load_image raises for ``path``; fails the test if it loads."""
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message, "the message must name the file"
    assert message.endswith("."), "the message must be one sentence"
    return message


# ---------------------------------------------------------------- files that must be refused


@pytest.mark.parametrize("make", [corpus.make_truncated_png, corpus.make_truncated_jpeg])
def test_truncated_files_are_refused_not_half_decoded(tmp_path, make):
    assert "truncated or corrupt" in load_error(make(tmp_path))


def test_zero_byte_file(tmp_path):
    assert "empty (0 bytes)" in load_error(corpus.make_zero_byte(tmp_path))


@pytest.mark.parametrize("make", [corpus.make_text_as_jpeg, corpus.make_eps])
def test_non_images_and_postscript_are_not_read(tmp_path, make):
    # EPS would make Pillow run Ghostscript; we only read plain raster formats.
    assert "is not an image the editor can read" in load_error(make(tmp_path))


def test_a_photo_with_a_damaged_header_is_called_damaged_not_another_kind_of_file(tmp_path):
    # Pillow cannot identify it, but its first bytes say PNG: "not an image the editor can
    # read (it reads PNG, ...)" would send the user looking for a format problem.
    path = corpus.make_bad_header_png(tmp_path)
    message = load_error(path)
    assert "truncated or corrupt" in message and "PNG" in message
    assert "not an image the editor can read" not in message
    with pytest.raises(ImageLoadError) as info:
        imageio.image_size(path)
    assert str(info.value) == message


def test_huge_header_is_refused_before_decoding(tmp_path):
    path = corpus.make_huge_header_png(tmp_path)  # claims 100000 x 100000, holds ~60 bytes
    message = load_error(path)
    assert "100000 × 100000 pixels (10000 megapixels)" in message
    assert "the limit is 100 megapixels" in message


def test_our_limit_applies_where_pillow_only_warns(tmp_path):
    # 120 MP is above our 100 MP limit but below Pillow's own refusal (~179 MP); 90 MP is
    # under ours, and Pillow's warning is not printed for it (the command line shows it).
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        message = load_error(corpus.make_huge_header_png(tmp_path, 12_000, 10_000))
        (tmp_path / "90").mkdir()
        load_error(corpus.make_huge_header_png(tmp_path / "90", 9_500, 9_500))
    assert "12000 × 10000 pixels (120 megapixels); the limit is 100 megapixels" in message
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]


def test_pillow_warning_turned_error_does_not_refuse_images_under_our_limit(tmp_path):
    # 90 MP: Pillow warns. With warnings as errors the header must still pass our 100 MP check;
    # the file then fails only because it holds no pixel data.
    path = corpus.make_huge_header_png(tmp_path, 9_000, 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        message = load_error(path)
    assert "truncated or corrupt" in message


def test_pixel_limit_is_a_parameter(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(corpus.noise(40, 50)).save(path)
    with pytest.raises(ImageLoadError, match=r"50 × 40 pixels \(0.0 megapixels\)"):
        load_image(path, max_pixels=1000)
    assert load_image(path, max_pixels=2000).shape == (40, 50, 3)


def test_missing_file_and_folder(tmp_path):
    assert "does not exist" in load_error(tmp_path / "nowhere.png")
    assert "is a folder" in load_error(tmp_path)


REFUSED_ON_THE_HEADER = [
    corpus.make_zero_byte,
    corpus.make_text_as_jpeg,
    corpus.make_eps,
    corpus.make_huge_header_png,
    lambda folder: folder / "nowhere.png",
    lambda folder: folder,
]


@pytest.mark.parametrize("make", REFUSED_ON_THE_HEADER)
def test_image_size_refuses_what_loading_refuses_before_decoding(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(ImageLoadError) as info:
        imageio.image_size(path)
    assert str(info.value) == load_error(path)


def test_image_size_reads_the_header_only(tmp_path):
    # A truncated file passes the header; only decoding finds the damage.
    for make in (corpus.make_truncated_png, corpus.make_truncated_jpeg):
        path = make(tmp_path)
        width, height = Image.open(path).size
        assert imageio.image_size(path) == (width, height)
        assert "truncated or corrupt" in load_error(path)
    # The size as shown: an EXIF rotation by a quarter swaps the stored sides.
    for orientation in (6, 3):
        path = corpus.make_oriented(tmp_path, orientation)
        width, height = imageio.image_size(path)
        stored = Image.open(path).size
        assert load_image(path).shape[:2] == (height, width) and width != height
        assert (width, height) == (stored[::-1] if orientation == 6 else stored)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
def test_image_size_is_the_size_load_image_gives(tmp_path, fmt, orientation):
    # Pillow's TIFF plug-in reports a turned TIFF's sides already swapped; swapping them
    # again made "Opening scan.tif (W×H)" name them the wrong way round.
    path = corpus.make_oriented(tmp_path, orientation, fmt)
    width, height = imageio.image_size(path)
    assert load_image(path).shape[:2] == (height, width)
    assert (width > height) == (orientation < 5)  # the marker image is stored wide


def test_permission_denied_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "secret.png"
    Image.fromarray(corpus.noise(4, 4)).save(path)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(imageio, "open", denied, raising=False)
    assert "permission denied" in load_error(path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_on_disk(tmp_path):
    path = tmp_path / "locked.png"
    Image.fromarray(corpus.noise(4, 4)).save(path)
    path.chmod(0)
    try:
        assert "permission denied" in load_error(path)
    finally:
        path.chmod(0o644)


def _valid_files(folder: Path) -> list[bytes]:
    out = []
    for fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        buf = io.BytesIO()
        Image.fromarray(corpus.noise(24, 32, seed=3)).save(buf, fmt)
        out.append(buf.getvalue())
    deep = np.random.default_rng(3).integers(0, 65536, (24, 32, 4), dtype=np.uint16)
    for ext, pixels in (
        (".png", deep),
        (".tiff", deep[..., :3]),
        (".tiff", np.zeros((4, 5, 3), np.float32)),
    ):
        ok, encoded = cv2.imencode(ext, pixels)  # 16 bits (with alpha), and float colour
        assert ok
        out.append(encoded.tobytes())
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow notes corrupt TIFF tags
@SETTINGS
@given(st.data())
def test_damaged_files_load_fully_or_raise_image_load_error(tmp_path_factory, data):
    """Fuzz: cut and corrupt valid files; nothing but ImageLoadError may escape."""
    folder = tmp_path_factory.mktemp("fuzz")
    raw = bytearray(data.draw(st.sampled_from(_valid_files(folder))))
    cut = data.draw(st.integers(0, len(raw)))
    raw = raw[:cut]
    for _ in range(data.draw(st.integers(0, 3))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = folder / "damaged.img"
    path.write_bytes(bytes(raw))
    deep: list[np.ndarray] = []
    try:
        image = load_image(path, deep=deep)
    except ImageLoadError as e:
        assert str(path) in str(e)
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        for wide in deep:  # what a 16-bit export is written from agrees with the picture
            np.testing.assert_array_equal(imageio.eight_bits(wide), image)


# ------------------------------------------------------------------ modes that must load right


def test_cmyk_jpeg_becomes_the_right_rgb(tmp_path):
    image = load_image(corpus.make_cmyk_jpeg(tmp_path))
    assert image.shape == (32, 160, 3) and image.dtype == np.uint8
    for i, (_, rgb) in enumerate(corpus.CMYK_PATCHES):
        centre = image[16, 32 * i + 16].astype(int)
        assert np.abs(centre - rgb).max() <= 3, (i, centre, rgb)


def test_exif_orientation_6_jpeg_comes_back_upright(tmp_path):
    # Stored 96 wide x 48 tall with red at the stored top-left and blue at the stored
    # bottom-left; orientation 6 means "rotate 90 degrees clockwise to display".
    image = load_image(corpus.make_oriented(tmp_path, 6, "JPEG")).astype(int)
    assert image.shape == (96, 48, 3)
    assert np.abs(image[8, 48 - 8] - (255, 0, 0)).max() <= 12  # red now top-right
    assert np.abs(image[8, 8] - (0, 0, 255)).max() <= 12  # blue now top-left
    assert np.abs(image[90, 24] - (255, 255, 255)).max() <= 12


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pillow_exif_transpose(tmp_path, orientation):
    path = corpus.make_oriented(tmp_path, orientation, "PNG", corpus.noise(5, 7, orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(load_image(path), expected)
    assert load_image(path).shape[:2] == ((5, 7) if orientation <= 4 else (7, 5))


def test_16_bit_gray_png_is_scaled_not_clipped(tmp_path):
    image = load_image(corpus.make_gray16_png(tmp_path))
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, :, 0], [0, 1, 128, 255])  # 0, 257, 32768, 65535
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16_bit_rgb_is_rounded_to_8_bits(tmp_path, ext):
    # round(v / 257): 255 -> 1 and 32767 -> 127, where keeping the high byte would give 0.
    image = load_image(corpus.make_rgb16(tmp_path, ext))
    np.testing.assert_array_equal(image, [[[255, 128, 0], [1, 1, 127]]])


def test_16_bit_rgba_is_composited_on_white(tmp_path):
    image = load_image(corpus.make_rgba16_png(tmp_path))
    # Opaque red; black at alpha 32768/65535 over white: 255 * (1 - 0.500008) = 127.498.
    np.testing.assert_array_equal(image, [[[255, 0, 0], [127, 127, 127]]])


@pytest.mark.parametrize("channels", [3, 4])
def test_deep_colour_is_converted_in_bands_with_the_same_pixels(tmp_path, monkeypatch, channels):
    """A 100 MP 16-bit picture is converted a band of rows at a time (its float32
    temporaries took GB at once); the bands give what the whole-picture formula gives."""
    from dedit_app import imageio

    rng = np.random.default_rng(3)
    deep = rng.integers(0, 65536, (37, 23, channels), dtype=np.uint16)
    deep[0, :, -1] = 0  # transparent, half and opaque pixels among the random alphas
    deep[1, :, -1] = 65535
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), deep)
    whole = load_image(path)
    monkeypatch.setattr(imageio, "_BAND_PIXELS", 2 * 23)  # two rows a band, one left over
    np.testing.assert_array_equal(load_image(path), whole)
    rgb = deep[..., 2::-1].astype(np.float64)  # the formula in full, from OpenCV's BGR(A)
    if channels == 4:
        a = deep[..., 3:].astype(np.float64) / 65535
        expected = np.rint(rgb * (255 / 65535) * a + 255 * (1 - a))
    else:
        expected = np.rint(rgb / 257)
    assert np.abs(whole.astype(int) - expected).max() <= 1  # float32 on one side
    assert np.mean(whole == expected) > 0.99


@pytest.mark.parametrize(
    ("dtype", "said"),
    [(np.float32, "32-bit floating-point"), (np.int16, "16-bit signed integer")],
)
def test_a_tiff_of_values_no_photo_holds_is_named_for_them_not_called_corrupt(
    tmp_path, dtype, said
):
    """A 32-bit floating-point colour TIFF (Photoshop's 32 bits per channel) is a sound
    file the editor does not read: the sentence says what it holds and what to do."""
    path = tmp_path / "hdr.tif"
    assert cv2.imwrite(str(path), np.zeros((4, 5, 3), dtype))
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == (
        f"{path} holds {said} pixel values, which the editor does not read; save it as a "
        "16-bit or 8-bit TIFF or PNG from the program that made it."
    )
    path.write_bytes(path.read_bytes()[:10])  # its directory cut off: damaged, as before
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(path)


def test_a_16_bit_grey_png_with_a_transparent_value_gets_a_white_background(tmp_path):
    grey = np.zeros((4, 6), np.uint16)
    grey[1:3, 2:5] = 40000  # round(40000 / 257) = 156; the value 0 is transparent
    Image.fromarray(grey).save(tmp_path / "g16.png", transparency=0)
    image = load_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(image[..., 0], np.where(grey == 0, 255, 156))
    assert (image == image[..., :1]).all()


def test_palette_with_transparency_gets_a_white_background(tmp_path):
    image = load_image(corpus.make_palette_png(tmp_path, transparent=True))
    np.testing.assert_array_equal(
        image, [[[255, 0, 0], [255, 255, 255]], [[0, 0, 255], [255, 0, 0]]]
    )


def test_palette_without_transparency_keeps_its_colours(tmp_path):
    image = load_image(corpus.make_palette_png(tmp_path, transparent=False))
    np.testing.assert_array_equal(image, [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 0, 0]]])


def test_palette_partial_alpha_blends_with_white(tmp_path):
    image = load_image(corpus.make_palette_partial_alpha_png(tmp_path))
    np.testing.assert_array_equal(image, [[[255, 255, 255], [204, 204, 204]]])  # 255 * 0.8


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = load_image(corpus.make_rgba_png(tmp_path))
    np.testing.assert_array_equal(rgba, [[[255, 0, 0], [255, 127, 127], [255, 255, 255]]])
    la = load_image(corpus.make_la_png(tmp_path))
    np.testing.assert_array_equal(la, [[[0, 0, 0], [255, 255, 255]]])


def notes_of(path) -> list[str]:
    notes: list[str] = []
    load_image(path, notes=notes)
    return notes


@pytest.mark.parametrize(
    "make",
    [
        corpus.make_rgba_png,
        corpus.make_la_png,
        lambda folder: corpus.make_palette_png(folder, transparent=True),
        corpus.make_palette_partial_alpha_png,
        corpus.make_rgba16_png,
    ],
)
def test_transparency_placed_on_white_is_said(tmp_path, make):
    path = make(tmp_path)
    (note,) = notes_of(path)
    assert note.startswith(str(path)) and "transparent" in note and "white" in note


def test_an_opaque_alpha_channel_and_an_unused_transparent_entry_say_nothing(tmp_path):
    rgba = np.dstack([corpus.noise(4, 6), np.full((4, 6), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    pal.save(tmp_path / "unused.png", transparency=1)  # entry 1 is on no pixel
    for name in ("opaque.png", "unused.png"):
        assert notes_of(tmp_path / name) == []
    # nor do the conversions that lose nothing a designer would miss
    for path in (corpus.make_rgb16(tmp_path), corpus.make_oriented(tmp_path, 6)):
        assert notes_of(path) == []


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "TIFF"])
def test_frames_or_pages_after_the_first_are_said_to_be_left_out(tmp_path, fmt):
    path = corpus.make_multi_frame(tmp_path, fmt)
    what = "pages" if fmt == "TIFF" else "frames"
    assert notes_of(path) == [f"{path} has 3 {what}; the editor took the first."]
    first = load_image(path)
    assert first.shape == (4, 6, 3)
    if fmt != "GIF":  # a GIF's frames are palette-reduced
        np.testing.assert_array_equal(first, corpus.noise(4, 6, 0))


def test_grayscale_jpeg_has_three_equal_channels(tmp_path):
    image = load_image(corpus.make_gray_jpeg(tmp_path))
    assert image.shape == (16, 24, 3)
    assert np.abs(image.astype(int) - 100).max() <= 1


def test_float_tiff_maps_0_1_to_black_white(tmp_path):
    image = load_image(corpus.make_float_tiff(tmp_path))
    np.testing.assert_array_equal(image[0, :, 1], [0, 0, 128, 255])  # -0.5, 0, 0.5, 2.0


def test_lab_tiff_is_converted_to_srgb(tmp_path):
    image = load_image(corpus.make_lab_tiff(tmp_path)).astype(int)
    expected = [[[255, 255, 255], [0, 0, 0], [255, 0, 0]]]
    assert np.abs(image - expected).max() <= 12, image


def test_reference_image_loads_and_gets_the_square_bucket(reference_dir):
    image = load_image(reference_dir / "image.png")
    assert image.shape == (1024, 1024, 3) and image.dtype == np.uint8
    assert choose_bucket(*image.shape[:2]) == (1024, 1024)


# ------------------------------------------------------------------------------------ saving


def smooth_image(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("name", ["out.png", "out.tif", "out.TIFF", "out.webp"])
def test_lossless_round_trips(tmp_path, name):
    image = corpus.noise(33, 47)
    save_image(tmp_path / name, image, quality=100)  # WebP at 100 is lossless
    np.testing.assert_array_equal(load_image(tmp_path / name), image)


@pytest.mark.parametrize("name", ["out.jpg", "out.jpeg", "out.webp"])
def test_lossy_round_trips_stay_close(tmp_path, name):
    image = smooth_image()
    save_image(tmp_path / name, image, quality=90)
    back = load_image(tmp_path / name)
    assert back.shape == image.shape
    assert np.abs(back.astype(int) - image).mean() < 3


@pytest.mark.parametrize("name", ["g.png", "g.tif"])
def test_gray_array_saves_as_gray(tmp_path, name):
    gray = corpus.noise(10, 12)[..., 0]
    save_image(tmp_path / name, gray)
    assert Image.open(tmp_path / name).mode == "L"
    np.testing.assert_array_equal(load_image(tmp_path / name), np.repeat(gray[..., None], 3, 2))


def test_a_cut_out_is_its_items_box_transparent_around_them_in_png_and_webp(tmp_path):
    from PIL import ImageCms

    image = corpus.noise(40, 60)
    labels = np.zeros((40, 60), np.int32)
    labels[10:30, 5:45] = 1
    labels[15:20, 10:20] = 2  # a hole in item 1, which item 2 fills
    labels[25:30, 50:55] = 2
    crop, alpha, deep = cut_out(image, labels, [1])
    np.testing.assert_array_equal(crop, image[10:30, 5:45])
    np.testing.assert_array_equal(alpha, labels[10:30, 5:45] == 1)
    assert deep is None and not alpha[6, 8] and alpha[0, 0]
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for name in ("cut.png", "cut.webp"):
        save_image(tmp_path / name, crop, quality=100, profile=profile, alpha=alpha)
        back = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back[..., 3], np.where(alpha, 255, 0))
        np.testing.assert_array_equal(back[..., 2::-1][alpha], crop[alpha])  # lossless
        assert Image.open(tmp_path / name).info.get("icc_profile") == profile
    for name in ("cut.jpg", "cut.tif"):
        with pytest.raises(ImageSaveError, match="cannot hold a cut-out: .* .png and .webp"):
            save_image(tmp_path / name, crop, alpha=alpha)
        assert not (tmp_path / name).exists()
    # at 16 bits: the photo's own values, opaque at the top of the range
    wide = np.minimum(image.astype(np.int64) * 257 + 3, 65535).astype(np.uint16)
    crop, alpha, deep = cut_out(image, labels, [1, 2], wide)
    assert crop.shape[:2] == (20, 50) and alpha[20 - 1, 50 - 1]  # the box round both
    save_image(tmp_path / "deep.png", crop, deep=deep, alpha=alpha)
    back = cv2.imread(str(tmp_path / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[..., 3], np.where(alpha, 65535, 0))
    np.testing.assert_array_equal(back[..., 2::-1], deep)
    with pytest.raises(DEditError, match="no pixels"):
        cut_out(image, labels, [7])


def test_a_tiff_is_written_deflate_compressed_in_rgb(tmp_path):
    image = smooth_image(300, 400)
    save_image(tmp_path / "out.tiff", image)
    written = Image.open(tmp_path / "out.tiff")
    assert written.mode == "RGB" and written.info["compression"] == "tiff_adobe_deflate"
    assert (tmp_path / "out.tiff").stat().st_size < image.nbytes / 4  # compressed


def test_unknown_extension_is_refused_and_writes_nothing(tmp_path):
    for name in ("picture.gifx", "picture"):
        with pytest.raises(ImageSaveError, match="saved as .png, .jpg") as info:
            save_image(tmp_path / name, smooth_image())
        assert str(tmp_path / name) in str(info.value)
        assert isinstance(info.value, DEditError)
    assert list(tmp_path.iterdir()) == []


def test_a_panorama_too_wide_for_webp_or_jpeg_is_refused_in_words_and_png_holds_it(tmp_path):
    wide = np.zeros((2, 16384, 3), np.uint8)  # WebP's sides stop at 16383
    (tmp_path / "old.webp").write_bytes(b"kept")
    with pytest.raises(ImageSaveError, match=r"16384 x 2 picture is larger than WebP allows"):
        save_image(tmp_path / "old.webp", wide)
    assert (tmp_path / "old.webp").read_bytes() == b"kept"
    with pytest.raises(ImageSaveError, match=r"larger than JPEG allows \(65500 pixels"):
        save_format(tmp_path / "tall.jpg", (65501, 3))
    save_image(tmp_path / "wide.png", wide)
    assert load_image(tmp_path / "wide.png").shape == wide.shape


def test_where_a_picture_goes_is_checked_before_it_is_made(tmp_path):
    (tmp_path / "taken.png").mkdir()
    cases = {
        tmp_path / "taken.png": "because it is a folder",
        tmp_path / "missing" / "x.png": "the folder .*missing does not exist",
        tmp_path / "wide.webp": "larger than WebP allows",
    }
    for path, words in cases.items():
        with pytest.raises(ImageSaveError, match=words):
            check_save_target(path, (10, 20000))
    check_save_target(tmp_path / "fine.png", (10, 20000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"]  # wrote nothing


def test_an_encoder_that_fails_raises_a_sentence_not_its_own_error(tmp_path, monkeypatch):
    from dedit_app import imageio

    def broken(*_args):
        raise OSError("broken data stream when writing image file")

    monkeypatch.setattr(imageio, "_pil_bytes", broken)
    with pytest.raises(ImageSaveError, match="could not be encoded as JPEG .broken data stream"):
        save_image(tmp_path / "x.jpg", smooth_image())
    assert list(tmp_path.iterdir()) == []


def test_disk_full_leaves_the_existing_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "result.png"
    save_image(path, smooth_image())
    before = path.read_bytes()

    class FullDisk(io.RawIOBase):
        def __init__(self, real):
            self.real = real

        def write(self, data):
            self.real.write(bytes(data)[:100])  # part of it lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    @contextlib.contextmanager
    def full_disk_writer(target):
        with atomic_writer(target) as real:  # the real temp-file-and-rename writer
            yield FullDisk(real)

    monkeypatch.setattr(imageio, "atomic_writer", full_disk_writer)
    with pytest.raises(ImageSaveError, match="disk is full") as info:
        save_image(path, corpus.noise(48, 64))
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]  # no temp file left


def test_an_export_over_a_file_another_program_keeps_open_says_so(tmp_path, monkeypatch):
    from engine_fixtures import held_for

    from dedit_app import atomic

    monkeypatch.setattr(atomic, "BUSY_RETRIES", (0.0,))
    path = tmp_path / "result.png"
    save_image(path, smooth_image())
    before = path.read_bytes()
    held_for(2, monkeypatch, winerror=32)
    with pytest.raises(ImageSaveError) as info:
        save_image(path, corpus.noise(48, 64))
    assert str(info.value) == (
        f"{path} could not be saved because another program has it open; close it there and "
        "try again; any existing file there is unchanged."
    )
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]  # no temp file left


@pytest.mark.skipif(os.name == "nt", reason="Windows keeps no Unix permission bits")
def test_an_export_over_a_private_file_stays_private(tmp_path):
    # The new file is renamed over the old one; it used to arrive with the default mode
    # (0o644 here), so a picture the user had made private became readable by everyone.
    path = tmp_path / "private.png"
    save_image(path, np.zeros((2, 3, 3), np.uint8))
    os.chmod(path, 0o600)
    image = corpus.noise(2, 3)
    save_image(path, image)
    np.testing.assert_array_equal(load_image(path), image)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_read_only_file_is_not_replaced_and_the_sentence_says_why(tmp_path):
    # A rename replaces a read-only file on Linux and macOS without a word (Windows
    # refuses): the read-only mark is the user's, so it is kept, on every system alike.
    path = tmp_path / "final.PNG"
    old = corpus.noise(2, 3)
    save_image(path, old)
    os.chmod(path, 0o444)
    try:
        for attempt in (lambda: check_save_target(path), lambda: save_image(path, old[::-1])):
            with pytest.raises(ImageSaveError) as info:
                attempt()
            assert str(info.value).startswith(f"{path} is read-only, so it was not replaced")
        np.testing.assert_array_equal(load_image(path), old)
    finally:
        os.chmod(path, 0o644)


def test_saving_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(ImageSaveError, match="does not exist"):
        save_image(tmp_path / "no" / "such" / "x.png", smooth_image())


# ----------------------------------------------------------------------------------- buckets


@SETTINGS
@given(st.integers(1, 20_000), st.integers(1, 20_000))
def test_bucket_properties(height, width):
    bh, bw = choose_bucket(height, width)
    assert bh % 64 == 0 and bw % 64 == 0
    assert 0.9 * 1024 * 1024 <= bh * bw <= 1024 * 1024
    aspect = min(max(width / height, 1 / 4), 4)  # clamped at 4:1 either way
    assert abs(math.log((bw / bh) / aspect)) < 0.08
    assert choose_bucket(width, height) == (bw, bh)  # symmetric


@SETTINGS
@given(st.integers(1, 20_000), st.integers(1, 20_000))
def test_sd15_buckets(height, width):
    bh, bw = choose_bucket(height, width, area=512 * 512)
    assert bh % 64 == 0 and bw % 64 == 0
    assert 0.9 * 512 * 512 <= bh * bw <= 512 * 512


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        ((1024, 1024), (1024, 1024)),
        ((3000, 3000), (1024, 1024)),
        ((2000, 3000), (832, 1216)),  # 3:2 landscape
        ((3000, 2000), (1216, 832)),
        ((1080, 1920), (768, 1344)),  # 16:9
        ((3024, 4032), (896, 1152)),  # 4:3 phone photo
        ((100, 1000), (512, 2048)),  # 10:1 panorama clamped to 4:1
    ],
)
def test_known_buckets(size, bucket):
    assert choose_bucket(*size) == bucket


def test_sd15_square_bucket():
    assert choose_bucket(768, 768, area=512 * 512) == (512, 512)


# ---------------------------------------------------------------------------------- resizing


@pytest.mark.parametrize("target", [(10, 20), (80, 120), (10, 120), (80, 20), (40, 60)])
def test_resize_image_shape_and_flat_colour(target):
    flat = np.full((40, 60, 3), (12, 200, 77), np.uint8)
    out = resize_image(flat, target)
    assert out.shape == (*target, 3) and out.dtype == np.uint8
    assert (out == (12, 200, 77)).all()


def test_resize_image_down_averages_and_up_stays_in_range():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)
    down = resize_image(checker, (32, 32))
    assert np.abs(down.astype(int) - 128).max() <= 1  # area averaging, not aliasing
    up = resize_image(checker, (150, 150))  # bicubic overshoots; uint8 saturates
    assert up.dtype == np.uint8 and up.min() == 0 and up.max() == 255


def label_case():
    return st.tuples(
        st.integers(1, 40), st.integers(1, 40), st.integers(1, 70), st.integers(1, 70)
    ).flatmap(
        lambda s: st.tuples(
            st.just(s), st.integers(0, 2**31 - 1), st.sampled_from([np.int32, np.int64, np.uint8])
        )
    )


def _off_boundary(src: int, dst: int) -> np.ndarray:
    """Output indices whose sampling point (i + 0.5) * src / dst is not on a pixel boundary
    (there OpenCV and Pillow round either way)."""
    i = np.arange(dst)
    return (2 * i + 1) * src % (2 * dst) != 0


@SETTINGS
@given(label_case())
def test_resize_labels_is_nearest_at_pixel_centres_and_keeps_dtype(case):
    (h, w, th, tw), seed, dtype = case
    labels = np.random.default_rng(seed).integers(0, 6, (h, w)).astype(dtype)
    out = resize_labels(labels, (th, tw))
    assert out.shape == (th, tw) and out.dtype == labels.dtype
    assert set(np.unique(out)) <= set(np.unique(labels))
    ys, xs = np.meshgrid(np.arange(th), np.arange(tw), indexing="ij")
    centre = (2 * ys + 1) * h // (2 * th), (2 * xs + 1) * w // (2 * tw)
    np.testing.assert_array_equal(out, labels[centre])  # floor of the centre, exactly
    off = _off_boundary(h, th)[:, None] & _off_boundary(w, tw)[None, :]
    exact = cv2.resize(labels.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(out[off], exact[off])
    pil = Image.fromarray(labels.astype(np.int32), mode="I").resize((tw, th), Image.NEAREST)
    np.testing.assert_array_equal(out[off], np.asarray(pil)[off])


@SETTINGS
@given(label_case())
def test_resize_labels_keeps_every_item_with_a_footprint(case):
    (h, w, th, tw), seed, _ = case
    rng = np.random.default_rng(seed)
    labels = np.zeros((h, w), np.int32)
    fh, fw = math.ceil(h / th), math.ceil(w / tw)  # one output pixel's footprint, rounded up
    y, x = rng.integers(0, h - fh + 1), rng.integers(0, w - fw + 1)
    labels[y : y + fh, x : x + fw] = 7
    assert (resize_labels(labels, (th, tw)) == 7).any()


def test_resize_labels_round_trip_by_integer_factor():
    labels = np.random.default_rng(1).integers(0, 9, (13, 17)).astype(np.int32)
    big = resize_labels(labels, (39, 51))
    np.testing.assert_array_equal(resize_labels(big, (13, 17)), labels)


# ------------------------------------------------------------------------------- compositing


def composite_case():
    return st.tuples(
        st.integers(1, 40),
        st.integers(1, 40),
        st.integers(1, 60),
        st.integers(1, 60),
        st.integers(0, 2**31 - 1),
        st.booleans(),
    )


@SETTINGS
@given(composite_case())
def test_composite_keeps_every_keep_pixel_byte_for_byte(case):
    h, w, gh, gw, seed, feathered = case
    rng = np.random.default_rng(seed)
    original = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (gh, gw, 3), dtype=np.uint8)
    keep = rng.random((h, w)) < rng.random()
    feather = rng.random((h, w)).astype(np.float32) if feathered else None
    out = composite(original, generated, keep, feather)
    assert out.shape == original.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[keep], original[keep])
    if not feathered:
        np.testing.assert_array_equal(out[~keep], resize_image(generated, (h, w))[~keep])


def test_feather_weights_0_and_1_select_the_sources():
    rng = np.random.default_rng(5)
    original = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    keep = np.zeros((30, 40), bool)
    keep[:, :10] = True
    feather = np.zeros((30, 40), np.float32)
    feather[:, 25:] = 1.0
    feather[:, 15:20] = 0.5
    feather[:, :10] = 1.0  # must be ignored on keep
    out = composite(original, generated, keep, feather).astype(int)
    gen = resize_image(generated, (30, 40)).astype(int)
    np.testing.assert_array_equal(out[:, :10], original[:, :10])
    np.testing.assert_array_equal(out[:, 10:15], original[:, 10:15])
    np.testing.assert_array_equal(out[:, 25:], gen[:, 25:])
    mid = (original[:, 15:20].astype(int) + gen[:, 15:20]) / 2
    assert np.abs(out[:, 15:20] - mid).max() <= 0.5


def test_composite_at_full_resolution_from_a_bucket():
    original = corpus.noise(300, 450, seed=9)
    bucket = choose_bucket(300, 450)
    generated = np.full((*bucket, 3), 40, np.uint8)
    keep = np.ones((300, 450), bool)
    keep[100:200, 150:300] = False
    out = composite(original, generated, keep, feather_weights(keep, 8))
    np.testing.assert_array_equal(out[keep], original[keep])
    assert (out[130:170, 180:270] == 40).all()  # deeper than 8 px inside: fully generated


@SETTINGS
@given(st.integers(1, 25), st.integers(1, 25), st.integers(0, 2**31 - 1), st.floats(0.5, 12))
def test_feather_weights_match_brute_force_distance(h, w, seed, width):
    keep = np.random.default_rng(seed).random((h, w)) < 0.2
    weights = feather_weights(keep, width)
    assert weights.dtype == np.float32 and weights.shape == (h, w)
    assert (weights[keep] == 0).all()
    ys, xs = np.nonzero(keep)
    if len(ys) == 0:
        assert (weights == 1).all()
        return
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt((yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2).min(-1)
    np.testing.assert_allclose(weights, np.minimum(d / width, 1.0), atol=1e-4)


def _blob(h: int, w: int, rng) -> np.ndarray:
    """An ellipse at a random place (it may run off the edges): what an edited item looks
    like, a compact region much smaller than the photo or most of it."""
    cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
    ry, rx = rng.uniform(0.5, 0.6 * h), rng.uniform(0.5, 0.6 * w)
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


@SETTINGS
@given(st.integers(1, 70), st.integers(1, 70), st.integers(0, 2**31 - 1), st.floats(0, 12))
def test_feather_and_composite_near_a_small_region_match_the_whole_frame(h, w, seed, width):
    # Both work only in a window around the generated side; outside it nothing may differ
    # from the formula over the whole frame.
    rng = np.random.default_rng(seed)
    keep = ~_blob(h, w, rng)
    weights = feather_weights(keep, width)
    if np.float32(width) > 0 and keep.any() and not keep.all():
        dist = cv2.distanceTransform(
            (~keep).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE, dstType=cv2.CV_32F
        )
        # OpenCV's float rounding differs by an ulp between a window and the whole frame
        with np.errstate(over="ignore"):
            full = np.minimum(dist / np.float32(width), 1)
        np.testing.assert_allclose(weights, full, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(weights == 1, full == 1)
    else:  # no distance to measure, or a width too small for float32: a hard edge
        np.testing.assert_array_equal(weights, (~keep).astype(np.float32))
    original = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (max(1, h // 2), w + 3, 3), dtype=np.uint8)
    o = original.astype(np.float32)
    g = resize_image(generated, (h, w)).astype(np.float32)
    f = np.clip(weights, 0, 1)[..., None]
    expected = np.where(keep[..., None], original, np.clip(np.rint(o + f * (g - o)), 0, 255))
    np.testing.assert_array_equal(composite(original, generated, keep, weights), expected)
    hard = np.where(keep[..., None], original, resize_image(generated, (h, w)))
    np.testing.assert_array_equal(composite(original, generated, keep), hard)


def test_feather_width_zero_is_a_hard_edge():
    keep = np.zeros((5, 5), bool)
    keep[2, 2] = True
    np.testing.assert_array_equal(feather_weights(keep, 0), (~keep).astype(np.float32))


def test_feather_widths_at_the_ends_of_float_range():
    keep = np.zeros((5, 7), bool)
    keep[:, 0] = True
    # too small for float32: a hard edge, not NaN from 0 / 0
    np.testing.assert_array_equal(feather_weights(keep, 1e-60), (~keep).astype(np.float32))
    # far wider than the picture: the generated side fades in by next to nothing, no NaN
    huge = feather_weights(keep, 1e300)
    assert np.isfinite(huge).all() and (huge >= 0).all() and (huge < 1e-6).all()


def test_pixels_from_the_clipboard_read_like_the_same_picture_from_a_file(tmp_path):
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    rgba[0, :, 3] = 0  # fully transparent row: white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "layer.png")
    read = imageio.from_pixels(rgba, "The pasted picture")
    assert np.array_equal(read, load_image(tmp_path / "layer.png"))
    assert (read[0] == 255).all()
    assert np.array_equal(imageio.from_pixels(rgba[..., :3], "x"), rgba[..., :3])


@pytest.mark.parametrize(
    ("pixels", "words"),
    [
        (np.zeros((0, 4, 3), np.uint8), "has no pixels"),
        (np.zeros((4, 4), np.uint8), "not an 8-bit RGB picture"),
        (np.zeros((4, 4, 3), np.uint16), "not an 8-bit RGB picture"),
        (np.zeros((30, 40, 3), np.uint8), "40 × 30 pixels"),
    ],
)
def test_pixels_that_cannot_be_a_photo_are_refused_in_a_sentence(pixels, words):
    with pytest.raises(ImageLoadError, match=words) as caught:
        imageio.from_pixels(pixels, "The pasted picture", max_pixels=1000)
    assert str(caught.value).startswith("The pasted picture")
