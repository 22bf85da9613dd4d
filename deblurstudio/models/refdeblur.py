"""Reference-based deblurring (Liu, Hua & Li, "Deep Reference-based Dynamic Scene Deblurring").

A U-Net whose blurry-image encoder (ResBlock groups, Spatial Feature Fusion Modules) is fused, in
the decoder, with texture taken from a sharp reference photo of the same scene by three Reference
Extraction and Aggregation Modules (REAM). One patch matching between the blurry image and the
reference gives an index map (where in the reference each blurry location looks like) and a
confidence map (how well it matches); each REAM uses them to pull reference features at its scale.

Matching memory. The paper matches every blurry patch against every reference patch at once, so its
memory grows with the square of the pixel count (its stated limitation). `match_patches` walks
query positions and reference positions in chunks with a running max/argmax instead: beyond
feature-map-sized tensors, its memory is one `chunk_size`×`chunk_size` similarity block plus two
`chunk_size`×9C patch matrices (≈ 70 MB in float32 at the default 4096 and C = 16), whatever the
image and reference sizes. Work still grows as (image pixels × reference pixels), which is why
matching runs on a coarse 1/`match_stride` grid: ≈ 1.7 s on two CPU cores for a 1 MP image and
a 1 MP reference at the shipped stride 8.

Sizes. Defaults are the shipped CPU size. The paper: 16 ResBlocks per group (`blocks=16`); it does
not state channel widths, but `width=32` (32/64/128 channels, as in MIMO-UNet, the U-Net it builds
on) gives 13.7 M parameters, close to its Table 1 figure of 14.09 M for 16 blocks. It matches on
VGG features at 1/4 scale (TTSR-style); we match on a small learned encoder (no pretrained weights
to download) at 1/`match_stride` (paper: `match_stride=4`, 16× the matching work of the shipped
8). Trained through the deblurring loss alone, that encoder's features collapse to near-constant
and every reference patch matches equally well; training adds a correspondence loss on its
features (training.losses.patch_contrastive_loss), fed by `forward(..., match_target=sharp)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurstudio.models._blocks import ResBlock, check_stride
from deblurstudio.models.outputs import DeblurOutput

MATCH_CHUNK_SIZE = 4096
"""Query and reference positions per matching chunk (see the module docstring for the memory)."""

_NORM_EPS = 1e-6  # all-zero patches (zero padding, black features) get similarity 0, not NaN


def _padded_rows(feature: Tensor) -> Tensor:
    """N×C×H×W → N×((H+2)·(W+2))×C: zero-padded by one pixel (the 3×3 patch rim), pixel rows."""
    n, c = feature.shape[:2]
    return F.pad(feature, (1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(n, -1, c)


def _patch_geometry(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Flat indices into the padded grid of every patch centre (row-major) and of a 3×3 window."""
    padded_width = width + 2
    ys = torch.arange(1, height + 1, device=device)
    xs = torch.arange(1, width + 1, device=device)
    centres = (ys[:, None] * padded_width + xs[None, :]).flatten()
    steps = torch.arange(-1, 2, device=device)
    window = (steps[:, None] * padded_width + steps[None, :]).flatten()
    return centres, window


def _patches(rows: Tensor, centres: Tensor, window: Tensor) -> Tensor:
    """P×9C 3×3 patch vectors around `centres` (flat padded indices) of one image's `rows`."""
    return rows[centres[:, None] + window[None, :]].flatten(1)


def _patch_norms(feature: Tensor) -> Tensor:
    """N×(H·W) L2 norm of every zero-padded 3×3 patch, clamped away from 0.

    Computed once per map (not per chunk) so a patch's norm never depends on the chunking.
    """
    energy = feature.pow(2).sum(1, keepdim=True)
    window_energy = F.avg_pool2d(energy, 3, stride=1, padding=1, count_include_pad=True) * 9
    return window_energy.flatten(1).clamp_min(0).sqrt().clamp_min(_NORM_EPS)


def match_patches(
    query: Tensor, key: Tensor, chunk_size: int | None = MATCH_CHUNK_SIZE
) -> tuple[Tensor, Tensor]:
    """Best-matching reference patch for every query patch, by cosine similarity (paper Eq. 1–3).

    Patches are the zero-padded 3×3 windows around every position (stride 1).

    Args:
        query: N×C×Hq×Wq features of the blurry image.
        key: N×C×Hk×Wk features of the reference (any size).
        chunk_size: query and key positions per similarity block; None = one block (unbounded
            memory, for tests). Results do not depend on it: a key wins only by being strictly
            better than every earlier one, so ties go to the lowest index, as in one block.

    Returns:
        index: N×Hq×Wq int64, row-major flat position y·Wk + x of the best key patch.
        confidence: N×1×Hq×Wq its cosine similarity in [-1, 1]; differentiable w.r.t. both inputs
            (the search itself is not: argmax has no gradient).
    """
    n, _, hq, wq = query.shape
    hk, wk = key.shape[-2:]
    num_queries, num_keys = hq * wq, hk * wk
    chunk = max(num_queries, num_keys) if chunk_size is None else chunk_size
    with torch.no_grad():
        query_rows, key_rows = _padded_rows(query), _padded_rows(key)
        query_centres, query_window = _patch_geometry(hq, wq, query.device)
        key_centres, key_window = _patch_geometry(hk, wk, key.device)
        # The query norm scales a whole score row, so it cannot change the argmax: applied after.
        inverse_key_norms = _patch_norms(key).reciprocal()
        index = torch.empty(n, num_queries, dtype=torch.long, device=query.device)
        # One score buffer for all blocks: allocating (and page-faulting) a fresh 64 MB block
        # per matmul costs CPUs about as much as the matmul itself.
        buffer = torch.empty(
            min(chunk, num_queries) * min(chunk, num_keys), dtype=query.dtype, device=query.device
        )
        for b in range(n):
            for q0 in range(0, num_queries, chunk):
                query_centre_chunk = query_centres[q0 : q0 + chunk]
                query_patches = _patches(query_rows[b], query_centre_chunk, query_window)
                best = torch.full(
                    (query_patches.shape[0],), -torch.inf, dtype=query.dtype, device=query.device
                )
                best_index = torch.zeros_like(best, dtype=torch.long)
                for k0 in range(0, num_keys, chunk):
                    key_patches = _patches(key_rows[b], key_centres[k0 : k0 + chunk], key_window)
                    block = len(query_patches) * len(key_patches)
                    scores = buffer[:block].view(len(query_patches), len(key_patches))
                    torch.mm(query_patches, key_patches.T, out=scores)
                    scores.mul_(inverse_key_norms[b, k0 : k0 + chunk])
                    chunk_best, chunk_index = scores.max(dim=1)  # first maximum on ties
                    better = chunk_best > best
                    best = torch.where(better, chunk_best, best)
                    best_index = torch.where(better, chunk_index + k0, best_index)
                index[b, q0 : q0 + chunk] = best_index
    confidence = _matched_cosine(query, key, index)
    return index.view(n, hq, wq), confidence.view(n, 1, hq, wq)


def _matched_cosine(query: Tensor, key: Tensor, index: Tensor) -> Tensor:
    """N×(Hq·Wq) cosine similarity between each query patch and its matched key patch.

    Summed over the 9 window offsets one at a time, so memory stays at two N×(Hq·Wq)×C tensors.
    """
    n, _, hq, wq = query.shape
    hk, wk = key.shape[-2:]
    query_centres, query_window = _patch_geometry(hq, wq, query.device)
    key_centres, key_window = _patch_geometry(hk, wk, key.device)
    matched_centres = key_centres[index]
    query_rows, key_rows = _padded_rows(query), _padded_rows(key)
    batch = torch.arange(n, device=query.device)[:, None]
    dot = torch.zeros(n, hq * wq, dtype=query.dtype, device=query.device)
    for query_offset, key_offset in zip(query_window.tolist(), key_window.tolist(), strict=True):
        query_pixels = query_rows[:, query_centres + query_offset]
        key_pixels = key_rows[batch, matched_centres + key_offset]
        dot = dot + (query_pixels * key_pixels).sum(dim=2)
    key_norms = _patch_norms(key).gather(1, index)
    return dot / (_patch_norms(query) * key_norms)


def transfer_patches(reference: Tensor, index: Tensor, scale: int) -> Tensor:
    """Extract matched reference patches and fold them back (paper Eq. 4 and the fold after it).

    The match grid is 1/`scale` of the feature grid, so a 3×3 match patch is a 3s×3s feature patch
    (stride s, padding s), as in TTSR. Equivalent to F.unfold → pick the columns `index` names →
    F.fold → divide by the overlap count, without building the 9s²-times-larger unfolded tensor:
    each s×s cell of the output averages the cells that its (up to 9) covering patches bring.

    Args:
        reference: N×C×(Hk·s)×(Wk·s) reference features.
        index: N×Hq×Wq flat indices into the Hk×Wk match grid (from `match_patches`).
        scale: s, feature pixels per match-grid cell (an integer ≥ 1).

    Returns:
        N×C×(Hq·s)×(Wq·s) reference features rearranged to the query's layout.
    """
    n, c, height, width = reference.shape
    _, hq, wq = index.shape
    s = scale
    grid_height, grid_width = height // s + 2, width // s + 2  # padded by one zero cell
    # One row per match-grid cell holding its s×s×C block of features (channels last).
    cells = F.pad(reference, (s, s, s, s)).view(n, c, grid_height, s, grid_width, s)
    cells = cells.permute(0, 2, 4, 3, 5, 1).reshape(n * grid_height * grid_width, s * s * c)

    # Pad the index map by one cell so that neighbours beyond the query border exist; they are
    # marked invalid and read the zero corner cell 0 of the padded reference instead.
    key_y = F.pad(index // (width // s), (1, 1, 1, 1))
    key_x = F.pad(index % (width // s), (1, 1, 1, 1))
    valid = F.pad(torch.ones(hq, wq, dtype=torch.bool, device=index.device), (1, 1, 1, 1))
    batch_start = torch.arange(n, device=index.device)[:, None, None] * grid_height * grid_width

    sources = []
    count = torch.zeros(hq, wq, dtype=reference.dtype, device=reference.device)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            # Query cell q = cell + d covers this cell at patch offset 1 − d; its matched patch
            # starts one cell before key(q), so this cell reads key(q) − d (+1 for the padding).
            near = (slice(None), slice(1 + dy, 1 + dy + hq), slice(1 + dx, 1 + dx + wq))
            neighbour = valid[near[1:]]
            source = (key_y[near] - dy + 1) * grid_width + (key_x[near] - dx + 1)
            sources.append(torch.where(neighbour, source + batch_start, 0))
            count += neighbour
    # Sum each cell's 9 source rows in one pass (5× faster on CPU than 9 gathers and adds).
    total = F.embedding_bag(torch.stack(sources, dim=-1).view(-1, 9), cells, mode="sum")
    total = total.view(n, hq, wq, s * s * c).div_(count[None, :, :, None])
    folded = total.view(n, hq, wq, s, s, c).permute(0, 1, 3, 2, 4, 5)
    # Returned channels-last (N×C×H×W view of N×H×W×C memory), like the shipped inference.
    return folded.reshape(n, hq * s, wq * s, c).permute(0, 3, 1, 2)


def _conv(in_channels: int, out_channels: int, stride: int = 1, relu: bool = True) -> nn.Module:
    """3×3 convolution (optionally strided) with an optional ReLU."""
    conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
    return nn.Sequential(conv, nn.ReLU(inplace=True)) if relu else conv


def _res_group(channels: int, blocks: int) -> nn.Sequential:
    """A ResBlock group (RG): `blocks` conv–ReLU–conv residual blocks (paper §3, after SRN)."""
    return nn.Sequential(*(ResBlock(channels, negative_slope=0.0) for _ in range(blocks)))


class _SpatialFeatureFusion(nn.Module):
    """SFFM (paper §3.2, Eq. 6): SFF(F | γ, β) = γ ⊗ F + β from the downscaled blurry image.

    Four 3×3 convolutions extract features from the downscaled image, which are concatenated with
    it and turned into γ by a 1×1 convolution; β = conv(γ). The paper does not give the inner
    widths; we use MIMO-UNet's shallow-convolution-module plan (C/4, C/2, C/2, C − 3), the module
    the SFFM's structure follows.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        quarter, half = max(channels // 4, 1), max(channels // 2, 1)
        self.extract = nn.Sequential(
            _conv(3, quarter), _conv(quarter, half), _conv(half, half), _conv(half, channels - 3)
        )
        self.gamma = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, feature: Tensor, image: Tensor) -> Tensor:
        gamma = self.gamma(torch.cat([self.extract(image), image], dim=1))
        return gamma * feature + self.beta(gamma)


class _ReferenceAggregation(nn.Module):
    """The extraction and aggregation halves of one REAM (paper §3.1, Eq. 4–5).

    F_fused = conv([F, B]) ⊗ conv(C) + F, with B the matched reference features folded back to
    F's layout and C the match confidence at F's resolution. The kernel sizes are not given: 3×3.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.gate = nn.Conv2d(1, channels, 3, padding=1)

    def forward(
        self, feature: Tensor, reference: Tensor, index: Tensor, confidence: Tensor, scale: int
    ) -> Tensor:
        transferred = transfer_patches(reference, index, scale)
        confidence = F.interpolate(
            confidence, size=feature.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.fuse(torch.cat([feature, transferred], dim=1)) * self.gate(confidence) + feature


class RefDeblurNet(nn.Module):
    """Deblurs an image with the help of a sharp reference photo of the same scene.

    Input and reference are N×3×H×W sRGB in [0, 1]; the reference may have another H×W. Both
    sides must be multiples of `stride`. With `reference=None` the network runs as its own
    "no-reference twin": the REAM fusions are skipped (each passes its encoder feature F through)
    and `reference_confidence` is None; the paper's ablation (its Table 6) trains such a net
    separately, so expect a trained checkpoint to do better with a reference than without.

    Args:
        width: channels at full resolution (×2 and ×4 at 1/2 and 1/4). Paper: 32 (see module doc).
        blocks: ResBlocks per ResBlock group (six groups). Paper: 16.
        match_width: channels of the matching encoder φ.
        match_stride: resolution divisor of the matching grid, a power of two ≥ 4. Paper: 4.
    """

    accepts_blur_probability = False
    needs_reference = True

    match_chunk_size: int = MATCH_CHUNK_SIZE
    """Matching chunk (memory/speed trade-off, not part of the weights); see `match_patches`."""

    def __init__(
        self, width: int = 16, blocks: int = 2, match_width: int = 16, match_stride: int = 8
    ) -> None:
        super().__init__()
        if match_stride < 4 or match_stride & (match_stride - 1):
            raise ValueError(
                f"RefDeblurNet: match_stride must be a power of two ≥ 4, not {match_stride}"
            )
        self.match_stride = match_stride
        self.stride = match_stride  # ≥ 4, the U-Net's two halvings
        w1, w2, w4 = width, 2 * width, 4 * width

        # Blurry encoder: conv + RG, then (Downsize, SFFM, RG) twice.
        self.head = nn.Sequential(_conv(3, w1), _res_group(w1, blocks))
        self.down2 = _conv(w1, w2, stride=2)
        self.sffm2 = _SpatialFeatureFusion(w2)
        self.group2 = _res_group(w2, blocks)
        self.down4 = _conv(w2, w4, stride=2)
        self.sffm4 = _SpatialFeatureFusion(w4)
        self.group4 = _res_group(w4, blocks)

        # Shallow reference encoder: three groups of two convolutions; the 2nd and 3rd halve.
        self.reference_encoder = nn.ModuleList(
            [
                nn.Sequential(_conv(3, w1), _conv(w1, w1)),
                nn.Sequential(_conv(w1, w2, stride=2), _conv(w2, w2)),
                nn.Sequential(_conv(w2, w4, stride=2), _conv(w4, w4)),
            ]
        )

        # Matching encoder φ, shared by the blurry image and the blurred reference. A learned,
        # VGG-like stack replaces the paper's VGG so that no pretrained weights are needed; its
        # last layer is linear so that features have signs and cosine similarity discriminates.
        halvings = match_stride.bit_length() - 1
        self.match_encoder = nn.Sequential(
            _conv(3, match_width),
            *(_conv(match_width, match_width, stride=2) for _ in range(halvings)),
            _conv(match_width, match_width, relu=False),
        )

        self.ream1 = _ReferenceAggregation(w1)
        self.ream2 = _ReferenceAggregation(w2)
        self.ream4 = _ReferenceAggregation(w4)

        # Fusion decoder: RG, then (Upsize, concatenate the REAM output, 1×1 conv, RG) twice.
        self.decoder4 = _res_group(w4, blocks)
        self.up2 = nn.ConvTranspose2d(w4, w2, 4, stride=2, padding=1)
        self.merge2 = nn.Conv2d(2 * w2, w2, 1)
        self.decoder2 = _res_group(w2, blocks)
        self.up1 = nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1)
        self.merge1 = nn.Conv2d(2 * w1, w1, 1)
        self.decoder1 = _res_group(w1, blocks)
        self.tail = nn.Conv2d(w1, 3, 3, padding=1)

    def match_features(self, image: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
        """The matching encoder's features of the blurry image and of the reference.

        The reference is first blurred by 4× down- then up-sampling (paper: "IRef↓↑", to narrow
        the domain gap to the blurry input; the factor is not given, 4 follows TTSR).

        Returns:
            N×C×(H/s)×(W/s) and N×C×(Hr/s)×(Wr/s) features on the 1/`match_stride` grid.
        """
        blurred_reference = F.interpolate(
            F.avg_pool2d(reference, 4), scale_factor=4, mode="bilinear", align_corners=False
        )
        return self.match_encoder(image), self.match_encoder(blurred_reference)

    def match(self, image: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
        """Match the blurry image against the reference on the 1/`match_stride` grid.

        Returns:
            index: N×(H/s)×(W/s) flat positions in the reference's (Hr/s)×(Wr/s) grid.
            confidence: N×1×(H/s)×(W/s) best cosine similarity, clamped to [0, 1].
        """
        index, confidence = match_patches(
            *self.match_features(image, reference), chunk_size=self.match_chunk_size
        )
        return index, confidence.clamp(0.0, 1.0)

    def forward(
        self, image: Tensor, reference: Tensor | None = None, match_target: Tensor | None = None
    ) -> DeblurOutput:
        """Deblur `image` (N×3×H×W, sRGB [0, 1]) using `reference` (N×3×Hr×Wr) when given.

        `match_target` is for training only: a sharp image aligned with `image` (its ground
        truth). The matching features of both go into the output for the matching loss; passing
        them through forward keeps one graph per step, as DistributedDataParallel needs.

        Returns:
            DeblurOutput with `restored` (N×3×H×W), `reference_confidence` (N×1×H×W in [0, 1],
            bilinearly upsampled from the matching grid; None without a reference) and
            `match_features` (`match_features(image, match_target)`; None without a target).
        """
        check_stride(image, self.stride, "RefDeblurNet")
        half = F.avg_pool2d(image, 2)
        quarter = F.avg_pool2d(half, 2)
        encoded1 = self.head(image)
        encoded2 = self.group2(self.sffm2(self.down2(encoded1), half))
        encoded4 = self.group4(self.sffm4(self.down4(encoded2), quarter))

        confidence_map = None
        if reference is not None:
            check_stride(reference, self.stride, "RefDeblurNet reference")
            if reference.shape[0] != image.shape[0]:
                raise ValueError(
                    f"RefDeblurNet: {reference.shape[0]} references for {image.shape[0]} images"
                )
            index, confidence = self.match(image, reference)
            reference1 = self.reference_encoder[0](reference)
            reference2 = self.reference_encoder[1](reference1)
            reference4 = self.reference_encoder[2](reference2)
            s = self.match_stride
            encoded1 = self.ream1(encoded1, reference1, index, confidence, s)
            encoded2 = self.ream2(encoded2, reference2, index, confidence, s // 2)
            encoded4 = self.ream4(encoded4, reference4, index, confidence, s // 4)
            confidence_map = F.interpolate(
                confidence, size=image.shape[-2:], mode="bilinear", align_corners=False
            )

        decoded = self.decoder4(encoded4)
        decoded = self.decoder2(self.merge2(torch.cat([self.up2(decoded), encoded2], dim=1)))
        decoded = self.decoder1(self.merge1(torch.cat([self.up1(decoded), encoded1], dim=1)))
        restored = image + self.tail(decoded)
        aligned = None if match_target is None else self.match_features(image, match_target)
        return DeblurOutput(
            restored=restored, reference_confidence=confidence_map, match_features=aligned
        )
