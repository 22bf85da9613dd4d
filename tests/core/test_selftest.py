"""The self-test's verdict: sharper and still the same picture passes; blurrier or garbage fails."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from deblurstudio.core import imageio
from deblurstudio.core.errors import DeblurStudioError
from deblurstudio.core.selftest import check_restoration, run_self_test


@pytest.fixture(scope="module")
def sharp_and_blurred():
    sharp = cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    sharp = sharp.astype(np.float32) / 255
    kernel = np.zeros((9, 9), np.float32)
    cv2.line(kernel, (0, 4), (8, 4), 1.0, 1)
    return sharp, cv2.filter2D(sharp, -1, kernel / kernel.sum())


def test_a_real_restoration_passes(sharp_and_blurred):
    sharp, blurred = sharp_and_blurred
    check = check_restoration(blurred, sharp)
    assert check.passed, check.problem
    assert check.sharpness_after > check.sharpness_before


def test_a_blurrier_result_fails(sharp_and_blurred):
    sharp, blurred = sharp_and_blurred
    check = check_restoration(sharp, blurred)
    assert not check.passed and "not sharper" in check.problem


def test_noise_or_another_picture_fails(sharp_and_blurred):
    _, blurred = sharp_and_blurred
    noise = np.random.default_rng(0).random(blurred.shape, dtype=np.float32)
    assert "no longer shows" in check_restoration(blurred, noise).problem
    assert not check_restoration(blurred, blurred[::-1].copy()).passed
    bad = blurred.copy()
    bad[3, 3, 0] = np.nan
    assert "NaN" in check_restoration(blurred, bad).problem


def test_self_test_loads_every_model_and_reports_one_line(tiny_models, sharp_and_blurred, tmp_path):
    _, blurred = sharp_and_blurred
    sample = tmp_path / "sample.png"
    imageio.write_image(sample, imageio.Photo(pixels=blurred))
    report = run_self_test(sample, device="cpu")
    assert {"bladenet", "lcnet", "refdeblur", "motion"} <= set(report.models)
    assert report.model_id == "bladenet" and report.check is not None
    assert "\n" not in report.summary() and "bladenet" in report.summary()


def test_unreadable_sample_is_a_one_line_error(tiny_models, tmp_path):
    with pytest.raises(DeblurStudioError, match="missing.jpg"):
        run_self_test(tmp_path / "missing.jpg", device="cpu")
