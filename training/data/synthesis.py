"""Blur synthesis: camera-shake and linear kernels, frame averaging in linear light, Local Blur
Synthesis (LODE paper, 000) with pasted moving and static objects, noise and JPEG, reference views.

Pixel conventions: "sRGB" arrays are float32 H×W×3 RGB in [0, 1] as stored in photos; "linear"
arrays are the same pixels in sensor (linear-light) space, ``srgb ** GAMMA`` — the LODE paper
calibrates the camera response as a power law with γ = 2.2, so exposure integration (frame
averaging, convolution) and alpha compositing happen on linear arrays. Masks are float32 H×W in
[0, 1]; motion maps float32 H×W×2 (dx, dy) in pixels, the blur trajectory through a pixel running
from p − m/2 to p + m/2 (the contract of ``deblurstudio.models.neurmap``). Everything here is
numpy/OpenCV and fast enough to run on the fly in DataLoader workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

GAMMA = 2.2
# A pixel counts as blurred when the blurred image differs from the sharp middle frame by more
# than one 8-bit code value in some channel: any smaller change is invisible once saved.
MASK_TOLERANCE = 1.0 / 255.0
# Paper 000: "the frame sequence length is an odd number randomly sampled from 7 to 13".
FRAME_COUNTS = (7, 9, 11, 13)
# Alpha at or above this counts as opaque for motion ground truth (bilinear warps of a binary mask
# leave 1 − ε inside).
OPAQUE = 0.999
# Share of the noise variance that is signal-dependent shot noise (the rest is read noise).
SHOT_SHARE = (0.3, 0.9)

_U8_TO_LINEAR = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)


def srgb_to_linear(image: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """Camera response inverse: sRGB values in [0, 1] (float or uint8) → float32 linear light."""
    if image.dtype == np.uint8 and gamma == GAMMA:
        return _U8_TO_LINEAR[image]  # table lookup: 10× faster than a power on every pixel
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    return np.power(np.clip(image, 0.0, 1.0, dtype=np.float32), gamma, dtype=np.float32)


def linear_to_srgb(image: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """Camera response: float linear light → float32 sRGB in [0, 1]."""
    return np.power(np.clip(image, 0.0, 1.0, dtype=np.float32), 1.0 / gamma, dtype=np.float32)


# ----------------------------------------------------------------------------------------- kernels


def linear_trajectory(motion: tuple[float, float]) -> np.ndarray:
    """Points (x, y) in px of a straight, constant-speed path from −m/2 to +m/2."""
    dx, dy = motion
    samples = max(2, int(math.ceil(math.hypot(dx, dy) * 4)) + 1)
    s = np.linspace(-0.5, 0.5, samples)[:, None]
    return s * np.array([[dx, dy]], dtype=np.float64)


def shake_trajectory(
    rng: np.random.Generator,
    length: float,
    curvature: float = 0.0,
    jitter: float = 0.0,
    centripetal: float = 0.0,
    impulse_probability: float = 0.0,
    steps: int = 64,
) -> np.ndarray:
    """A random 2-D camera-shake path in the spirit of Boracchi & Foi (2012).

    A particle moves with unit speed; at each step its heading turns by a constant ``curvature``
    (rad/step, arcs) plus Gaussian ``jitter`` (rad), occasionally reverses abruptly
    (``impulse_probability``, the "big shakes" of hand tremor), and is pulled back towards the start
    by ``centripetal`` so the path stays compact. Speed varies smoothly, so the kernel has the
    uneven density of a real exposure. The path is then scaled so its larger bounding-box side is
    ``length`` px.

    Returns:
        (steps, 2) float64 points (x, y) in px, time-ordered.
    """
    heading = rng.uniform(0.0, 2.0 * math.pi)
    log_speed = 0.0
    position = np.zeros(2)
    points = np.empty((steps, 2))
    for i in range(steps):
        points[i] = position
        turn = curvature + jitter * rng.standard_normal()
        if rng.random() < impulse_probability:
            turn += math.pi + rng.uniform(-0.5, 0.5)
        heading += turn
        log_speed = 0.8 * log_speed + 0.3 * rng.standard_normal()
        step = math.exp(log_speed) * np.array([math.cos(heading), math.sin(heading)])
        # Pull towards the origin proportionally to the distance travelled so far (in units of
        # the nominal step), as a hand tremor oscillates around the rest position.
        step -= centripetal * position / max(1.0, i)
        position = position + step
    extent = float(np.max(points.max(axis=0) - points.min(axis=0)))
    if extent < 1e-9:
        return np.zeros((steps, 2))
    return points * (length / extent)


def rasterize_kernel(points: np.ndarray) -> np.ndarray:
    """Blur kernel of an exposure whose image shift follows ``points`` at constant sample rate.

    The path is resampled densely (4 samples per pixel of arc length) and splatted bilinearly. The
    kernel is centred on the path's centroid, so the blurred image stays aligned with the sharp one
    (the centroid is what a network can see in a kernel; the time order is lost in it).

    Args:
        points: (T, 2) float (x, y) in px, time-ordered.

    Returns:
        float32 K×K kernel, K odd, non-negative, summing to 1. A zero-length path gives the 3×3
        identity kernel.
    """
    points = np.asarray(points, dtype=np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    if arc[-1] > 0:
        dense_t = np.linspace(0.0, len(points) - 1, max(len(points), int(arc[-1] * 4) + 1))
        index = np.arange(len(points))
        points = np.stack([np.interp(dense_t, index, points[:, k]) for k in range(2)], axis=1)
    centred = points - points.mean(axis=0)
    radius = int(math.ceil(np.abs(centred).max())) + 1
    size = 2 * radius + 1
    xy = centred + radius
    base = np.floor(xy).astype(np.int64)
    frac = xy - base
    kernel = np.zeros((size, size), dtype=np.float64)
    for ox in (0, 1):
        for oy in (0, 1):
            weight = (frac[:, 0] if ox else 1 - frac[:, 0]) * (frac[:, 1] if oy else 1 - frac[:, 1])
            np.add.at(kernel, (base[:, 1] + oy, base[:, 0] + ox), weight)
    return (kernel / kernel.sum()).astype(np.float32)


def max_kernel_radius(max_length: float) -> int:
    """The largest radius of a `random_kernel(rng, max_length)`: its path spans at most the
    drawn length per axis, around a centroid inside it, plus `rasterize_kernel`'s 1 px; the floor
    + 2 also covers a log-uniform length drawn a rounding error above ``max_length``."""
    return math.floor(max(max_length, 2.0)) + 2


def linear_kernel(motion: tuple[float, float]) -> np.ndarray:
    """Kernel of uniform linear motion (dx, dy) px: a segment from −m/2 to +m/2, summing to 1."""
    return rasterize_kernel(linear_trajectory(motion))


@dataclass(frozen=True)
class Kernel:
    """A global blur kernel and, for uniform linear motion, its exact motion vector.

    Attributes:
        weights: float32 K×K, K odd, non-negative, summing to 1.
        motion: (dx, dy) px of the whole exposure when the motion is linear, else None.
    """

    weights: np.ndarray
    motion: tuple[float, float] | None

    @property
    def radius(self) -> int:
        return self.weights.shape[0] // 2


def random_kernel(
    rng: np.random.Generator, max_length: float, linear_probability: float = 0.4
) -> Kernel:
    """A random global kernel: linear (exact motion known) or a camera-shake trajectory.

    Lengths are log-uniform in [2, max_length] px, so small blurs are as common as big ones.
    """
    length = math.exp(rng.uniform(math.log(2.0), math.log(max(max_length, 2.0))))
    if rng.random() < linear_probability:
        angle = rng.uniform(0.0, math.pi)
        motion = (length * math.cos(angle), length * math.sin(angle))
        return Kernel(linear_kernel(motion), motion)
    points = shake_trajectory(
        rng,
        length,
        curvature=rng.uniform(-0.08, 0.08),
        jitter=rng.uniform(0.0, 0.4),
        centripetal=rng.uniform(0.0, 0.5),
        impulse_probability=rng.uniform(0.0, 0.05),
    )
    return Kernel(rasterize_kernel(points), None)


def convolve(linear: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur a linear-light image by a kernel (true convolution, reflected borders).

    Returns:
        float32 array of the input's shape; callers give a margin of ``kernel radius`` px around
        the area they keep, so borders never reach the kept pixels.
    """
    # filter2D correlates; flipping makes it a convolution, so a kernel that is the density of the
    # image shift d(t) gives mean_t sharp(p − d(t)), the same convention as the pasted objects.
    return cv2.filter2D(linear, -1, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT)


# ----------------------------------------------------------------------------- Local Blur Synthesis


@dataclass
class Cutout:
    """An object cut out of a photo with its mask.

    Attributes:
        linear: float32 h×w×3 linear-light colour.
        alpha: float32 h×w coverage in [0, 1].
    """

    linear: np.ndarray
    alpha: np.ndarray
    # h×w×4: linear colour times alpha, then alpha — what warps interpolate without dark fringes.
    premultiplied: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        alpha = self.alpha[..., None]
        self.premultiplied = np.concatenate([self.linear * alpha, alpha], axis=2, dtype=np.float32)

    @classmethod
    def from_srgb(cls, rgb: np.ndarray, alpha: np.ndarray) -> Cutout:
        """From a float32 (or uint8) sRGB h×w×3 image and an h×w mask in [0, 1] (or bool)."""
        return cls(srgb_to_linear(rgb), np.asarray(alpha, dtype=np.float32))


@dataclass(frozen=True)
class ObjectMotion:
    """Where a pasted object is in each frame of the exposure.

    The frame at exposure time s ∈ [−½, ½] (s = 0: the middle, sharp frame) shows the cutout scaled
    by ``scale · exp(s · log_scale)`` and rotated by ``s · rotation_deg`` about its centre, the
    centre at ``center + s · translation + 4 s² · bend``. Rotation and a uniform scale about the
    same centre commute, so the order of the three transformations (which paper 000 draws at
    random) does not change the frames.

    Attributes:
        center: (x, y) px of the cutout centre in the middle frame.
        scale: size of the cutout in the middle frame relative to its pixels.
        translation: (dx, dy) px from the first to the last frame; for a pure translation this is
            the object's linear blur vector.
        bend: (x, y) px offset of both path ends from the straight line (curved paths).
        rotation_deg: rotation from the first to the last frame, degrees (counter-clockwise on
            screen, y down).
        log_scale: ln(size in last frame / size in first frame).
    """

    center: tuple[float, float]
    scale: float = 1.0
    translation: tuple[float, float] = (0.0, 0.0)
    bend: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    log_scale: float = 0.0

    @property
    def is_static(self) -> bool:
        return self.is_pure_translation and self.translation == (0.0, 0.0)

    @property
    def is_pure_translation(self) -> bool:
        return self.bend == (0.0, 0.0) and self.rotation_deg == 0.0 and self.log_scale == 0.0

    def affine(self, s: float, cutout_shape: tuple[int, int]) -> np.ndarray:
        """2×3 matrix mapping cutout pixel (x, y) to canvas pixel (x, y) at exposure time s."""
        h, w = cutout_shape
        zoom = self.scale * math.exp(s * self.log_scale)
        theta = math.radians(s * self.rotation_deg)
        # Screen y points down, so a counter-clockwise turn on screen is a negative math angle.
        c, n = zoom * math.cos(theta), -zoom * math.sin(theta)
        rot = np.array([[c, -n], [n, c]])
        cx = self.center[0] + s * self.translation[0] + 4 * s * s * self.bend[0]
        cy = self.center[1] + s * self.translation[1] + 4 * s * s * self.bend[1]
        offset = np.array([cx, cy]) - rot @ np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        return np.hstack([rot, offset[:, None]])


@dataclass
class BlurSample:
    """One synthetic training sample, numpy, H×W×C float32.

    Attributes:
        blurred: sRGB H×W×3 in [0, 1].
        sharp: sRGB H×W×3 in [0, 1], the sharp middle frame.
        blur_mask: H×W, 1 where blurred.
        motion: H×W×2 (dx, dy) px, the blur trajectory running p − m/2 → p + m/2.
        motion_valid: H×W, 1 where ``motion`` is the exact linear blur vector.
        kind: "global" | "local" | "mixed" | "sharp".
    """

    blurred: np.ndarray
    sharp: np.ndarray
    blur_mask: np.ndarray
    motion: np.ndarray
    motion_valid: np.ndarray
    kind: str

    def crop(self, top: int, left: int, height: int, width: int) -> BlurSample:
        window = (slice(top, top + height), slice(left, left + width))
        return BlurSample(
            self.blurred[window],
            self.sharp[window],
            self.blur_mask[window],
            self.motion[window],
            self.motion_valid[window],
            self.kind,
        )


@dataclass
class _Exposure:
    """Frames of a pasted-object scene, averaged (all linear light)."""

    average: np.ndarray  # H×W×3
    middle: np.ndarray  # H×W×3, the sharp middle frame
    moving_coverage: np.ndarray  # H×W bool: covered by a moving object in some frame
    motion: np.ndarray  # H×W×2
    motion_valid: np.ndarray  # H×W bool


def _warp_layer(
    cutout: Cutout, motion: ObjectMotion, s: float, canvas: tuple[int, int]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """A cutout at exposure time s, warped into the canvas region it touches.

    Returns:
        (region of the canvas, float32 h×w×4 premultiplied linear colour + alpha there), or None
        when the object is off the canvas. Warping only the touched region keeps a frame cheap.
    """
    height, width = canvas
    h, w = cutout.alpha.shape
    matrix = motion.affine(s, (h, w))
    # The cutout's outline: pixel centres run 0 … w − 1, so its edges are half a pixel further out.
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]]) - np.array([0.5, 0.5, 0])
    xy = corners @ matrix.T
    x0, y0 = np.floor(xy.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    matrix[:, 2] -= (x0, y0)
    rgba = cv2.warpAffine(cutout.premultiplied, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    return (slice(y0, y1), slice(x0, x1)), rgba


def exposure_times(frame_count: int) -> np.ndarray:
    """Exposure times s in [−½, ½] of ``frame_count`` evenly spaced frames (one frame: s = 0)."""
    return np.linspace(-0.5, 0.5, frame_count) if frame_count > 1 else np.zeros(1)


def _render_frames(
    background: np.ndarray, layers: Sequence[tuple[Cutout, ObjectMotion]], frame_count: int
) -> _Exposure:
    """Paste ``layers`` (painted in order, the last on top) over a static background per frame."""
    height, width = background.shape[:2]
    times = exposure_times(frame_count)
    warps: list[list[tuple[tuple[slice, slice], np.ndarray] | None]] = []
    for s in times:
        frame_warps = []
        for index, (cutout, motion) in enumerate(layers):
            if motion.is_static and warps:
                frame_warps.append(warps[0][index])  # a distractor is the same in every frame
            else:
                frame_warps.append(_warp_layer(cutout, motion, float(s), (height, width)))
        warps.append(frame_warps)
    # Only the box the layers touch changes between frames: render just that box.
    regions = [w[0] for frame_warps in warps for w in frame_warps if w is not None]
    top = min((r[0].start for r in regions), default=0)
    left = min((r[1].start for r in regions), default=0)
    bottom = max((r[0].stop for r in regions), default=0)
    right = max((r[1].stop for r in regions), default=0)
    box = (slice(top, bottom), slice(left, right))
    base = background[box]
    total = np.zeros_like(base)
    middle = base
    coverage = np.zeros(base.shape[:2], dtype=bool)
    # Per frame, which layer a pixel shows (−1: background, −2: a blend of several), so motion is
    # known only where one opaque layer (or the background) is seen through the whole exposure.
    first_owner = np.full(base.shape[:2], -1, dtype=np.int16)
    consistent = np.ones(base.shape[:2], dtype=bool)
    for i, frame_warps in enumerate(warps):
        frame = base.copy()
        owner = first_owner if i == 0 else np.full(base.shape[:2], -1, dtype=np.int16)
        for index, warped in enumerate(frame_warps):
            if warped is None:
                continue
            (rows, cols), rgba = warped
            local = (
                slice(rows.start - top, rows.stop - top),
                slice(cols.start - left, cols.stop - left),
            )
            alpha = rgba[..., 3]
            frame[local] = frame[local] * (1.0 - alpha[..., None]) + rgba[..., :3]
            touched = alpha > 0
            owner[local] = np.where(touched, np.where(alpha >= OPAQUE, index, -2), owner[local])
            if not layers[index][1].is_static:
                coverage[local] |= touched
        total += frame
        if i == frame_count // 2:
            middle = frame
        if i > 0:
            consistent &= owner == first_owner
    valid = consistent & (first_owner != -2)
    motion_box = np.zeros(base.shape[:2] + (2,), dtype=np.float32)
    for index, (_, motion) in enumerate(layers):
        if not motion.is_pure_translation:
            valid &= first_owner != index
        elif not motion.is_static:
            motion_box[valid & (first_owner == index)] = motion.translation
    average_full, middle_full = background.copy(), background.copy()
    average_full[box] = total / np.float32(frame_count)
    middle_full[box] = middle
    coverage_full = np.zeros((height, width), dtype=bool)
    coverage_full[box] = coverage
    valid_full = np.ones((height, width), dtype=bool)
    valid_full[box] = valid
    motion_full = np.zeros((height, width, 2), dtype=np.float32)
    motion_full[box] = motion_box
    return _Exposure(average_full, middle_full, coverage_full, motion_full, valid_full)


def _changed(blurred: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """H×W bool: where two sRGB images differ visibly (more than MASK_TOLERANCE in a channel)."""
    return np.abs(blurred - sharp).max(axis=2) > MASK_TOLERANCE


def synthesize_local(
    background: np.ndarray,
    layers: Sequence[tuple[Cutout, ObjectMotion]],
    frame_count: int,
) -> BlurSample:
    """Local Blur Synthesis: objects moving over a still background, averaged over the exposure.

    Args:
        background: float32 linear-light H×W×3 (static in every frame).
        layers: cutouts and their motions, painted in order; static ones
            (``ObjectMotion.is_static``) are the paper's distractors, identical in every frame.
        frame_count: frames in the exposure (odd; the middle one is the sharp ground truth).

    Returns:
        A "local" sample. ``blur_mask`` is 1 exactly on the pixels a moving object covers in some
        frame and where the blurred image visibly differs from the sharp one (so static distractors
        and untouched background are 0). ``motion`` is the object's translation on pixels that
        show one opaque, purely translating object through the whole exposure, and 0 (valid) on
        pixels no moving object touches.
    """
    exposure = _render_frames(background, layers, frame_count)
    blurred = linear_to_srgb(exposure.average)
    sharp = linear_to_srgb(exposure.middle)
    mask = exposure.moving_coverage & _changed(blurred, sharp)
    return BlurSample(
        blurred,
        sharp,
        mask.astype(np.float32),
        exposure.motion,
        exposure.motion_valid.astype(np.float32),
        "local",
    )


def synthesize_global(background: np.ndarray, kernel: Kernel) -> BlurSample:
    """Camera-shake blur of a whole linear-light background (H×W×3).

    ``blur_mask`` is 1 where the blurred image visibly differs from the sharp one, the rule of
    the local samples: the shake moves every pixel, but on flat areas (sky, snow, a wall) it
    changes nothing a network could see, and labelling them blurred taught the LBP net that
    "flat" means "blurred" while sharp photos taught it the opposite (measured on the v8 model:
    mean probability 0.21 on the flattest 30 % of sharp photos, 0.13 on the most textured 30 %;
    13 % of a global sample's pixels, up to 50 %, do not change). Motion is the kernel's vector
    everywhere when it is linear, otherwise unknown (valid 0). The caller crops ``kernel.radius``
    px off each border.
    """
    blurred = linear_to_srgb(convolve(background, kernel.weights))
    sharp = linear_to_srgb(background)
    height, width = background.shape[:2]
    motion = np.zeros((height, width, 2), dtype=np.float32)
    valid = np.zeros((height, width), dtype=np.float32)
    if kernel.motion is not None:
        motion[...] = kernel.motion
        valid[...] = 1.0
    mask = _changed(blurred, sharp).astype(np.float32)
    return BlurSample(blurred, sharp, mask, motion, valid, "global")


def synthesize_mixed(
    background: np.ndarray,
    layers: Sequence[tuple[Cutout, ObjectMotion]],
    frame_count: int,
    kernel: Kernel,
) -> BlurSample:
    """Moving objects plus camera shake: the object exposure is then convolved with ``kernel``.

    The mask is 1 where the result visibly differs from the sharp middle frame, as in
    `synthesize_global`. Motion is known (the kernel's linear vector) only where the
    kernel's whole footprint sees static content; the caller crops ``kernel.radius`` px per border.
    """
    exposure = _render_frames(background, layers, frame_count)
    blurred = linear_to_srgb(convolve(exposure.average, kernel.weights))
    sharp = linear_to_srgb(exposure.middle)
    height, width = background.shape[:2]
    motion = np.zeros((height, width, 2), dtype=np.float32)
    valid = np.zeros((height, width), dtype=np.float32)
    if kernel.motion is not None:
        moving = (exposure.moving_coverage | ~exposure.motion_valid).astype(np.uint8)
        footprint = (kernel.weights > 0).astype(np.uint8)
        static = cv2.dilate(moving, footprint) == 0
        motion[static] = kernel.motion
        valid[static] = 1.0
    mask = _changed(blurred, sharp).astype(np.float32)
    return BlurSample(blurred, sharp, mask, motion, valid, "mixed")


def synthesize_sharp(
    background: np.ndarray, layers: Sequence[tuple[Cutout, ObjectMotion]] = ()
) -> BlurSample:
    """A sharp sample (blurred = sharp, mask 0, motion 0 and known), maybe with static pastes."""
    exposure = _render_frames(background, layers, 1)
    sharp = linear_to_srgb(exposure.middle)
    height, width = background.shape[:2]
    return BlurSample(
        sharp.copy(),
        sharp,
        np.zeros((height, width), np.float32),
        np.zeros((height, width, 2), np.float32),
        np.ones((height, width), np.float32),
        "sharp",
    )


@dataclass
class Scene:
    """One synthetic sample before rendering: its random parameters and the pixels it uses.

    Attributes:
        kind: "global" | "local" | "mixed" | "sharp".
        canvas: uint8 sRGB (crop + 2·margin)² ×3 background, margin = ``kernel.radius`` (0
            without a kernel): the convolution's borders fall outside the crop that is kept.
        kernel: the camera shake of "global" and "mixed".
        layers: pasted objects in paint order, posed in canvas pixels (see `synthesize_local`).
        frames: exposure frames of "local" and "mixed"; 1 for the others.
    """

    kind: str
    canvas: np.ndarray
    kernel: Kernel | None = None
    layers: Sequence[tuple[Cutout, ObjectMotion]] = ()
    frames: int = 1

    @property
    def margin(self) -> int:
        return self.kernel.radius if self.kernel is not None else 0

    def render(self) -> BlurSample:
        """The sample, numpy, with the margin cropped off (no noise or JPEG yet)."""
        background = srgb_to_linear(self.canvas)
        if self.kind == "global":
            sample = synthesize_global(background, self.kernel)
        elif self.kind == "local":
            sample = synthesize_local(background, self.layers, self.frames)
        elif self.kind == "mixed":
            sample = synthesize_mixed(background, self.layers, self.frames, self.kernel)
        else:
            sample = synthesize_sharp(background, self.layers)
        side = self.canvas.shape[0] - 2 * self.margin
        return sample.crop(self.margin, self.margin, side, side)


def random_frame_count(rng: np.random.Generator) -> int:
    """An odd number of frames from 7 to 13 (paper 000)."""
    return int(rng.choice(FRAME_COUNTS))


def place_cutout(
    rng: np.random.Generator,
    rgb: np.ndarray,
    alpha: np.ndarray,
    region: tuple[int, int, int, int],
    size: float,
    max_upscale: float = 1.2,
) -> tuple[Cutout, ObjectMotion]:
    """Size and place a cut-out object (still: give it a motion with ``random_object_motion``).

    Args:
        rng: random generator.
        rgb: uint8 or float32 sRGB h×w×3 pixels of the object's window.
        alpha: h×w coverage in [0, 1].
        region: (top, left, height, width) of the part of the canvas that is kept; the object's
            centre falls inside it, away from its borders.
        size: wanted length of the object's larger side, px.
        max_upscale: paper 000 enlarges cut-outs by 1.2; more would soften the object, and the
            sharp ground truth must stay sharp.

    Returns:
        The cutout (shrunk with area averaging when it is too big, so it does not alias) and its
        static pose.
    """
    top, left, height, width = region
    scale = min(max_upscale, size / max(alpha.shape))
    if scale < 1.0:
        new_size = (max(1, round(alpha.shape[1] * scale)), max(1, round(alpha.shape[0] * scale)))
        rgb = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(np.asarray(alpha, np.float32), new_size, interpolation=cv2.INTER_AREA)
        scale = 1.0
    center = (left + rng.uniform(0.15, 0.85) * width, top + rng.uniform(0.15, 0.85) * height)
    return Cutout.from_srgb(rgb, alpha), ObjectMotion(center=center, scale=scale)


def random_object_motion(
    rng: np.random.Generator,
    placement: ObjectMotion,
    cutout_shape: tuple[int, int],
    max_blur: float,
    translation_only_probability: float = 0.5,
) -> ObjectMotion:
    """Give a placed object a random movement whose blur is at most about ``max_blur`` px.

    Translation length is log-uniform in [2, max_blur] px in any direction. Otherwise (with
    probability 1 − ``translation_only_probability``) the path may bend and the object may rotate
    and change size (movement along the optical axis), each with probability ½, bounded so the
    object's outline moves by no more than ``max_blur`` px.
    """
    length = math.exp(rng.uniform(math.log(2.0), math.log(max(max_blur, 2.0))))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    translation = (length * math.cos(angle), length * math.sin(angle))
    moved = ObjectMotion(center=placement.center, scale=placement.scale, translation=translation)
    if rng.random() < translation_only_probability:
        return moved
    radius = 0.5 * placement.scale * max(cutout_shape)
    bend = tuple(rng.normal(0.0, 0.1 * length, size=2)) if rng.random() < 0.5 else (0.0, 0.0)
    rotation = 0.0
    if rng.random() < 0.5:
        rotation = math.degrees(rng.uniform(-1.0, 1.0) * min(0.35, max_blur / max(radius, 1.0)))
    log_scale = 0.0
    if rng.random() < 0.5:
        log_scale = rng.uniform(-1.0, 1.0) * min(0.25, max_blur / max(radius, 1.0))
    return ObjectMotion(
        center=placement.center,
        scale=placement.scale,
        translation=translation,
        bend=(float(bend[0]), float(bend[1])),
        rotation_deg=rotation,
        log_scale=log_scale,
    )


# ------------------------------------------------------------------------------ camera degradations


def add_noise(rng: np.random.Generator, srgb: np.ndarray, sigma: float) -> np.ndarray:
    """Poisson–Gaussian sensor noise on a float32 sRGB image, clipped to [0, 1].

    The variance is ``sigma² · (f · 2x + (1 − f))``: a signal-dependent shot part (share f, drawn
    from SHOT_SHARE) and a constant read part, so the standard deviation is ``sigma`` at mid-grey
    and smaller in the shadows, as in camera output. (It is applied to sRGB values, the domain the
    photos were saved in; their own noise is already there.)
    """
    if sigma <= 0:
        return srgb
    shot_share = rng.uniform(*SHOT_SHARE)
    std = sigma * np.sqrt(shot_share * 2.0 * srgb + (1.0 - shot_share))
    noisy = srgb + std * rng.standard_normal(srgb.shape, dtype=np.float32)
    return np.clip(noisy, 0.0, 1.0)


def jpeg_roundtrip(srgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode a float32 sRGB image as JPEG at ``quality`` (1–100) and decode it again."""
    bgr = cv2.cvtColor(np.round(srgb * 255.0).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


# ---------------------------------------------------------------------------------- reference views


def random_view_homography(
    rng: np.random.Generator, box: tuple[int, int, int, int], strength: float = 1.0
) -> np.ndarray:
    """3×3 homography mapping pixels of a new view to pixels of the photo the ``box`` is cut from.

    The view is the box (top, left, height, width) shifted by up to 20 %, zoomed by 0.8–1.25×,
    rotated by up to 10° and with each corner moved by up to 6 % (perspective: the second shot was
    taken from a slightly different place), all times ``strength``.
    """
    top, left, height, width = box
    size = min(height, width)
    corners_out = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    centre = np.array([left + width / 2.0, top + height / 2.0])
    zoom = math.exp(strength * rng.uniform(math.log(0.8), math.log(1.25)))
    theta = math.radians(strength * rng.uniform(-10.0, 10.0))
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    shift = strength * rng.uniform(-0.2, 0.2, size=2) * size
    jitter = strength * rng.uniform(-0.06, 0.06, size=(4, 2)) * size
    half = corners_out - np.array([width / 2.0, height / 2.0])
    corners_src = (half / zoom) @ rot.T + centre + shift + jitter
    return cv2.getPerspectiveTransform(corners_out, corners_src.astype(np.float32))


def photometric_change(rng: np.random.Generator, linear: np.ndarray) -> np.ndarray:
    """Another exposure and white balance of the same scene: linear H×W×3 → float32 sRGB.

    Exposure changes by up to ±0.7 stops, each channel's gain by ±10 % and the tone curve's
    gamma by ±15 %.
    """
    gain = 2.0 ** rng.uniform(-0.7, 0.7) * rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    srgb = linear_to_srgb(linear * gain)
    return np.power(srgb, rng.uniform(0.85, 1.15), dtype=np.float32)


def reference_view(
    rng: np.random.Generator,
    photo: np.ndarray,
    box: tuple[int, int, int, int],
    strength: float = 1.0,
) -> np.ndarray:
    """A sharp second view of the scene around ``box`` (paper 001's reference image).

    Args:
        rng: random generator.
        photo: float32 linear-light H×W×3 — the photo the training crop ``box`` comes from, or
            a neighbouring video frame of it (then a smaller ``strength``: the camera moved
            already).
        box: (top, left, height, width) of the training crop in ``photo``.
        strength: scale of the geometric change (see ``random_view_homography``).

    Returns:
        float32 sRGB height×width×3: perspective-warped, shifted, zoomed, re-exposed and
        re-white-balanced; content outside the photo is mirrored in.
    """
    _, _, height, width = box
    homography = random_view_homography(rng, box, strength)
    view = cv2.warpPerspective(
        photo,
        homography,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return photometric_change(rng, view)
