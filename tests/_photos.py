"""Small photo files for batch and CLI tests: a camera JPEG with EXIF and an ICC profile, a 16-bit
PNG, and files that only look like photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms
from PIL.ExifTags import Base
from skimage import data as skdata

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
CAMERA_MAKE = "DeblurStudio Test Camera"


def small_photo(height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 RGB height×width: a corner of skimage's cat photo."""
    return np.ascontiguousarray(skdata.chelsea()[:height, :width])


def write_camera_jpeg(path: Path, pixels: np.ndarray | None = None) -> Path:
    """A JPEG with EXIF (Make = CAMERA_MAKE) and an sRGB ICC profile."""
    exif = Image.Exif()
    exif[Base.Make] = CAMERA_MAKE
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small_photo() if pixels is None else pixels).save(
        path, quality=95, exif=exif, icc_profile=SRGB_ICC
    )
    return path


def write_16_bit_png(path: Path) -> Path:
    """A 16-bit RGB PNG whose levels are not multiples of 257 (so 8 bits would lose them)."""
    pixels = small_photo().astype(np.uint16) * 257 + 100
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels[..., ::-1])
    return path


def write_corrupt_jpeg(path: Path) -> Path:
    """A JPEG cut off after its header: looks like a photo, cannot be decoded."""
    full = write_camera_jpeg(path).read_bytes()
    path.write_bytes(full[: len(full) // 3])
    return path


def exif_make(path: Path) -> str | None:
    with Image.open(path) as image:
        return image.getexif().get(Base.Make)


def icc_profile(path: Path) -> bytes | None:
    with Image.open(path) as image:
        return image.info.get("icc_profile")
