"""Overlapping-tile inference with smooth blending, stride padding and out-of-memory fallback.

Pixel conventions: inputs and outputs are float32 H×W×C numpy arrays (images RGB in [0, 1],
probability maps C = 1). Memory stays bounded by the tile size: the full-size arrays are only the
caller's inputs and one float32 accumulator per output map; tiles are cut (and reflect-padded) on
demand, never a padded copy of the whole image.

How a job is cut: the image is padded (virtually, by reflection at the bottom/right) to a multiple
of the network's `stride` — exactly what running the whole image at once would see. Tiles are
squares of `tile` pixels (a multiple of the stride) placed at multiples of the stride, so every tile
sees the same down-sampling grid as the whole image; neighbours overlap by `overlap` pixels.
Each tile's output is weighted by a separable window (`ramp`) that, across the overlap, all but
ignores the tile's outermost pixels and crossfades with a raised cosine, and is 1 elsewhere and at
the image border. The weights of all tiles are normalised to sum to 1 ahead of time (their sum is
separable too), so an output pixel is the weighted mean of the tiles covering it, and exactly the
tile's value where only one tile covers it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np
import torch

from deblurstudio.core.errors import DeblurStudioError

MIN_TILE = 128  # below this the network sees too little context to be worth running
RAMP_FLOOR = 1e-4  # weight of a tile's outermost pixels (see `ramp`)


@dataclass(frozen=True)
class Window:
    """A tile's region in image pixels: rows [y0, y1), columns [x0, x1).

    The region may extend past the image's bottom/right edge into the reflect padding (up to the
    next multiple of the stride).
    """

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


# A tile function gets the tile's window and the input crops (float32 h×w×C, h and w multiples of
# the stride) and returns named float32 h×w×C output maps of the same h×w.
TileFunction = Callable[[Window, dict[str, np.ndarray]], dict[str, np.ndarray]]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Indices into an axis of length `size` for positions [start, stop), reflecting out-of-range
    positions at the edges like np.pad(mode="reflect") (the edge pixel is not repeated)."""
    positions = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(positions)
    period = 2 * (size - 1)
    positions = np.mod(positions, period)
    return np.where(positions < size, positions, period - positions)


def crop_reflect(array: np.ndarray, window: Window) -> np.ndarray:
    """Copy `window` out of an H×W×C array, reflecting past the edges; float32 h×w×C."""
    height, width = array.shape[:2]
    if window.y1 <= height and window.x1 <= width and window.y0 >= 0 and window.x0 >= 0:
        crop = array[window.y0 : window.y1, window.x0 : window.x1]
    else:
        rows = reflect_indices(window.y0, window.y1, height)
        cols = reflect_indices(window.x0, window.x1, width)
        crop = array[np.ix_(rows, cols)]
    return np.ascontiguousarray(crop, dtype=np.float32)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start positions of tiles of side `tile` covering [0, length), overlapping by at least
    `overlap`; the last tile ends exactly at `length`. Inputs are multiples of the stride, so are
    the starts."""
    if tile >= length:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def ramp(length: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """1-D tile weight: `length` samples, with a rising and/or falling end of `overlap` samples.

    Of each end, the outer quarter is all but ignored (weight RAMP_FLOOR): there the tile saw zero
    padding instead of its neighbour's pixels, so its output is least like the whole-image result.
    The middle half is a raised-cosine crossfade and the inner quarter is 1, as is the rest. The
    neighbour's end is the mirror image, so the two sum to 1 (+ floor). Never below RAMP_FLOOR, so
    every pixel a tile covers has weight and the normalisation never divides by zero.
    """
    weight = np.ones(length, dtype=np.float64)
    n = min(overlap, length // 2)
    if n > 0:
        margin = n // 4
        fade = n - 2 * margin
        edge = np.full(n, RAMP_FLOOR)
        crossfade = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2
        edge[margin : margin + fade] = np.maximum(crossfade, RAMP_FLOOR)
        edge[margin + fade :] = 1.0
        if rise:
            weight[:n] = edge
        if fall:
            weight[length - n :] = np.minimum(weight[length - n :], edge[::-1])
    return weight


def _axis_weights(length: int, tile: int, overlap: int) -> tuple[list[int], list[np.ndarray]]:
    """Per-tile 1-D weights along one axis, already divided by their sum at every position."""
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    raw = [ramp(size, overlap, rise=s > 0, fall=s + size < length) for s in starts]
    total = np.zeros(length, dtype=np.float64)
    for start, weight in zip(starts, raw, strict=True):
        total[start : start + size] += weight
    normalised = [
        (weight / total[start : start + size]).astype(np.float32)
        for start, weight in zip(starts, raw, strict=True)
    ]
    return starts, normalised


def default_overlap(tile: int, stride: int) -> int:
    """Overlap for a tile size: an eighth of the tile but at least 64 px, a multiple of the
    stride, and at most half the tile. Enough for trained nets, whose effective receptive field
    is far smaller than their theoretical one (random-weight nets need the full one)."""
    return min(round_up(max(tile // 8, 64), stride), tile // 2 // stride * stride)


class TileBudget:
    """The largest tile side currently allowed; halves on GPU out-of-memory, down to `minimum`.

    Args:
        size: tile side in pixels (rounded down to a multiple of `stride`).
        stride: the network's stride.
        minimum: smallest side halving may reach.
        overlap: overlap in pixels between neighbouring tiles; None = `default_overlap`. Either
            way it is a multiple of the stride and at most half the current tile.
    """

    def __init__(self, size: int, stride: int, minimum: int = MIN_TILE, overlap: int | None = None):
        self.stride = stride
        self.minimum = max(round_up(minimum, stride), stride)
        self.size = max(size // stride * stride, self.minimum)
        self._overlap = overlap

    def halve(self) -> None:
        if self.size <= self.minimum:
            raise DeblurStudioError(
                f"out of GPU memory even with {self.size}-px tiles; close other GPU programs "
                "or use --device cpu"
            )
        self.size = max(self.size // 2 // self.stride * self.stride, self.minimum)

    @property
    def overlap(self) -> int:
        if self._overlap is None:
            return default_overlap(self.size, self.stride)
        return min(
            round_up(self._overlap, self.stride), self.size // 2 // self.stride * self.stride
        )


def tiled_apply(
    inputs: dict[str, np.ndarray],
    fn: TileFunction,
    *,
    stride: int,
    budget: TileBudget,
) -> Generator[float, None, dict[str, np.ndarray]]:
    """Run `fn` over overlapping tiles of `inputs` and blend its outputs.

    Args:
        inputs: named float32 H×W×C arrays of the same H×W (e.g. "image", "blur_probability").
        fn: the tile function (see `TileFunction`); may raise torch.cuda.OutOfMemoryError, upon
            which the budget halves and that tile is redone as smaller sub-tiles (later tiles use
            the smaller size too).
        stride: the network's stride: tile sides and origins are multiples of it.
        budget: tile size (mutable: shrinks on out-of-memory).

    Yields:
        The fraction of tiles done, after each tile (so the caller can report progress and check
        cancellation between tiles).

    Returns:
        Named float32 H×W×C blended outputs (not clamped).
    """
    height, width = next(iter(inputs.values())).shape[:2]
    return (yield from _blend(inputs, fn, stride, budget, Window(0, 0, height, width)))


def _blend(
    inputs: dict[str, np.ndarray],
    fn: TileFunction,
    stride: int,
    budget: TileBudget,
    region: Window,
) -> Generator[float, None, dict[str, np.ndarray]]:
    """Blend tiles over `region` (image coordinates) of `inputs` (whose origin is region's)."""
    height, width = next(iter(inputs.values())).shape[:2]
    padded_h, padded_w = round_up(height, stride), round_up(width, stride)
    tile, overlap = budget.size, budget.overlap
    row_starts, row_weights = _axis_weights(padded_h, tile, overlap)
    col_starts, col_weights = _axis_weights(padded_w, tile, overlap)
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)
    outputs: dict[str, np.ndarray] = {}
    count = len(row_starts) * len(col_starts)
    done = 0
    for y0, row_weight in zip(row_starts, row_weights, strict=True):
        for x0, col_weight in zip(col_starts, col_weights, strict=True):
            local = Window(y0, x0, y0 + tile_h, x0 + tile_w)
            crops = {name: crop_reflect(array, local) for name, array in inputs.items()}
            window = Window(
                region.y0 + y0, region.x0 + x0, region.y0 + local.y1, region.x0 + local.x1
            )
            tile_outputs = yield from _rescaled(
                _run_tile(window, crops, fn, stride, budget), done, count
            )
            # Only the part inside the (unpadded) input is kept.
            keep_h, keep_w = min(tile_h, height - y0), min(tile_w, width - x0)
            weight = row_weight[:keep_h, None, None] * col_weight[None, :keep_w, None]
            for name, value in tile_outputs.items():
                if name not in outputs:
                    outputs[name] = np.zeros((height, width, value.shape[2]), dtype=np.float32)
                target = outputs[name][y0 : y0 + keep_h, x0 : x0 + keep_w]
                target += value[:keep_h, :keep_w] * weight
            done += 1
            yield done / count
    return outputs


def _run_tile(
    window: Window,
    crops: dict[str, np.ndarray],
    fn: TileFunction,
    stride: int,
    budget: TileBudget,
) -> Generator[float, None, dict[str, np.ndarray]]:
    """Run one tile, or blend it from sub-tiles when it exceeds the (possibly halved) budget."""
    if max(window.height, window.width) <= budget.size:
        try:
            return _as_float32(fn(window, crops))
        except torch.cuda.OutOfMemoryError:
            pass  # handled outside the except block, so the failed attempt's tensors are freed
        budget.halve()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return (yield from _blend(crops, fn, stride, budget, window))


def _rescaled(
    job: Generator[float, None, dict[str, np.ndarray]], done: int, count: int
) -> Generator[float, None, dict[str, np.ndarray]]:
    """Re-yield a tile's own progress (sub-tiles) as overall progress of `count` tiles."""
    while True:
        try:
            fraction = next(job)
        except StopIteration as stop:
            return stop.value
        yield (done + fraction) / count


def _as_float32(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, dtype=np.float32) for name, value in maps.items()}


def choose_tile(device: torch.device, requested: int = 0) -> int:
    """Tile side in pixels: the request, or a default by device (GPUs start big: out-of-memory
    halves it anyway; on the CPU 512 keeps activations of the largest nets to a few hundred MB)."""
    if requested > 0:
        return requested
    return 1024 if device.type == "cuda" else 512
