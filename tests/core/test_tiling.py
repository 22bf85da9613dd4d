import numpy as np
import pytest
import torch
from skimage import data, transform

from deblurstudio.core.errors import DeblurStudioError
from deblurstudio.core.pipeline import run
from deblurstudio.core.tiling import TileBudget, Window, crop_reflect, tiled_apply
from deblurstudio.models import build
from tests._models import as_if_trained

TINY_LCNET = {"width": 4, "res_blocks": 1, "lc_blocks": 1}


def _photo(height, width):
    """A real photo (smooth areas and edges), float32 RGB in [0, 1]."""
    image = transform.resize(data.astronaut(), (height, width), anti_aliasing=True)
    return image.astype(np.float32)


def _net_tile(net):
    """Tile function running a deblurring net (fp32, CPU) on the "image" crop; returns two maps of
    different channel counts: the restored RGB and its mean (as the pipeline returns restored and
    blur probability)."""

    def fn(window, crops):
        x = torch.from_numpy(crops["image"]).permute(2, 0, 1)[None]
        with torch.inference_mode():
            restored = net(x).restored[0].permute(1, 2, 0).numpy()
        return {"restored": restored, "mean": restored.mean(axis=2, keepdims=True)}

    return fn


def _whole_image(net, image):
    """The net run on the whole image at once, reflect-padded to its stride and cropped back."""
    height, width = image.shape[:2]
    s = net.stride
    window = Window(0, 0, -(-height // s) * s, -(-width // s) * s)
    maps = _net_tile(net)(window, {"image": crop_reflect(image, window)})
    return {name: value[:height, :width] for name, value in maps.items()}


def _tiled(net, image, budget):
    return run(tiled_apply({"image": image}, _net_tile(net), stride=net.stride, budget=budget))


def test_tiled_output_equals_whole_image_output():
    # Random LCNet's receptive field reaches ~96 px from a tile edge; an overlap of twice that
    # makes tiling exact up to float noise and the floor weight of the outermost pixels.
    torch.manual_seed(0)
    net = as_if_trained(build("lcnet", **TINY_LCNET)).eval()
    image = _photo(397, 531)  # not a multiple of the stride: exercises the reflect padding
    budget = TileBudget(384, net.stride, overlap=192)
    tiled = _tiled(net, image, budget)
    whole = _whole_image(net, image)
    assert tiled["restored"].shape == image.shape and tiled["mean"].shape == (397, 531, 1)
    assert np.abs(whole["restored"] - image).mean() > 0.1  # the net really changes the image
    for name in ("restored", "mean"):  # every map the tile function returns is blended
        assert np.abs(tiled[name] - whole[name]).max() < 1e-3


def test_no_visible_seam_on_a_photo():
    # A 9×9 box blur with zero padding, like every conv layer: each tile darkens towards its own
    # edges, which hard stitching turns into dark lines across the photo (2.4× the photo's
    # steepest row/column gradient). Blended tiles must be as smooth as the untiled result.
    blur = torch.nn.Conv2d(3, 3, 9, padding=4, groups=3, bias=False)
    torch.nn.init.constant_(blur.weight, 1 / 81)

    def blur_tile(window, crops):
        with torch.inference_mode():
            out = blur(torch.from_numpy(crops["image"]).permute(2, 0, 1)[None])
        return {"restored": out[0].permute(1, 2, 0).numpy()}

    image = _photo(256, 256)
    budget = TileBudget(128, 8, minimum=16)
    tiled = run(tiled_apply({"image": image}, blur_tile, stride=8, budget=budget))["restored"]
    whole = blur_tile(None, {"image": image})["restored"]
    for axis in (0, 1):
        # Mean gradient magnitude across each row (column) boundary, away from the image border.
        tiled_profile = np.abs(np.diff(tiled, axis=axis)).mean(axis=(1 - axis, 2))[8:-8]
        whole_profile = np.abs(np.diff(whole, axis=axis)).mean(axis=(1 - axis, 2))[8:-8]
        assert tiled_profile.max() <= 1.1 * whole_profile.max()


def test_tiles_that_disagree_blend_without_a_step():
    # Worst case: every tile returns a different constant. Hard stitching would leave a step of
    # up to 0.1 at each border; the raised-cosine crossfade spreads it over half the overlap.
    budget = TileBudget(64, 16, minimum=16)
    rng = np.random.default_rng(0)

    def constant(window, crops):
        return {"value": np.full((window.height, window.width, 1), rng.uniform(0.4, 0.5))}

    out = run(tiled_apply({"x": np.zeros((200, 200, 1))}, constant, stride=16, budget=budget))
    value = out["value"][..., 0]
    steepest = max(np.abs(np.diff(value, axis=0)).max(), np.abs(np.diff(value, axis=1)).max())
    crossfade = budget.overlap / 2
    assert steepest <= 0.1 * np.pi / (2 * crossfade) * 1.01


def test_identity_is_exact_where_one_tile_covers_and_padding_is_cropped():
    rng = np.random.default_rng(0)
    image = rng.random((70, 150, 2), dtype=np.float32)
    mask = rng.random((70, 150, 1), dtype=np.float32)
    windows = []

    def identity(window, crops):
        windows.append(window)
        assert crops["x"].shape[0] % 16 == 0 and crops["x"].shape[1] % 16 == 0
        return crops  # every input, cropped alike, comes back as an output

    budget = TileBudget(64, 16, minimum=16)
    out = run(tiled_apply({"x": image, "m": mask}, identity, stride=16, budget=budget))
    assert out["x"].shape == image.shape and out["m"].shape == mask.shape
    assert np.allclose(out["x"], image, atol=1e-6) and np.allclose(out["m"], mask, atol=1e-6)
    assert all(w.y0 % 16 == 0 and w.x0 % 16 == 0 for w in windows)
    covered = np.zeros(image.shape[:2], int)
    for w in windows:
        covered[w.y0 : w.y1, w.x0 : w.x1] += 1
    assert np.count_nonzero(covered == 1) > 0
    assert np.array_equal(out["x"][covered == 1], image[covered == 1])


def test_progress_increases_to_one():
    job = tiled_apply(
        {"image": np.zeros((100, 300, 3), np.float32)},
        lambda window, crops: {"y": crops["image"]},
        stride=8,
        budget=TileBudget(64, 8, minimum=8),
    )
    fractions = []
    while True:
        try:
            fractions.append(next(job))
        except StopIteration:
            break
    assert len(fractions) > 4 and fractions[-1] == 1.0
    assert all(b > a for a, b in zip(fractions, fractions[1:], strict=False))


def test_out_of_memory_halves_the_tile_and_the_result_is_unchanged():
    rng = np.random.default_rng(0)
    image = rng.random((128, 160, 3), dtype=np.float32)
    sizes = []

    def fits_only_small_tiles(window, crops):
        sizes.append(max(window.height, window.width))
        if max(window.height, window.width) > 32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return {"y": crops["x"] * 2}

    budget = TileBudget(128, 16, minimum=16)
    out = run(tiled_apply({"x": image}, fits_only_small_tiles, stride=16, budget=budget))["y"]
    assert sizes[:3] == [128, 64, 32] and budget.size == 32
    assert set(sizes[3:]) == {32}  # later tiles start at the reduced size
    assert np.allclose(out, image * 2, atol=1e-5)


def test_out_of_memory_at_the_minimum_tile_is_a_clear_error():
    def always_out_of_memory(window, crops):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    job = tiled_apply(
        {"x": np.zeros((64, 64, 3), np.float32)},
        always_out_of_memory,
        stride=16,
        budget=TileBudget(64, 16, minimum=32),
    )
    with pytest.raises(DeblurStudioError, match="out of GPU memory even with 32-px tiles"):
        run(job)
