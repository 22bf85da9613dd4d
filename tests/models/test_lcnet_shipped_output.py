"""The shipped LCNet gives the same output with the optimised local correlation as with the plain
one it replaced (all window² products computed, a fresh tensor per step).

The trained network amplifies rounding differences (its logits reach ~1e4, so the softmax is
sharp): a reference that rounds differently (a multiply and an add instead of addcmul) already
differs by ~2e-4 in the output, so the reference below is the previous code operation for
operation."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deblurstudio.models import lcnet, load_checkpoint

CHECKPOINT = Path(__file__).resolve().parents[2] / "resources" / "models" / "lcnet.safetensors"


def _plain_local_correlation(pattern, content, window):
    """Eqs. (3)–(4) with one shifted product per window offset (the previous implementation)."""
    radius = window // 2
    height, width = pattern.shape[-2:]
    pattern_padded = F.pad(pattern, (radius,) * 4)
    content_padded = F.pad(content, (radius,) * 4)
    inside = F.pad(pattern.new_ones(1, 1, height, width, dtype=torch.bool), (radius,) * 4)
    offsets = [(dy, dx) for dy in range(window) for dx in range(window)]
    logits = torch.cat(
        [(pattern * pattern_padded[:, :, dy : dy + height, dx : dx + width]).sum(1, keepdim=True)
         for dy, dx in offsets],
        dim=1,
    )
    outside = ~torch.cat([inside[:, :, dy : dy + height, dx : dx + width] for dy, dx in offsets], 1)
    weights = logits.masked_fill(outside, float("-inf")).softmax(dim=1)
    aggregated = torch.zeros_like(content)
    for k, (dy, dx) in enumerate(offsets):
        shifted_content = content_padded[:, :, dy : dy + height, dx : dx + width]
        aggregated = torch.addcmul(aggregated, weights[:, k : k + 1], shifted_content)
    return aggregated


@pytest.mark.skipif(not CHECKPOINT.is_file(), reason="no shipped LCNet checkpoint")
def test_shipped_lcnet_output_is_unchanged_by_the_optimised_local_correlation(monkeypatch):
    model, _ = load_checkpoint(CHECKPOINT)
    model.to(memory_format=torch.channels_last)  # as the pipeline runs it
    image = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    image = image.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        optimised = model(image).restored
        monkeypatch.setattr(lcnet, "local_correlation", _plain_local_correlation)
        plain = model(image).restored
    torch.testing.assert_close(optimised, plain, rtol=0, atol=1e-5)
