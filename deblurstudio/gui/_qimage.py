"""numpy arrays <-> QImage for display, and a reduction pyramid so big photos draw fast.

QImage (unlike QPixmap) may be built in a worker thread, so pictures of 24 MP photos and maps are
prepared off the UI thread and the window only paints them.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QImage

_SMALLEST_LEVEL = 512  # stop halving below this many pixels on the short side


def to_display_rgb(image: np.ndarray) -> np.ndarray:
    """float RGB H×W×3 in [0, 1] (or uint8 RGB) -> contiguous uint8 RGB H×W×3."""
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image[..., :3])
    scaled = np.clip(image[..., :3], 0.0, 1.0) * np.float32(255.0)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint8)


def rgb_to_qimage(image: np.ndarray) -> QImage:
    """float RGB H×W×3 in [0, 1] or uint8 RGB H×W×3 -> a QImage that owns its pixels."""
    rgb = to_display_rgb(image)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def rgba_to_qimage(image: np.ndarray) -> QImage:
    """uint8 RGBA H×W×4 (straight alpha) -> a QImage that owns its pixels."""
    rgba = np.ascontiguousarray(image)
    height, width = rgba.shape[:2]
    return QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()


class TintLayer:
    """A colour laid over the photo with a per-pixel strength (the mask, the reference confidence).

    The QImage shares memory with a premultiplied RGBA buffer, so `update(values, region)` after
    a brush stroke rewrites only the touched pixels and the next paint shows them.
    """

    def __init__(self, shape: tuple[int, int], rgb: tuple[int, int, int]):
        self._rgb = np.asarray(rgb, dtype=np.float32)
        self._buffer = np.zeros((shape[0], shape[1], 4), dtype=np.uint8)
        self.image = QImage(
            self._buffer.data,
            shape[1],
            shape[0],
            4 * shape[1],
            QImage.Format.Format_RGBA8888_Premultiplied,
        )

    def update(self, values: np.ndarray, region: tuple[slice, slice] | None = None) -> None:
        """Redraw from `values` (float32 H×W in [0, 1], full size) inside `region` (all if None)."""
        region = region or (slice(None), slice(None))
        alpha = np.clip(values[region], 0.0, 1.0)[..., None] * np.float32(255.0)
        patch = self._buffer[region]
        patch[..., :3] = (alpha * (self._rgb / 255.0) + 0.5).astype(np.uint8)
        patch[..., 3:] = (alpha + 0.5).astype(np.uint8)


class Picture:
    """A QImage and its successive half-size reductions (a mip-map).

    Drawing a 24 MP image zoomed out would make Qt resample every source pixel on each repaint;
    drawing the smallest level that still has at least one pixel per screen pixel keeps
    repaints proportional to the window size.
    """

    def __init__(self, image: QImage, pyramid: bool = True):
        self.levels = [image]
        while (
            pyramid and min(self.levels[-1].width(), self.levels[-1].height()) > 2 * _SMALLEST_LEVEL
        ):
            last = self.levels[-1]
            self.levels.append(
                last.scaled(
                    max(1, last.width() // 2),
                    max(1, last.height() // 2),
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )

    @classmethod
    def from_rgb(cls, image: np.ndarray) -> Picture:
        return cls(rgb_to_qimage(image))

    @property
    def size(self) -> QSize:
        return self.levels[0].size()

    def level_for(self, scale: float, source: QRectF) -> tuple[QImage, QRectF]:
        """The level to draw at `scale` screen px per full-size px, and `source` (full-size px)
        in that level's pixels."""
        level = self.levels[0]
        for candidate in self.levels[1:]:
            if candidate.width() / self.levels[0].width() < scale:
                break
            level = candidate
        fx = level.width() / self.levels[0].width()
        fy = level.height() / self.levels[0].height()
        return level, QRectF(
            source.x() * fx, source.y() * fy, source.width() * fx, source.height() * fy
        )
