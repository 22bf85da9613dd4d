import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from skimage import data, transform

from deblurstudio.core import modelstore
from deblurstudio.core.cancel import CancelToken
from deblurstudio.core.errors import Cancelled, DeblurStudioError
from deblurstudio.core.pipeline import DeblurRequest, analyse, deblur, run
from deblurstudio.core.registration import Registration
from deblurstudio.models.neurmap import motion_from_axis


def _photo(height, width):
    image = transform.resize(data.astronaut(), (height, width), anti_aliasing=True)
    return image.astype(np.float32)


def _drive(job):
    """All Progress a job yields, and its result."""
    progress = []
    while True:
        try:
            progress.append(next(job))
        except StopIteration as stop:
            return progress, stop.value


def _net_input(array):
    return torch.from_numpy(np.ascontiguousarray(array.reshape(*array.shape[:2], -1))).permute(
        2, 0, 1
    )[None]


def test_deblur_returns_the_maps_and_progress_to_one(tiny_models):
    image = _photo(150, 230)
    progress, result = _drive(deblur(DeblurRequest(image, device="cpu", tile=128), CancelToken()))
    assert result.model_id == "bladenet" and result.device == "cpu" and result.seconds > 0
    assert result.restored.shape == image.shape and result.restored.dtype == np.float32
    assert 0 <= result.restored.min() and result.restored.max() <= 1
    assert result.blur_probability.shape == (150, 230)
    assert 0 <= result.blur_probability.min() and result.blur_probability.max() <= 1
    assert result.motion_map.shape == (150, 230, 2) and result.motion_map.dtype == np.float32
    assert result.reference_confidence is None

    fractions = [p.fraction for p in progress]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b >= a for a, b in zip(fractions, fractions[1:], strict=False))
    assert {p.stage for p in progress} == {"loading model", "deblurring", "analysing"}
    assert sum(p.stage == "deblurring" for p in progress) == 6  # 2×3 tiles of 128 px
    etas = [p.eta_seconds for p in progress if p.stage != "loading model"]
    assert all(eta is not None and eta >= 0 for eta in etas) and etas[-1] == 0


@pytest.mark.parametrize("model_id", ["bladenet", "lcnet"])
def test_deblur_without_maps_restores_the_same_photo_and_skips_the_analysis(
    tiny_models, model_id
):
    image = _photo(150, 230)
    with_maps = run(deblur(DeblurRequest(image, model_id=model_id, device="cpu"), CancelToken()))
    progress, result = _drive(
        deblur(DeblurRequest(image, model_id=model_id, device="cpu", maps=False), CancelToken())
    )
    assert np.array_equal(result.restored, with_maps.restored)
    assert result.blur_probability is None and result.motion_map is None
    assert "analysing" not in {p.stage for p in progress}


def test_a_known_motion_map_is_returned_and_not_estimated_again(tiny_models):
    image = _photo(150, 230)
    analysis = run(analyse(image, CancelToken(), device="cpu"))
    progress, result = _drive(
        deblur(DeblurRequest(image, device="cpu", motion_map=analysis.motion_map), CancelToken())
    )
    assert np.array_equal(result.motion_map, analysis.motion_map)
    # BladeNet perceives blur itself: with the motion known there is nothing left to analyse.
    assert "analysing" not in {p.stage for p in progress}
    assert result.blur_probability.shape == (150, 230)
    with pytest.raises(DeblurStudioError, match=r"motion map has shape \(150, 230\)"):
        run(deblur(DeblurRequest(image, motion_map=analysis.motion_map[..., 0]), CancelToken()))


def test_cancel_between_tiles_raises_cancelled_and_gives_no_result(tiny_models):
    token = CancelToken()
    job = deblur(DeblurRequest(_photo(150, 230), device="cpu", tile=128), token)
    stages = []
    with pytest.raises(Cancelled):
        for progress in job:  # a plain for-loop would swallow a returned result
            stages.append(progress.stage)
            if progress.stage == "deblurring":
                token.cancel()
    assert stages == ["loading model", "deblurring"]  # not one tile more
    with pytest.raises(StopIteration):
        next(job)


def test_mask_steers_the_network_and_leaves_the_rest_untouched(tiny_models):
    image = _photo(96, 128)  # a multiple of the stride: the direct run below needs no padding
    mask = np.zeros((96, 128), np.float32)
    mask[16:80, 16:64] = 1
    result = run(deblur(DeblurRequest(image, mask=mask, device="cpu"), CancelToken()))
    outside = mask == 0
    assert np.array_equal(result.restored[outside], image[outside])
    assert np.array_equal(result.blur_probability, mask)

    # Deep inside the mask (past the feathered edge) the pixels are the network's output with
    # the mask as its blur-probability input...
    net = modelstore.load_model("bladenet", torch.device("cpu"))
    with torch.inference_mode():
        steered = net(_net_input(image), blur_probability=_net_input(mask)).restored
    steered = steered[0].permute(1, 2, 0).clamp(0, 1).numpy()
    deep = (slice(24, 72), slice(24, 56))
    assert np.abs(result.restored[deep] - steered[deep]).max() < 1e-4
    assert np.abs(result.restored[deep] - image[deep]).max() > 0.01

    # ... so painting more mask around it changes the output there too (not just the blend).
    everywhere = np.ones_like(mask)
    changed = run(deblur(DeblurRequest(image, mask=everywhere, device="cpu"), CancelToken()))
    assert np.abs(changed.restored[deep] - result.restored[deep]).max() > 0.01


def test_nets_without_own_blur_probability_get_the_perceived_one(tiny_models):
    image = _photo(96, 128)
    result = run(deblur(DeblurRequest(image, model_id="lcnet", device="cpu"), CancelToken()))
    analysis = run(analyse(image, CancelToken(), device="cpu"))
    assert result.model_id == "lcnet"
    assert np.allclose(result.blur_probability, analysis.blur_probability, atol=1e-6)


def test_reference_photo(tiny_models):
    image = _photo(192, 256)  # astronaut squeezed to 3:4
    reference = data.astronaut().astype(np.float32) / 255  # the sharp shot, 512×512: registered
    result = run(deblur(DeblurRequest(image, reference=reference, device="cpu"), CancelToken()))
    assert result.model_id == "refdeblur"
    assert result.warning is None
    assert result.reference_confidence.shape == (192, 256)
    assert 0 <= result.reference_confidence.min() and result.reference_confidence.max() <= 1
    assert result.restored.shape == image.shape
    with pytest.raises(DeblurStudioError, match="'lcnet' does not use a reference photo"):
        run(deblur(DeblurRequest(image, model_id="lcnet", reference=reference), CancelToken()))


@pytest.mark.parametrize("model_id", [None, "refdeblur"])
def test_a_reference_of_another_scene_is_not_used(tiny_models, model_id):
    image = _photo(192, 256)
    coffee = data.coffee().astype(np.float32) / 255
    request = DeblurRequest(image, model_id=model_id, reference=coffee, device="cpu")
    result = run(deblur(request, CancelToken()))
    plain = run(deblur(DeblurRequest(image, device="cpu"), CancelToken()))
    assert result.model_id == "bladenet"  # the default deblurring model, as without a reference
    assert "the reference photo does not show the same scene" in result.warning
    assert "deblurred without it by 'bladenet'" in result.warning
    assert result.reference_confidence is None
    np.testing.assert_array_equal(result.restored, plain.restored)


def test_a_registration_the_caller_has_is_used_as_given(tiny_models):
    image = _photo(192, 256)
    reference = data.astronaut().astype(np.float32) / 255
    unmatched = Registration(None, 5)  # e.g. what the GUI found for the whole photo
    request = DeblurRequest(image, reference=reference, reference_registration=unmatched)
    result = run(deblur(request, CancelToken()))
    assert result.model_id == "bladenet"
    assert "(5 matching features, 12 needed)" in result.warning


def test_analyse_scales_motion_to_full_resolution_pixels(tiny_models):
    image = _photo(64, 96)
    result = run(analyse(image, CancelToken(), device="cpu", max_side=48))  # at half size
    assert result.blur_probability.shape == (64, 96)
    small = cv2.resize(image, (48, 32), interpolation=cv2.INTER_AREA)
    net = modelstore.load_model("motion", torch.device("cpu"))
    with torch.inference_mode():
        axis = net(_net_input(small))[0].permute(1, 2, 0).numpy()
    # Resized as an axis field (see test_axis_fields_average_where_motion_maps_cancel).
    axis = cv2.resize(axis, (96, 64), interpolation=cv2.INTER_LINEAR)
    expected = 2 * motion_from_axis(torch.from_numpy(axis).permute(2, 0, 1)[None])
    expected = expected[0].permute(1, 2, 0).numpy()
    assert np.abs(result.motion_map - expected).max() < 1e-4
    assert np.abs(result.motion_map).max() > 1  # not a degenerate map


def test_missing_motion_model_gives_no_motion_map(tiny_models, tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    del manifest["models"]["motion"], manifest["defaults"]["motion"]
    for spec in manifest["models"].values():
        shutil.copy(tiny_models / spec["file"], folder)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv(modelstore.MODELS_DIR_ENV, str(folder))
    # Hermetic: a motion model shipped in resources/models must not be found either.
    monkeypatch.setattr(modelstore, "resources_dir", lambda: tmp_path / "no_resources")
    image = _photo(64, 96)
    assert run(deblur(DeblurRequest(image, device="cpu"), CancelToken())).motion_map is None
    assert run(analyse(image, CancelToken(), device="cpu")).motion_map is None


def test_bad_requests_are_clear_errors(tiny_models):
    image = _photo(64, 96)
    with pytest.raises(DeblurStudioError, match="mask is 10×10 px but the image is 96×64 px"):
        run(deblur(DeblurRequest(image, mask=np.ones((10, 10), np.float32)), CancelToken()))
    with pytest.raises(DeblurStudioError, match="precision 'fp16' is GPU-only"):
        run(deblur(DeblurRequest(image, device="cpu", precision="fp16"), CancelToken()))
    if not torch.cuda.is_available():
        with pytest.raises(DeblurStudioError, match="device 'cuda' is not available"):
            run(deblur(DeblurRequest(image, device="cuda"), CancelToken()))
