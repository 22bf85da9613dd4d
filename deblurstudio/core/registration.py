"""Registering a reference photo onto the photo being deblurred: where each of the photo's pixels
lies in the reference, and whether the reference shows the same scene at all.

Why: the reference net compares each tile only with the reference content within
`pipeline.REFERENCE_SEARCH_MARGIN` px of the same place (its matching memory grows with the square
of that area), and it was trained on views moved by at most a fifth of a crop
(`training.data.synthesis.random_view_homography`). A second shot taken a step aside, zoomed or
tilted puts the same content hundreds of pixels away in a full-size photo, so the reference is
first warped into the photo's frame. And an unrelated reference costs quality (measured on real
photos: −1.1 dB below the no-reference result with skimage's chelsea as the reference of its
coffee): such a reference is recognised here, and the pipeline deblurs without it.

How: SIFT features of both photos (grey, shrunk to the longest side MATCH_SIDES[0] px), Lowe's
ratio test, a RANSAC homography. The reference counts as the same scene when at least MIN_INLIERS
matches agree on a homography that keeps the photo's outline convex and changes its scale by less
than MAX_SCALE times (unrelated photos' few chance matches give folded or collapsed maps). When
that fails it is tried again at MATCH_SIDES[1] px, where heavy motion blur covers fewer pixels.

Measured on the validation photos (`benchmarks/reference_registration.py`, blur 8, 16 or 30 px,
1 % noise): all 36 unrelated pairs rejected (at most 6 consistent matches), all 20 synthetic second
views of BSDS photos accepted, 26 of 30 CamVid frame pairs 1–8 frames apart accepted (the four
rejected were 30 px blurs). With an unrelated reference the pipeline now gives the default
model's result: +1.40, +0.14 and 0.00 dB over the reference model given it on three pairs.

Pixel convention: images float32 RGB H×W×3 in [0, 1]; homographies map photo pixel coordinates
(x, y, 1) to reference pixel coordinates, pixel centres at integers (OpenCV's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MATCH_SIDES = (800, 400)  # longest sides (px) at which features are matched, in order
MIN_INLIERS = 12  # consistent matches needed to call the reference the same scene
MAX_SCALE = 8.0  # the reference may be at most this many times larger or smaller than the photo
_RATIO = 0.75  # Lowe's ratio test
_RANSAC_PX = 4.0  # reprojection error (px at the matching size) of an inlier
_FEATURES = 4000  # SIFT keypoints kept per photo
_Grey = tuple[np.ndarray, float]  # a uint8 grey version of a photo, and its scale


@dataclass(frozen=True)
class Registration:
    """Where the photo lies in the reference.

    Attributes:
        homography: 3×3 float64 mapping photo pixels to reference pixels, or None when the
            reference does not show the same scene.
        matches: consistent feature matches found (RANSAC inliers of the best attempt).
    """

    homography: np.ndarray | None
    matches: int

    def shifted(self, x0: int, y0: int) -> Registration:
        """The registration of the crop of the photo whose top-left pixel is (x0, y0)."""
        if self.homography is None:
            return self
        translation = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
        return Registration(self.homography @ translation, self.matches)


def register(image: np.ndarray, reference: np.ndarray) -> Registration:
    """Register `reference` onto `image` (both float32 RGB in [0, 1], any sizes)."""
    best = Registration(None, 0)
    size = image.shape[:2]
    for image_grey, reference_grey in zip(_greys(image), _greys(reference), strict=True):
        found = _register_at(image_grey, reference_grey, size)
        if found.homography is not None:
            return found
        if found.matches > best.matches:
            best = found
    return best


def warp_reference(
    reference: np.ndarray, homography: np.ndarray, top: int, left: int, height: int, width: int
) -> np.ndarray:
    """The reference as seen through the photo's pixels [top, top + height) × [left, left +
    width), which may lie partly outside the photo: float32 height×width×3. Reference content
    that the view runs past is mirrored in, as in the training views.

    Bilinear: shrink a larger reference first (`at_photo_scale`) or it aliases.
    """
    translation = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
    view = cv2.warpPerspective(
        reference,
        homography @ translation,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return view.reshape(height, width, 3)


def at_photo_scale(
    reference: np.ndarray, homography: np.ndarray, photo_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """`reference` shrunk (area-averaged) to about the photo's scale when it is finer, with the
    homography from the photo (height, width `photo_size`) to the shrunk reference; otherwise
    both unchanged."""
    scale = _mean_scale(homography, photo_size)
    if scale <= 1.0:
        return reference, homography
    height, width = reference.shape[:2]
    size = (max(1, round(width / scale)), max(1, round(height / scale)))
    shrunk = cv2.resize(reference, size, interpolation=cv2.INTER_AREA).reshape(
        size[1], size[0], 3
    )
    to_shrunk = np.diag([size[0] / width, size[1] / height, 1.0])
    return shrunk, to_shrunk @ homography


def _register_at(image: _Grey, reference: _Grey, size: tuple[int, int]) -> Registration:
    """One attempt on shrunk grey versions of the photo (height, width `size`) and reference."""
    (image_grey, image_scale), (reference_grey, reference_scale) = image, reference
    sift = cv2.SIFT_create(nfeatures=_FEATURES)
    image_points, image_descriptors = sift.detectAndCompute(image_grey, None)
    reference_points, reference_descriptors = sift.detectAndCompute(reference_grey, None)
    if (
        image_descriptors is None
        or reference_descriptors is None
        or len(image_points) < 2
        or len(reference_points) < 2
    ):
        return Registration(None, 0)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(image_descriptors, reference_descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO * p[1].distance]
    if len(good) < 4:
        return Registration(None, len(good))
    source = np.float32([image_points[m.queryIdx].pt for m in good])
    target = np.float32([reference_points[m.trainIdx].pt for m in good])
    small, inliers = cv2.findHomography(source, target, cv2.RANSAC, _RANSAC_PX)
    if small is None:
        return Registration(None, 0)
    matches = int(inliers.sum())
    # Back to full-size pixels: shrink the photo, map, enlarge into the reference.
    homography = np.diag([1 / reference_scale, 1 / reference_scale, 1.0]) @ small
    homography = homography @ np.diag([image_scale, image_scale, 1.0])
    if matches < MIN_INLIERS or not _plausible(homography, size):
        return Registration(None, matches)
    return Registration(homography / homography[2, 2], matches)


def _greys(image: np.ndarray) -> list[_Grey]:
    """uint8 grey versions of `image` shrunk to each of MATCH_SIDES (never enlarged), each with
    its scale. The photo is shrunk once in colour; each smaller version from the previous one."""
    height, width = image.shape[:2]
    greys = []
    source = image
    for side in MATCH_SIDES:
        scale = min(1.0, side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if size != source.shape[1::-1]:
            source = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
        if source.ndim == 3:
            source = cv2.cvtColor(
                (np.clip(source, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY
            )
        greys.append((source, size[0] / width))
    return greys


def _outline(homography: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo's four corners (height, width `size`) mapped into the reference: 4×2."""
    height, width = size
    corners = np.float64([[[0, 0]], [[width, 0]], [[width, height]], [[0, height]]])
    return cv2.perspectiveTransform(corners, homography).reshape(4, 2)


def _mean_scale(homography: np.ndarray, size: tuple[int, int]) -> float:
    """Reference pixels per photo pixel (linear), averaged over the photo's area."""
    outline = _outline(homography, size)
    return math.sqrt(abs(cv2.contourArea(outline.astype(np.float32))) / (size[0] * size[1]))


def _plausible(homography: np.ndarray, size: tuple[int, int]) -> bool:
    """The map keeps the photo's outline convex and its scale within MAX_SCALE times."""
    outline = _outline(homography, size)
    if not np.all(np.isfinite(outline)) or not cv2.isContourConvex(outline.astype(np.float32)):
        return False
    return 1.0 / MAX_SCALE < _mean_scale(homography, size) < MAX_SCALE
