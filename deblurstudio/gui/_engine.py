"""Jobs that run the engine (`deblurstudio.core`) off the UI thread, and prepare what the window
paints (QImages may be built outside the UI thread; QPixmaps may not).

The modules that import torch (pipeline, modelstore, devices, batch) are imported inside the jobs,
never at import time of the GUI, so the window appears before torch has loaded.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage

from deblurstudio.core import imageio, visualise
from deblurstudio.core.cancel import CancelToken
from deblurstudio.gui._jobs import JobFactory
from deblurstudio.gui._qimage import Picture, TintLayer

DISPLAY_MAX_SIDE = 2048  # px: the largest map picture drawn over the photo
GLYPH_SPACINGS = (2, 4, 8, 16, 32, 64, 128, 256)  # motion glyph grids, in display-map px
_MAX_GLYPHS = 300_000
CONFIDENCE_RGB = (40, 220, 90)
THUMBNAIL_SIDE = 440


@dataclass
class EngineInfo:
    """What the engine offers on this machine.

    Attributes:
        models: installed `modelstore.ModelEntry`s.
        defaults: role ("deblur", "fast", "reference", "motion") -> model id, or None when nothing
            installed fills the role.
        devices: (label, device name) pairs that work here, "auto" first.
        versions: component -> version string, for the About box.
    """

    models: list[Any]
    defaults: dict[str, str | None]
    devices: list[tuple[str, str]]
    versions: dict[str, str]


def discover_engine() -> EngineInfo:
    """List models and devices. Imports torch: run it in a worker."""
    import cv2
    import PySide6
    import torch

    from deblurstudio import __version__
    from deblurstudio.core import devices, modelstore
    from deblurstudio.core.errors import DeblurStudioError, ModelNotFoundError

    defaults: dict[str, str | None] = {}
    for role in modelstore.ROLES:
        try:
            defaults[role] = modelstore.default_model_id(role)
        except ModelNotFoundError:
            defaults[role] = None
    available = [("Automatic", "auto")]
    labels = {"cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (Metal)"}
    for name in devices.DEVICE_CHOICES[1:]:
        try:
            device = devices.resolve_device(name)
        except DeblurStudioError:
            continue
        label = labels[name]
        if device.type == "cuda":
            label = f"GPU: {torch.cuda.get_device_name(device)}"
        available.append((label, name))
    versions = {
        "DeblurStudio": __version__,
        "Python": platform.python_version(),
        "PyTorch": torch.__version__,
        "Qt / PySide6": PySide6.__version__,
        "NumPy": np.__version__,
        "OpenCV": cv2.__version__,
    }
    return EngineInfo(modelstore.list_models(), defaults, available, versions)


@dataclass
class MapPictures:
    """The analysis maps and their pictures.

    Attributes:
        blur_probability: float32 H×W in [0, 1], or None.
        motion_map: float32 H×W×2 in image px, or None.
        reference_confidence: float32 H×W in [0, 1], or None.
        blur: heat map picture. motion: colour-wheel picture. confidence: green tint picture.
        glyphs: grid spacing (image px) -> N×4 float32 rows of x, y, dx, dy (image px).
            A glyph as long as its grid cell stands for `motion_scale` px of blur.
        motion_scale: the motion length (px) at full saturation / full glyph length.
    """

    blur_probability: np.ndarray | None = None
    motion_map: np.ndarray | None = None
    reference_confidence: np.ndarray | None = None
    blur: Picture | None = None
    motion: Picture | None = None
    confidence: Picture | None = None
    glyphs: dict[float, np.ndarray] | None = None
    motion_scale: float | None = None


def _display_map(array: np.ndarray) -> np.ndarray:
    """`array` (H×W or H×W×C) reduced by area averaging so its longest side is at most
    DISPLAY_MAX_SIDE; the values are unchanged in meaning (motion stays in full-resolution px)."""
    height, width = array.shape[:2]
    factor = max(height, width) / DISPLAY_MAX_SIDE
    if factor <= 1.0:
        return array
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA)


def render_maps(
    blur_probability: np.ndarray | None,
    motion_map: np.ndarray | None,
    reference_confidence: np.ndarray | None = None,
) -> MapPictures:
    """Pictures of the full-resolution maps (pixels by `core.visualise`).

    The pictures are made from the maps reduced to DISPLAY_MAX_SIDE: the analysis networks run
    at about 1024 px anyway, and visualising a 24 MP motion map at full size takes tens of
    seconds. Glyph positions and lengths are scaled back to full-resolution px.
    """
    maps = MapPictures(blur_probability, motion_map, reference_confidence)
    some_map = next(
        (m for m in (blur_probability, motion_map, reference_confidence) if m is not None), None
    )
    if some_map is None:
        return maps
    full_size = QSize(some_map.shape[1], some_map.shape[0])
    if blur_probability is not None:
        maps.blur = Picture.from_array(
            visualise.blur_heatmap(_display_map(blur_probability)), full_size
        )
    if motion_map is not None:
        maps.motion_scale = visualise.motion_scale(motion_map)
        small = _display_map(motion_map)
        maps.motion = Picture.from_array(
            visualise.motion_to_color(small, maps.motion_scale), full_size
        )
        to_full = np.array(
            [motion_map.shape[1] / small.shape[1], motion_map.shape[0] / small.shape[0]] * 2,
            np.float32,
        )
        maps.glyphs = {}
        for spacing in GLYPH_SPACINGS:
            rows, cols = small.shape[0] // spacing, small.shape[1] // spacing
            if rows * cols == 0 or rows * cols > _MAX_GLYPHS:
                continue
            glyphs = visualise.motion_arrows(small, spacing, maps.motion_scale)
            maps.glyphs[spacing * float(to_full[0])] = (
                np.asarray(glyphs, np.float32).reshape(-1, 4) * to_full
            )
    if reference_confidence is not None:
        small = _display_map(reference_confidence)
        tint = TintLayer(small.shape, CONFIDENCE_RGB)
        tint.update(small)
        maps.confidence = tint.picture(full_size)
    return maps


@dataclass
class OpenedImage:
    """A photo read from disk, ready to show."""

    path: str
    photo: imageio.Photo
    picture: Picture
    thumbnail: QImage


def open_image(path: str) -> OpenedImage:
    """Decode `path` (may take seconds for a 24 MP file) and make its display pictures."""
    photo = imageio.read_image(path)
    picture = Picture.from_array(photo.pixels)
    thumbnail = picture.levels[-1].scaled(
        THUMBNAIL_SIDE,
        THUMBNAIL_SIDE,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    return OpenedImage(os.fspath(path), photo, picture, thumbnail)


def analyse_job(image: np.ndarray, device: str) -> JobFactory:
    """Blur probability and motion of `image` (float32 RGB H×W×3 in [0, 1]) -> MapPictures."""

    def job(token: CancelToken):
        from deblurstudio.core import pipeline

        analysis = yield from pipeline.analyse(image, token, device=device)
        return render_maps(analysis.blur_probability, analysis.motion_map)

    return job


@dataclass
class DeblurOutcome:
    """A finished deblur run.

    Attributes:
        result: the pipeline's DeblurResult (for a preview: of the region only).
        after: the picture to show as "after": the restored photo, or for a preview the photo
            with the restored region pasted in.
        maps: pictures of the result's maps (None for a preview: they cover only the region).
        region: (x0, y0, x1, y1) in image px for a preview, None for the whole photo.
    """

    result: Any
    after: Picture
    maps: MapPictures | None
    region: tuple[int, int, int, int] | None


def deblur_job(
    image: np.ndarray,
    *,
    model_id: str | None,
    mask: np.ndarray | None,
    reference: np.ndarray | None,
    device: str,
    region: tuple[int, int, int, int] | None = None,
    motion_map: np.ndarray | None = None,
) -> JobFactory:
    """Deblur `image` (float32 RGB H×W×3 in [0, 1]) — or only `region` (x0, y0, x1, y1, image
    px) of it, for a preview — with the pipeline; returns a DeblurOutcome. `motion_map`: the
    photo's motion map when known (not estimated again). A preview registers the reference onto
    the whole photo (a small region may hold too few features to match), so it uses the
    reference exactly when the whole photo's deblurring will."""

    def job(token: CancelToken):
        from deblurstudio.core import pipeline, registration

        x0, y0, x1, y1 = region or (0, 0, image.shape[1], image.shape[0])
        registered = None
        if region is not None and reference is not None:
            yield pipeline.Progress(0.0, "matching the reference")
            registered = registration.register(image, reference).shifted(x0, y0)
        request = pipeline.DeblurRequest(
            image=image[y0:y1, x0:x1],
            model_id=model_id,
            mask=None if mask is None else mask[y0:y1, x0:x1],
            reference=reference,
            device=device,
            maps=region is None,  # a preview shows only the restored region
            motion_map=motion_map if region is None else None,
            reference_registration=registered,
        )
        result = yield from pipeline.deblur(request, token)
        if region is None:
            maps = render_maps(
                result.blur_probability, result.motion_map, result.reference_confidence
            )
            return DeblurOutcome(result, Picture.from_array(result.restored), maps, None)
        after = image.copy()
        after[y0:y1, x0:x1] = result.restored
        return DeblurOutcome(result, Picture.from_array(after), None, region)

    return job


def save_result(
    path: str, photo: imageio.Photo, restored: np.ndarray, allow_overwrite: bool
) -> str:
    """Write `restored` (float32 RGB H×W×3 in [0, 1]) with the original's format details, EXIF,
    ICC profile, alpha and bit depth."""
    imageio.write_image(
        path, dataclasses.replace(photo, pixels=restored), allow_overwrite=allow_overwrite
    )
    return path


def export_motion(path: str, motion_map: np.ndarray) -> str:
    """Write the self-explaining motion picture (colours, glyphs, key) of `motion_map`."""
    picture = visualise.render_motion(motion_map).astype(np.float32) / np.float32(255.0)
    imageio.write_image(path, imageio.Photo(pixels=picture))
    return path


def export_mask(path: str, mask: np.ndarray) -> str:
    """Write a float32 H×W map in [0, 1] (mask or blur probability) as a grey PNG."""
    imageio.write_mask(path, mask)
    return path
