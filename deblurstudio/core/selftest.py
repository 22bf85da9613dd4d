"""The installed application's self-test (`deblurstudio --self-test`, the bundle's smoke test).

It loads every installed model, deblurs the bundled sample photo (resources/sample.jpg) with the
default model, and checks that the result is sharper than the input while still showing the same
picture. The GUI's `--self-test` and any other caller share this one check.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from deblurstudio.core.errors import DeblurStudioError

SAMPLE_NAME = "sample.jpg"
MIN_SHARPNESS_GAIN = 1.05  # the result's sharpness / the input's
MIN_FIDELITY_DB = 25.0  # PSNR of the low-passed result against the low-passed input
_LOW_PASS_SIGMA = 2.0  # px at half resolution: keeps the picture's layout, drops fine detail


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the luma, at half resolution.

    Args:
        image: float32 RGB H×W×3 in [0, 1].

    Returns:
        A unitless score; larger = sharper. Halving first (area average) cuts pixel noise by 4×
        in variance while keeping the edges that deblurring restores, so added noise scores far
        less than added sharpness.
    """
    luma = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    half = cv2.resize(
        luma, (max(1, luma.shape[1] // 2), max(1, luma.shape[0] // 2)), interpolation=cv2.INTER_AREA
    )
    return float(cv2.Laplacian(half, cv2.CV_32F, ksize=3).var())


def fidelity_db(image: np.ndarray, restored: np.ndarray) -> float:
    """PSNR (dB) between low-passed versions of two float32 RGB H×W×3 images in [0, 1]: high when
    `restored` still shows the same picture, whatever happened to its fine detail."""

    def low_pass(picture: np.ndarray) -> np.ndarray:
        picture = np.ascontiguousarray(picture, dtype=np.float32)
        half = cv2.resize(
            picture,
            (max(1, picture.shape[1] // 2), max(1, picture.shape[0] // 2)),
            interpolation=cv2.INTER_AREA,
        )
        return cv2.GaussianBlur(half, (0, 0), _LOW_PASS_SIGMA)

    mse = float(np.mean((low_pass(image) - low_pass(restored)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@dataclass
class RestorationCheck:
    """Whether a restoration is sharper than its input and still the same picture."""

    sharpness_before: float
    sharpness_after: float
    fidelity_db: float
    problem: str = ""

    @property
    def passed(self) -> bool:
        return not self.problem


def check_restoration(image: np.ndarray, restored: np.ndarray) -> RestorationCheck:
    """Compare a blurred input and its restoration (float32 RGB H×W×3 in [0, 1], same size)."""
    if restored.shape != image.shape:
        return RestorationCheck(0.0, 0.0, 0.0, f"result is {restored.shape}, input {image.shape}")
    if not np.isfinite(restored).all():
        return RestorationCheck(0.0, 0.0, 0.0, "result contains NaN or infinite values")
    check = RestorationCheck(sharpness(image), sharpness(restored), fidelity_db(image, restored))
    gain = check.sharpness_after / max(check.sharpness_before, 1e-12)
    if check.fidelity_db < MIN_FIDELITY_DB:
        check.problem = (
            f"result no longer shows the input picture (low-pass PSNR {check.fidelity_db:.1f} dB "
            f"< {MIN_FIDELITY_DB:.0f} dB)"
        )
    elif gain < MIN_SHARPNESS_GAIN:
        check.problem = f"result is not sharper than the input (sharpness ×{gain:.2f})"
    return check


@dataclass
class SelfTestReport:
    """What the self-test did and found."""

    models: list[str] = field(default_factory=list)
    model_id: str = ""
    device: str = ""
    seconds: float = 0.0
    check: RestorationCheck | None = None

    @property
    def passed(self) -> bool:
        return self.check is not None and self.check.passed

    def summary(self) -> str:
        """One line for the terminal."""
        if self.check is None:
            return "self-test did not run"
        verdict = "passed" if self.passed else f"FAILED: {self.check.problem}"
        return (
            f"self-test {verdict} — loaded {len(self.models)} models ({', '.join(self.models)}); "
            f"'{self.model_id}' on {self.device} in {self.seconds:.1f} s: sharpness "
            f"{self.check.sharpness_before:.3g} → {self.check.sharpness_after:.3g}, "
            f"fidelity {self.check.fidelity_db:.1f} dB"
        )


def sample_path() -> Path:
    """The bundled sample photo."""
    from deblurstudio.core.modelstore import resources_dir

    return resources_dir() / SAMPLE_NAME


def run_self_test(sample: str | os.PathLike | None = None, device: str = "auto") -> SelfTestReport:
    """Load every installed model on `device`, deblur `sample` (default: the bundled sample
    photo) with the default model, and check the result.

    Raises:
        DeblurStudioError: no models, a model that does not load, an unreadable sample, or the
            run itself failed — one line naming what and why.
    """
    from deblurstudio.core import imageio, pipeline
    from deblurstudio.core.cancel import CancelToken
    from deblurstudio.core.devices import resolve_device
    from deblurstudio.core.modelstore import list_models, load_model

    torch_device = resolve_device(device)
    entries = list_models()
    if not entries:
        raise DeblurStudioError("no models are installed")
    report = SelfTestReport()
    for entry in entries:
        try:
            load_model(entry.id, torch_device)
        except DeblurStudioError as exc:
            raise DeblurStudioError(f"model '{entry.id}' does not load: {exc}") from exc
        report.models.append(entry.id)
    photo = imageio.read_image(sample if sample is not None else sample_path())
    started = time.perf_counter()
    result = pipeline.run(
        pipeline.deblur(pipeline.DeblurRequest(image=photo.pixels, device=device), CancelToken())
    )
    report.seconds = time.perf_counter() - started
    report.model_id, report.device = result.model_id, result.device
    report.check = check_restoration(photo.pixels, result.restored)
    return report
