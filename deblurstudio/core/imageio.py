"""Reading and writing photos: every part of DeblurStudio loads and saves images through here.

Pixel convention at this boundary: ``Photo.pixels`` is float32 RGB H×W×3 in [0, 1], sRGB-encoded and
already upright (EXIF orientation applied). Masks are float32 H×W in [0, 1] (1 = deblur here).

What a round trip keeps, by output format:

======  =======  =====  ====  ===
format  16-bit   alpha  EXIF  ICC
======  =======  =====  ====  ===
PNG     yes      yes    yes   yes
TIFF    yes      yes    yes   yes
WebP    no       yes    yes   yes
JPEG    no       no     yes   yes
BMP     no       no     no    no
======  =======  =====  ====  ===

EXIF is written with Orientation 1, because the pixels are stored upright. Pillow identifies files
and reads all metadata and 8-bit pixels; OpenCV decodes 16-bit pixels (Pillow cuts 16-bit RGB to 8
bits) and encodes PNG, into which the iCCP and eXIf chunks are inserted here. TIFF is written here
with Pillow's tag-directory writer, because neither library writes 16-bit RGB TIFF with metadata.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from PIL import Image, ImageCms, TiffImagePlugin, UnidentifiedImageError
from PIL.ExifTags import IFD, Base

from deblurstudio.core._atomic import atomic_write
from deblurstudio.core.errors import ImageReadError, ImageWriteError

MAX_PIXELS = 250_000_000
"""Largest image (width × height) read_image accepts; larger files are refused from their header,
before any pixel is decoded, so a decompression bomb costs neither time nor memory."""

# read_image checks MAX_PIXELS itself, right after the header is parsed. Pillow's own check (a
# warning above 89 MP, an error above 179 MP) would contradict that limit, so it is switched off.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_QUALITY = 95
"""JPEG and WebP quality of results whose source has none (PNG, TIFF, ... or a new picture)."""

MASK_ASPECT_TOLERANCE = 0.01
"""How far (relative) a mask's aspect ratio may differ from the photo's for read_mask to scale it:
a mask painted on a downscaled preview is off by its rounding only."""

_FORMAT_BY_SUFFIX = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
SUPPORTED_EXTENSIONS = frozenset(_FORMAT_BY_SUFFIX)
"""Lowercase file suffixes (with the dot) that read_image and write_image handle."""

# Pillow calls multi-picture JPEGs (common from phones and cameras) "MPO".
_READABLE_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "TIFF": "TIFF",
                     "WEBP": "WEBP", "BMP": "BMP"}
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
_ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
# Pillow modes of one colour channel (bilevel, 8-bit, 16-bit, 32-bit integer) with or without
# alpha.
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L"})
# Pillow modes of 8-bit images that convert to RGB(A) without loss; CMYK is colour-managed.
_PILLOW_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "YCbCr", "CMYK"})

# EXIF Orientation value -> how to turn the stored pixels (row, column, ...) to display them.
_TURNS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
# A TIFF keeps its EXIF in the image's own tag directory, beside tags that describe that file's
# pixel layout (strip offsets, compression, ...). Only the IFD0 tags of the Exif standard travel on.
_EXIF_IFD0_TAGS = frozenset({
    Base.ImageDescription, Base.Make, Base.Model, Base.Orientation, Base.XResolution,
    Base.YResolution, Base.ResolutionUnit, Base.Software, Base.DateTime, Base.Artist,
    Base.WhitePoint, Base.PrimaryChromaticities, Base.YCbCrCoefficients, Base.YCbCrPositioning,
    Base.ReferenceBlackWhite, Base.Copyright, IFD.Exif, IFD.GPSInfo,
})
_TIFF_ROWS_PER_STRIP = 64
# The JPEG standard's example luminance table (Annex K), natural order: libjpeg scales it by the
# quality setting, so a file's table tells which quality wrote it.
_STANDARD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])
_SRGB_PROFILE = ImageCms.createProfile("sRGB")
_REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
# What Pillow and OpenCV raise on damaged or truncated files.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error,
                  cv2.error)


@dataclass
class Photo:
    """A decoded photo plus what must survive the round trip back to disk.

    Attributes:
        pixels: float32 RGB H×W×3 in [0, 1], sRGB-encoded, upright. When `icc_profile` describes
            another RGB space (Adobe RGB, Display P3) the values are in that space and writing
            attaches the profile again, so colours stay right.
        alpha: the file's alpha channel, H×W in its own dtype and values (uint8 or uint16),
            turned upright with the pixels; None for opaque images.
        bit_depth: bits per channel of the source, 8 or 16.
        format: Pillow format name of the source: "JPEG", "PNG", "TIFF", "WEBP" or "BMP".
        quality: a JPEG source's quality on the 1-100 scale of libjpeg (estimated from its
            quantisation tables; write_image's default for JPEG and WebP), else None.
        grey: the source has one colour channel. `pixels` are RGB all the same (the networks
            take RGB), and write_image writes one channel again, their Rec. 709 luma, so the
            small channel differences a network leaves cannot tint a grey photo.
        warnings: one-line notes on what reading changed that the user should know (a CMYK
            photo's result is RGB), for the CLI, batch manifest and GUI to show.
        exif: EXIF block as Pillow writes it (starts with b"Exif\\0\\0") with Orientation reset
            to 1 (or absent), or None.
        icc_profile: ICC profile of an RGB colour space, or None (sRGB). Grey and CMYK profiles
            are dropped, since the pixels are RGB.
        path: the file this was read from (write_image refuses to overwrite it), None if new.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    format: str = "PNG"
    quality: int | None = None
    grey: bool = False
    warnings: tuple[str, ...] = ()
    exif: bytes | None = None
    icc_profile: bytes | None = None
    path: Path | None = None


def read_image(path: str | os.PathLike) -> Photo:
    """Read a JPEG, PNG (8/16-bit), TIFF (8/16-bit), WebP or BMP file.

    Grey and palette images come back as RGB (grey ones marked `grey`), CMYK through its
    embedded ICC profile when it has one (with a warning: the result will be RGB). 10- to 14-bit
    TIFFs are scaled to 16 bits. The EXIF orientation is applied to pixels and alpha; a damaged
    EXIF block is dropped with a warning. What the decoders print (libtiff, OpenCV, Pillow
    warnings) is kept off the terminal.

    Returns:
        A Photo; pixels float32 RGB H×W×3 in [0, 1].

    Raises:
        ImageReadError: one line naming the file and why it cannot be read.
    """
    path = Path(path)
    data = _read_file(path)
    with _decoder_output_captured():
        return _decode(path, data)


def _decode(path: Path, data: bytes) -> Photo:
    """read_image's work on the file's bytes."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image file, or damaged beyond recognition") from exc
    except NotImplementedError as exc:  # e.g. a DDS file's compression Pillow has no decoder for
        raise ImageReadError(path, f"unsupported image variant ({_one_line(exc)})") from exc
    except _DECODE_ERRORS as exc:  # e.g. a JPEG cut off inside a header segment
        raise ImageReadError(path, f"damaged or truncated file ({_one_line(exc)})") from exc
    with image:
        fmt = _READABLE_FORMATS.get(image.format)
        if fmt is None:
            raise ImageReadError(
                path, f"unsupported format {image.format}; DeblurStudio reads "
                "JPEG, PNG, TIFF, WebP and BMP")
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageReadError(
                path, f"image too large: {width}×{height} is {width * height / 1e6:.0f} "
                f"megapixels, the limit is {MAX_PIXELS / 1e6:.0f}")
        high_bits = _bits_above_8(image, data)
        if image.mode not in _PILLOW_MODES and not high_bits:
            raise ImageReadError(path, f"unsupported pixel format {image.mode}")
        try:
            if high_bits:
                color, alpha = _decode_with_opencv(data, fmt)
                color, alpha = (_to_full_16_bit(a, high_bits) for a in (color, alpha))
            else:
                color, alpha = _decode_with_pillow(image)
        except NotImplementedError as exc:
            raise ImageReadError(path, f"unsupported {fmt} variant ({_one_line(exc)})") from exc
        except _DECODE_ERRORS as exc:
            raise ImageReadError(
                path, f"damaged or truncated {fmt} file ({_one_line(exc)})") from exc
        notes = []
        # EXIF only after decoding: Pillow 13 turns TIFFs by their Orientation while loading
        # and then drops the tag, so what is left is exactly what still needs applying.
        try:
            orientation, exif_bytes = _upright_exif(image)
        except (*_DECODE_ERRORS, UserWarning):
            orientation, exif_bytes = 1, None
            notes.append("damaged EXIF block: ignored (camera data and orientation not kept)")
        icc_profile = _rgb_profile(image.info.get("icc_profile"))
        quality = _jpeg_quality(image.quantization[0]) if fmt == "JPEG" else None
        if image.mode == "CMYK":
            notes.append("CMYK photo: converted to RGB, and the result is saved as RGB")
        grey = image.mode in _GREY_MODES
    return Photo(
        pixels=_to_unit_float(_upright(color, orientation)),
        alpha=None if alpha is None else _upright(alpha, orientation),
        bit_depth=16 if color.dtype == np.uint16 else 8,
        format=fmt,
        quality=quality,
        grey=grey,
        warnings=tuple(notes),
        exif=exif_bytes,
        icc_profile=icc_profile,
        path=path,
    )


def write_image(
    path: str | os.PathLike,
    photo: Photo,
    *,
    quality: int | None = None,
    allow_overwrite: bool = False,
) -> None:
    """Write `photo`; the format follows the extension of `path` (see SUPPORTED_EXTENSIONS).

    Keeps EXIF (Orientation 1), the ICC profile, alpha and 16 bits where the format can hold them
    (table in the module docstring); 16-bit photos become 8-bit JPEG, WebP and BMP. The file
    appears atomically: after any failure nothing is left at `path` or beside it.

    Args:
        path: destination; its folder must exist.
        photo: pixels float32 RGB H×W×3 in [0, 1] (values outside are clipped).
        quality: JPEG and WebP quality, 1-100; None: the source JPEG's (`photo.quality`), else
            DEFAULT_QUALITY. Lossless formats ignore it.
        allow_overwrite: allow `path` to be `photo.path` itself. Pass True only after the user
            explicitly agreed to replace the original.

    Raises:
        ImageWriteError: unknown extension, missing folder, permission denied, encoder failure,
            or `path` is the photo's original file and allow_overwrite is False.
    """
    path = Path(path)
    fmt = _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise ImageWriteError(
            path, f"unknown image type {path.suffix!r}; use one of "
            f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}")
    if not allow_overwrite and photo.path is not None and _same_file(path, photo.path):
        raise ImageWriteError(path, "refusing to overwrite the original photo; choose another name")
    if photo.pixels.ndim != 3 or photo.pixels.shape[2] != 3:
        raise ValueError(f"pixels must be H×W×3 RGB, got shape {photo.pixels.shape}")
    if photo.alpha is not None and photo.alpha.shape != photo.pixels.shape[:2]:
        raise ValueError(f"alpha shape {photo.alpha.shape} does not match pixels")

    dtype = np.uint16 if photo.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS else np.uint8
    color = _quantize(photo.pixels @ _REC709_LUMA if photo.grey else photo.pixels, dtype)
    alpha = None
    if photo.alpha is not None and fmt in _ALPHA_FORMATS:
        alpha = _alpha_as(photo.alpha, dtype)
    exif = None
    if photo.exif:
        exif = Image.Exif()
        exif.load(photo.exif)
        _make_upright(exif)
    icc = photo.icc_profile
    quality = quality or photo.quality or DEFAULT_QUALITY

    def encode(file: IO[bytes]) -> None:
        if fmt == "PNG":
            _encode_png(file, color, alpha, exif, icc)
        elif fmt == "TIFF":
            _encode_tiff(file, color, alpha, exif, icc)
        else:
            _encode_with_pillow(file, fmt, color, alpha, exif, icc, quality)

    _write_atomically(path, fmt, encode)


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask image (any format read_image accepts, usually PNG).

    The mask is the alpha channel when the image has one that is not fully opaque (strokes painted
    on a transparent layer), otherwise the grey level (Rec. 709 luma of colour images).

    Args:
        path: the mask file.
        size: the photo's (width, height): a mask of the same aspect ratio (within
            MASK_ASPECT_TOLERANCE, e.g. painted on a preview) is resized to it with bilinear
            (area when shrinking) interpolation; None keeps the file's size.

    Returns:
        float32 H×W in [0, 1]; 1 = deblur here.

    Raises:
        ImageReadError: as read_image, or the mask has another aspect ratio than `size`
            (stretching it would put the deblurred areas in the wrong places).
    """
    photo = read_image(path)
    alpha = photo.alpha
    if alpha is not None and alpha.min() < np.iinfo(alpha.dtype).max:
        mask = _to_unit_float(alpha)
    else:
        mask = photo.pixels @ _REC709_LUMA
    mask_height, mask_width = mask.shape
    if size is not None:
        width, height = size
        if abs(mask_width * height / (mask_height * width) - 1) > MASK_ASPECT_TOLERANCE:
            raise ImageReadError(
                path, f"mask is {mask_width}×{mask_height} px but the photo is {width}×{height} "
                "px: another aspect ratio, so it cannot be scaled to fit")
    if size is not None and (mask_width, mask_height) != tuple(size):
        shrinking = size[0] < mask.shape[1] and size[1] < mask.shape[0]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        mask = cv2.resize(mask, tuple(size), interpolation=interpolation)
    return np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False)


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a float32 H×W mask in [0, 1] as an 8-bit greyscale PNG, atomically.

    Raises:
        ImageWriteError: the name does not end in .png, the folder is missing or not writable.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ImageWriteError(path, "masks are saved as PNG; use a name ending in .png")
    if mask.ndim != 2:
        raise ValueError(f"mask must be H×W, got shape {mask.shape}")
    grey = _quantize(mask, np.uint8)
    _write_atomically(path, "PNG", lambda file: _encode_png(file, grey, None, None, None))


# --- reading -------------------------------------------------------------------------------------


def _read_file(path: Path) -> bytes:
    """The whole file, or ImageReadError saying why not."""
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    return data


def _bits_above_8(image: Image.Image, data: bytes) -> int:
    """Bits per sample of a 16-bit PNG or a 9- to 16-bit TIFF, whose pixels Pillow would cut to
    8 bits (or not decode); 0 for every other image.

    A 16-bit CMYK TIFF is left to Pillow: OpenCV would take its four channels for BGRA.
    """
    if image.format == "PNG":
        return 16 if data[24] == 16 else 0  # bit depth in IHDR, the chunk that always comes first
    if image.format == "TIFF" and image.mode != "CMYK":
        bits = max(image.tag_v2.get(TiffImagePlugin.BITSPERSAMPLE, (8,)))
        return bits if 8 < bits <= 16 else 0
    return 0


def _to_full_16_bit(samples: np.ndarray | None, bits: int) -> np.ndarray | None:
    """`bits`-bit samples that OpenCV shifted to the top of uint16, spread over 0-65535, so that
    a 12-bit file's white (4095) is 16-bit white and not 65520."""
    if samples is None or bits == 16:
        return samples
    scaled = (samples >> (16 - bits)) * np.float32(65535 / (2**bits - 1))
    return np.rint(scaled).astype(np.uint16)


# libtiff and OpenCV print to the stderr file descriptor itself (up to hundreds of lines for a
# damaged TIFF), which only redirecting the descriptor silences. The lock keeps concurrent reads
# (a batch beside the GUI) from swapping it under each other; other threads' stderr output during
# a read is lost, which is why the redirection lasts one decode only.
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _decoder_output_captured() -> Iterator[None]:
    """Keep what the decoders print and warn off the terminal: read_image says it in one line."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _decode_with_opencv(data: bytes, fmt: str) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB H×W×3 and alpha H×W (or None) in the file's own integer dtype, as stored (not turned)."""
    if fmt == "TIFF":
        data = _without_tiff_orientation(data)
    # IMREAD_UNCHANGED keeps 16 bits and alpha, and ignores EXIF orientation (applied later).
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise OSError("the pixel data cannot be decoded")
    if decoded.ndim == 2:
        decoded = decoded[..., np.newaxis]
    channels = decoded.shape[2]
    if channels >= 3:
        color = decoded[..., 2::-1]  # OpenCV stores BGR
    else:
        color = np.repeat(decoded[..., :1], 3, axis=2)
    alpha = decoded[..., -1] if channels in (2, 4) else None
    return color, alpha


def _without_tiff_orientation(data: bytes) -> bytes:
    """A TIFF file with the Orientation tag of its first directory set to 1.

    OpenCV's TIFF decoder turns the pixels by that tag even with IMREAD_UNCHANGED (unlike its PNG
    decoder), so it would be applied twice; resetting it keeps one rule for every format.
    """
    order = "<" if data[:2] == b"II" else ">"
    big_tiff = struct.unpack_from(order + "H", data, 2)[0] == 43
    offset_format, count_format, entry_size, value_at = (
        ("Q", "Q", 20, 12) if big_tiff else ("I", "H", 12, 8))
    directory = struct.unpack_from(order + offset_format, data, 8 if big_tiff else 4)[0]
    count = struct.unpack_from(order + count_format, data, directory)[0]
    first_entry = directory + struct.calcsize(count_format)
    for entry in range(first_entry, first_entry + count * entry_size, entry_size):
        if struct.unpack_from(order + "H", data, entry)[0] == Base.Orientation:
            patched = bytearray(data)
            struct.pack_into(order + "H", patched, entry + value_at, 1)
            return bytes(patched)
    return data


def _decode_with_pillow(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB uint8 H×W×3 and alpha uint8 H×W (or None), as stored (not turned)."""
    if image.mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(image)), None
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    decoded = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    return decoded[..., :3], (decoded[..., 3] if has_alpha else None)


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """sRGB through the embedded ICC profile when there is a usable one, else Pillow's formula."""
    profile = image.info.get("icc_profile")
    if profile:
        try:
            return ImageCms.profileToProfile(
                image, ImageCms.ImageCmsProfile(io.BytesIO(profile)), _SRGB_PROFILE,
                outputMode="RGB")
        except ImageCms.PyCMSError:
            pass  # a broken or non-CMYK profile: the plain conversion still gives a usable photo
    return image.convert("RGB")


def _jpeg_quality(luminance_table) -> int:
    """The libjpeg quality (1-100) whose scaled standard table is nearest to a file's luminance
    table (natural order); cameras' own tables get the quality that quantises as coarsely."""
    qualities = np.arange(1, 101)
    scale = np.where(qualities < 50, 5000 // qualities, 200 - 2 * qualities)
    tables = np.clip((_STANDARD_LUMINANCE * scale[:, None] + 50) // 100, 1, 255)
    distance = np.abs(tables - np.asarray(luminance_table)).sum(axis=1)
    return int(qualities[len(qualities) - 1 - np.argmin(distance[::-1])])  # ties: the higher


def _upright_exif(image: Image.Image) -> tuple[int, bytes | None]:
    """The EXIF orientation still to apply and the EXIF block with Orientation 1 (None without
    EXIF).

    Raises:
        one of _DECODE_ERRORS or UserWarning (Pillow only warns of a truncated block) when the
        block is damaged.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        exif = _exif_of(image)
        orientation = _make_upright(exif)
        return orientation, exif.tobytes() if len(exif) else None


def _exif_of(image: Image.Image) -> Image.Exif:
    """The EXIF tags of an open image (empty when it has none)."""
    if image.format == "TIFF":
        exif = image.getexif()
        for tag in set(exif) - _EXIF_IFD0_TAGS:
            del exif[tag]
        return exif
    # The eXIf chunk / APP1 segment / EXIF chunk Pillow has already parsed. (For PNG, getexif()
    # would decode all pixels again to look for an eXIf chunk after them.)
    exif = Image.Exif()
    if image.info.get("exif"):
        exif.load(image.info["exif"])
    return exif


def _make_upright(exif: Image.Exif) -> int:
    """Set Orientation to 1 (the pixels are, or are about to be, stored upright); return the old
    value (1 when the tag is missing)."""
    orientation = exif.get(Base.Orientation, 1)
    if Base.Orientation in exif:
        exif[Base.Orientation] = 1
    return orientation


def _upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """`array` (H×W or H×W×C) turned as EXIF `orientation` says; a C-contiguous array."""
    turn = _TURNS.get(orientation)
    return np.ascontiguousarray(array if turn is None else turn(array))


def _rgb_profile(profile: bytes | None) -> bytes | None:
    """`profile` if it describes an RGB colour space (ICC header bytes 16-19), else None."""
    return profile if profile and profile[16:20] == b"RGB " else None


def _to_unit_float(values: np.ndarray) -> np.ndarray:
    """Unsigned integers -> float32 in [0, 1] (full scale of their dtype -> 1)."""
    result = np.array(values, dtype=np.float32)
    result /= np.iinfo(values.dtype).max
    return result


# --- writing -------------------------------------------------------------------------------------


def _quantize(values: np.ndarray, dtype: type[np.unsignedinteger]) -> np.ndarray:
    """Float values in [0, 1] (clipped) -> the full range of unsigned `dtype`, rounded."""
    top = np.iinfo(dtype).max
    scaled = np.multiply(values, top, dtype=np.float32)
    np.clip(scaled, 0, top, out=scaled)
    return np.rint(scaled, out=scaled).astype(dtype)


def _alpha_as(alpha: np.ndarray, dtype: type[np.unsignedinteger]) -> np.ndarray:
    """The alpha channel at the output's bit depth; untouched when it already matches."""
    if alpha.dtype == dtype:
        return alpha
    return _quantize(alpha / np.iinfo(alpha.dtype).max, dtype)


def _same_file(path: Path, other: Path) -> bool:
    """True when both paths exist and are one file (symlinks, hard links, letter case)."""
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def _write_atomically(path: Path, fmt: str, encode: Callable[[IO[bytes]], None]) -> None:
    """Run `encode` on a temporary file that replaces `path` only if encoding succeeds."""
    if not path.parent.is_dir():
        raise ImageWriteError(path, f"folder {path.parent} does not exist")
    try:
        with atomic_write(path) as file:
            encode(file)
    except PermissionError as exc:
        raise ImageWriteError(path, "permission denied") from exc
    except (OSError, ValueError, cv2.error) as exc:
        raise ImageWriteError(path, f"cannot write {fmt} ({_one_line(exc)})") from exc


def _encode_with_pillow(file: IO[bytes], fmt: str, color: np.ndarray, alpha: np.ndarray | None,
                        exif: Image.Exif | None, icc: bytes | None, quality: int) -> None:
    """JPEG, WebP or BMP from 8-bit RGB (+ alpha); Pillow's BMP writer ignores the options."""
    image = Image.fromarray(color if alpha is None else np.dstack([color, alpha]))
    options: dict[str, object] = {"quality": quality}
    if exif is not None:
        options["exif"] = exif
    if icc:
        options["icc_profile"] = icc
    image.save(file, format=fmt, **options)


def _encode_png(file: IO[bytes], color: np.ndarray, alpha: np.ndarray | None,
                exif: Image.Exif | None, icc: bytes | None) -> None:
    """PNG of grey H×W or RGB H×W×3 (+ alpha), 8 or 16 bits, with iCCP and eXIf chunks."""
    if color.ndim == 2 and alpha is not None:
        # OpenCV writes no grey + alpha PNG: three equal channels keep the grey neutral.
        color = np.repeat(color[..., np.newaxis], 3, axis=2)
    if color.ndim == 3:
        color = np.dstack([color[..., ::-1]] + ([alpha] if alpha is not None else []))  # to BGR(A)
    ok, encoded = cv2.imencode(".png", color)
    if not ok:
        raise ValueError("OpenCV could not encode the image")
    metadata = b""
    if icc:
        # Profile name, NUL, compression method 0 (zlib), compressed profile.
        metadata += _png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc))
    if exif is not None:
        # eXIf holds the TIFF structure without JPEG's "Exif\0\0" prefix.
        metadata += _png_chunk(b"eXIf", exif.tobytes()[6:])
    # Signature (8) + IHDR (length 4, type 4, data 13, CRC 4); iCCP must precede PLTE and IDAT.
    after_ihdr = 8 + 4 + 4 + 13 + 4
    file.write(encoded[:after_ihdr])
    file.write(metadata)
    file.write(encoded[after_ihdr:])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_tiff(file: IO[bytes], color: np.ndarray, alpha: np.ndarray | None,
                 exif: Image.Exif | None, icc: bytes | None) -> None:
    """Baseline little-endian RGB or grey (+ alpha) TIFF, 8 or 16 bits, Deflate with horizontal
    predictor, EXIF tags and ICC profile in the tag directory, which Pillow's writer lays out."""
    samples = color.reshape(*color.shape[:2], -1)  # grey H×W -> H×W×1
    photometric = 2 if samples.shape[2] == 3 else 1  # RGB, or grey with 0 = black
    if alpha is not None:
        samples = np.dstack([samples, alpha])
    samples = samples.astype(samples.dtype.newbyteorder("<"), copy=False)
    height, width, channels = samples.shape
    # Predictor 2: each sample minus its left neighbour (modulo 2^bits, as numpy's unsigned
    # arithmetic wraps), which lets Deflate shrink smooth photos far more.
    differences = samples.copy()
    differences[:, 1:] -= samples[:, :-1]
    # Level 1, as OpenCV's PNG default: 4-6x faster than level 6 for files ~6 % larger.
    strips = [zlib.compress(differences[top:top + _TIFF_ROWS_PER_STRIP].tobytes(), 1)
              for top in range(0, height, _TIFF_ROWS_PER_STRIP)]

    directory = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, value in _exif_tags(exif).items():
        directory[tag] = value
    if icc:
        directory[TiffImagePlugin.ICCPROFILE] = icc
    # Layout tags last, so that no EXIF tag can override them.
    directory[TiffImagePlugin.IMAGEWIDTH] = width
    directory[TiffImagePlugin.IMAGELENGTH] = height
    directory[TiffImagePlugin.BITSPERSAMPLE] = (samples.dtype.itemsize * 8,) * channels
    directory[TiffImagePlugin.COMPRESSION] = 8  # Adobe Deflate
    directory[TiffImagePlugin.PHOTOMETRIC_INTERPRETATION] = photometric
    directory[TiffImagePlugin.SAMPLESPERPIXEL] = channels
    directory[TiffImagePlugin.ROWSPERSTRIP] = _TIFF_ROWS_PER_STRIP
    directory[TiffImagePlugin.STRIPBYTECOUNTS] = tuple(len(strip) for strip in strips)
    # Offsets relative to the end of the directory: Pillow's writer adds that position, and the
    # strips are written right after it.
    directory[TiffImagePlugin.STRIPOFFSETS] = tuple(
        int(offset) for offset in np.cumsum([0] + [len(strip) for strip in strips[:-1]]))
    directory[TiffImagePlugin.PLANAR_CONFIGURATION] = 1  # RGBRGB...
    directory[TiffImagePlugin.PREDICTOR] = 2
    if alpha is not None:
        directory[TiffImagePlugin.EXTRASAMPLES] = 2  # unassociated (straight) alpha
    directory.save(file)
    for strip in strips:
        file.write(strip)


def _exif_tags(exif: Image.Exif | None) -> dict[int, object]:
    """IFD0 tags of `exif` with the Exif and GPS sub-directories (and Interop inside Exif) as
    dicts, the form Pillow's tag-directory writer serialises as nested directories."""
    if exif is None:
        return {}
    tags: dict[int, object] = {}
    for tag in exif:
        if tag in (IFD.Exif, IFD.GPSInfo):
            value = dict(exif.get_ifd(tag))
            if IFD.Interop in value:
                value[IFD.Interop] = exif.get_ifd(IFD.Interop)
            tags[tag] = value
        else:
            tags[tag] = exif[tag]
    return tags


def _one_line(exc: BaseException) -> str:
    """First line of an exception's message (OpenCV's run over several lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
