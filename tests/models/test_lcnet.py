import pytest
import torch
import torch.nn.functional as F

from deblurstudio.models import build, load_checkpoint, save_checkpoint
from deblurstudio.models.lcnet import LCNet, LocalCorrelationBlock, local_correlation

TINY = {"width": 4, "res_blocks": 1, "lc_blocks": 1}


def _reference_local_correlation(pattern, content, window):
    """Eqs. (3)–(4) pixel by pixel: softmax of x_i·x_j over in-image neighbours j, weighted sum."""
    n, _, height, width = pattern.shape
    radius = window // 2
    out = torch.zeros(n, content.shape[1], height, width, dtype=pattern.dtype)
    for b in range(n):
        for y in range(height):
            for x in range(width):
                neighbours = [
                    (v, u)
                    for v in range(y - radius, y + radius + 1)
                    for u in range(x - radius, x + radius + 1)
                    if 0 <= v < height and 0 <= u < width
                ]
                logits = torch.stack(
                    [pattern[b, :, y, x] @ pattern[b, :, v, u] for v, u in neighbours]
                )
                weights = torch.softmax(logits, dim=0)
                out[b, :, y, x] = sum(
                    w * content[b, :, v, u] for w, (v, u) in zip(weights, neighbours, strict=True)
                )
    return out


@pytest.mark.parametrize("window", [3, 5])
def test_local_correlation_matches_direct_computation(window):
    generator = torch.Generator().manual_seed(window)
    pattern = torch.randn(2, 3, 5, 6, generator=generator, dtype=torch.float64)
    content = torch.randn(2, 2, 5, 6, generator=generator, dtype=torch.float64)
    expected = _reference_local_correlation(pattern, content, window)
    torch.testing.assert_close(local_correlation(pattern, content, window), expected)
    channels_last = local_correlation(
        pattern.contiguous(memory_format=torch.channels_last),
        content.contiguous(memory_format=torch.channels_last),
        window,
    )
    torch.testing.assert_close(channels_last, expected)


def test_local_correlation_keeps_a_flat_map_flat_at_the_borders():
    # With neighbours outside the image excluded (not zero-padded) a flat content map stays flat.
    pattern = torch.randn(1, 4, 8, 8)
    content = torch.full((1, 2, 8, 8), 0.7)
    torch.testing.assert_close(local_correlation(pattern, content, 5), content)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_local_correlation_of_large_half_precision_features_stays_finite(dtype):
    # Features of magnitude 100 over 16 channels: dot products of 160 000 pass float16's 65 504
    # (what turned LCNet's fp16 training NaN).
    torch.manual_seed(0)
    pattern = (100 * torch.randn(1, 16, 12, 12).sign()).to(dtype)
    content = torch.rand(1, 8, 12, 12).to(dtype)
    result = local_correlation(pattern, content, 5)
    assert torch.isfinite(result).all()
    reference = local_correlation(pattern.float(), content.float(), 5)
    assert torch.allclose(result.float(), reference, atol=0.05)


def test_lcblock_rejects_even_window():
    with pytest.raises(ValueError, match="odd"):
        LocalCorrelationBlock(8, window=4, squeeze=2)


def test_restored_image_shape_and_capabilities():
    model = LCNet(**TINY).eval()
    image = torch.rand(2, 3, 16, 24)
    with torch.inference_mode():
        output = model(image)
    assert output.restored.shape == image.shape
    assert torch.isfinite(output.restored).all()
    assert output.blur_probability is None and output.attention is None
    assert (LCNet.stride, LCNet.accepts_blur_probability, LCNet.needs_reference) == (
        8,
        False,
        False,
    )


def test_untrained_net_returns_its_input():
    # Training starts from "change nothing": the residual convolution is zero-initialised.
    image = torch.rand(1, 3, 16, 24)
    with torch.inference_mode():
        torch.testing.assert_close(LCNet(**TINY).eval()(image).restored, image)


def test_input_not_a_multiple_of_stride_is_a_clear_error():
    with pytest.raises(ValueError, match="stride 8"):
        LCNet(**TINY)(torch.rand(1, 3, 16, 20))


def _blurred_pair():
    """Drawn sharp patterns (2×3×32×32 in [0, 1]) and their horizontal box blur."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(2, 3, 8, 8, generator=generator)
    sharp = F.interpolate(coarse, scale_factor=4, mode="nearest")
    kernel = torch.full((3, 1, 1, 5), 1 / 5)
    blurred = F.conv2d(F.pad(sharp, (2, 2, 0, 0), mode="replicate"), kernel, groups=3)
    return blurred, sharp


def test_training_steps_reduce_loss_and_reach_every_layer():
    torch.manual_seed(0)
    model = LCNet(**TINY).train()
    blurred, sharp = _blurred_pair()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss_fn():
        return F.l1_loss(model(blurred).restored, sharp)

    loss = loss_fn()
    initial = loss.item()
    loss.backward()
    optimiser.step()  # the first update moves the zero-initialised residual convolution
    optimiser.zero_grad()
    loss_fn().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    # The blur-pattern half of each LCBlock's embedding only matters through the softmax
    # weights: a gradient there proves the correlation itself is trained.
    for block in (m for m in model.modules() if isinstance(m, LocalCorrelationBlock)):
        inner = block.expand.in_channels
        assert block.embed.weight.grad[:inner].abs().sum() > 0
    optimiser.step()
    for _ in range(19):
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.8 * initial


def test_checkpoint_round_trip_gives_identical_output(tmp_path):
    torch.manual_seed(0)
    model = build("lcnet", **TINY).eval()
    image = torch.rand(1, 3, 16, 16)
    save_checkpoint(tmp_path / "lcnet.safetensors", model)
    loaded, info = load_checkpoint(tmp_path / "lcnet.safetensors")
    assert info.arch == "lcnet" and info.kwargs == TINY
    with torch.inference_mode():
        torch.testing.assert_close(loaded(image).restored, model(image).restored)
