"""The checkpoints the app ships in resources/models: a user who installs DeblurStudio gets these.

Unlike the rest of the suite (tiny random-weight models), these tests load the real trained files:
every role has a default that loads, each file and the whole set stay small enough to commit, each
model card says what the model was trained on and how it scored, the default model really
deblurs the bundled sample photo (the check `deblurstudio --self-test` runs), the motion model
finds the sample's blur (what the motion overlay and the README's screenshot show), and the
reference model does better when given a sharp shot of the scene than without one.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from skimage.data import astronaut, chelsea, coffee

from deblurstudio.core import modelstore, pipeline
from deblurstudio.core.cancel import CancelToken
from deblurstudio.core.imageio import read_image
from deblurstudio.core.selftest import run_self_test

MODELS = modelstore.resources_dir() / "models"
MAX_FILE_BYTES = 25 * 2**20
MAX_TOTAL_BYTES = 60 * 2**20


@pytest.fixture
def shipped_only(tmp_path, monkeypatch):
    """Only resources/models is searched (no user-installed or test models)."""
    monkeypatch.delenv(modelstore.MODELS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    modelstore.clear_model_cache()
    yield
    modelstore.clear_model_cache()


def _manifest() -> dict:
    return json.loads((MODELS / modelstore.MANIFEST).read_text(encoding="utf-8"))


def test_every_role_has_a_shipped_default_within_the_size_limits(shipped_only):
    manifest = _manifest()
    assert set(manifest["defaults"]) == set(modelstore.ROLES)
    files = [MODELS / entry["file"] for entry in manifest["models"].values()]
    sizes = [path.stat().st_size for path in files]
    assert all(size <= MAX_FILE_BYTES for size in sizes), dict(zip(files, sizes, strict=True))
    assert sum(sizes) <= MAX_TOTAL_BYTES
    for role in modelstore.ROLES:
        assert modelstore.default_model_id(role) == manifest["defaults"][role]


def test_every_model_card_names_its_data_training_and_scores(shipped_only):
    for model_id, entry in _manifest()["models"].items():
        card = entry["card"]
        assert card["trained_on"] and card["validation_split"], model_id
        assert card["steps"] > 0 and card["training_hours"] > 0, model_id
        assert card["metrics"]["samples"] > 0, model_id
        assert card["targets"], f"{model_id}: no scores per target condition"


def test_the_default_model_deblurs_the_bundled_sample(shipped_only):
    report = run_self_test(device="cpu")
    assert set(report.models) == set(_manifest()["models"])
    assert report.passed, report.summary()


def test_the_motion_model_finds_the_direction_and_length_of_the_samples_blur(shipped_only):
    # The sample is blurred by 15 px of straight motion at 20° (y up), i.e. 160° with y down.
    photo = read_image(modelstore.resources_dir() / "sample.jpg").pixels
    analysis = pipeline.analyse(photo, CancelToken(), device="cpu")
    while True:
        try:
            next(analysis)
        except StopIteration as done:
            motion = done.value.motion_map
            break
    length = np.hypot(motion[..., 0], motion[..., 1])
    angle = np.degrees(np.arctan2(motion[..., 1], motion[..., 0])) % 180  # blur has no sign
    assert abs(np.median(angle) - 160) < 10
    assert 10 < np.median(length) < 20


def _restored(blurred: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    request = pipeline.DeblurRequest(
        blurred,
        model_id=modelstore.default_model_id("reference"),
        reference=reference,
        device="cpu",
        maps=False,
    )
    return pipeline.run(pipeline.deblur(request, CancelToken())).restored


def test_the_reference_model_does_better_with_a_sharp_shot_of_the_scene(shipped_only):
    def psnr(image, truth):
        return 10 * np.log10(1 / np.mean((image - truth) ** 2))

    kernel = np.zeros((15, 15), np.float32)
    kernel[7] = 1 / 15  # 15 px of horizontal camera shake
    photos = (astronaut(), chelsea(), coffee())
    gains = []
    for photo in photos:
        sharp = photo.astype(np.float32) / 255
        blurred = cv2.filter2D(sharp, -1, kernel, borderType=cv2.BORDER_REFLECT)
        # The second shot: taken a moment later, framed 6 px lower and 9 px left, a bit darker.
        reference = np.roll(sharp, (6, -9), axis=(0, 1)) * 0.9
        with_reference = psnr(_restored(blurred, reference), sharp)
        gains.append(with_reference - psnr(_restored(blurred, None), sharp))
    assert np.mean(gains) > 0.2, gains
