import numpy as np

from deblurstudio.core.masks import composite, feather, threshold_probability


def _disc(size=64, radius=20):
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2).astype(np.float32)


def test_feather_ramps_inside_the_mask_only():
    mask = _disc()
    soft = feather(mask, radius_px=6)
    assert soft.dtype == np.float32 and soft.shape == mask.shape
    assert np.all(soft[mask == 0] == 0)  # never spills outside
    assert np.all(soft[32, 32 - 12 : 32 + 13] == 1.0)  # exactly 1 deep inside (≥ 6 px from edge)
    edge = soft[32, 12:26]  # the disc's left edge, going inwards
    assert np.all(np.diff(edge) >= 0) and 0 < edge[1] < 0.5 and edge[-1] == 1.0
    assert np.count_nonzero((soft > 0) & (soft < 1)) > 100  # a real ramp, not a hard edge


def test_feather_keeps_a_soft_mask_no_stronger_than_painted():
    mask = _disc() * 0.5
    assert feather(mask, 4).max() == 0.5
    assert np.array_equal(feather(mask, 0), mask)


def test_feather_does_not_treat_the_image_border_as_an_edge():
    assert np.all(feather(np.ones((20, 30), np.float32), 5) == 1.0)


def test_threshold_probability():
    prob = np.array([[0.1, 0.5], [0.49, 0.9]], np.float32)
    assert np.array_equal(threshold_probability(prob, 0.5), [[0, 1], [0, 1]])
    assert threshold_probability(prob, 0.5).dtype == np.float32


def test_composite_is_bit_identical_outside_and_restored_inside():
    rng = np.random.default_rng(0)
    original = rng.random((300, 40, 3), dtype=np.float32)  # > one row band
    restored = rng.random((300, 40, 3), dtype=np.float32)
    weight = feather(_disc(300, 120)[:, :40], 10)
    out = composite(original, restored, weight)
    assert np.array_equal(out[weight == 0], original[weight == 0])
    assert np.array_equal(out[weight == 1], restored[weight == 1])
    middle = (weight > 0) & (weight < 1)
    assert np.any(middle)
    expected = original * (1 - weight[..., None]) + restored * weight[..., None]
    assert np.allclose(out[middle], expected[middle], atol=1e-6)
    # In place into `restored` (how the pipeline saves a full-size buffer): same result.
    assert np.array_equal(composite(original, restored.copy(), weight, out=restored), out)
    assert np.array_equal(composite(original, restored, None), restored)
