"""Image I/O on real files built in tmp_path: round trips, metadata, masks and every bad input."""

from __future__ import annotations

import dataclasses
import io
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps
from PIL.ExifTags import IFD, Base
from skimage import data as skdata

from deblurstudio.core.errors import ImageReadError, ImageWriteError
from deblurstudio.core.imageio import (
    MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    Photo,
    read_image,
    read_mask,
    write_image,
    write_mask,
)

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
CMYK_ICC = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")  # ghostscript's, if installed
DATE_TAKEN = "2023:05:06 07:08:09"


def permissions_are_enforced() -> bool:
    """False for root (and on Windows), where a chmod 0 file can still be read."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_bytes(b"x")
        probe.chmod(0)
        try:
            probe.read_bytes()
        except PermissionError:
            return True
        finally:
            probe.chmod(0o600)
        return False


needs_permissions = pytest.mark.skipif(
    not permissions_are_enforced(), reason="file permissions do not stop this user (root?)"
)


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    """A small landscape photo: uint8 RGB, 50×76."""
    return np.ascontiguousarray(skdata.chelsea()[::6, ::6])


def camera_exif(orientation: int) -> Image.Exif:
    """EXIF as a camera writes it: IFD0 tags, an Exif sub-directory and an Interop one in it."""
    exif = Image.Exif()
    exif[Base.Make] = "DeblurCam"
    exif[Base.DateTime] = "2024:01:02 03:04:05"
    exif[Base.Orientation] = orientation
    exif.get_ifd(IFD.Exif)[Base.DateTimeOriginal] = DATE_TAKEN
    exif.get_ifd(IFD.Exif)[IFD.Interop] = {1: "R98"}
    return exif


def ramp16() -> np.ndarray:
    """uint16 RGB 24×320 whose channels step by 1-3 levels: 8 bits would merge them into ~4."""
    x = np.arange(320, dtype=np.uint16)
    y = np.arange(24, dtype=np.uint16)[:, None]
    return np.stack(np.broadcast_arrays(20000 + x, 40000 - 2 * x + y, 30000 + 3 * x), axis=-1)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def as_levels(pixels: np.ndarray, top: int = 255) -> np.ndarray:
    return np.rint(pixels * top).astype(np.int64)


# --- round trips ---------------------------------------------------------------------------------

# Mean absolute error allowed per format (0 = bit-exact).
MEAN_ERROR = {"JPEG": 0.03, "WEBP": 0.03, "PNG": 0, "TIFF": 0, "BMP": 0}
FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}


def test_supported_extensions_are_the_formats_we_write():
    assert SUPPORTED_EXTENSIONS == frozenset(FORMAT)


@pytest.mark.parametrize("suffix", [*sorted(SUPPORTED_EXTENSIONS), ".JPG"])
def test_8_bit_round_trip_for_every_extension(tmp_path, cat, suffix):
    path = tmp_path / f"cat{suffix}"
    write_image(path, Photo(cat / np.float32(255)))

    photo = read_image(path)
    fmt = FORMAT[suffix.lower()]
    assert (photo.format, photo.bit_depth, photo.path) == (fmt, 8, path)
    assert photo.pixels.dtype == np.float32 and photo.pixels.shape == cat.shape
    assert photo.pixels.flags.c_contiguous
    if MEAN_ERROR[fmt] == 0:
        np.testing.assert_array_equal(as_levels(photo.pixels), cat)
    else:
        assert np.abs(photo.pixels - cat / 255).mean() < MEAN_ERROR[fmt]
    assert folder_listing(tmp_path) == [path.name]  # no temporary file left beside it


@pytest.mark.parametrize("source_suffix", [".png", ".tif"])
@pytest.mark.parametrize("target_suffix", [".png", ".tif"])
def test_16_bit_precision_survives_read_and_write(tmp_path, source_suffix, target_suffix):
    levels = ramp16()
    source = tmp_path / f"ramp{source_suffix}"
    assert cv2.imwrite(str(source), levels[..., ::-1])  # an independent 16-bit writer (BGR)

    photo = read_image(source)
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(as_levels(photo.pixels, 65535), levels)

    target = tmp_path / f"out{target_suffix}"
    write_image(target, photo)
    written = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written[..., ::-1], levels)
    assert len(np.unique(written[..., 0])) > 256


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".bmp"])
def test_16_bit_photo_falls_back_to_8_bit_where_the_format_has_no_16_bit(tmp_path, suffix):
    levels = ramp16()
    path = tmp_path / f"ramp{suffix}"
    write_image(path, Photo(levels / np.float32(65535), bit_depth=16))

    photo = read_image(path)
    assert photo.bit_depth == 8
    assert np.abs(photo.pixels - levels / 65535).mean() < 0.03


# --- orientation ---------------------------------------------------------------------------------


def pillow_upright(stored: np.ndarray, orientation: int) -> np.ndarray:
    """The reference: ImageOps.exif_transpose of a PNG holding `stored` with that orientation.
    (A PNG, since Pillow 13 turns TIFFs while loading: exif_transpose is no oracle there.)"""
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="PNG", exif=camera_exif(orientation))
    with Image.open(buffer) as image:
        return np.asarray(ImageOps.exif_transpose(image))


@pytest.mark.parametrize(
    "suffix, compression",
    [(".png", None), (".tif", "raw"), (".tif", "tiff_deflate"), (".tif", "tiff_lzw")],
)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_pixels_and_alpha(
    tmp_path, cat, orientation, suffix, compression
):
    alpha = np.arange(cat.shape[0] * cat.shape[1], dtype=np.uint32).reshape(cat.shape[:2]) % 251
    rgba = np.dstack([cat, alpha.astype(np.uint8)])
    path = tmp_path / f"turned{suffix}"
    options = {"compression": compression} if compression else {}
    Image.fromarray(rgba).save(path, exif=camera_exif(orientation), **options)

    photo = read_image(path)
    expected = pillow_upright(rgba, orientation)
    np.testing.assert_array_equal(as_levels(photo.pixels), expected[..., :3])
    np.testing.assert_array_equal(photo.alpha, expected[..., 3])
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif.get(Base.Orientation, 1) == 1 and exif[Base.Make] == "DeblurCam"


def test_landscape_jpeg_with_orientation_6_reads_back_portrait(tmp_path, cat):
    path = tmp_path / "portrait.jpg"
    Image.fromarray(cat).save(path, quality=95, exif=camera_exif(6))

    photo = read_image(path)
    assert photo.pixels.shape == (cat.shape[1], cat.shape[0], 3)
    # Orientation 6 = the camera was turned clockwise: the stored left column is now the top row.
    assert np.abs(photo.pixels - np.rot90(cat, -1) / 255).mean() < 0.03


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_of_a_16_bit_tiff_is_applied_once(tmp_path, orientation):
    grey = ramp16()[..., 0]
    path = tmp_path / "grey16.tif"
    Image.fromarray(grey).save(path, exif=camera_exif(orientation))

    photo = read_image(path)
    expected = pillow_upright(grey, orientation)
    assert photo.bit_depth == 16
    for channel in range(3):
        np.testing.assert_array_equal(as_levels(photo.pixels[..., channel], 65535), expected)


def test_16_bit_png_orientation_is_applied(tmp_path):
    levels = ramp16()
    png = cv2.imencode(".png", levels[..., ::-1])[1].tobytes()
    exif_chunk = png_chunk(b"eXIf", camera_exif(6).tobytes()[6:])  # without b"Exif\0\0"
    path = tmp_path / "turned16.png"
    path.write_bytes(png[:33] + exif_chunk + png[33:])  # right after the 33-byte IHDR

    photo = read_image(path)
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(as_levels(photo.pixels, 65535), np.rot90(levels, -1))


# --- metadata ------------------------------------------------------------------------------------

WRITABLE_WITH_METADATA = [
    (".jpg", 8),
    (".png", 8),
    (".png", 16),
    (".tif", 8),
    (".tif", 16),
    (".webp", 8),
]


@pytest.mark.parametrize("suffix, bit_depth", WRITABLE_WITH_METADATA)
def test_exif_kept_with_orientation_reset_to_1(tmp_path, cat, suffix, bit_depth):
    source = tmp_path / "camera.jpg"
    Image.fromarray(cat).save(source, quality=95, exif=camera_exif(6))
    photo = dataclasses.replace(read_image(source), bit_depth=bit_depth)

    target = tmp_path / f"out{suffix}"
    write_image(target, photo)
    with Image.open(target) as image:
        exif = image.getexif()
        exif_ifd, interop = exif.get_ifd(IFD.Exif), exif.get_ifd(IFD.Interop)
    assert exif[Base.Orientation] == 1
    assert exif[Base.Make] == "DeblurCam"
    assert exif[Base.DateTime] == "2024:01:02 03:04:05"
    assert exif_ifd[Base.DateTimeOriginal] == DATE_TAKEN
    assert interop == {1: "R98"}
    # Upright pixels with Orientation 1: reading again does not turn them a second time.
    assert read_image(target).pixels.shape == photo.pixels.shape


def test_write_resets_orientation_of_exif_the_caller_supplied(tmp_path, cat):
    photo = Photo(cat / np.float32(255), exif=camera_exif(6).tobytes())
    target = tmp_path / "out.png"
    write_image(target, photo)

    assert read_image(target).pixels.shape == cat.shape  # not turned on the way back in
    with Image.open(target) as image:
        assert image.getexif()[Base.Orientation] == 1


def test_tiff_exif_keeps_camera_tags_but_not_the_source_layout(tmp_path, cat):
    source = tmp_path / "camera.tif"
    Image.fromarray(cat).save(source, exif=camera_exif(1))
    photo = read_image(source)
    target = tmp_path / "out.jpg"
    write_image(target, photo)

    with Image.open(target) as image:
        exif = image.getexif()
    assert exif[Base.Make] == "DeblurCam"
    assert Base.StripOffsets not in exif and Base.ImageWidth not in exif


@pytest.mark.parametrize("suffix, bit_depth", WRITABLE_WITH_METADATA)
def test_icc_profile_bytes_survive_a_round_trip(tmp_path, cat, suffix, bit_depth):
    source = tmp_path / "profiled.png"
    Image.fromarray(cat).save(source, icc_profile=SRGB_ICC)
    photo = read_image(source)
    assert photo.icc_profile == SRGB_ICC

    target = tmp_path / f"out{suffix}"
    write_image(target, dataclasses.replace(photo, bit_depth=bit_depth))
    with Image.open(target) as image:
        assert image.info["icc_profile"] == SRGB_ICC
    assert read_image(target).icc_profile == SRGB_ICC


# --- alpha ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_8_bit_alpha_passes_through_unchanged(tmp_path, cat, suffix):
    alpha = np.linspace(0, 255, cat.shape[0] * cat.shape[1]).astype(np.uint8).reshape(cat.shape[:2])
    source = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([cat, alpha])).save(source)

    photo = read_image(source)
    assert photo.alpha.dtype == np.uint8
    np.testing.assert_array_equal(photo.alpha, alpha)

    target = tmp_path / f"out{suffix}"
    write_image(target, photo)
    with Image.open(target) as image:
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(image)[..., 3], alpha)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_alpha_passes_through_unchanged(tmp_path, suffix):
    levels = ramp16()
    alpha = np.arange(levels.shape[0] * levels.shape[1], dtype=np.uint32) * 197 % 65536
    alpha = alpha.astype(np.uint16).reshape(levels.shape[:2])
    source = tmp_path / "cutout16.png"
    cv2.imwrite(str(source), np.dstack([levels[..., ::-1], alpha]))

    photo = read_image(source)
    assert photo.bit_depth == 16 and photo.alpha.dtype == np.uint16
    np.testing.assert_array_equal(photo.alpha, alpha)

    target = tmp_path / f"out{suffix}"
    write_image(target, photo)
    written = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written[..., 3], alpha)
    np.testing.assert_array_equal(written[..., 2::-1], levels)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_formats_without_alpha_write_the_colours(tmp_path, cat, suffix):
    alpha = np.zeros(cat.shape[:2], np.uint8)
    target = tmp_path / f"out{suffix}"
    write_image(target, Photo(cat / np.float32(255), alpha=alpha))

    photo = read_image(target)
    assert photo.alpha is None
    assert np.abs(photo.pixels - cat / 255).mean() < 0.03


# --- grey, palette, CMYK -------------------------------------------------------------------------


def test_grey_png_reads_as_rgb(tmp_path, cat):
    grey = cat.mean(axis=2).astype(np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)

    photo = read_image(path)
    assert photo.pixels.shape == (*grey.shape, 3) and photo.alpha is None
    for channel in range(3):
        np.testing.assert_array_equal(as_levels(photo.pixels[..., channel]), grey)


def test_grey_alpha_png_keeps_its_alpha(tmp_path, cat):
    grey = cat[..., 1]
    alpha = 255 - grey
    path = tmp_path / "grey_alpha.png"
    Image.fromarray(np.dstack([grey, alpha]), mode="LA").save(path)

    photo = read_image(path)
    np.testing.assert_array_equal(as_levels(photo.pixels[..., 2]), grey)
    np.testing.assert_array_equal(photo.alpha, alpha)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_reads_as_16_bit_rgb(tmp_path, suffix):
    grey = ramp16()[..., 2]
    path = tmp_path / f"grey16{suffix}"
    cv2.imwrite(str(path), grey)

    photo = read_image(path)
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(as_levels(photo.pixels[..., 0], 65535), grey)
    np.testing.assert_array_equal(photo.pixels[..., 0], photo.pixels[..., 2])


def test_palette_png_reads_as_rgb_with_its_transparency(tmp_path):
    palette = [255, 0, 0, 0, 128, 255, 20, 200, 20]  # red, blue, green
    indices = np.array([[0, 1, 2, 1], [2, 2, 0, 0]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette)
    path = tmp_path / "palette.png"
    image.save(path, transparency=1)  # the blue entry is transparent

    photo = read_image(path)
    colours = np.array(palette).reshape(3, 3)
    np.testing.assert_array_equal(as_levels(photo.pixels), colours[indices])
    np.testing.assert_array_equal(photo.alpha, np.where(indices == 1, 0, 255))


def test_multi_picture_jpeg_reads_as_jpeg(tmp_path, cat):
    path = tmp_path / "phone.jpg"
    Image.fromarray(cat).save(
        path, format="MPO", save_all=True, append_images=[Image.fromarray(cat[::-1])]
    )
    with Image.open(path) as image:
        assert image.format == "MPO"

    photo = read_image(path)
    assert photo.format == "JPEG"
    assert np.abs(photo.pixels - cat / 255).mean() < 0.03


def cmyk_patches() -> np.ndarray:
    """Flat CMYK patches: white paper on the left, pure cyan ink on the right (uint8 16×32×4)."""
    patches = np.zeros((16, 32, 4), np.uint8)
    patches[:, 16:, 0] = 255
    return patches


def test_cmyk_jpeg_without_profile_reads_as_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.fromarray(cmyk_patches(), mode="CMYK").save(path, quality=100)

    photo = read_image(path)
    assert photo.pixels.shape == (16, 32, 3) and photo.icc_profile is None
    np.testing.assert_allclose(photo.pixels[8, 4], [1, 1, 1], atol=0.03)
    np.testing.assert_allclose(photo.pixels[8, 24], [0, 1, 1], atol=0.03)  # plain formula


@pytest.mark.skipif(not CMYK_ICC.is_file(), reason="needs a CMYK ICC profile (ghostscript)")
def test_cmyk_jpeg_is_converted_through_its_icc_profile(tmp_path):
    path = tmp_path / "print.jpg"
    Image.fromarray(cmyk_patches(), mode="CMYK").save(
        path, quality=100, icc_profile=CMYK_ICC.read_bytes()
    )

    photo = read_image(path)
    assert photo.icc_profile is None  # the pixels are sRGB now; a CMYK profile would lie
    np.testing.assert_allclose(photo.pixels[8, 4], [1, 1, 1], atol=0.05)
    red, green, blue = photo.pixels[8, 24]
    # Real cyan ink is a light, slightly dull blue, not the formula's saturated (0, 1, 1).
    assert red < 0.2 and blue > 0.8 and green < 0.9


def test_cmyk_photo_warns_that_its_result_will_be_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.fromarray(cmyk_patches(), mode="CMYK").save(path)
    assert read_image(path).warnings == (
        "CMYK photo: converted to RGB, and the result is saved as RGB",
    )


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".bmp"])
@pytest.mark.parametrize("bits", [8, 16])
def test_a_grey_photo_is_written_as_one_channel_even_from_tinted_pixels(tmp_path, suffix, bits):
    grey = ramp16()[..., 0] if bits == 16 else ramp16()[..., 0] // 257
    source = tmp_path / "grey.png"
    cv2.imwrite(str(source), grey.astype(np.uint16 if bits == 16 else np.uint8))
    photo = read_image(source)
    tinted = photo.pixels.copy()
    tinted[..., 0] += 0.02  # what a network may leave

    out = tmp_path / f"out{suffix}"
    write_image(out, dataclasses.replace(photo, pixels=tinted))
    with Image.open(out) as result:
        assert result.mode in ("L", "I;16")
    assert read_image(out).bit_depth == (bits if suffix in (".png", ".tif") else 8)


# --- unreadable input ----------------------------------------------------------------------------


def assert_read_error(path: Path, reason: str) -> None:
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert path.name in message and reason in message.lower()
    assert "\n" not in message


def test_missing_file(tmp_path):
    assert_read_error(tmp_path / "nowhere.jpg", "not found")


def test_folder_instead_of_a_file(tmp_path):
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    assert_read_error(folder, "folder")


@needs_permissions
def test_file_without_read_permission(tmp_path, cat):
    path = tmp_path / "locked.png"
    Image.fromarray(cat).save(path)
    path.chmod(0)
    assert_read_error(path, "permission denied")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    assert_read_error(path, "empty file")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file(tmp_path, cat, suffix):
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(cat).save(whole)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert_read_error(cut, "truncated")


def test_truncated_16_bit_png(tmp_path):
    whole = tmp_path / "whole16.png"
    cv2.imwrite(str(whole), ramp16())
    cut = tmp_path / "cut16.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert_read_error(cut, "truncated")


def test_text_file_with_an_image_extension(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list: film, batteries\n")
    assert_read_error(path, "not an image")


def test_unsupported_format(tmp_path, cat):
    path = tmp_path / "animation.gif"
    Image.fromarray(cat).save(path)
    assert_read_error(path, "unsupported format gif")


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    # A valid 1-bit PNG of 16000×16000 (256 MP) whose all-black rows compress to ~30 kB.
    width = height = 16000
    assert width * height > MAX_PIXELS
    row = bytes(1 + width // 8)  # filter byte + 2000 bytes of black pixels
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    path = tmp_path / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )
    assert path.stat().st_size < 100_000
    assert_read_error(path, "too large: 16000×16000")


# --- write failures ------------------------------------------------------------------------------


def assert_write_error(path: Path, photo: Photo, reason: str, **options) -> None:
    with pytest.raises(ImageWriteError) as caught:
        write_image(path, photo, **options)
    message = str(caught.value)
    assert path.name in message and reason in message.lower()
    assert "\n" not in message


def test_unknown_extension_writes_nothing(tmp_path, cat):
    assert_write_error(tmp_path / "out.xyz", Photo(cat / np.float32(255)), "unknown image type")
    assert folder_listing(tmp_path) == []


def test_missing_folder(tmp_path, cat):
    photo = Photo(cat / np.float32(255))
    assert_write_error(tmp_path / "gone" / "out.png", photo, "does not exist")
    assert folder_listing(tmp_path) == []


@needs_permissions
def test_folder_without_write_permission(tmp_path, cat):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert_write_error(folder / "out.png", Photo(cat / np.float32(255)), "permission denied")
        assert folder_listing(folder) == []
    finally:
        folder.chmod(0o700)


def test_encoder_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "wide.webp"
    target.write_bytes(b"previous result")
    too_wide = Photo(np.zeros((1, 20000, 3), np.float32))  # WebP stops at 16383 pixels

    assert_write_error(target, too_wide, "cannot write webp")
    assert target.read_bytes() == b"previous result"
    assert folder_listing(tmp_path) == ["wide.webp"]


def test_the_original_is_never_overwritten_silently(tmp_path, cat):
    original = tmp_path / "original.png"
    Image.fromarray(cat).save(original)
    before = original.read_bytes()
    photo = read_image(original)
    darker = dataclasses.replace(photo, pixels=photo.pixels * 0.5)
    (tmp_path / "link.png").symlink_to(original)

    for spelling in (original, tmp_path / "." / "original.png", tmp_path / "link.png"):
        assert_write_error(spelling, darker, "refusing to overwrite the original")
    assert original.read_bytes() == before

    write_image(original, darker, allow_overwrite=True)  # the user said yes
    np.testing.assert_allclose(read_image(original).pixels, darker.pixels, atol=0.5 / 255)
    assert folder_listing(tmp_path) == ["link.png", "original.png"]


# --- masks ---------------------------------------------------------------------------------------


def test_grey_mask_reads_as_float(tmp_path, cat):
    grey = cat[..., 0]
    path = tmp_path / "mask.png"
    Image.fromarray(grey).save(path)

    mask = read_mask(path)
    assert mask.dtype == np.float32 and mask.shape == grey.shape
    np.testing.assert_allclose(mask, grey / 255, atol=1e-6)


def test_16_bit_grey_mask_keeps_its_precision(tmp_path):
    grey = ramp16()[..., 1]
    path = tmp_path / "mask16.png"
    cv2.imwrite(str(path), grey)
    np.testing.assert_array_equal(as_levels(read_mask(path), 65535), grey)


def test_mask_painted_on_a_transparent_layer_uses_the_alpha(tmp_path):
    strokes = np.zeros((20, 30), np.uint8)
    strokes[5:15, 10:20] = 255
    path = tmp_path / "strokes.png"
    Image.fromarray(np.dstack([np.zeros((20, 30, 3), np.uint8), strokes])).save(path)

    np.testing.assert_array_equal(read_mask(path), strokes / 255)


def test_opaque_rgba_mask_uses_the_grey_level(tmp_path):
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (4, 1))
    path = tmp_path / "opaque.png"
    Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)])).save(path)

    np.testing.assert_allclose(read_mask(path), grey / 255, atol=1e-6)


def test_mask_is_resized_to_the_photo(tmp_path):
    left_half = np.zeros((20, 30), np.uint8)
    left_half[:, :15] = 255
    path = tmp_path / "small.png"
    Image.fromarray(left_half).save(path)

    mask = read_mask(path, size=(90, 60))
    assert mask.shape == (60, 90) and mask.dtype == np.float32
    assert mask[:, :40].min() == 1.0 and mask[:, 50:].max() == 0.0


def test_a_jpeg_result_keeps_the_quality_and_size_of_the_original(tmp_path):
    source = tmp_path / "q75.jpg"
    Image.fromarray(skdata.astronaut()).save(source, quality=75)
    photo = read_image(source)
    assert photo.quality == 75

    out = tmp_path / "result.jpg"
    write_image(out, photo)
    assert read_image(out).quality == 75
    assert out.stat().st_size < 1.1 * source.stat().st_size  # 1.85× at the old quality 95

    write_image(tmp_path / "finer.jpg", photo, quality=90)
    assert read_image(tmp_path / "finer.jpg").quality == 90


def test_mask_of_another_aspect_ratio_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "square.png"
    Image.fromarray(np.full((30, 30), 255, np.uint8)).save(path)

    with pytest.raises(ImageReadError, match=r"square\.png: mask is 30×30 px but the photo is "
                       r"90×60 px: another aspect ratio"):
        read_mask(path, size=(90, 60))


def test_write_mask_round_trip_as_8_bit_grey_png(tmp_path):
    mask = np.linspace(0, 1, 40 * 50, dtype=np.float32).reshape(40, 50)
    path = tmp_path / "mask.png"
    write_mask(path, mask)

    with Image.open(path) as image:
        assert (image.format, image.mode) == ("PNG", "L")
    np.testing.assert_allclose(read_mask(path), mask, atol=0.5 / 255)
    assert folder_listing(tmp_path) == ["mask.png"]


def test_write_mask_refuses_other_formats(tmp_path):
    with pytest.raises(ImageWriteError, match="PNG"):
        write_mask(tmp_path / "mask.jpg", np.zeros((4, 4), np.float32))
    assert folder_listing(tmp_path) == []


# --- odd files: damaged metadata, unusual bit depths and variants, decoder chatter ---------------


def twelve_bit_grey_tiff(values: np.ndarray) -> bytes:
    """An uncompressed little-endian grey TIFF of 12-bit `values` (uint16 H×W, 0-4095), packed
    two samples into three bytes, as scanners and machine-vision cameras write them."""
    height, width = values.shape
    bits = np.unpackbits(values.astype(">u2").view(np.uint8).reshape(-1, 2), axis=1)[:, 4:]
    strip = np.packbits(bits.reshape(height, -1), axis=1).tobytes()
    tags = [(256, width), (257, height), (258, 12), (259, 1), (262, 1), (273, None),
            (277, 1), (278, height), (279, len(strip))]
    strip_offset = 8 + 2 + len(tags) * 12 + 4
    directory = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHII", tag, 4, 1, strip_offset if value is None else value)
        for tag, value in tags
    )
    return b"II*\0" + struct.pack("<I", 8) + directory + struct.pack("<I", 0) + strip


def damaged_tiff(tmp_path: Path, cat: np.ndarray) -> Path:
    """An LZW TIFF whose compressed pixels have every 37th byte flipped."""
    encoded = io.BytesIO()
    Image.fromarray(np.tile(cat, (4, 4, 1))).save(encoded, format="TIFF", compression="tiff_lzw")
    damaged = bytearray(encoded.getvalue())
    for at in range(300, len(damaged) - 400, 37):
        damaged[at] ^= 0x5A
    path = tmp_path / "damaged.tif"
    path.write_bytes(bytes(damaged))
    return path


@pytest.mark.parametrize("cut", [2, 4, 12])  # the TIFF header, the first IFD offset, an entry
def test_jpeg_with_a_damaged_exif_block_is_read_without_it_and_says_so(tmp_path, cat, cut):
    exif = Image.Exif()
    exif[Base.Make] = "Canon"
    exif[Base.Orientation] = 6
    whole = exif.tobytes()
    path = tmp_path / "damaged exif.jpg"
    Image.fromarray(cat).save(path, quality=95, exif=whole[: 6 + cut])
    Image.fromarray(cat).save(tmp_path / "clean.jpg", quality=95)
    photo = read_image(path)
    np.testing.assert_array_equal(photo.pixels, read_image(tmp_path / "clean.jpg").pixels)
    assert photo.exif is None
    assert len(photo.warnings) == 1 and "EXIF" in photo.warnings[0]


def test_12_bit_tiff_is_read_scaled_to_16_bits(tmp_path):
    values = (np.arange(8 * 6).reshape(8, 6) * 87 % 4096).astype(np.uint16)
    values[0, 0], values[0, 1] = 0, 4095
    path = tmp_path / "scan12.tif"
    path.write_bytes(twelve_bit_grey_tiff(values))
    photo = read_image(path)
    assert photo.bit_depth == 16 and photo.grey
    np.testing.assert_allclose(photo.pixels[..., 1], values / 4095, atol=0.5 / 65535)
    assert photo.pixels[0, 1].tolist() == [1.0, 1.0, 1.0]  # white stays white


def test_big_tiff_is_read(tmp_path, cat):
    path = tmp_path / "big.tif"
    Image.fromarray(cat).save(path, big_tiff=True)
    assert path.read_bytes()[2] == 43  # BigTIFF's version number
    np.testing.assert_array_equal(read_image(path).pixels, cat / np.float32(255))


def test_dds_of_an_unimplemented_pixel_format_is_refused_in_one_line(tmp_path):
    header = bytearray(b"DDS " + struct.pack("<I", 124) + bytes(120))
    struct.pack_into("<IIII", header, 8, 0x1007, 4, 4, 0)  # flags, height, width, pitch
    struct.pack_into("<II4s", header, 76, 32, 4, b"ZZZZ")  # pixel format: a FourCC nobody knows
    path = tmp_path / "texture.dds"
    path.write_bytes(bytes(header) + bytes(64))
    assert_read_error(path, "unsupported")


def test_damaged_tiff_is_refused_in_one_line_without_decoder_chatter(tmp_path, cat, capfd):
    path = damaged_tiff(tmp_path, cat)
    assert_read_error(path, "damaged")
    assert capfd.readouterr().err == ""
