"""Registering a reference photo: a second shot of the scene is found where it is, even when the
photo is motion-blurred; a photo of another scene is not taken for one."""

import cv2
import numpy as np
import pytest
from skimage import data

from deblurstudio.core.registration import at_photo_scale, register, warp_reference


def _float(picture):
    return picture.astype(np.float32) / 255


def _second_shot():
    """(photo, reference, true homography photo -> reference): the reference is astronaut at
    its full 512 px; the photo a 300×360 view of it, rotated 4°, zoomed 1.3× and tilted."""
    reference = _float(data.astronaut())
    corners = np.float32([[0, 0], [360, 0], [360, 300], [0, 300]])
    in_reference = np.float32([[90, 60], [372, 82], [360, 316], [70, 290]])
    homography = cv2.getPerspectiveTransform(corners, in_reference).astype(np.float64)
    photo = cv2.warpPerspective(
        reference, homography, (360, 300), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )
    return photo, reference, homography


def _corners_error(found, truth, size=(300, 360)):
    height, width = size
    corners = np.float64([[[0, 0]], [[width, 0]], [[width, height]], [[0, height]]])
    return np.abs(
        cv2.perspectiveTransform(corners, found) - cv2.perspectiveTransform(corners, truth)
    ).max()


def _motion_blurred(photo, length=15):
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2] = 1 / length
    return cv2.filter2D(photo, -1, kernel, borderType=cv2.BORDER_REFLECT)


# The reference net searches REFERENCE_SEARCH_MARGIN = 64 px around where the homography puts
# the content, so a few pixels off at the corners of a blurred photo are harmless.
@pytest.mark.parametrize(
    ("blurred", "tolerance"), [(False, 1.5), (True, 8.0)], ids=["sharp photo", "15 px blur"]
)
def test_a_second_shot_of_the_scene_is_found_where_it_is(blurred, tolerance):
    photo, reference, truth = _second_shot()
    if blurred:
        photo = _motion_blurred(photo)
    registration = register(photo, reference * 0.8)  # and the reference a bit darker
    assert registration.homography is not None
    assert registration.matches >= 12
    assert _corners_error(registration.homography, truth) < tolerance  # px


@pytest.mark.parametrize(
    "other",
    [data.coffee(), data.chelsea(), np.full((300, 400, 3), 128, np.uint8)],
    ids=["coffee", "chelsea", "blank"],
)
def test_a_photo_of_another_scene_is_not_registered(other):
    photo = _motion_blurred(_float(data.astronaut()))
    registration = register(photo, _float(other))
    assert registration.homography is None
    assert registration.matches < 12


def test_the_warped_reference_shows_what_the_photo_shows():
    photo, reference, _ = _second_shot()
    registration = register(photo, reference)
    view = warp_reference(reference, registration.homography, 0, 0, 300, 360)
    inner = (slice(10, -10), slice(10, -10))
    mse = np.mean((view[inner] - photo[inner]) ** 2)
    assert 10 * np.log10(1 / mse) > 30  # dB

    # A crop of the photo: the shifted registration shows the same pixels.
    crop = registration.shifted(100, 50)
    part = warp_reference(reference, crop.homography, 0, 0, 64, 80)
    np.testing.assert_allclose(part, view[50:114, 100:180], atol=1e-4)
    # A window reaching past the photo's edge still gets reference content (mirrored past the
    # reference's own edge), never black.
    beyond = warp_reference(reference, registration.homography, -40, -40, 80, 80)
    assert beyond.shape == (80, 80, 3) and beyond[:20, :20].mean() > 0.05


def test_a_finer_reference_is_shrunk_to_the_photos_scale():
    photo, reference, truth = _second_shot()
    finer = cv2.resize(reference, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    shrunk, homography = at_photo_scale(finer, np.diag([2.0, 2.0, 1.0]) @ truth, (300, 360))
    assert shrunk.shape[0] < 1024
    # One photo pixel now spans about one reference pixel: the photo's outline keeps its area.
    corners = np.float64([[[0, 0]], [[360, 0]], [[360, 300]], [[0, 300]]])
    outline = cv2.perspectiveTransform(corners, homography).astype(np.float32)
    assert cv2.contourArea(outline) == pytest.approx(300 * 360, rel=0.05)
    view = warp_reference(shrunk, homography, 0, 0, 300, 360)
    mse = np.mean((view[10:-10, 10:-10] - photo[10:-10, 10:-10]) ** 2)
    assert 10 * np.log10(1 / mse) > 28  # dB
    # A coarser reference is left as it is.
    coarser = np.diag([0.5, 0.5, 1.0]) @ truth
    same, kept = at_photo_scale(reference[::2, ::2], coarser, (300, 360))
    assert same.shape == (256, 256, 3) and kept is coarser

