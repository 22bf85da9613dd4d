"""Does the pipeline recognise a reference of another scene, and does registering a related one
help? Measured on the held-out validation photos of the shared data (never seen in training).

1. Decisions of `registration.register` on blurred photos (random camera-shake kernels of 8, 16
   or 30 px, 1 % noise) against sharp references:
     related:   CamVid validation frames 1, 3 and 8 frames apart (the car drove on); synthetic
                second views (`synthesis.reference_view`: shift, zoom, tilt, exposure) of BSDS
                test photos;
     unrelated: BSDS/Set14 photos paired with others; CamVid frames 60 apart; CamVid with BSDS.
2. PSNR of the whole pipeline on full-size photos with a related reference: the default model
   without a reference; the reference model with the registered reference; and with the
   reference only resized to the photo (what the pipeline did before registration). With an
   unrelated reference: what the pipeline returns (it should fall back to the default model).

Usage (from the repository root):
    python benchmarks/reference_registration.py [--data-root ../shared/data] [--quality N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deblurstudio.core import imageio  # noqa: E402
from deblurstudio.core.cancel import CancelToken  # noqa: E402
from deblurstudio.core.pipeline import DeblurRequest, deblur, run  # noqa: E402
from deblurstudio.core.registration import Registration, register  # noqa: E402
from training.data import synthesis  # noqa: E402


def blurred(rng: np.random.Generator, photo: np.ndarray, length: float) -> np.ndarray:
    kernel = synthesis.random_kernel(rng, length)
    linear = synthesis.convolve(synthesis.srgb_to_linear(photo), kernel.weights)
    return synthesis.add_noise(rng, synthesis.linear_to_srgb(linear), 0.01)


def second_view(rng: np.random.Generator, photo: np.ndarray, strength: float) -> np.ndarray:
    height, width = photo.shape[:2]
    linear = synthesis.srgb_to_linear(photo)
    return synthesis.reference_view(rng, linear, (0, 0, height, width), strength)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def pairs(data_root: Path, rng: np.random.Generator):
    """(kind, name, blurred photo, sharp photo, reference) for part 1."""
    camvid = sorted((data_root / "camvid" / "val").glob("*.png")) or sorted(
        (data_root / "camvid" / "val").glob("*.jpg")
    )
    photos = sorted((data_root / "photos" / "bsds500_test").glob("*"))[:40]
    photos += sorted((data_root / "photos" / "set14").glob("*"))
    read = lambda path: imageio.read_image(path).pixels  # noqa: E731
    lengths = (8.0, 16.0, 30.0)
    for index in range(0, 90, 9):
        for gap in (1, 3, 8):
            sharp = read(camvid[index])
            length = lengths[int(rng.integers(3))]
            yield "related", f"camvid +{gap} frames, {length:.0f} px", blurred(
                rng, sharp, length
            ), sharp, read(camvid[index + gap])
    for path in photos[:20]:
        sharp = read(path)
        length = lengths[int(rng.integers(3))]
        yield "related", f"view of {path.name}, {length:.0f} px", blurred(
            rng, sharp, length
        ), sharp, second_view(rng, sharp, 1.0)
    for index, path in enumerate(photos[:30]):
        other = photos[(index + 7) % len(photos)]
        sharp = read(path)
        yield "unrelated", f"{path.name} / {other.name}", blurred(rng, sharp, 16.0), sharp, read(
            other
        )
    for index in range(0, 30, 10):
        sharp = read(camvid[index])
        yield "unrelated", "camvid 60 frames apart", blurred(rng, sharp, 16.0), sharp, read(
            camvid[index + 60]
        )
        yield "unrelated", f"camvid / {photos[index].name}", blurred(
            rng, sharp, 16.0
        ), sharp, read(photos[index])


def deblurred(image, reference=None, registration=None, model_id=None):
    request = DeblurRequest(
        image, model_id=model_id, reference=reference, device="cpu", maps=False,
        reference_registration=registration,
    )
    return run(deblur(request, CancelToken()))


def resized_only(image: np.ndarray, reference: np.ndarray) -> Registration:
    """The pre-registration mapping: the reference stretched over the photo."""
    (height, width), (ref_h, ref_w) = image.shape[:2], reference.shape[:2]
    return Registration(np.diag([ref_w / width, ref_h / height, 1.0]), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quality", type=int, default=6, help="pairs of each group in part 2")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    decisions = {"related": [], "unrelated": []}
    quality = {"camvid": [], "view": [], "unrelated": []}
    for kind, name, image, sharp, reference in pairs(args.data_root, rng):
        registration = register(image, reference)
        accepted = registration.homography is not None
        decisions[kind].append(accepted)
        print(f"{kind:9s} {name:40s} {registration.matches:5d} matches  "
              f"{'accepted' if accepted else 'rejected'}")
        group = "unrelated" if kind == "unrelated" else name.split()[0]
        if (accepted or kind == "unrelated") and len(quality[group]) < args.quality:
            quality[group].append((name, image, sharp, reference))
    for kind, accepted in decisions.items():
        print(f"{kind}: {sum(accepted)} of {len(accepted)} accepted")

    print("\nPSNR (dB) on full-size photos:")
    print(f"{'pair':40s} {'input':>6s} {'default':>8s} {'ref reg.':>8s} {'ref resized':>11s}")
    for group in quality.values():
        for name, image, sharp, reference in group:
            default = deblurred(image)
            registered = deblurred(image, reference)
            old = deblurred(image, reference, resized_only(image, reference))
            row = [psnr(image, sharp)]
            row += [psnr(r.restored, sharp) for r in (default, registered, old)]
            print(f"{name:40s} " + " ".join(f"{v:8.2f}" for v in row)
                  + ("" if registered.warning is None else "  (reference not used)"))


if __name__ == "__main__":
    main()
