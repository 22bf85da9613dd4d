"""Blur synthesis: kernels, linear-light averaging, Local Blur Synthesis masks and motion truth."""

import math

import numpy as np
import pytest

from training.data import synthesis as S


def _texture(height, width, seed=0):
    """A float32 sRGB H×W×3 image with detail at every pixel (so any motion changes it)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.95, size=(height, width, 3)).astype(np.float32)


def _kernel_axis(kernel):
    """(centroid x, centroid y, length along the principal axis, axis angle mod 180°)."""
    ys, xs = np.mgrid[: kernel.shape[0], : kernel.shape[1]]
    c = kernel.shape[0] // 2
    mx, my = (kernel * (xs - c)).sum(), (kernel * (ys - c)).sum()
    cov = np.array(
        [
            [(kernel * (xs - c - mx) ** 2).sum(), (kernel * (xs - c - mx) * (ys - c - my)).sum()],
            [(kernel * (xs - c - mx) * (ys - c - my)).sum(), (kernel * (ys - c - my) ** 2).sum()],
        ]
    )
    values, vectors = np.linalg.eigh(cov)
    # A uniform segment of length L has variance L²/12 along it.
    length = math.sqrt(12 * values[-1])
    angle = math.degrees(math.atan2(vectors[1, -1], vectors[0, -1])) % 180
    return mx, my, length, angle


def test_zero_length_trajectory_gives_back_the_sharp_image():
    kernel = S.rasterize_kernel(np.zeros((16, 2)))
    assert kernel.shape == (3, 3) and kernel[1, 1] == 1.0
    sharp = _texture(32, 40)
    sample = S.synthesize_global(S.srgb_to_linear(sharp), S.Kernel(kernel, (0.0, 0.0)))
    np.testing.assert_allclose(sample.blurred, sharp, atol=1e-5)
    np.testing.assert_allclose(sample.sharp, sharp, atol=1e-5)


def test_kernels_are_non_negative_and_sum_to_one():
    rng = np.random.default_rng(1)
    kernels = [S.random_kernel(rng, 30.0).weights for _ in range(20)]
    kernels += [S.linear_kernel((7.3, -2.1)), S.linear_kernel((0.0, 0.0))]
    for kernel in kernels:
        assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
        assert kernel.min() >= 0
        assert kernel.sum() == pytest.approx(1.0, abs=1e-5)


def test_shake_trajectories_vary_and_reach_the_requested_extent():
    rng = np.random.default_rng(2)
    paths = [
        S.shake_trajectory(rng, 20.0, curvature=0.05, jitter=0.3, centripetal=0.3) for _ in range(5)
    ]
    for path in paths:
        assert np.ptp(path, axis=0).max() == pytest.approx(20.0)
    # Different random paths give different kernels, not one shape.
    kernels = [S.rasterize_kernel(p) for p in paths]
    assert len({k.shape for k in kernels}) > 1 or not np.allclose(kernels[0], kernels[1])


def test_frames_are_averaged_in_linear_light():
    """A white object over black, seen in one of two frames, averages to 0.5^(1/2.2), not 0.5."""
    background = np.zeros((8, 16, 3), np.float32)
    white = S.Cutout.from_srgb(np.ones((4, 4, 3), np.float32), np.ones((4, 4), np.float32))
    layers = [(white, S.ObjectMotion(center=(7.5, 3.5), translation=(4.0, 0.0)))]
    sample = S.synthesize_local(background, layers, frame_count=2)
    # Frame 1 covers x 4–7, frame 2 x 8–11: each pixel there is white in exactly one frame.
    np.testing.assert_allclose(sample.blurred[2:6, 4:12], 0.5 ** (1 / 2.2), atol=1e-5)
    assert np.all(sample.blurred[:, :4] == 0) and np.all(sample.blurred[:, 12:] == 0)
    # Camera-shake blur integrates in linear light too: a 2-tap kernel across a black/white edge.
    edge = np.zeros((3, 6, 3), np.float32)
    edge[:, 3:] = 1.0
    two_tap = S.Kernel(np.array([[0, 0, 0], [0, 0.5, 0.5], [0, 0, 0]], np.float32), (1.0, 0.0))
    blurred = S.synthesize_global(edge, two_tap).blurred
    assert blurred[1, 3, 0] == pytest.approx(0.5 ** (1 / 2.2), abs=1e-5)


def test_linear_kernel_matches_its_motion_vector():
    for motion in [(12.0, 5.0), (-3.0, 9.0), (15.0, 0.0)]:
        mx, my, length, angle = _kernel_axis(S.linear_kernel(motion))
        assert abs(mx) < 1e-6 and abs(my) < 1e-6  # centred: the image does not shift
        assert length == pytest.approx(math.hypot(*motion), abs=0.6)
        expected = math.degrees(math.atan2(motion[1], motion[0])) % 180
        assert min(abs(angle - expected), 180 - abs(angle - expected)) < 2.0


def test_global_linear_blur_streaks_a_dot_along_the_motion_ground_truth():
    sharp = np.zeros((41, 41, 3), np.float32)
    sharp[20, 20] = 1.0
    kernel = S.Kernel(S.linear_kernel((16.0, 0.0)), (16.0, 0.0))
    sample = S.synthesize_global(S.srgb_to_linear(sharp), kernel)
    lit = np.argwhere(sample.blurred[..., 0] > 0.05)
    # The streak runs from p − m/2 to p + m/2: x from 12 to 28 on row 20.
    assert set(lit[:, 0]) == {20}
    assert lit[:, 1].min() in (12, 13) and lit[:, 1].max() in (27, 28)
    assert np.all(sample.motion == (16.0, 0.0)) and np.all(sample.motion_valid == 1)
    # Blurred exactly where the shake visibly changed the image: the streak and the dot's place,
    # not the black background it never reaches.
    changed = np.abs(sample.blurred - sample.sharp).max(axis=2) > S.MASK_TOLERANCE
    np.testing.assert_array_equal(sample.blur_mask == 1, changed)
    assert sample.blur_mask[20, 20] == 1 and sample.blur_mask[20, 14] == 1
    assert np.all(sample.blur_mask[:18] == 0) and np.all(sample.blur_mask[:, 32:] == 0)


def _square_cutout(side, value):
    rgb = np.full((side, side, 3), value, np.float32)
    return S.Cutout.from_srgb(rgb, np.ones((side, side), np.float32))


def test_local_blur_mask_covers_exactly_the_changed_pixels_and_not_static_distractors():
    background = S.srgb_to_linear(_texture(64, 96, seed=3))
    moving = S.Cutout.from_srgb(_texture(14, 18, seed=4), np.ones((14, 18), np.float32))
    distractor = S.Cutout.from_srgb(_texture(12, 12, seed=5), np.ones((12, 12), np.float32))
    layers = [
        (moving, S.ObjectMotion(center=(25.0, 30.0), translation=(10.0, 4.0))),
        (distractor, S.ObjectMotion(center=(75.0, 30.0))),  # pasted, never moves
    ]
    sample = S.synthesize_local(background, layers, frame_count=9)
    changed = np.abs(sample.blurred - sample.sharp).max(axis=2) > S.MASK_TOLERANCE
    assert changed.sum() > 200
    np.testing.assert_array_equal(sample.blur_mask == 1, changed)
    distractor_area = (slice(24, 36), slice(69, 81))
    assert np.all(sample.blur_mask[distractor_area] == 0)
    np.testing.assert_allclose(
        sample.blurred[distractor_area], sample.sharp[distractor_area], atol=1e-6
    )
    # The pasted distractor is really there in the sharp frame, unlike the bare background.
    assert not np.allclose(
        sample.sharp[distractor_area], S.linear_to_srgb(background)[distractor_area]
    )
    assert sample.kind == "local"


def test_translating_object_streak_spans_its_motion_ground_truth():
    background = np.zeros((40, 60, 3), np.float32)
    layers = [
        (_square_cutout(3, 1.0), S.ObjectMotion(center=(30.0, 20.0), translation=(12.0, 0.0)))
    ]
    sample = S.synthesize_local(background, layers, frame_count=13)
    lit_sharp = np.argwhere(sample.sharp[..., 0] > 0.5)
    lit_blurred = np.argwhere(sample.blurred[..., 0] > 0.05)
    # Sharp middle frame: the 3×3 square centred at x = 30; blurred: it slid from x − 6 to x + 6.
    assert (lit_sharp[:, 1].min(), lit_sharp[:, 1].max()) == (29, 31)
    assert (lit_blurred[:, 1].min(), lit_blurred[:, 1].max()) == (23, 37)
    assert set(lit_blurred[:, 0]) == {19, 20, 21}


def test_local_motion_truth_is_the_translation_on_the_object_and_zero_on_still_pixels():
    background = S.srgb_to_linear(_texture(64, 96, seed=6))
    big = S.Cutout.from_srgb(_texture(30, 30, seed=7), np.ones((30, 30), np.float32))
    spinner = S.Cutout.from_srgb(_texture(16, 16, seed=8), np.ones((16, 16), np.float32))
    layers = [
        (big, S.ObjectMotion(center=(25.0, 32.0), translation=(6.0, -4.0))),
        (spinner, S.ObjectMotion(center=(75.0, 32.0), rotation_deg=30.0)),
    ]
    sample = S.synthesize_local(background, layers, frame_count=7)
    # The object's interior (covered in every frame): its translation, known.
    interior = (slice(22, 42), slice(18, 32))
    assert np.all(sample.motion_valid[interior] == 1)
    np.testing.assert_array_equal(
        sample.motion[interior], np.broadcast_to((6.0, -4.0), (20, 14, 2))
    )
    # A rotating object has no single linear vector: unknown there.
    assert np.all(sample.motion_valid[28:36, 71:79] == 0)
    # Background no object ever reaches: still, and known to be.
    assert np.all(sample.motion_valid[:, 90:] == 1) and np.all(sample.motion[:, 90:] == 0)
    # The object's edge, where object and background mix over the exposure: unknown.
    assert np.all(sample.motion_valid[32, 9:11] == 0)


def test_mixed_blur_marks_what_changed_and_motion_known_only_far_from_moving_objects():
    background = S.srgb_to_linear(_texture(80, 80, seed=9))
    obj = S.Cutout.from_srgb(_texture(16, 16, seed=10), np.ones((16, 16), np.float32))
    kernel = S.Kernel(S.linear_kernel((6.0, 0.0)), (6.0, 0.0))
    layers = [(obj, S.ObjectMotion(center=(20.0, 20.0), translation=(0.0, 8.0)))]
    sample = S.synthesize_mixed(background, layers, 9, kernel)
    assert np.all(sample.blur_mask == 1)  # the texture changes under the shake everywhere
    assert np.all(sample.motion_valid[20, 10:30] == 0)  # on the object
    assert np.all(sample.motion_valid[60:, 40:] == 1)
    assert np.all(sample.motion[60:, 40:] == (6.0, 0.0))
    # On a flat background the shake changes nothing far from the object: not blurred there.
    flat = np.full((80, 80, 3), 0.3, np.float32)
    sample = S.synthesize_mixed(flat, layers, 9, kernel)
    assert np.all(sample.blur_mask[50:, 50:] == 0) and sample.blur_mask[20, 20] == 1


def test_sharp_sample_is_unchanged_with_static_pastes():
    background = S.srgb_to_linear(_texture(32, 32, seed=11))
    layers = [(_square_cutout(8, 0.9), S.ObjectMotion(center=(16.0, 16.0)))]
    sample = S.synthesize_sharp(background, layers)
    np.testing.assert_array_equal(sample.blurred, sample.sharp)
    assert sample.sharp[16, 16, 0] == pytest.approx(0.9, abs=1e-5)
    assert np.all(sample.blur_mask == 0) and np.all(sample.motion_valid == 1)


def test_place_cutout_shrinks_big_objects_and_caps_enlargement():
    rng = np.random.default_rng(12)
    rgb = np.zeros((200, 100, 3), np.uint8)
    alpha = np.ones((200, 100), np.float32)
    cutout, pose = S.place_cutout(rng, rgb, alpha, (0, 0, 128, 128), size=50.0)
    assert cutout.alpha.shape == (50, 25) and pose.scale == 1.0
    assert 0.15 * 128 <= pose.center[0] <= 0.85 * 128
    _, pose = S.place_cutout(rng, rgb[:20, :10], alpha[:20, :10], (0, 0, 128, 128), size=60.0)
    assert pose.scale == pytest.approx(1.2)


def test_noise_level_is_sigma_at_mid_grey_and_lower_in_shadows():
    rng = np.random.default_rng(13)
    grey = np.full((128, 128, 3), 0.5, np.float32)
    dark = np.full((128, 128, 3), 0.02, np.float32)
    assert float(np.std(S.add_noise(rng, grey, 0.01) - grey)) == pytest.approx(0.01, rel=0.05)
    assert float(np.std(S.add_noise(rng, dark, 0.01) - dark)) < 0.009
    assert S.add_noise(rng, grey, 0.0) is grey


def test_jpeg_roundtrip_is_close_but_lossy():
    image = _texture(32, 32, seed=14)
    decoded = S.jpeg_roundtrip(image, 60)
    assert decoded.shape == image.shape and decoded.dtype == np.float32
    assert 0 < float(np.abs(decoded - image).mean()) < 0.2


def test_reference_view_shows_the_same_scene_from_elsewhere():
    rng = np.random.default_rng(15)
    yy, xx = np.mgrid[:96, :96]
    photo = np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], axis=2)
    photo = S.srgb_to_linear((0.5 + 0.4 * photo).astype(np.float32))
    box = (24, 24, 48, 48)
    crop = S.linear_to_srgb(photo[24:72, 24:72])
    still = S.reference_view(rng, photo, box, strength=0.0)
    for channel in range(3):  # only exposure/colour changed: a monotone tone change
        assert np.corrcoef(still[..., channel].ravel(), crop[..., channel].ravel())[0, 1] > 0.98
    moved = S.reference_view(rng, photo, box, strength=1.0)
    assert moved.shape == (48, 48, 3) and moved.min() >= 0 and moved.max() <= 1
    assert float(np.abs(moved - crop).mean()) > 0.02
