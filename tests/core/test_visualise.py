import numpy as np
import pytest

from deblurstudio.core import visualise


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


def _saturation(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) / np.maximum(rgb.max(axis=-1), 1.0)


def _uniform_motion(dx: float, dy: float, size: int = 64) -> np.ndarray:
    motion = np.zeros((size, size, 2), np.float32)
    motion[..., 0], motion[..., 1] = dx, dy
    return motion


def test_heatmap_gets_brighter_as_blur_probability_rises():
    probabilities = np.linspace(0.0, 1.0, 21, dtype=np.float32)[None, :]
    heat = visualise.blur_heatmap(probabilities)
    assert heat.dtype == np.uint8 and heat.shape == (1, 21, 3)
    assert np.all(np.diff(_luminance(heat[0])) > 0)
    # Sharp is dark, blurred is bright: the two ends are far apart.
    assert _luminance(heat[0, 0]) < 10 and _luminance(heat[0, -1]) > 200


def test_heatmap_clips_out_of_range_and_nan_values():
    heat = visualise.blur_heatmap(np.array([[-1.0, np.nan, 0.0, 1.0, 7.0]], np.float32))
    np.testing.assert_array_equal(heat[0, 0], heat[0, 2])
    np.testing.assert_array_equal(heat[0, 1], heat[0, 2])
    np.testing.assert_array_equal(heat[0, 4], heat[0, 3])


def test_legend_ramp_is_the_heatmap_colours_with_ticks_from_sharp_to_blurred():
    legend = visualise.heatmap_legend(steps=11, ticks=3)
    np.testing.assert_array_equal(
        legend.ramp, visualise.blur_heatmap(np.linspace(0, 1, 11, dtype=np.float32)[None])[0]
    )
    assert legend.ticks == (0.0, 0.5, 1.0)


@pytest.mark.parametrize("angle_deg", [0, 30, 90, 135])
def test_opposite_motions_get_the_same_colour(angle_deg):
    dx, dy = 10 * np.cos(np.radians(angle_deg)), 10 * np.sin(np.radians(angle_deg))
    forward = visualise.motion_to_color(_uniform_motion(dx, dy), max_length=20)
    backward = visualise.motion_to_color(_uniform_motion(-dx, -dy), max_length=20)
    np.testing.assert_array_equal(forward, backward)


def test_different_orientations_get_different_colours():
    horizontal = visualise.motion_to_color(_uniform_motion(10, 0), 10)[0, 0].astype(int)
    vertical = visualise.motion_to_color(_uniform_motion(0, 10), 10)[0, 0].astype(int)
    diagonal = visualise.motion_to_color(_uniform_motion(7, 7), 10)[0, 0].astype(int)
    for a, b in [(horizontal, vertical), (horizontal, diagonal), (vertical, diagonal)]:
        assert np.abs(a - b).max() > 100


def test_longer_motion_gets_stronger_colour_and_still_is_white():
    lengths = [0.0, 2.0, 5.0, 10.0, 20.0]
    colours = np.stack(
        [
            visualise.motion_to_color(_uniform_motion(length, 0), max_length=20)[0, 0]
            for length in lengths
        ]
    )
    saturation = _saturation(colours)
    assert np.all(np.diff(saturation) > 0)
    np.testing.assert_array_equal(colours[0], [255, 255, 255])
    assert saturation[-1] == pytest.approx(1.0)


def test_default_scale_is_the_longest_motion():
    motion = _uniform_motion(3, 4)
    motion[5, 5] = (0, 12)
    assert visualise.motion_scale(motion) == pytest.approx(12)
    assert visualise.motion_scale(np.zeros((4, 4, 2), np.float32)) == 1.0
    # The longest motion is fully saturated without an explicit scale.
    assert _saturation(visualise.motion_to_color(motion)[5, 5]) == pytest.approx(1.0)


def test_sub_pixel_motion_draws_no_lines_and_stays_white():
    # A motion model that sees no blur returns tiny noise (3e-5 px from the shipped one): the
    # pictures must not stretch it to full-length lines in one arbitrary direction.
    motion = _uniform_motion(2e-5, 2e-5)
    assert visualise.longest_motion(motion) == pytest.approx(np.hypot(2e-5, 2e-5))
    assert visualise.motion_scale(motion) == visualise.MIN_MOTION_SCALE
    assert visualise.motion_arrows(motion, spacing=4) == []
    assert visualise.motion_to_color(motion).min() >= 254


def test_colour_wheel_matches_the_motion_colours_and_is_a_disc():
    size, max_length = 65, 8.0
    wheel = visualise.motion_color_wheel(size, max_length)
    assert wheel.shape == (size, size, 4) and wheel.dtype == np.uint8
    assert wheel[0, 0, 3] == 0 and wheel[32, 32, 3] == 255  # transparent corner, opaque centre
    # A point on the right half-way to the rim is a horizontal motion of max_length / 2.
    expected = visualise.motion_to_color(_uniform_motion(max_length / 2, 0, 1), max_length)[0, 0]
    np.testing.assert_allclose(wheel[32, 32 + 16, :3], expected, atol=12)


def test_arrows_follow_the_orientation_and_scale_with_length():
    motion = np.zeros((64, 128, 2), np.float32)
    motion[:, :64] = (0, 10)  # vertical blur, 10 px, on the left
    motion[:, 64:] = (-5, 0)  # horizontal blur, 5 px, on the right
    glyphs = visualise.motion_arrows(motion, spacing=32, max_length=10)
    assert len(glyphs) == 8  # 2 rows × 4 columns of 32 px cells
    for x, y, dx, dy in glyphs:
        assert 0 < x < 128 and 0 < y < 64
        if x < 64:
            assert abs(dx) < 1e-3 and abs(dy) == pytest.approx(0.9 * 32, rel=1e-3)
        else:
            assert abs(dy) < 1e-3 and abs(dx) == pytest.approx(0.45 * 32, rel=1e-3)


def test_arrows_do_not_cancel_for_opposite_signs_in_one_cell():
    motion = _uniform_motion(6, 0, size=32)
    motion[::2] *= -1  # the same horizontal blur, reported with alternating sign
    (glyph,) = visualise.motion_arrows(motion, spacing=32, max_length=6)
    assert abs(glyph[2]) == pytest.approx(0.9 * 32, rel=1e-3)


def test_still_regions_get_no_arrows():
    assert visualise.motion_arrows(np.zeros((64, 64, 2), np.float32), spacing=16) == []


def test_drawn_arrows_mark_the_image_along_the_motion_only():
    motion = _uniform_motion(0, 10, size=64)
    image = np.full((64, 64, 3), 128, np.uint8)
    drawn = visualise.draw_motion_arrows(image, motion, spacing=32, max_length=10)
    changed = np.any(drawn != image, axis=-1)
    assert np.array_equal(image, np.full((64, 64, 3), 128, np.uint8))  # input untouched
    # Vertical glyphs: the cell centre columns change, the columns between cells do not.
    assert changed[8:24, 16].all() and not changed[:, 0].any() and not changed[:, 32].any()


def test_rendered_motion_picture_has_the_key_in_a_corner():
    motion = _uniform_motion(4, 0, size=200)
    picture = visualise.render_motion(motion)
    assert picture.shape == (200, 200, 3) and picture.dtype == np.uint8
    plain = visualise.motion_to_color(motion)
    # The top-right corner holds the colour wheel (many colours); the rest is the uniform map.
    corner = picture[5:45, 155:195].reshape(-1, 3)
    assert len(np.unique(corner, axis=0)) > 50
    np.testing.assert_array_equal(picture[190, 5], plain[190, 5])


def test_motion_key_label_is_whole_and_the_same_on_any_background():
    # A photo-sized picture: the key and its label scale with it.
    pictures, labels = [], []
    for dx, dy in ((20, 8), (-8, 20)):  # same length, other colours and glyphs behind the label
        motion = np.zeros((1000, 1500, 2), np.float32)
        motion[...] = (dx, dy)
        picture = visualise.render_motion(motion)
        plain = visualise.draw_motion_arrows(
            visualise.motion_to_color(motion), motion, 32, visualise.motion_scale(motion),
            color=(255, 255, 255),
        )
        key = np.any(picture != plain, axis=-1)
        key[:240] = False  # the colour wheel (200 px with a 20 px margin); the label is below
        pictures.append(picture)
        labels.append(key)
    rows, columns = np.nonzero(labels[0] | labels[1])
    box = np.s_[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    # Readable: one white-on-black label, not a text whose gaps show the map and glyphs.
    np.testing.assert_array_equal(pictures[0][box], pictures[1][box])
    # Whole: the white strokes keep clear of the picture's right edge.
    text_columns = np.nonzero(np.all(pictures[0][box] > 200, axis=-1).any(axis=0))[0]
    assert columns.min() + text_columns.max() < 1500 - 2
