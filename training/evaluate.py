"""Score a network on validation samples and print a table.

    python -m training.evaluate --model resources/models/bladenet.safetensors \\
        [--data-root ../shared/data --split val | --layout gopro:/data/GOPRO] [--samples N]

Deblurring networks: PSNR/SSIM of the input and of the output, overall and in moving
(blur_mask = 1) and static (blur_mask = 0) regions; with a blur-probability output (BladeNet) the
blur-mask IoU at 0.5, the pixel AUC of the probability against the mask (how well it separates
blurred from sharp pixels, whatever its calibration) and the mean probability on sharp samples;
for a reference network its PSNR gain over its no-reference twin (reference=None) with the
sample's own related view and with an unrelated view (another sample's reference). Motion
networks: end-point error in px over pixels with a known linear motion (the better of ±m), overall
and where that motion is at least 1 px long, next to the error of predicting no motion.
`evaluate` returns these as a dict (the model card's metrics and the training validation).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurstudio.core.errors import DeblurStudioError
from deblurstudio.models import CheckpointError, load_checkpoint
from deblurstudio.models.neurmap import motion_from_axis
from training.data import PairedDataset, SyntheticBlurDataset
from training.metrics import blur_mask_auc, blur_mask_iou, endpoint_error, psnr, ssim

MOVING_PX = 1.0  # motion at least this long (px) counts as "moving" in the motion scores

# The conditions the shipped models' targets are stated for, as overrides of the synthetic
# validation split: camera shake at 1 % noise, Local Blur Synthesis, sharp photos (nothing to
# do), straight-line camera motion (exact ground-truth motion everywhere). No JPEG step, so each
# condition is what its name says.
SUITES: dict[str, dict[str, Any]] = {
    "global": {"kinds": {"global": 1.0}, "noise_sigma": (0.01, 0.01), "jpeg_probability": 0.0},
    "local": {"kinds": {"local": 1.0}, "noise_sigma": (0.0, 0.0), "jpeg_probability": 0.0},
    "sharp": {"kinds": {"sharp": 1.0}, "noise_sigma": (0.0, 0.0), "jpeg_probability": 0.0},
    "linear": {
        "kinds": {"global": 1.0},
        "linear_probability": 1.0,
        "noise_sigma": (0.0, 0.0),
        "jpeg_probability": 0.0,
    },
}


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a sample or batch's tensors to `device` (non-tensors such as "kind" stay)."""
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()
    }


def _pad_to_stride(image: Tensor, stride: int) -> Tensor:
    """Reflect-pad the bottom/right of N×C×H×W to multiples of `stride` (crop back afterwards)."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % stride, -width % stride
    if not (pad_h or pad_w):
        return image
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


def is_motion_net(model: nn.Module) -> bool:
    """Deblurring networks declare `needs_reference`; the motion network does not."""
    return not hasattr(model, "needs_reference")


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


class _Scores:
    """Per-image metric lists, averaged (ignoring NaN: undefined, e.g. an empty region)."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def add(self, name: str, value: Tensor | float) -> None:
        self.values.setdefault(name, []).append(float(value))

    def means(self) -> dict[str, float]:
        """Mean per metric; metrics undefined on every sample are left out."""
        means = {name: _nanmean(values) for name, values in self.values.items()}
        return {name: value for name, value in means.items() if not math.isnan(value)}


def _restore(model: nn.Module, image: Tensor, reference: Tensor | None) -> Any:
    stride = int(getattr(model, "stride", 1))
    height, width = image.shape[-2:]
    padded = _pad_to_stride(image, stride)
    if model.needs_reference:
        output = model(padded, None if reference is None else _pad_to_stride(reference, stride))
    else:
        output = model(padded)
    return output._replace(
        **{k: v[..., :height, :width] for k, v in output._asdict().items() if v is not None}
    )


def _score_deblur(scores: _Scores, model: nn.Module, sample: dict, unrelated: Tensor | None):
    blurred, sharp = sample["blurred"], sample["sharp"]
    mask = sample.get("blur_mask")
    output = _restore(model, blurred, sample.get("reference"))
    restored = output.restored.clamp(0, 1)
    regions = {"": None}
    if mask is not None:
        regions.update(_moving=mask, _static=1 - mask)
    for suffix, region in regions.items():
        scores.add(f"input_psnr{suffix}", psnr(blurred, sharp, region)[0])
        scores.add(f"output_psnr{suffix}", psnr(restored, sharp, region)[0])
        scores.add(f"input_ssim{suffix}", ssim(blurred, sharp, region)[0])
        scores.add(f"output_ssim{suffix}", ssim(restored, sharp, region)[0])
    if output.blur_probability is not None and mask is not None:
        if float(mask.max()) > 0:
            scores.add("blur_iou", blur_mask_iou(output.blur_probability, mask)[0])
            scores.add("blur_auc", blur_mask_auc(output.blur_probability, mask)[0])
        else:
            scores.add("sharp_mean_probability", output.blur_probability.mean())
    if model.needs_reference and sample.get("reference") is not None:
        with_reference = psnr(restored, sharp)[0]
        twin = psnr(_restore(model, blurred, None).restored.clamp(0, 1), sharp)[0]
        scores.add("twin_psnr", twin)
        scores.add("reference_gain_db", with_reference - twin)
        if unrelated is not None:
            other = psnr(_restore(model, blurred, unrelated).restored.clamp(0, 1), sharp)[0]
            scores.add("unrelated_psnr", other)
            scores.add("unrelated_gain_db", other - twin)


def _score_motion(scores: _Scores, model: nn.Module, sample: dict) -> None:
    if "motion" not in sample or float(sample["motion_valid"].max()) <= 0:
        return  # no known linear motion in this sample
    blurred = sample["blurred"]
    height, width = blurred.shape[-2:]
    axis = model(_pad_to_stride(blurred, int(getattr(model, "stride", 1))))
    motion = motion_from_axis(axis[..., :height, :width])
    truth, valid = sample["motion"], sample["motion_valid"]
    # Moving: known motion of at least MOVING_PX; there predicting "no blur" is a real error.
    moving = valid * (truth.norm(dim=1, keepdim=True) >= MOVING_PX)
    zero = torch.zeros_like(motion)
    scores.add("epe", endpoint_error(motion, truth, valid)[0])
    scores.add("epe_moving", endpoint_error(motion, truth, moving)[0])
    scores.add("zero_epe", endpoint_error(zero, truth, valid)[0])
    scores.add("zero_epe_moving", endpoint_error(zero, truth, moving)[0])


@torch.no_grad()
def evaluate(
    model: nn.Module, samples: Sequence[dict[str, Any]], device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Score `model` (eval mode, float32) on `samples`, one at a time (sizes may differ).

    Args:
        model: a network built by deblurstudio.models.build.
        samples: dicts of C×H×W tensors as the training datasets yield ("blurred", "sharp",
            optionally "blur_mask", "motion", "motion_valid", "reference", "kind").
        device: where to run.

    Returns:
        Metric name → mean over the samples where it is defined (see the module docstring; a
        metric defined on none, e.g. IoU without blurred samples, is absent); "samples" is the
        count. PSNR in dB, EPE in px.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    scores = _Scores()
    count = len(samples)
    for index, sample in enumerate(samples):
        sample = to_device(
            {k: v[None] if isinstance(v, Tensor) else v for k, v in sample.items()}, device
        )
        if is_motion_net(model):
            _score_motion(scores, model, sample)
            continue
        unrelated = None
        if model.needs_reference and count > 1:
            # Half the set away: another scene, not a neighbour that may share the photo.
            other = samples[(index + max(1, count // 2)) % count]
            unrelated = other.get("reference", other["sharp"])[None].to(device)
        _score_deblur(scores, model, sample, unrelated)
    return {"samples": count, **scores.means()}


_ROWS = [
    ("PSNR (dB)", "psnr", "{:.2f}"),
    ("PSNR moving (dB)", "psnr_moving", "{:.2f}"),
    ("PSNR static (dB)", "psnr_static", "{:.2f}"),
    ("SSIM", "ssim", "{:.4f}"),
    ("SSIM moving", "ssim_moving", "{:.4f}"),
    ("SSIM static", "ssim_static", "{:.4f}"),
]
_SINGLE = [
    ("blur-mask IoU @0.5", "blur_iou", "{:.3f}"),
    ("blur-mask AUC (pixels)", "blur_auc", "{:.3f}"),
    ("mean probability, sharp samples", "sharp_mean_probability", "{:.3f}"),
    ("no-reference twin PSNR (dB)", "twin_psnr", "{:.2f}"),
    ("gain of related reference (dB)", "reference_gain_db", "{:+.2f}"),
    ("gain of unrelated reference (dB)", "unrelated_gain_db", "{:+.2f}"),
]


def format_table(metrics: dict[str, float]) -> str:
    """The metrics as an aligned text table (input vs output columns where both exist)."""

    def cell(key: str, fmt: str) -> str:
        value = metrics.get(key)
        return "—" if value is None or math.isnan(value) else fmt.format(value)

    lines = [f"{'metric':34} {'input':>10} {'output':>10}"]
    for label, key, fmt in _ROWS:
        if f"output_{key}" in metrics:
            lines.append(
                f"{label:34} {cell('input_' + key, fmt):>10} {cell('output_' + key, fmt):>10}"
            )
    for label, suffix in (("end-point error, linear (px)", ""), ("  … moving pixels", "_moving")):
        if f"epe{suffix}" in metrics:  # the input column: the error of predicting no motion
            lines.append(
                f"{label:34} {cell('zero_epe' + suffix, '{:.2f}'):>10} "
                f"{cell('epe' + suffix, '{:.2f}'):>10}"
            )
    for label, key, fmt in _SINGLE:
        if key in metrics:
            lines.append(f"{label:34} {'':>10} {cell(key, fmt):>10}")
    lines.append(f"{'samples':34} {'':>10} {metrics.get('samples', 0):>10}")
    return "\n".join(lines)


def suites_for(model: nn.Module) -> tuple[str, ...]:
    """The SUITES a network's targets are scored on."""
    if is_motion_net(model):
        return ("linear", "local")
    if model.needs_reference:
        return ("global", "local")
    return ("global", "local", "sharp")


def load_samples(
    model: nn.Module,
    *,
    data_root: str | os.PathLike | None,
    split: str,
    layout: str | None,
    samples: int,
    crop: int | None,
    suite: str | None = None,
) -> list[dict[str, Any]]:
    """The first `samples` samples of the synthetic split or of a paired public layout.

    Args:
        model: the network (a reference network gets samples with a reference view).
        data_root: the shared training data (synthetic samples).
        split: "val"/"train" for synthetic data, the layout's split folder (e.g. "test") else.
        layout: "NAME:PATH" of a paired layout (gopro, reds, lode, realblur, hide) or None.
        samples: how many.
        crop: sample side in px; None = 256 for synthetic data, whole images for a layout.
        suite: a SUITES condition for the synthetic samples (None: the training mix).
    """
    if layout is not None:
        name, _, root = layout.partition(":")
        dataset = PairedDataset(name, root, split=split, crop=crop, deterministic=True)
    else:
        dataset = SyntheticBlurDataset(
            data_root,
            split=split,
            crop=crop or 256,
            length=samples,
            with_reference=bool(getattr(model, "needs_reference", False)),
            **(SUITES[suite] if suite is not None else {}),
        )
    return [dataset[index] for index in range(min(samples, len(dataset)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description="Score a checkpoint on validation samples."
    )
    parser.add_argument("--model", required=True, help="a .safetensors checkpoint")
    parser.add_argument("--data-root", default="../shared/data", help="synthetic data root")
    parser.add_argument(
        "--split", default="val", help="val (default) or train; with --layout its split folder"
    )
    parser.add_argument("--layout", help="NAME:PATH of a paired public dataset (e.g. gopro:/d)")
    parser.add_argument(
        "--suite", choices=sorted(SUITES), help="one target condition instead of the training mix"
    )
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument(
        "--crop", type=int, help="sample side, px (default: 256 synthetic, whole layout images)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        model, _ = load_checkpoint(args.model, args.device)
        samples = load_samples(
            model,
            data_root=args.data_root,
            split=args.split,
            layout=args.layout,
            samples=args.samples,
            crop=args.crop,
            suite=args.suite,
        )
    except (CheckpointError, DeblurStudioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(format_table(evaluate(model, samples, args.device)))


if __name__ == "__main__":
    main()
