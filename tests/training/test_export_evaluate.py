"""Metrics are right on known inputs; evaluate scores real networks; export ships a run."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import astronaut
from skimage.metrics import structural_similarity

from deblurstudio.core import modelstore
from deblurstudio.models import build, load_checkpoint
from tests.training._data_root import make_data_root
from training import evaluate as evaluate_module
from training import export as export_module
from training.evaluate import evaluate, format_table
from training.export import ExportError, export_run
from training.metrics import (
    PSNR_CAP_DB,
    blur_mask_auc,
    blur_mask_iou,
    endpoint_error,
    psnr,
    ssim,
)
from training.train import CONFIG_NAME, LAST, train

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: one thread is fastest, and spares a CPU shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """3×64×64 sRGB in [0, 1]."""
    image = torch.from_numpy(astronaut()[::8, ::8].copy()).permute(2, 0, 1).float() / 255
    return image.contiguous()


# --- metrics -----------------------------------------------------------------------------------


def test_psnr_of_identical_images_is_capped_and_known_errors_give_known_decibels(photo):
    image = photo[None]
    assert psnr(image, image).item() == PSNR_CAP_DB
    dark = torch.zeros(1, 3, 8, 8)
    assert psnr(dark, dark + 0.1).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01


def test_masked_psnr_scores_only_the_region_and_is_undefined_without_one():
    target = torch.zeros(1, 3, 8, 8)
    pred = target.clone()
    pred[..., :, :4] = 0.1  # error only in the left half
    left = torch.zeros(1, 1, 8, 8)
    left[..., :, :4] = 1
    assert psnr(pred, target, left).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(pred, target, 1 - left).item() == PSNR_CAP_DB
    assert math.isnan(psnr(pred, target, torch.zeros_like(left)).item())


def test_ssim_matches_scikit_image_and_is_one_on_identical_images(photo):
    noisy = photo + 0.05 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))
    noisy = noisy.clamp(0, 1)
    expected = structural_similarity(
        noisy.permute(1, 2, 0).numpy(),
        photo.permute(1, 2, 0).numpy(),
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert ssim(noisy[None], photo[None]).item() == pytest.approx(expected, abs=1e-4)
    assert ssim(photo[None], photo[None]).item() == pytest.approx(1.0, abs=1e-6)
    # Masked: noise only in the bottom half leaves the top half perfect.
    half = photo.clone()
    half[:, 32:] = noisy[:, 32:]
    top = torch.zeros(1, 1, 64, 64)
    top[..., :20, :] = 1
    assert ssim(half[None], photo[None], top).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(half[None], photo[None], 1 - top).item() < 0.95


def test_iou_on_known_masks():
    truth = torch.zeros(1, 1, 4, 4)
    truth[..., :, :2] = 1  # left half
    probability = torch.zeros(1, 1, 4, 4)
    probability[..., :, 1:3] = 0.9  # the middle columns: overlap 1 column of a union of 3
    assert blur_mask_iou(probability, truth).item() == pytest.approx(1 / 3)
    assert blur_mask_iou(truth, truth).item() == 1.0
    assert blur_mask_iou(0.4 * truth, truth).item() == 0.0  # below the 0.5 threshold
    assert math.isnan(blur_mask_iou(torch.zeros_like(truth), torch.zeros_like(truth)).item())


def test_auc_separates_detection_from_calibration():
    truth = torch.zeros(1, 1, 4, 4)
    truth[..., :, :2] = 1
    ramp = torch.linspace(0, 1, 16).view(1, 1, 4, 4).transpose(-1, -2)  # grows left to right
    # Any map that scores every blurred pixel above every sharp one is a perfect detector, even one
    # that IoU at 0.5 calls useless because all of it lies below the threshold.
    assert blur_mask_auc(0.3 - 0.1 * ramp, truth).item() == 1.0
    assert blur_mask_iou(0.3 - 0.1 * ramp, truth).item() == 0.0
    assert blur_mask_auc(ramp, truth).item() == 0.0  # exactly backwards
    assert blur_mask_auc(torch.full_like(truth, 0.7), truth).item() == 0.5  # all tied: chance
    assert math.isnan(blur_mask_auc(ramp, torch.ones_like(truth)).item())  # no sharp pixel


def test_auc_is_the_share_of_correctly_ordered_pairs():
    generator = torch.Generator().manual_seed(0)
    probability = torch.randint(0, 5, (2, 1, 6, 6), generator=generator).float() / 4  # many ties
    truth = (torch.rand(2, 1, 6, 6, generator=generator) > 0.6).float()
    for p, t, auc in zip(probability, truth, blur_mask_auc(probability, truth), strict=True):
        blurred, sharp = p[t > 0.5], p[t <= 0.5]
        pairs = blurred[:, None] - sharp[None, :]
        expected = ((pairs > 0).float() + 0.5 * (pairs == 0).float()).mean()
        assert auc.item() == pytest.approx(expected.item())


def test_end_point_error_takes_the_better_sign():
    truth = torch.zeros(1, 2, 2, 2)
    truth[:, 0], truth[:, 1] = 3.0, 4.0
    assert endpoint_error(-truth, truth).item() == pytest.approx(0.0, abs=1e-5)
    assert endpoint_error(torch.zeros_like(truth), truth).item() == pytest.approx(5.0)
    off = truth.clone()
    off[:, 0] += 1.0
    assert endpoint_error(-off, truth).item() == pytest.approx(1.0)
    valid = torch.zeros(1, 1, 2, 2)
    valid[..., 0, 0] = 1
    wrong_elsewhere = truth.clone()
    wrong_elsewhere[..., 1, 1] = 100.0
    assert endpoint_error(wrong_elsewhere, truth, valid).item() == pytest.approx(0.0, abs=1e-5)


# --- evaluate ----------------------------------------------------------------------------------


def sample(photo, kind="local", size=32) -> dict:
    """A hand-made sample: the left quarter box-blurred, motion (3, 4) px there."""
    sharp = photo[:, :size, :size]
    blurred = sharp.clone()
    blurred[:, :, : size // 4] = torch.nn.functional.avg_pool2d(
        sharp[None, :, :, : size // 4], 3, stride=1, padding=1, count_include_pad=False
    )[0]
    mask = torch.zeros(1, size, size)
    motion = torch.zeros(2, size, size)
    if kind == "sharp":
        blurred = sharp.clone()
    else:
        mask[:, :, : size // 4] = 1
        motion[0, :, : size // 4], motion[1, :, : size // 4] = 3.0, 4.0
    return {
        "blurred": blurred,
        "sharp": sharp,
        "blur_mask": mask,
        "motion": motion,
        "motion_valid": torch.ones(1, size, size),
        "reference": sharp.flip(-1),
        "kind": kind,
    }


def zero_last_conv(model):
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return last


def test_evaluate_an_identity_network_scores_output_as_input(photo):
    model = build("lcnet", width=4, res_blocks=1, lc_blocks=1)
    zero_last_conv(model)  # restored = image + 0
    samples = [sample(photo), sample(photo, "sharp")]
    metrics = evaluate(model, samples)
    assert metrics["samples"] == 2
    for key in ("psnr", "ssim", "psnr_moving", "psnr_static", "ssim_static"):
        assert metrics[f"output_{key}"] == pytest.approx(metrics[f"input_{key}"], abs=1e-4), key
    # Only the blurred quarter is degraded: the static part of both samples is perfect.
    assert metrics["input_psnr_static"] == PSNR_CAP_DB
    assert metrics["input_psnr_moving"] < 40
    assert "blur_iou" not in metrics  # LCNet perceives no blur
    assert "PSNR moving (dB)" in format_table(metrics)


def test_evaluate_blur_perception_iou_and_sharp_probability(photo):
    model = build("bladenet", width=4, perception_width=4)
    torch.nn.init.zeros_(model.perception.out.weight)
    torch.nn.init.constant_(model.perception.out.bias, 10.0)  # "blurred everywhere"
    metrics = evaluate(model, [sample(photo), sample(photo, "sharp")])
    assert metrics["blur_iou"] == pytest.approx(0.25)  # the mask is a quarter of the image
    assert metrics["blur_auc"] == pytest.approx(0.5)  # the same probability everywhere: chance
    assert metrics["sharp_mean_probability"] == pytest.approx(1.0, abs=1e-4)


def test_evaluate_motion_end_point_error_on_the_moving_pixels(photo):
    model = build("neurmap_motion", width=4)
    zero_last_conv(model)  # predicts no motion at all
    metrics = evaluate(model, [sample(photo), sample(photo, "sharp")])
    assert metrics["epe_moving"] == pytest.approx(5.0, abs=1e-4)  # |(3, 4)|
    assert metrics["epe_moving"] == pytest.approx(metrics["zero_epe_moving"], abs=1e-4)
    # Over all valid pixels: a quarter of the first sample at 5 px, nothing in the sharp one.
    assert metrics["epe"] == pytest.approx((5.0 / 4 + 0.0) / 2, abs=1e-4)


def test_evaluate_reference_network_reports_gains_over_its_no_reference_twin(photo):
    torch.manual_seed(0)
    model = build("refdeblur", width=4, blocks=1, match_width=4, match_stride=8)
    metrics = evaluate(model, [sample(photo), sample(photo, "global")])
    assert metrics["reference_gain_db"] == pytest.approx(
        metrics["output_psnr"] - metrics["twin_psnr"], abs=1e-3
    )
    assert {"unrelated_psnr", "unrelated_gain_db"} <= set(metrics)
    assert "gain of related reference (dB)" in format_table(metrics)


# --- export ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_root):
    torch.set_num_threads(1)
    return train(
        CONFIGS / "tiny_lcnet.yaml",
        data_root,
        tmp_path_factory.mktemp("run"),
        steps=2,
        device="cpu",
    )


def test_export_writes_a_loadable_checkpoint_with_its_card_and_updates_the_manifest(
    tmp_path, run_dir, data_root, monkeypatch
):
    models = tmp_path / "models"
    models.mkdir()
    other = {"file": "old.safetensors", "arch": "bladenet", "task": "deblur", "title": "Old"}
    (models / "manifest.json").write_text(
        json.dumps({"format": 1, "defaults": {"deblur": "old"}, "models": {"old": other}})
    )
    export_module.main(
        [
            "--run-dir",
            str(run_dir),
            "--checkpoint",
            "last",
            "--id",
            "lcnet-test",
            "--task",
            "deblur",
            "--title",
            "Tiny LCNet",
            "--evaluate-samples",
            "2",
            "--data-root",
            str(data_root),
            "--models-dir",
            str(models),
            "--role",
            "fast",
        ]
    )

    model, info = load_checkpoint(models / "lcnet-test.safetensors")
    state = torch.load(run_dir / LAST, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["nets"]["model"][key])
    card = info.card
    assert card["steps"] == 2 and card["task"] == "deblur"
    assert card["config_digest"] == hashlib.sha256((run_dir / CONFIG_NAME).read_bytes()).hexdigest()
    assert card["metrics"]["samples"] == 2 and card["metrics"]["output_psnr"] > 0
    # The target conditions, scored separately: camera shake, local blur, sharp photos.
    assert set(card["targets"]) == {"global", "local", "sharp"}
    assert card["targets"]["sharp"]["input_psnr"] == PSNR_CAP_DB  # nothing to do there
    assert card["targets"]["global"]["input_psnr"] < 40  # really blurred, with noise
    assert "output_psnr_moving" in card["targets"]["local"]
    assert "photos/bsds500_train" in card["trained_on"]
    assert "bsds500_test" in card["validation_split"]
    assert card["hardware"] and card["training_hours"] >= 0

    manifest = json.loads((models / "manifest.json").read_text())
    assert manifest["models"]["old"] == other  # kept
    assert manifest["models"]["lcnet-test"]["card"] == card
    assert manifest["models"]["lcnet-test"]["arch"] == "lcnet"
    assert manifest["defaults"] == {"deblur": "old", "fast": "lcnet-test"}  # deblur untouched

    # The app finds it.
    monkeypatch.setenv(modelstore.MODELS_DIR_ENV, str(models))
    assert modelstore.find_model("lcnet-test").card["metrics"] == card["metrics"]


def test_export_refuses_checkpoints_over_the_size_limit(tmp_path, run_dir, monkeypatch):
    monkeypatch.setattr(export_module, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(ExportError, match="over the"):
        export_run(run_dir, "big", "deblur", "Big", checkpoint="last", models_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_evaluate_command_prints_a_table_for_a_checkpoint(tmp_path, run_dir, data_root, capsys):
    entry = export_run(run_dir, "x", "deblur", "X", checkpoint="last", models_dir=tmp_path)
    assert entry["card"]["metrics"] == torch.load(run_dir / LAST, weights_only=True)["validation"]
    checkpoint = str(tmp_path / "x.safetensors")
    evaluate_module.main(
        ["--model", checkpoint, "--data-root", str(data_root), "--samples", "2", "--crop", "32"]
    )
    table = capsys.readouterr().out
    assert "PSNR (dB)" in table and table.strip().splitlines()[-1].split()[-1] == "2"

    # A GoPro-layout folder, whole 37×45 images (not a multiple of the stride: padded and cropped).
    sequence = tmp_path / "gopro" / "test" / "GOPR0001"
    for folder, image in (("sharp", astronaut()), ("blur", astronaut()[:, ::-1])):
        (sequence / folder).mkdir(parents=True)
        Image.fromarray(np.ascontiguousarray(image[:37, :45])).save(sequence / folder / "0.png")
    evaluate_module.main(
        ["--model", checkpoint, "--layout", f"gopro:{tmp_path / 'gopro'}", "--split", "test"]
    )
    table = capsys.readouterr().out
    assert table.strip().splitlines()[-1].split()[-1] == "1"
    assert "PSNR moving" not in table  # GoPro has no blur masks


def test_evaluate_command_names_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_module.main(["--model", str(bad)])
    assert exit_info.value.code == 2
    assert str(bad) in capsys.readouterr().err
