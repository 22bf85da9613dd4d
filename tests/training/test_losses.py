"""The training losses behave as their papers intend, on images a test can reason about."""

import math

import pytest
import torch
import torch.nn.functional as F
from skimage.data import astronaut

from deblurstudio.models.neurmap import doubled_angle, reblur
from training.losses import (
    bce_loss,
    dice_loss,
    fft_loss,
    kernel_prior_loss,
    lsgan_loss,
    motion_axis_loss,
    patch_contrastive_loss,
    psnr_loss,
    reblur_loss,
    relativistic_average_loss,
    structure_loss,
    tv_loss,
)
from training.metrics import psnr


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """1×3×64×64 sRGB photo in [0, 1]."""
    image = torch.from_numpy(astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(64, 64), mode="area")


def box_blur(image: torch.Tensor, size: int = 5) -> torch.Tensor:
    return F.avg_pool2d(F.pad(image, (size // 2,) * 4, mode="reflect"), size, stride=1)


def test_fft_loss_is_zero_on_identical_images_and_grows_with_blur(photo):
    assert fft_loss(photo, photo).item() == 0.0
    mild, strong = box_blur(photo, 3), box_blur(photo, 7)
    assert 0 < fft_loss(mild, photo) < fft_loss(strong, photo)


def test_dice_of_a_mask_with_itself_is_zero_and_with_its_complement_one():
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    assert dice_loss(mask, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(1 - mask, mask).item() == pytest.approx(1.0, abs=1e-2)
    # A sharp sample: nothing blurred, nothing attended → no loss (not undefined).
    empty = torch.zeros(1, 1, 32, 32)
    assert dice_loss(empty, empty).item() == 0.0


def test_bce_rewards_the_right_probability_and_survives_saturation():
    mask = torch.tensor([[[[1.0, 0.0]]]])
    right, wrong = torch.tensor([[[[0.9, 0.1]]]]), torch.tensor([[[[0.1, 0.9]]]])
    assert bce_loss(right, mask) < bce_loss(wrong, mask)
    assert math.isfinite(bce_loss(1 - mask, mask).item())  # probability exactly 0 or 1


def test_relativistic_loss_sign_discriminator_and_generator_pull_opposite_ways():
    real, fake = torch.full((4, 1, 3, 3), 2.0), torch.full((4, 1, 3, 3), -2.0)
    discriminator_winning = relativistic_average_loss(real, fake)
    generator_view = relativistic_average_loss(fake, real)
    tie = relativistic_average_loss(torch.zeros(4), torch.zeros(4))
    assert tie.item() == pytest.approx(2 * math.log(2))
    assert discriminator_winning < tie < generator_view
    # The generator lowers its loss by raising its fakes' logits.
    fake = fake.clone().requires_grad_(True)
    relativistic_average_loss(fake, real).backward()
    assert (fake.grad < 0).all()


def test_lsgan_loss_is_zero_at_the_labels():
    assert lsgan_loss(torch.ones(3), True).item() == 0.0
    assert lsgan_loss(torch.zeros(3), False).item() == 0.0
    assert lsgan_loss(torch.zeros(3), True).item() == 1.0


def test_tv_loss_is_zero_on_a_constant_and_larger_on_noise(photo):
    assert tv_loss(torch.full((1, 2, 8, 8), 3.0)).item() == 0.0
    assert tv_loss(photo + 0.1 * torch.randn_like(photo)) > tv_loss(photo)


def test_kernel_prior_terms():
    n, h, w, max_length = 2, 8, 8, 20.0
    zero = torch.zeros(n, 2, h, w)
    long = torch.zeros(n, 2, h, w)
    long[:, 0] = max_length
    # (ii) sharp images: the zero field costs nothing, a long motion costs its relative length.
    assert kernel_prior_loss(max_length, sharp=zero).item() == pytest.approx(0.0, abs=1e-5)
    assert kernel_prior_loss(max_length, sharp=long).item() == pytest.approx(1.0, abs=1e-5)
    # (i) blurry images: lengths pulled up to the limit, and penalised beyond it.
    assert kernel_prior_loss(max_length, blurred=long).item() == pytest.approx(0.0, abs=1e-5)
    assert kernel_prior_loss(max_length, blurred=zero).item() == pytest.approx(1.0, abs=1e-5)
    assert kernel_prior_loss(max_length, blurred=1.5 * long).item() == pytest.approx(0.5, abs=1e-5)
    # (iii) deblurred images keep a scaled-down copy of the input's motion; no gradient to it.
    reference = long.clone().requires_grad_(True)
    loss = kernel_prior_loss(
        max_length, deblurred=0.5 * long, blurred_reference=reference, unremoved_fraction=0.5
    )
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    assert not loss.requires_grad


def test_motion_axis_loss_is_sign_ambiguous_and_differentiable_at_zero_error():
    target = torch.zeros(1, 2, 4, 4)
    target[:, 0] = 3.0
    target[:, 1] = -4.0
    valid = torch.ones(1, 1, 4, 4)
    assert motion_axis_loss(doubled_angle(-target), target, valid).item() == pytest.approx(
        0.0, abs=1e-5
    )
    assert motion_axis_loss(torch.zeros_like(target), target, valid).item() == pytest.approx(25.0)
    axis = doubled_angle(target).requires_grad_(True)
    motion_axis_loss(axis, target, valid).backward()
    assert torch.isfinite(axis.grad).all()
    # A batch without known motion contributes nothing.
    assert motion_axis_loss(axis, target, torch.zeros_like(valid)).item() == 0.0


def test_motion_axis_loss_turns_a_tiny_output_towards_the_target_axis():
    # Why the net regresses axis fields: a near-zero output pointing the wrong way is pulled
    # straight towards the target's axis, as hard as the blur is long (a descent step turns it),
    # not merely shrunk.
    target = torch.zeros(1, 2, 1, 1)
    target[:, 0] = 6.0  # horizontal blur: axis (6, 0)
    axis = torch.tensor([-1e-3, 1e-3]).reshape(1, 2, 1, 1).requires_grad_(True)
    motion_axis_loss(axis, target, torch.ones(1, 1, 1, 1)).backward()
    step = -axis.grad.flatten()
    assert step.norm() == pytest.approx(12.0, rel=1e-3)  # 2 × 6 px
    assert step[0] / step.norm() > 0.99


def test_reblur_loss_prefers_the_true_motion_of_either_sign(photo):
    motion = torch.zeros(1, 2, 64, 64)
    motion[:, 0] = 9.0  # horizontal 9 px blur
    blurred = reblur(photo, motion, 16)
    wrong = torch.zeros_like(motion)
    wrong[:, 1] = 9.0  # vertical
    assert reblur_loss(photo, motion, blurred, 16).item() == pytest.approx(0.0, abs=1e-6)
    assert reblur_loss(photo, -motion, blurred, 16).item() == pytest.approx(0.0, abs=1e-4)
    assert reblur_loss(photo, wrong, blurred, 16) > 0.01


def test_structure_loss_cares_about_edges_not_brightness(photo):
    blurred = box_blur(photo, 5)
    brighter = photo + 0.1
    # The brightness shift is the larger pixel error, yet the blur is the larger structural one.
    assert F.l1_loss(brighter, photo) > F.l1_loss(blurred, photo)
    assert structure_loss(blurred, photo) > 2 * structure_loss(brighter, photo)
    assert structure_loss(photo, photo).item() == 0.0


def test_patch_contrastive_loss_rewards_features_that_match_at_their_own_position():
    torch.manual_seed(0)
    features = torch.randn(2, 8, 12, 12)
    aligned = patch_contrastive_loss(features, features + 0.05 * torch.randn_like(features))
    shifted = patch_contrastive_loss(features, features.roll(2, dims=-1))
    constant = patch_contrastive_loss(torch.ones(2, 8, 12, 12), torch.ones(2, 8, 12, 12))
    assert aligned < 0.05
    assert shifted > 3.0 and constant > 3.0  # log(144) = 5.0 would be pure chance


def test_psnr_loss_is_minus_the_mean_psnr_and_weights_every_image_alike(photo):
    generator = torch.Generator().manual_seed(0)
    noisy = photo + 0.01 * torch.randn(photo.shape, generator=generator)
    blurred = F.avg_pool2d(photo, 5, stride=1, padding=2, count_include_pad=False)
    pair = torch.cat([noisy, blurred])
    targets = torch.cat([photo, photo])
    minus_mean_psnr = -psnr(pair, targets).mean().item()
    assert psnr_loss(pair, targets, floor=0.0).item() == pytest.approx(minus_mean_psnr, abs=1e-4)
    # Each image's gradient is scaled by 1 / its MSE: the nearly right one is not drowned out.
    pair.requires_grad_(True)
    psnr_loss(pair, targets).backward()
    pulls = pair.grad.flatten(1).norm(dim=1) / (pair - targets).detach().flatten(1).norm(dim=1)
    mse = (pair - targets).detach().pow(2).flatten(1).mean(1)
    assert mse[0] < mse[1] / 10 and pulls[0] > 10 * pulls[1]
