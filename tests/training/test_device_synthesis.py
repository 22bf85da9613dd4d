"""Device synthesis (torch, batched) against the numpy reference on the same parameters."""

import numpy as np
import pytest
import torch
from skimage import data as skdata
from torch.utils.data import default_collate

from tests.training._data_root import make_data_root
from training.data import SyntheticBlurDataset, synthesis
from training.data.device_synthesis import (
    add_noise,
    convolve,
    jpeg_roundtrip,
    synthesize_on_device,
)
from training.evaluate import to_device

CROP = 32
FINISHED_KEYS = {"blurred", "sharp", "blur_mask", "motion", "motion_valid", "kind", "reference"}
# The batch tests run on a GPU too where there is one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp("data"))


def _datasets(data_root, **options):
    """The same training stream synthesised on the CPU and as device ingredients."""
    options = {"crop": CROP, "length": 64, "with_reference": True, "seed": 3, **options}
    return (
        SyntheticBlurDataset(data_root, **options),
        SyntheticBlurDataset(data_root, synthesis="device", **options),
    )


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def _render(items, device):
    """Collate ingredients, synthesise them on ``device``, bring the batch back."""
    batch = synthesize_on_device(to_device(default_collate(items), torch.device(device)))
    return to_device(batch, torch.device("cpu"))


@pytest.mark.parametrize("device", DEVICES)
def test_device_batch_equals_the_cpu_samples_of_every_kind(data_root, device):
    # Without noise and JPEG both streams draw the same numbers, so sample i is the same scene.
    cpu, ingredients = _datasets(data_root, noise_sigma=(0.0, 0.0), jpeg_probability=0.0)
    count = 24
    expected = [cpu[i] for i in range(count)]
    batch = _render([ingredients[i] for i in range(count)], device)
    assert set(batch) == FINISHED_KEYS
    assert batch["kind"] == [item["kind"] for item in expected]
    assert set(batch["kind"]) == {"global", "local", "mixed", "sharp"}
    for i, item in enumerate(expected):
        for key in ("blurred", "sharp", "reference"):
            error = (batch[key][i] - item[key]).abs().max().item()
            assert error < 2 / 255, (i, item["kind"], key, error * 255)
        for key in ("blur_mask", "motion_valid"):
            agreement = (batch[key][i] == item[key]).float().mean().item()
            assert agreement > 0.99, (i, item["kind"], key, agreement)
        both_valid = (batch["motion_valid"][i] * item["motion_valid"]).bool()[0]
        motion_error = (batch["motion"][i] - item["motion"]).abs()[:, both_valid]
        assert motion_error.numel() == 0 or motion_error.max() < 1e-3, (i, item["kind"])
    # The comparison saw blur and motion, not only sharp or flat samples.
    assert batch["blur_mask"].mean() > 0.2 and (batch["motion"].abs() > 1).any()


@pytest.mark.parametrize("device", DEVICES)
def test_device_batch_has_the_cpu_batch_layout_with_noise_and_jpeg(data_root, device):
    cpu, ingredients = _datasets(data_root, jpeg_probability=0.5)
    expected = default_collate([cpu[i] for i in range(8)])
    batch = _render([ingredients[i] for i in range(8)], device)
    assert set(batch) == set(expected)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert batch[key].shape == value.shape and batch[key].dtype == value.dtype, key
            assert torch.isfinite(batch[key]).all(), key
    assert 0.0 <= batch["blurred"].min() and batch["blurred"].max() <= 1.0


def test_validation_samples_stay_cpu_synthesised(data_root):
    val = SyntheticBlurDataset(data_root, split="val", crop=CROP, synthesis="device")
    reference = SyntheticBlurDataset(data_root, split="val", crop=CROP)
    assert torch.equal(val[0]["blurred"], reference[0]["blurred"])


def test_finished_batches_pass_through():
    batch = {"blurred": torch.rand(2, 3, 8, 8)}
    assert synthesize_on_device(batch) is batch


def test_fft_convolution_is_the_true_convolution_of_synthesis():
    rng = np.random.default_rng(0)
    image = rng.random((48, 40, 3), dtype=np.float32)
    kernel = synthesis.random_kernel(rng, 9.0, linear_probability=0.0).weights
    kernel[0, 0] += 0.5  # lopsided: a missing flip would show
    kernel /= kernel.sum()
    radius = kernel.shape[0] // 2
    expected = synthesis.convolve(image, kernel)[radius:-radius, radius:-radius]
    result = convolve(_chw(image), torch.from_numpy(kernel)[None])[0]
    assert (
        np.abs(result.numpy().transpose(1, 2, 0)[radius:-radius, radius:-radius] - expected).max()
        < 1e-5
    )


def test_noise_has_the_level_of_synthesis_add_noise():
    sigma, levels = 0.02, (0.2, 0.5, 0.8)
    image = np.repeat(np.array(levels, np.float32), 20_000).reshape(len(levels), -1, 1)
    image = np.repeat(image, 3, axis=2)
    noisy = synthesis.add_noise(np.random.default_rng(1), image, sigma)
    shot_share = np.random.default_rng(1).uniform(*synthesis.SHOT_SHARE)
    torch.manual_seed(0)
    result = add_noise(_chw(image), torch.tensor([[sigma, shot_share]], dtype=torch.float32))
    noise = result[0].numpy().transpose(1, 2, 0) - image
    for row in range(len(levels)):
        expected_std = (noisy[row] - image[row]).std()
        assert noise[row].std() == pytest.approx(expected_std, rel=0.05)
        assert abs(noise[row].mean()) < 1e-3


@pytest.mark.parametrize("quality", [60, 95])
def test_jpeg_matches_opencv(quality):
    photo = skdata.astronaut()[100:228, 80:200].astype(np.float32) / 255.0  # 128×120: edges pad
    expected = synthesis.jpeg_roundtrip(photo, quality)
    result = jpeg_roundtrip(_chw(photo), torch.tensor([quality]))[0].numpy().transpose(1, 2, 0)
    assert np.abs(result - expected).mean() < 1 / 255
    # The artefacts themselves agree: the result is far closer to OpenCV's than the photo is.
    assert np.abs(result - expected).mean() < np.abs(expected - photo).mean() / 2
