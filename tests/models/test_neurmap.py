import pytest
import torch
import torch.nn.functional as F

from deblurstudio.models import build, load_checkpoint, save_checkpoint
from deblurstudio.models.neurmap import (
    MotionNet,
    PatchDiscriminator,
    bound_motion,
    contrast_normalize,
    doubled_angle,
    motion_from_axis,
    reblur,
)

TINY = {"width": 4, "blocks": 1}


def _texture(height=24, width=32, seed=0):
    """A smooth random N×3×H×W texture in [0, 1] (blurred noise: gradients everywhere)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 4, width // 4, generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return smooth.clamp(0, 1)


def _uniform_motion(image, dx, dy):
    motion = torch.empty(image.shape[0], 2, *image.shape[-2:])
    motion[:, 0], motion[:, 1] = dx, dy
    return motion


def test_axis_field_shape_and_length_bounded_by_max_length():
    model = MotionNet(**TINY, max_length=7.5).eval()
    with torch.no_grad():
        model.head.weight.mul_(1e3)  # drive the raw output far beyond the bound
        model.head.bias.fill_(50.0)
        motion = model(torch.rand(2, 3, 16, 24))
    assert motion.shape == (2, 2, 16, 24)
    length = motion.norm(dim=1)
    assert length.max() <= 7.5 + 1e-4
    assert length.max() > 0.95 * 7.5  # saturates near the bound rather than collapsing


def test_bounding_keeps_direction_and_is_near_identity_for_small_motion():
    raw = torch.tensor([[3.0, -4.0], [0.01, 0.02], [0.0, 0.0]]).T.reshape(1, 2, 3, 1)
    bounded = bound_motion(raw, 10.0)
    cross = raw[:, 0] * bounded[:, 1] - raw[:, 1] * bounded[:, 0]
    torch.testing.assert_close(cross, torch.zeros_like(cross), atol=1e-6, rtol=0)
    torch.testing.assert_close(bounded[..., 1, 0], 10.0 * raw[..., 1, 0], rtol=1e-3, atol=0)
    assert bounded[..., 2, 0].abs().max() == 0
    assert 9.0 < bounded[..., 0, 0].norm() < 10.0


def test_motion_map_does_not_depend_on_exposure_or_contrast():
    # The network sees contrast-normalised detail: a darker, flatter exposure of the same scene
    # gets the same motion map (up to the small floor that keeps flat regions finite).
    torch.manual_seed(0)
    image = _texture(64, 64)
    flatter = 0.5 * image + 0.2
    assert (contrast_normalize(image) - contrast_normalize(flatter)).abs().max() < 0.05
    assert contrast_normalize(image).abs().mean() > 0.5  # detail kept, not flattened away
    model = MotionNet(**TINY).eval()
    with torch.inference_mode():
        motion, motion_flatter = model(image), model(flatter)
    assert (motion - motion_flatter).abs().max() < 0.05 * motion.abs().mean()


def test_motion_from_axis_inverts_doubled_angle_up_to_sign():
    torch.manual_seed(0)
    motion = 8 * torch.randn(1, 2, 16, 16)
    motion[0, :, 0, 0] = torch.tensor([0.0, -3.0])  # vertical: where the half angle wraps
    motion[0, :, 0, 1] = 0.0  # no blur
    back = motion_from_axis(doubled_angle(motion))
    error = torch.minimum((back - motion).norm(dim=1), (back + motion).norm(dim=1))
    assert error.max() < 1e-3
    assert torch.equal(back[0, :, 0, 1], torch.zeros(2))
    torch.testing.assert_close(back[0, :, 0, 0].abs(), torch.tensor([0.0, 3.0]))
    # Training backpropagates through it: finite gradients at the zero field and vertical blur
    # (NaN ones wreck the net, and NaN motion crashes grid_sample in reblur).
    axis = torch.tensor([[0.0, 0.0], [-3.0, 0.0], [2.0, 0.0]]).T.reshape(1, 2, 1, 3)
    axis.requires_grad_(True)
    motion_from_axis(axis).sum().backward()
    assert torch.isfinite(axis.grad).all()


def test_axis_fields_average_where_motion_maps_cancel():
    # Two neighbours with nearly the same blur, 5 px about 2° either side of vertical, written
    # as the half angle writes them (dx ≥ 0), so with opposite dy: blending tiles or resizing
    # averages them. As motion they cancel; as axis fields the vertical 5 px blur survives.
    motions = torch.tensor([[0.2, 5.0], [0.2, -5.0]]).T.reshape(1, 2, 1, 2)
    assert motions.mean(dim=-1).norm() < 0.3
    blended = motion_from_axis(doubled_angle(motions).mean(dim=-1, keepdim=True))
    assert blended.norm() == pytest.approx(5.0, abs=0.03)
    assert blended[0, 1].abs().item() > 4.9  # still vertical


def test_motion_net_rejects_size_not_multiple_of_stride():
    with pytest.raises(ValueError, match="stride 8"):
        MotionNet(**TINY)(torch.rand(1, 3, 16, 20))


def test_reblur_with_zero_motion_returns_input():
    image = _texture()
    torch.testing.assert_close(reblur(image, _uniform_motion(image, 0.0, 0.0), 9), image)


@pytest.mark.parametrize("length", [2, 6])
def test_reblur_horizontal_motion_is_a_horizontal_box_blur(length):
    # With steps = L + 1 every sample lands on a pixel: the mean of the L + 1 pixels x − L/2 …
    # x + L/2. Compare away from the borders, where border padding would repeat edge pixels.
    image = torch.rand(1, 3, 12, 20, generator=torch.Generator().manual_seed(1))
    half = length // 2
    width = image.shape[-1]
    expected = torch.stack(
        [image[..., half + k : width - half + k] for k in range(-half, half + 1)]
    ).mean(0)
    for dx in (length, -length):  # the sign of a motion is ambiguous: both are the same blur
        blurred = reblur(image, _uniform_motion(image, float(dx), 0.0), steps=length + 1)
        torch.testing.assert_close(blurred[..., half : width - half], expected, atol=1e-5, rtol=0)
    # and a vertical motion of the same length blurs the transposed image the same way
    transposed = image.transpose(-1, -2)
    vertical = reblur(transposed, _uniform_motion(transposed, 0.0, float(length)), length + 1)
    vertical = vertical.transpose(-1, -2)[..., half : width - half]
    torch.testing.assert_close(vertical, expected, atol=1e-5, rtol=0)


def test_gradients_flow_to_motion_and_sharp_image():
    sharp = _texture().requires_grad_()
    motion = _uniform_motion(sharp, 2.3, -1.1).requires_grad_()
    target = _texture(seed=1)
    F.mse_loss(reblur(sharp, motion, steps=7), target).backward()
    assert torch.isfinite(motion.grad).all() and motion.grad.abs().sum() > 0
    assert torch.isfinite(sharp.grad).all() and sharp.grad.abs().sum() > 0


def test_reblur_loss_recovers_the_blur_length():
    # The data term of NeurMAP: fitting the reblurred sharp image to the blurry one by gradient
    # descent on the motion finds the true horizontal blur length.
    sharp = _texture(32, 48, seed=2)
    blurry = reblur(sharp, _uniform_motion(sharp, 6.0, 0.0), steps=13)
    dx = torch.tensor(2.0, requires_grad=True)
    optimiser = torch.optim.Adam([dx], lr=0.3)
    for _ in range(60):
        motion = torch.stack([dx.expand(32, 48), torch.zeros(32, 48)])[None]
        loss = F.mse_loss(reblur(sharp, motion, steps=13), blurry)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert abs(dx.item() - 6.0) < 0.5


@pytest.mark.parametrize(("layers", "expected"), [(3, (2, 1, 6, 4)), (2, (2, 1, 14, 10))])
def test_discriminator_scores_patches(layers, expected):
    model = PatchDiscriminator(width=8, layers=layers)
    scores = model(torch.rand(2, 3, 64, 48))
    assert scores.shape == expected
    assert model.stride == 2**layers


def test_checkpoint_round_trip_gives_identical_motion(tmp_path):
    model = build("neurmap_motion", **TINY, max_length=12.0).eval()
    image = torch.rand(1, 3, 16, 16)
    save_checkpoint(tmp_path / "motion.safetensors", model)
    loaded, info = load_checkpoint(tmp_path / "motion.safetensors")
    assert info.arch == "neurmap_motion" and loaded.max_length == 12.0
    with torch.no_grad():
        torch.testing.assert_close(loaded(image), model(image), rtol=0, atol=0)
