"""A photo's colour profile: read from its file, kept by the project, written into every
export, and only where it describes the RGB pixels the editor holds."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms
from test_project import make_project

from dedit_app import colour_profiles
from dedit_app.imageio import load_image, save_image
from dedit_app.project import PROJECT_FILE, Project

RGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
LAB = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


def _embedded(path) -> bytes | None:
    with Image.open(path) as im:
        return im.info.get("icc_profile")


def _photo(seed: int = 0, h: int = 37, w: int = 53) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".webp"])
def test_every_export_format_embeds_the_profile_and_lossless_ones_keep_every_pixel(
    tmp_path, suffix
):
    photo = _photo()
    path = tmp_path / f"out{suffix}"
    save_image(path, photo, profile=RGB)
    assert _embedded(path) == RGB
    assert colour_profiles.of_file(path) == RGB  # and the editor reads it back
    if suffix in (".png", ".tif"):
        np.testing.assert_array_equal(load_image(path), photo)
    save_image(path, photo)  # none given: none written, as before
    assert _embedded(path) is None


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_a_profile_larger_than_a_jpeg_segment_survives_whole(tmp_path, suffix):
    padded = RGB + bytes(100_000)  # JPEG splits a profile over 64 KB across markers
    large = struct.pack(">I", len(padded)) + padded[4:]
    save_image(tmp_path / f"out{suffix}", _photo(), profile=large)
    assert _embedded(tmp_path / f"out{suffix}") == large


def test_only_a_profile_of_rgb_colours_is_kept(tmp_path):
    assert colour_profiles.rgb_profile(RGB) == RGB
    assert colour_profiles.rgb_profile(LAB) is None  # not the RGB the editor holds
    assert colour_profiles.rgb_profile(RGB[:-5]) is None  # its size says it is cut short
    assert colour_profiles.rgb_profile(b"not a profile" * 20) is None
    assert colour_profiles.rgb_profile(None) is None
    Image.fromarray(_photo()).save(tmp_path / "lab.png", icc_profile=LAB)
    assert colour_profiles.of_file(tmp_path / "lab.png") is None
    Image.fromarray(_photo()).save(tmp_path / "plain.png")
    assert colour_profiles.of_file(tmp_path / "plain.png") is None
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert colour_profiles.of_file(tmp_path / "broken.png") is None  # opening says why
    save_image(tmp_path / "gray.png", _photo()[..., 0].copy(), profile=RGB)
    assert _embedded(tmp_path / "gray.png") is None  # an RGB profile on gray pixels: no


def test_a_cmyk_photo_converted_on_opening_carries_no_profile(tmp_path):
    cmyk = _cmyk_profile()
    Image.new("CMYK", (20, 10), (0, 50, 100, 0)).save(tmp_path / "print.jpg", icc_profile=cmyk)
    assert _embedded(tmp_path / "print.jpg") == cmyk  # the file has one: of CMYK colours
    assert colour_profiles.of_file(tmp_path / "print.jpg") is None


def _cmyk_profile() -> bytes:
    """An ICC header that says CMYK, enough for Pillow to embed and for the check."""
    header = bytearray(RGB)
    header[16:20] = b"CMYK"
    return bytes(header)


def test_the_project_keeps_the_profile_through_saves_and_a_save_elsewhere(tmp_path):
    project = make_project()
    project.profile = RGB
    folder = tmp_path / "p.dedit"
    project.save(folder)
    doc = json.loads((folder / PROJECT_FILE).read_text(encoding="utf-8"))
    assert doc["profile"] == colour_profiles.file_name(RGB)
    assert (folder / doc["profile"]).read_bytes() == RGB
    opened = Project.load(folder)
    assert opened.profile == RGB
    opened.save()  # saved again: the profile file is kept, not collected
    assert Project.load(folder).profile == RGB
    opened.save(tmp_path / "copy.dedit")
    assert Project.load(tmp_path / "copy.dedit").profile == RGB
    assert opened.job_copy().profile == RGB  # what an export on the files thread reads


def test_a_missing_or_altered_profile_file_opens_the_project_without_one(tmp_path):
    project = make_project()
    project.profile = RGB
    folder = tmp_path / "p.dedit"
    project.save(folder)
    name = colour_profiles.file_name(RGB)
    (folder / name).write_bytes(RGB[:-1] + b"\x01")
    assert Project.load(folder).profile is None
    (folder / name).unlink()
    opened = Project.load(folder)
    assert opened.profile is None
    np.testing.assert_array_equal(opened.image, project.image)  # the work opens regardless


def test_a_project_without_a_profile_names_none(tmp_path):
    make_project().save(tmp_path / "p.dedit")
    doc = json.loads((tmp_path / "p.dedit" / PROJECT_FILE).read_text(encoding="utf-8"))
    assert "profile" not in doc
    assert not list((tmp_path / "p.dedit").glob("profile-*"))
    assert Project.load(tmp_path / "p.dedit").profile is None


def test_segment_and_export_carry_the_photos_profile(tmp_path, capsys):
    from dedit_app.cli import main

    photo = tmp_path / "phone.jpg"
    Image.fromarray(_photo(h=64, w=96)).save(photo, quality=95, icc_profile=RGB)
    assert main(["segment", str(photo), "-o", str(tmp_path / "p.dedit")]) == 0
    assert Project.load(tmp_path / "p.dedit").profile == RGB
    capsys.readouterr()
    assert main(["info", str(tmp_path / "p.dedit")]) == 0
    assert "96 x 64 pixels, colour profile sRGB built-in, " in capsys.readouterr().out
    for name in ("out.png", "out.jpg", "out.tif"):
        assert main(["export", str(tmp_path / "p.dedit"), "-o", str(tmp_path / name)]) == 0
        assert _embedded(tmp_path / name) == RGB


def test_colours_are_turned_into_the_screens_only_for_a_profile_other_than_srgb():
    from image_corpus import p3_like_profile

    assert colour_profiles.to_srgb(None) is None
    assert colour_profiles.to_srgb(RGB) is None  # already what the screen shows
    assert colour_profiles.to_srgb(b"RGB " * 40) is None  # unreadable: shown as it is
    p3 = p3_like_profile()
    to_screen = colour_profiles.to_srgb(p3)
    assert to_screen is colour_profiles.to_srgb(p3)  # built once per profile
    values = np.array([[[200, 100, 80], [128, 128, 128], [40, 160, 90]]], np.uint8)
    shown = to_screen(values).astype(int)
    # a P3 colour is more saturated than the same numbers in sRGB; grays stay gray
    assert shown[0, 0, 0] > 200 and shown[0, 0, 1] < 100
    assert shown[0, 2, 1] > 160 and shown[0, 2, 0] < 40
    assert (shown[0, 1] == 128).all()
    assert to_screen(values[:, :2]).shape == (1, 2, 3) and values[0, 0, 0] == 200


def test_a_large_picture_is_turned_into_the_screens_colours_in_bands_the_same():
    from image_corpus import p3_like_profile

    to_screen = colour_profiles.to_srgb(p3_like_profile())
    big = _photo(h=1500, w=1600)  # 2.4 MP: converted in bands on threads
    whole = to_screen(big)
    pieces = np.concatenate([to_screen(big[top : top + 100]) for top in range(0, 1500, 100)])
    np.testing.assert_array_equal(whole, pieces)


def test_values_are_turned_between_two_profiles_and_back():
    from image_corpus import p3_like_profile

    p3 = p3_like_profile()
    assert colour_profiles.between(p3, p3) is None and colour_profiles.between(None, None) is None
    assert colour_profiles.between(None, RGB) is None  # no profile is taken as sRGB
    values = _photo(h=16, w=16) // 2 + 64  # inside both gamuts: nothing clipped
    to_p3, to_srgb = colour_profiles.between(None, p3), colour_profiles.between(p3, None)
    np.testing.assert_array_equal(to_srgb(values), colour_profiles.to_srgb(p3)(values))
    in_p3 = to_p3(values)
    assert in_p3.flags.writeable and np.abs(in_p3.astype(int) - values).max() > 4
    assert np.abs(to_srgb(in_p3).astype(int) - values).max() <= 2  # there and back
