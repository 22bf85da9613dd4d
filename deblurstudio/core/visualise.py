"""Pictures of the analysis maps: blur-probability heat map, motion colour wheel, motion glyphs.

Everything here returns plain arrays (uint8 RGB H×W×3 or glyph coordinates); the GUI paints them
with Qt, the CLI writes them as PNG files. No Qt here.

Motion conventions: a motion map is float32 H×W×2 (dx, dy) in pixels of the full-resolution image,
x to the right and y down; the blur trajectory through p runs from p − m/2 to p + m/2, so m and −m
describe the same blur. Every picture of motion therefore shows the *orientation* of the blur (the
angle modulo 180°), never an arrow head: hue turns once round the colour circle while the
orientation turns through 180°, so opposite vectors get the same colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# OpenCV's inferno: perceptually uniform, lightness rises monotonically from black (sharp) to pale
# yellow (blurred), and it stays readable in grey-scale prints and for colour-blind viewers.
_INFERNO_RGB: np.ndarray = cv2.applyColorMap(
    np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO
)[:, 0, ::-1].copy()


@dataclass(frozen=True)
class HeatmapLegend:
    """The colour ramp of `blur_heatmap` and where to put tick labels.

    Attributes:
        ramp: uint8 RGB N×3; ramp[i] is the colour of probability i / (N − 1).
        ticks: probabilities in [0, 1] to label, ascending (position along the ramp = tick value).
    """

    ramp: np.ndarray
    ticks: tuple[float, ...]


def blur_heatmap(probability: np.ndarray) -> np.ndarray:
    """Colour a blur-probability map with the inferno colour map.

    Args:
        probability: float H×W in [0, 1] (1 = blurred); values outside are clipped, NaN counts as 0.

    Returns:
        uint8 RGB H×W×3; brighter = more likely blurred.
    """
    levels = np.nan_to_num(np.asarray(probability, dtype=np.float32), nan=0.0)
    index = np.rint(np.clip(levels, 0.0, 1.0) * 255.0).astype(np.uint8)
    return _INFERNO_RGB[index]


def heatmap_legend(steps: int = 256, ticks: int = 5) -> HeatmapLegend:
    """The ramp `blur_heatmap` uses, sampled at `steps` evenly spaced probabilities from 0 to 1,
    with `ticks` evenly spaced tick values (0, 0.25, ..., 1 for the default)."""
    probabilities = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    return HeatmapLegend(
        ramp=blur_heatmap(probabilities[None, :])[0],
        ticks=tuple(float(t) for t in np.linspace(0.0, 1.0, ticks)),
    )


MIN_MOTION_SCALE = 1.0
"""Smallest default scale of the motion pictures, in pixels: blur under a pixel is not visible."""


def longest_motion(motion: np.ndarray) -> float:
    """The longest motion vector of an H×W×2 map, in pixels (0 for a still map)."""
    motion = np.asarray(motion, dtype=np.float32)
    return float(np.sqrt(np.max(motion[..., 0] ** 2 + motion[..., 1] ** 2, initial=0.0)))


def motion_scale(motion: np.ndarray) -> float:
    """The default scale of the motion pictures: the longest motion in the map, in pixels, but
    at least MIN_MOTION_SCALE, so a still or nearly still photo stays white and without glyphs
    instead of sub-pixel noise being stretched to full saturation and full-length lines."""
    return max(longest_motion(motion), MIN_MOTION_SCALE)


def motion_to_color(motion: np.ndarray, max_length: float | None = None) -> np.ndarray:
    """Colour-code a motion map: hue = blur orientation, saturation = blur length.

    Orientation is taken modulo 180° (see the module docstring): hue 0° (red) is horizontal blur,
    vertical blur is cyan, the diagonals lie in between. Zero motion is white; a motion of
    `max_length` pixels or more is fully saturated.

    Args:
        motion: float H×W×2 (dx, dy) in pixels.
        max_length: length in pixels drawn at full saturation; None = `motion_scale(motion)`.
            Report it next to the picture (it is the scale of the key from `motion_color_wheel`).

    Returns:
        uint8 RGB H×W×3.
    """
    motion = np.asarray(motion, dtype=np.float32)
    if max_length is None:
        max_length = motion_scale(motion)
    dx, dy = motion[..., 0], motion[..., 1]
    length = np.sqrt(dx * dx + dy * dy)
    orientation = np.degrees(np.arctan2(dy, dx)) % 180.0
    # OpenCV's 8-bit HSV stores hue as degrees / 2 (0..179): that is exactly the orientation in
    # degrees, so one full colour circle per 180° comes for free and stays 8-bit on 24 MP maps.
    hsv = np.empty(motion.shape[:2] + (3,), dtype=np.uint8)
    hsv[..., 0] = np.rint(orientation).astype(np.uint16) % 180
    hsv[..., 1] = np.rint(np.clip(length / max(float(max_length), 1e-6), 0.0, 1.0) * 255.0)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def motion_color_wheel(size: int, max_length: float = 1.0) -> np.ndarray:
    """The key for `motion_to_color`: a disc whose centre is no motion and whose rim is a motion of
    `max_length` pixels, each point coloured as the motion from the centre to it.

    Returns:
        uint8 RGBA size×size×4, transparent outside the disc (anti-aliased rim).
    """
    centre = (size - 1) / 2.0
    radius = size / 2.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    offset = np.stack([xs - centre, ys - centre], axis=-1)
    pixels_per_motion_pixel = radius / max(float(max_length), 1e-6)
    wheel = np.empty((size, size, 4), dtype=np.uint8)
    wheel[..., :3] = motion_to_color(offset / pixels_per_motion_pixel, max_length)
    distance = np.hypot(offset[..., 0], offset[..., 1])
    wheel[..., 3] = np.rint(np.clip(radius - distance, 0.0, 1.0) * 255.0).astype(np.uint8)
    return wheel


def motion_arrows(
    motion: np.ndarray, spacing: int = 32, max_length: float | None = None
) -> list[tuple[float, float, float, float]]:
    """Glyphs for a motion map: one line segment per `spacing`×`spacing` cell.

    Each glyph is centred on its cell and drawn from (x − dx/2, y − dy/2) to (x + dx/2, y + dy/2),
    like the blur trajectory itself; a motion of `max_length` pixels is drawn `spacing` pixels long
    (0.9 × spacing, so neighbouring glyphs never touch), shorter ones in proportion. Within a cell
    the orientations are averaged as doubled angles, so m and −m reinforce instead of cancelling,
    and a cell of disagreeing orientations gets a short glyph. Draw without arrow heads: the sign
    of the motion is unknown.

    Args:
        motion: float H×W×2 (dx, dy) in pixels.
        spacing: cell size in image pixels.
        max_length: motion length in pixels drawn as a full-length glyph; None =
            `motion_scale(motion)`. Report it as the glyph scale.

    Returns:
        (x, y, dx, dy) per cell with a glyph at least half a pixel long, in image pixels.
    """
    motion = np.asarray(motion, dtype=np.float32)
    if max_length is None:
        max_length = motion_scale(motion)
    rows, cols = motion.shape[0] // spacing, motion.shape[1] // spacing
    if rows == 0 or cols == 0:
        return []
    # Centre the grid of whole cells on the image.
    top = (motion.shape[0] - rows * spacing) // 2
    left = (motion.shape[1] - cols * spacing) // 2
    cells = motion[top : top + rows * spacing, left : left + cols * spacing]
    dx, dy = cells[..., 0], cells[..., 1]
    length = np.sqrt(dx * dx + dy * dy)
    safe_length = np.where(length > 0.0, length, 1.0)
    # length × (cos 2θ, sin 2θ) = (dx² − dy², 2·dx·dy) / length.
    doubled = np.stack([(dx * dx - dy * dy) / safe_length, 2.0 * dx * dy / safe_length], axis=-1)
    doubled = doubled.reshape(rows, spacing, cols, spacing, 2).mean(axis=(1, 3))
    cell_length = np.hypot(doubled[..., 0], doubled[..., 1])
    angle = 0.5 * np.arctan2(doubled[..., 1], doubled[..., 0])
    glyph_length = cell_length * (0.9 * spacing / max(float(max_length), 1e-6))
    glyphs = []
    for row, col in zip(*np.nonzero(glyph_length >= 0.5), strict=True):
        glyphs.append(
            (
                float(left + (col + 0.5) * spacing),
                float(top + (row + 0.5) * spacing),
                float(glyph_length[row, col] * np.cos(angle[row, col])),
                float(glyph_length[row, col] * np.sin(angle[row, col])),
            )
        )
    return glyphs


def draw_motion_arrows(
    rgb: np.ndarray,
    motion: np.ndarray,
    spacing: int = 32,
    max_length: float | None = None,
    color: tuple[int, int, int] = (255, 255, 255),
    thickness: int = 1,
) -> np.ndarray:
    """Draw the `motion_arrows` glyphs onto a copy of `rgb` (for exported pictures).

    Each glyph gets a dark outline so it reads on light and dark photos alike.

    Args:
        rgb: uint8 RGB H×W×3 of the same size as `motion`.
        motion, spacing, max_length: as for `motion_arrows`.
        color: glyph colour, RGB.
        thickness: glyph line width in pixels.

    Returns:
        uint8 RGB H×W×3.
    """
    canvas = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    segments = []
    for x, y, dx, dy in motion_arrows(motion, spacing, max_length):
        # cv2 draws on a fixed-point grid: 4 fractional bits keep sub-pixel glyph ends.
        start = (round((x - dx / 2) * 16), round((y - dy / 2) * 16))
        end = (round((x + dx / 2) * 16), round((y + dy / 2) * 16))
        segments.append((start, end))
    for line_color, width in (((0, 0, 0), thickness + 2), (color, thickness)):
        for start, end in segments:
            cv2.line(canvas, start, end, line_color, width, cv2.LINE_AA, shift=4)
    return canvas


def render_motion(
    motion: np.ndarray, spacing: int = 32, max_length: float | None = None
) -> np.ndarray:
    """A self-explaining picture of a motion map for export: the colour-coded map, the glyphs, and
    in the top-right corner the colour-wheel key labelled with its scale in pixels.

    Args:
        motion: float H×W×2 (dx, dy) in pixels.
        spacing: glyph cell size in image pixels.
        max_length: scale of colours and glyphs in pixels; None = `motion_scale(motion)`.

    Returns:
        uint8 RGB H×W×3.
    """
    if max_length is None:
        max_length = motion_scale(motion)
    picture = draw_motion_arrows(
        motion_to_color(motion, max_length), motion, spacing, max_length, color=(255, 255, 255)
    )
    height, width = picture.shape[:2]
    key_size = min(height, width) // 5
    if key_size < 24:  # too small a picture for a legible key
        return picture
    margin = max(4, key_size // 10)
    wheel = motion_color_wheel(key_size, max_length).astype(np.float32)
    alpha = wheel[..., 3:] / 255.0
    region = picture[margin : margin + key_size, width - margin - key_size : width - margin]
    region[...] = np.rint(wheel[..., :3] * alpha + region * (1.0 - alpha)).astype(np.uint8)
    _draw_label(picture, f"{max_length:.1f} px", width - margin - key_size // 2,
                margin + key_size + 2, key_size / 80.0)
    return picture


def _draw_label(picture: np.ndarray, label: str, centre_x: int, top: int, scale: float) -> None:
    """Write `label` once, white on a black box, centred under `centre_x` and moved left or up as
    far as needed to stay whole inside `picture` (uint8 RGB H×W×3, drawn in place).

    The box keeps it readable on any colour and over the glyphs behind it.
    """
    thickness = max(1, round(scale * 1.5))
    (text_width, text_height), baseline = cv2.getTextSize(
        label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness
    )
    padding = max(2, round(text_height / 4))
    box_width, box_height = text_width + 2 * padding, text_height + baseline + 2 * padding
    height, width = picture.shape[:2]
    left = int(np.clip(centre_x - box_width // 2, 0, max(width - box_width, 0)))
    top = int(np.clip(top, 0, max(height - box_height, 0)))
    picture[top : top + box_height, left : left + box_width] = 0
    origin = (left + padding, top + padding + text_height)
    cv2.putText(
        picture, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
        cv2.LINE_AA,
    )
