"""The mask brush: a capsule-shaped sweep, soft rim, paint never lowers and erase never raises."""

from __future__ import annotations

import numpy as np

from deblurstudio.core.brush import paint_segment


def test_stroke_covers_the_segment_and_nothing_far_from_it():
    mask = np.zeros((40, 60), np.float32)
    region = paint_segment(mask, (10.5, 20.5), (50.5, 20.5), radius=4)
    assert mask[20, 10:51].min() == 1.0  # the whole segment, pixel centres on it
    assert mask[20 + 6, :].max() == 0.0 and mask[:, 5].max() == 0.0  # beyond radius + rim
    rows, cols = region
    assert not mask[: rows.start].any() and not mask[:, cols.stop :].any()


def test_feather_makes_a_ramp_and_painting_twice_changes_nothing():
    mask = np.zeros((41, 41), np.float32)
    paint_segment(mask, (20.5, 20.5), (20.5, 20.5), radius=10, feather=6)
    profile = mask[20, 20:33]
    assert profile[0] == 1.0 and profile[-1] == 0.0
    assert np.all(np.diff(profile) <= 0) and 0 < profile[8] < 1  # soft, monotone rim
    again = mask.copy()
    paint_segment(again, (20.5, 20.5), (20.5, 20.5), radius=10, feather=6)
    np.testing.assert_array_equal(again, mask)


def test_erase_lowers_only_and_misses_return_none():
    mask = np.full((20, 20), 0.3, np.float32)
    paint_segment(mask, (10, 10), (10, 10), radius=3, erase=True)
    assert mask[10, 10] == 0.0 and mask[0, 0] == np.float32(0.3)
    assert mask.max() == np.float32(0.3)
    assert paint_segment(mask, (-50, -50), (-40, -45), radius=3) is None
