"""numpy arrays -> QImage for display, and a reduction pyramid so big photos draw fast.

Pictures are prepared in worker threads. QImage operations (copy, scaled) hold Python's global
interpreter lock for their whole duration — close to a second on a 24 MP photo, during which the
window could not repaint — so the pixels are prepared with numpy and OpenCV (which release it) and
each QImage only *wraps* a numpy buffer that the Picture keeps alive.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QImage

_SMALLEST_LEVEL = 512  # stop halving below this many pixels on the short side
_FORMATS = {3: QImage.Format.Format_RGB888, 4: QImage.Format.Format_RGBA8888}


def to_display_rgb(image: np.ndarray) -> np.ndarray:
    """float RGB H×W×3 in [0, 1] (or uint8 RGB) -> contiguous uint8 RGB H×W×3."""
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image[..., :3])
    scaled = np.clip(image[..., :3], 0.0, 1.0) * np.float32(255.0)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint8)


def wrap(pixels: np.ndarray, fmt: QImage.Format | None = None) -> QImage:
    """A QImage over `pixels` (uint8 H×W×3 RGB or H×W×4 RGBA, C-contiguous), sharing its memory:
    keep `pixels` alive as long as the QImage is used."""
    height, width, channels = pixels.shape
    return QImage(pixels.data, width, height, pixels.strides[0], fmt or _FORMATS[channels])


def rgba_to_qimage(image: np.ndarray) -> QImage:
    """uint8 RGBA H×W×4 (straight alpha) -> a QImage that owns its pixels (small images only)."""
    return wrap(np.ascontiguousarray(image)).copy()


class Picture:
    """An image to paint over the photo's area, with its successive half-size reductions.

    Drawing a 24 MP image zoomed out would make Qt resample every source pixel on each repaint;
    drawing the smallest level that still has at least one pixel per screen pixel keeps
    repaints proportional to the window size. A picture may also be coarser than the photo it
    covers (`full_size`): map overlays are computed at analysis resolution.
    """

    def __init__(self, levels: list[QImage], full_size: QSize, buffers: tuple = ()):
        self.levels = levels
        self.size = QSize(full_size)
        self._buffers = buffers  # the numpy memory the levels wrap

    @classmethod
    def from_array(
        cls,
        pixels: np.ndarray,
        full_size: QSize | None = None,
        pyramid: bool = True,
        fmt: QImage.Format | None = None,
    ) -> Picture:
        """A picture of `pixels`: float RGB H×W×3 in [0, 1], or uint8 RGB/RGBA H×W×C (`fmt`
        overrides the QImage format, e.g. premultiplied RGBA)."""
        base = to_display_rgb(pixels) if pixels.dtype != np.uint8 else np.ascontiguousarray(pixels)
        arrays = [base]
        while pyramid and min(arrays[-1].shape[:2]) > 2 * _SMALLEST_LEVEL:
            height, width = arrays[-1].shape[:2]
            arrays.append(
                cv2.resize(arrays[-1], (width // 2, height // 2), interpolation=cv2.INTER_AREA)
            )
        size = full_size or QSize(base.shape[1], base.shape[0])
        return cls([wrap(a, fmt) for a in arrays], size, tuple(arrays))

    def level_for(self, scale: float, source: QRectF) -> tuple[QImage, QRectF]:
        """The level to draw at `scale` screen px per image px, and `source` (image px) in that
        level's pixels."""
        full_width = self.size.width()
        level = self.levels[0]
        for candidate in self.levels[1:]:
            if candidate.width() / full_width < scale:
                break
            level = candidate
        fx = level.width() / full_width
        fy = level.height() / self.size.height()
        return level, QRectF(
            source.x() * fx, source.y() * fy, source.width() * fx, source.height() * fy
        )


class TintLayer:
    """A colour laid over the photo with a per-pixel strength (the mask, the reference confidence).

    The QImage shares memory with a premultiplied RGBA buffer, so `update(values, region)` after
    a brush stroke rewrites only the touched pixels and the next paint shows them.
    """

    def __init__(self, shape: tuple[int, int], rgb: tuple[int, int, int]):
        self._rgb = np.asarray(rgb, dtype=np.float32)
        self.buffer = np.zeros((shape[0], shape[1], 4), dtype=np.uint8)
        self.image = wrap(self.buffer, QImage.Format.Format_RGBA8888_Premultiplied)

    def update(self, values: np.ndarray, region: tuple[slice, slice] | None = None) -> None:
        """Redraw from `values` (float32 H×W in [0, 1], full size) inside `region` (all if None)."""
        region = region or (slice(None), slice(None))
        alpha = np.clip(values[region], 0.0, 1.0)[..., None] * np.float32(255.0)
        patch = self.buffer[region]
        patch[..., :3] = (alpha * (self._rgb / 255.0) + 0.5).astype(np.uint8)
        patch[..., 3:] = (alpha + 0.5).astype(np.uint8)

    def picture(self, full_size: QSize | None = None) -> Picture:
        """A picture that shows the layer as it is updated."""
        return Picture([self.image], full_size or self.image.size(), (self.buffer,))
