import pytest
import torch
import torch.nn.functional as F

from deblurstudio.models import build, load_checkpoint, save_checkpoint
from deblurstudio.models.refdeblur import RefDeblurNet, match_patches, transfer_patches

TINY = {"width": 4, "blocks": 1, "match_width": 4, "match_stride": 4}


def _photo(height, width, seed):
    """A smooth random N×3×H×W picture in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 4, width // 4, generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return smooth.clamp(0, 1)


def _naive_match(query, key):
    """Eq. 1–3 literally: the full cosine-similarity matrix of unfolded 3×3 patches, then max."""
    query_patches = F.normalize(F.unfold(query, 3, padding=1), dim=1)
    key_patches = F.normalize(F.unfold(key, 3, padding=1), dim=1)
    confidence, index = (query_patches.transpose(1, 2) @ key_patches).max(dim=2)
    n, _, height, width = query.shape
    return index.view(n, height, width), confidence.view(n, 1, height, width)


def _naive_transfer(reference, index, scale):
    """Unfold 3s×3s patches (stride s), take the indexed ones, fold, divide by the overlap."""
    n, hq, wq = index.shape
    geometry = {"kernel_size": 3 * scale, "stride": scale, "padding": scale}
    columns = F.unfold(reference, **geometry)
    picked = columns.gather(2, index.view(n, 1, -1).expand(-1, columns.shape[1], -1))
    size = (hq * scale, wq * scale)
    return F.fold(picked, size, **geometry) / F.fold(torch.ones_like(picked), size, **geometry)


def test_restored_image_and_confidence_shapes_and_capabilities():
    model = RefDeblurNet(**TINY).eval()
    image, reference = torch.rand(2, 3, 16, 24), torch.rand(2, 3, 16, 24)
    with torch.inference_mode():
        output = model(image, reference)
    assert output.restored.shape == image.shape
    assert output.reference_confidence.shape == (2, 1, 16, 24)
    assert 0 <= output.reference_confidence.min() and output.reference_confidence.max() <= 1
    assert output.blur_probability is None and output.attention is None
    assert (model.stride, model.needs_reference, model.accepts_blur_probability) == (4, True, False)
    assert RefDeblurNet().stride == 8  # the shipped size matches on a 1/8 grid


@pytest.mark.parametrize("reference_size", [(24, 40), (8, 12)])
def test_reference_of_another_size_works(reference_size):
    model = RefDeblurNet(**TINY).eval()
    image = torch.rand(1, 3, 16, 24)
    with torch.inference_mode():
        output = model(image, torch.rand(1, 3, *reference_size))
    assert output.restored.shape == image.shape
    assert output.reference_confidence.shape == (1, 1, 16, 24)
    assert torch.isfinite(output.restored).all()


def test_sizes_not_multiple_of_stride_are_clear_errors():
    model = RefDeblurNet(**TINY)
    with pytest.raises(ValueError, match="reference: .*stride 4"):
        model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 18))
    with pytest.raises(ValueError, match="stride 4"):
        model(torch.rand(1, 3, 14, 16))
    with pytest.raises(ValueError, match="power of two"):
        RefDeblurNet(match_stride=6)


def test_another_reference_changes_the_output_and_none_runs_the_no_reference_twin():
    model = RefDeblurNet(**TINY).eval()
    image = _photo(16, 24, seed=0)
    with torch.inference_mode():
        with_a = model(image, _photo(16, 24, seed=1))
        with_b = model(image, _photo(24, 16, seed=2))
        without = model(image)
    assert (with_a.restored - with_b.restored).abs().max() > 1e-4
    assert (with_a.restored - without.restored).abs().max() > 1e-4
    assert without.reference_confidence is None
    assert without.restored.shape == image.shape


@pytest.mark.parametrize("chunk_size", [4, 17, 64, 10_000])
def test_chunked_matching_equals_unchunked(chunk_size):
    # Integer-valued features make every dot product exact, so the comparison is bit-for-bit
    # whatever the BLAS blocking; the small value range also creates many exact ties.
    generator = torch.Generator().manual_seed(0)
    query = torch.randint(-2, 3, (2, 3, 7, 9), generator=generator).float()
    key = torch.randint(-2, 3, (2, 3, 6, 11), generator=generator).float()
    index, confidence = match_patches(query, key, chunk_size=chunk_size)
    whole_index, whole_confidence = match_patches(query, key, chunk_size=None)
    assert torch.equal(index, whole_index)
    assert torch.equal(confidence, whole_confidence)


def test_matching_ties_go_to_the_first_reference_position_in_every_chunking():
    query = torch.ones(1, 2, 5, 6)
    key = torch.ones(1, 2, 7, 9)  # every interior key patch is an exact (cos = 1) match
    for chunk_size in (None, 4, 7, 13):
        index, confidence = match_patches(query, key, chunk_size=chunk_size)
        interior = index[0, 1:-1, 1:-1]
        assert (interior == 1 * 9 + 1).all()  # the first patch that does not touch the border
        torch.testing.assert_close(confidence[0, 0, 1:-1, 1:-1], torch.ones(3, 4))


def test_matching_equals_the_full_similarity_matrix():
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(2, 4, 6, 7, generator=generator)
    key = torch.randn(2, 4, 9, 5, generator=generator)
    index, confidence = match_patches(query, key, chunk_size=8)
    naive_index, naive_confidence = _naive_match(query, key)
    assert torch.equal(index, naive_index)
    torch.testing.assert_close(confidence, naive_confidence)


def test_matching_finds_where_the_reference_equals_the_image():
    # The query is a crop of the reference at (3, 5): inside the crop (away from its zero-padded
    # rim) every patch finds itself with confidence 1.
    key = torch.randn(1, 8, 14, 17, generator=torch.Generator().manual_seed(2))
    query = key[..., 3:11, 5:15]
    index, confidence = match_patches(query, key, chunk_size=16)
    ys, xs = torch.meshgrid(torch.arange(8), torch.arange(10), indexing="ij")
    expected = (ys + 3) * 17 + (xs + 5)
    assert torch.equal(index[0, 1:-1, 1:-1], expected[1:-1, 1:-1])
    torch.testing.assert_close(confidence[0, 0, 1:-1, 1:-1], torch.ones(6, 8))


def test_confidence_is_differentiable():
    query = torch.randn(1, 3, 4, 5, requires_grad=True)
    key = torch.randn(1, 3, 6, 4, requires_grad=True)
    _, confidence = match_patches(query, key, chunk_size=3)
    confidence.sum().backward()
    assert query.grad.abs().sum() > 0 and key.grad.abs().sum() > 0


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_transfer_equals_unfold_gather_fold(scale):
    generator = torch.Generator().manual_seed(scale)
    reference = torch.randn(2, 3, 5 * scale, 4 * scale, generator=generator, dtype=torch.float64)
    index = torch.randint(0, 20, (2, 3, 6), generator=generator)
    reference.requires_grad_()
    transferred = transfer_patches(reference, index, scale)
    (gradient,) = torch.autograd.grad((transferred * transferred.detach()).sum(), reference)
    expected = _naive_transfer(reference, index, scale)
    (expected_gradient,) = torch.autograd.grad((expected * expected.detach()).sum(), reference)
    torch.testing.assert_close(transferred, expected)
    torch.testing.assert_close(gradient, expected_gradient)


def test_a_few_optimisation_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = RefDeblurNet(**TINY)
    sharp = torch.cat([_photo(16, 16, seed=3), _photo(16, 16, seed=4)])
    kernel = torch.full((3, 1, 1, 5), 1 / 5)
    blurry = F.conv2d(F.pad(sharp, (2, 2, 0, 0), mode="replicate"), kernel, groups=3)
    reference = torch.roll(sharp, shifts=(2, 3), dims=(-2, -1))  # a nearby frame, not the truth
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = F.l1_loss(model(blurry, reference).restored, sharp)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_checkpoint_round_trip_gives_identical_output(tmp_path):
    model = build("refdeblur", **TINY).eval()
    image, reference = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 12, 20)
    save_checkpoint(tmp_path / "refdeblur.safetensors", model)
    loaded, info = load_checkpoint(tmp_path / "refdeblur.safetensors")
    assert info.kwargs == TINY
    with torch.inference_mode():
        expected, actual = model(image, reference), loaded(image, reference)
    torch.testing.assert_close(actual.restored, expected.restored, rtol=0, atol=0)
    torch.testing.assert_close(
        actual.reference_confidence, expected.reference_confidence, rtol=0, atol=0
    )
