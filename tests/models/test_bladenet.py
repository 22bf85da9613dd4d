import pytest
import torch
import torch.nn.functional as F

from deblurstudio.models import build, load_checkpoint, save_checkpoint
from deblurstudio.models.bladenet import BladeNet, _ConvBNReLU
from tests._models import as_if_trained

TINY = {"width": 4, "perception_width": 4}


def _locally_blurred_batch():
    """Drawn sharp images (2×3×32×32 in [0, 1]), a copy box-blurred inside a square, the mask."""
    generator = torch.Generator().manual_seed(0)
    sharp = F.interpolate(torch.rand(2, 3, 8, 8, generator=generator), scale_factor=4)
    kernel = torch.full((3, 1, 1, 7), 1 / 7)
    blurred_everywhere = F.conv2d(F.pad(sharp, (3, 3, 0, 0), mode="replicate"), kernel, groups=3)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    blurred = mask * blurred_everywhere + (1 - mask) * sharp
    return blurred, sharp, mask


def _dice_loss(prediction, target):
    return 1 - 2 * (prediction * target).sum() / (prediction.sum() + target.sum())


def test_outputs_have_input_size_and_valid_ranges():
    torch.manual_seed(0)
    model = BladeNet(**TINY).eval()
    image = torch.rand(2, 3, 32, 48)
    with torch.inference_mode():
        output = model(image)
        perceived = model.perceive(image)
    assert output.restored.shape == (2, 3, 32, 48)
    assert torch.isfinite(output.restored).all()
    for probability_map in (output.blur_probability, output.attention, perceived):
        assert probability_map.shape == (2, 1, 32, 48)
        assert probability_map.min() >= 0 and probability_map.max() <= 1
    torch.testing.assert_close(perceived, output.blur_probability)
    assert output.reference_confidence is None
    capabilities = (BladeNet.stride, BladeNet.accepts_blur_probability, BladeNet.needs_reference)
    assert capabilities == (16, True, False)


def test_untrained_net_returns_its_input():
    # Training starts from "change nothing": the residual head is zero-initialised.
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(BladeNet(**TINY).eval()(image).restored, image)


def test_given_blur_probability_replaces_the_perception_net():
    torch.manual_seed(0)
    model = BladeNet(**TINY).eval()
    with torch.no_grad():
        as_if_trained(model)  # a random residual head: the map then changes the result
        for parameter in model.perception.parameters():
            parameter.fill_(float("nan"))
    image = torch.rand(1, 3, 32, 32)
    painted = torch.zeros(1, 1, 32, 32)
    painted[..., :16] = 1
    with torch.inference_mode():
        assert torch.isnan(model(image).restored).any()  # the perception net does run by default
        output = model(image, painted)
        other = model(image, 1 - painted)
    # NaN perception weights leave no trace: the painted map was used and the LBP net skipped.
    assert torch.isfinite(output.restored).all()
    assert output.blur_probability is painted
    assert not torch.allclose(output.restored, other.restored)


def test_what_the_map_calls_sharp_passes_through_unchanged():
    torch.manual_seed(0)
    model = BladeNet(**TINY).eval()
    with torch.no_grad():
        as_if_trained(model)
        model.deblur.out.bias.fill_(0.1)  # a residual that is nowhere zero
    image = torch.rand(1, 3, 32, 32)
    painted = torch.zeros(1, 1, 32, 32)
    painted[..., 16:] = 1
    with torch.inference_mode():
        restored = model(image, painted).restored
    torch.testing.assert_close(restored[..., :16], image[..., :16], rtol=0, atol=0)
    assert (restored[..., 16:] != image[..., 16:]).all()


def test_perception_alone_skips_the_main_net():
    torch.manual_seed(0)
    model = BladeNet(**TINY).eval()
    with torch.no_grad():
        for parameter in model.deblur.parameters():
            parameter.fill_(float("nan"))
    image = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        output = model(image, deblur=False)
        torch.testing.assert_close(output.blur_probability, model.perceive(image))
    # NaN main-net weights leave no trace: only the LBP net ran.
    assert output.restored is image and output.attention is None


def test_blur_probability_of_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="blur_probability has shape"):
        BladeNet(**TINY)(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 16, 16))


def test_input_not_a_multiple_of_stride_is_a_clear_error():
    with pytest.raises(ValueError, match="stride 16"):
        BladeNet(**TINY).perceive(torch.rand(1, 3, 32, 40))


def test_eval_mode_folds_batch_norm_without_changing_the_result():
    torch.manual_seed(0)
    layer = _ConvBNReLU(4, 6)
    with torch.no_grad():
        layer.bn.running_mean.uniform_(-1, 1)
        layer.bn.running_var.uniform_(0.5, 2)
        layer.bn.weight.normal_()
        layer.bn.bias.normal_()
    layer.eval()
    x = torch.randn(2, 4, 8, 8)
    expected = F.relu(layer.bn(layer.conv(x)))
    torch.testing.assert_close(layer(x), expected)


def test_training_steps_reduce_loss_through_every_part():
    torch.manual_seed(0)
    model = BladeNet(**TINY).train()
    blurred, sharp, mask = _locally_blurred_batch()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)

    def losses():
        output = model(blurred)
        return (
            F.mse_loss(output.restored, sharp),
            F.binary_cross_entropy(output.blur_probability, mask),
            _dice_loss(output.attention, mask),
        )

    initial = [loss.item() for loss in losses()]
    sum(losses()).backward()
    optimiser.step()  # the first update moves the zero-initialised residual head
    optimiser.zero_grad()
    sum(losses()).backward()
    # From then on every weight, the LBP net's and the BSA attention convolutions' included, gets
    # a gradient.
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    optimiser.step()
    for _ in range(24):
        optimiser.zero_grad()
        sum(losses()).backward()
        optimiser.step()
    final = [loss.item() for loss in losses()]
    for name, before, after in zip(
        ("restoration", "perception", "attention"), initial, final, strict=True
    ):
        assert after < before, name
    assert sum(final) < 0.8 * sum(initial)


def test_checkpoint_round_trip_gives_identical_output(tmp_path):
    torch.manual_seed(0)
    model = build("bladenet", **TINY).eval()
    image = torch.rand(1, 3, 32, 32)
    save_checkpoint(tmp_path / "bladenet.safetensors", model)
    loaded, info = load_checkpoint(tmp_path / "bladenet.safetensors")
    assert info.arch == "bladenet" and info.kwargs == TINY
    with torch.inference_mode():
        expected, actual = model(image), loaded(image)
    for a, b in zip(actual[:3], expected[:3], strict=True):
        torch.testing.assert_close(a, b)
