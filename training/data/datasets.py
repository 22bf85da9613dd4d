"""PyTorch datasets: synthetic blur (on the fly), unpaired photos (NeurMAP), paired public layouts.

Every sample is a dict of float32 tensors C×H×W, sRGB in [0, 1] (the training subproject contract
in notes/COMMON.md): "blurred" 3×H×W, "sharp" 3×H×W (the sharp middle frame), "blur_mask" 1×H×W
(1 where blurred), "motion" 2×H×W (dx, dy) px with the blur trajectory running p − m/2 → p + m/2,
"motion_valid" 1×H×W (1 where motion is the exact linear vector), optionally "reference" 3×H×W
(another view of the scene), and "kind" (str). Paired layouts give the keys they know.

Randomness: split="val" samples are a pure function of (seed, index), identical every epoch and in
any worker. Training samples draw from a generator seeded with (seed, torch.initial_seed()) on first
use in each process, so every DataLoader worker (torch seeds each one differently, anew each epoch)
draws its own samples, and a run seeded with torch.manual_seed is reproducible.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from deblurstudio.core.errors import DeblurStudioError
from deblurstudio.core.imageio import read_image
from training.data import device_synthesis, synthesis
from training.data.layouts import (
    PAIRED_KINDS,
    SOURCE_LAYOUTS,
    ObjectRegion,
    ObjectSource,
    SynthesisSources,
    check_same_size,
    find_object_regions,
    load_cutout,
    paired_images,
    read_labels,
    read_rgb_u8,
)
from training.data.splits import SPLITS, split_sources, unpaired_photos

DEFAULT_KINDS = {"global": 0.3, "local": 0.4, "mixed": 0.15, "sharp": 0.15}
DEFAULT_TRAIN_LENGTH = 10_000
# One validation sample per validation background (200 BSDS500 test + 5 Set5 + 14 Set14 + 101
# CamVid val frames).
DEFAULT_VAL_LENGTH = 320
# Backgrounds are shrunk by up to 2× (never enlarged unless a photo is smaller than the crop):
# shrinking adds scale variety and makes the sharp ground truth crisper than the photo itself.
_MIN_BACKGROUND_SCALE = 0.5
# Probability that a video frame's reference is a neighbouring frame rather than a warped view.
_NEIGHBOUR_REFERENCE_PROBABILITY = 0.7
_OBJECT_TRIES = 50
# An object's larger side as a fraction of the crop.
_OBJECT_SIZE = (0.25, 0.6)
# Pasted objects per sample: 1 to _MOST_MOVING moving ones (local, mixed), 0 to _MOST_STILL still.
_MOST_MOVING = 2
_MOST_STILL = 2


def _chw(array: np.ndarray) -> torch.Tensor:
    """H×W or H×W×C numpy → contiguous float32 C×H×W tensor."""
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


def _dihedral(array: np.ndarray, op: int) -> np.ndarray:
    """One of the 8 flips/rotations of an H×W[×C] array (op in 0…7; 0 = unchanged)."""
    if op & 4:
        array = array.transpose(1, 0, *range(2, array.ndim))
    if op & 2:
        array = array[::-1]
    if op & 1:
        array = array[:, ::-1]
    return array


class _Seeded:
    """Per-index generators: deterministic for validation, per process and worker for training."""

    def __init__(self, split: str, seed: int) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not '{split}'")
        self.split = split
        self.seed = int(seed)
        self._generator: np.random.Generator | None = None
        self._generator_owner: tuple[int, int] | None = None
        self._process: int | None = None

    def _rng(self, index: int) -> np.random.Generator:
        pid = os.getpid()
        if pid != self._process:
            self._process = pid
            if get_worker_info() is not None:
                # DataLoader workers already run side by side; OpenCV's own thread pool in each
                # would oversubscribe the cores.
                cv2.setNumThreads(1)
        if self.split == "val":
            return np.random.default_rng([self.seed, index])
        # A DataLoader worker is a new process with its own torch seed: start a new stream there.
        owner = (pid, torch.initial_seed())
        if self._generator is None or owner != self._generator_owner:
            self._generator = np.random.default_rng([self.seed, owner[1]])
            self._generator_owner = owner
        return self._generator


def _extra_sources(specs: Sequence[Mapping[str, Any]]) -> SynthesisSources:
    """Sources from config entries such as {"layout": "voc", "root": "...", "split": "train"}."""
    sources = SynthesisSources()
    for spec in specs:
        options = dict(spec)
        layout = options.pop("layout", None)
        if layout not in SOURCE_LAYOUTS:
            raise DeblurStudioError(
                f"extra source {spec}: 'layout' must be one of {', '.join(SOURCE_LAYOUTS)}"
            )
        sources = sources + SOURCE_LAYOUTS[layout](**options)
    return sources


def _device_shapes(crop: int, max_blur: float) -> device_synthesis.Shapes:
    """The fixed sizes of a SyntheticBlurDataset's device-synthesis ingredients."""
    return device_synthesis.Shapes(
        crop=crop,
        margin=synthesis.max_kernel_radius(max_blur),
        cutout=math.ceil(_OBJECT_SIZE[1] * crop),
        layers=_MOST_MOVING + _MOST_STILL,
    )


class SyntheticBlurDataset(_Seeded, Dataset):
    """Blurred/sharp pairs synthesised on the fly from sharp photos and object masks.

    Kinds: "global" (camera shake: random trajectory or linear kernel, convolved in linear light),
    "local" (Local Blur Synthesis: 1–2 objects moving over 7–13 frames, 0–2 static distractors),
    "mixed" (both: the object exposure then shaken by a kernel up to half as long), "sharp" (no
    blur, maybe static pastes). Then Poisson–Gaussian noise and, sometimes, JPEG on "blurred".

    Args:
        data_root: the shared training data (``../shared/data``); which of its files a split
            reads is fixed by ``training.data.splits``.
        split: "train" or "val" (deterministic per index).
        crop: output height and width, px.
        kinds: relative weights of the kinds (missing kinds weigh 0).
        noise_sigma: (low, high) range of the noise level (std at mid-grey, [0, 1] units).
        with_reference: add "reference": a neighbouring frame of the same video (CamVid) or a
            perspective-warped, re-exposed view of the background photo; the moving objects are
            not in it (they moved on).
        length: samples per epoch (default 10 000 for train, 320 for val).
        seed: base seed.
        max_blur: longest blur, px (camera shake extent; object path length).
        linear_probability: share of global kernels that are straight lines (exact motion known).
        jpeg_probability: share of blurred inputs saved as JPEG at quality 60–95.
        extra_sources: more backgrounds/objects for the training split, e.g.
            ``[{"layout": "voc", "root": "VOC2012", "split": "train"},
            {"layout": "folder", "root": "my_photos"}]`` (see ``training.data.layouts``).
            Validation always stays the fixed shared-data split, so scores compare across runs.
        synthesis: "cpu" (finished samples) or "device": training samples are the ingredients
            of `training.data.device_synthesis`, and ``synthesize_on_device`` renders a batch of
            them on the training device into the same keys (the DataLoader workers then only load
            pixels and draw parameters). Validation samples are always finished on the CPU.
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        split: str = "train",
        crop: int = 128,
        kinds: Mapping[str, float] | None = None,
        noise_sigma: Sequence[float] = (0.0, 0.02),
        with_reference: bool = False,
        length: int | None = None,
        seed: int = 0,
        max_blur: float = 32.0,
        linear_probability: float = 0.4,
        jpeg_probability: float = 0.3,
        extra_sources: Sequence[Mapping[str, Any]] = (),
        synthesis: str = "cpu",
    ) -> None:
        _Seeded.__init__(self, split, seed)
        if synthesis not in ("cpu", "device"):
            raise ValueError(f"synthesis must be 'cpu' or 'device', not '{synthesis}'")
        kinds = dict(DEFAULT_KINDS if kinds is None else kinds)
        unknown = set(kinds) - set(DEFAULT_KINDS)
        if unknown or not kinds or sum(kinds.values()) <= 0:
            raise ValueError(f"kinds must weigh some of {sorted(DEFAULT_KINDS)}, got {kinds}")
        self.kind_names = list(kinds)
        self.kind_weights = np.array([kinds[k] for k in self.kind_names], dtype=np.float64)
        self.kind_weights /= self.kind_weights.sum()
        self.crop = int(crop)
        self.noise_sigma = (float(noise_sigma[0]), float(noise_sigma[1]))
        self.with_reference = bool(with_reference)
        default_length = DEFAULT_VAL_LENGTH if split == "val" else DEFAULT_TRAIN_LENGTH
        self.length = int(length) if length is not None else default_length
        self.max_blur = float(max_blur)
        self.linear_probability = float(linear_probability)
        self.jpeg_probability = float(jpeg_probability)
        # Validation samples are few, fixed and evaluated straight from the dataset: always CPU.
        self.device_shapes = (
            _device_shapes(self.crop, self.max_blur)
            if synthesis == "device" and split == "train"
            else None
        )
        self.sources = split_sources(data_root, split)
        if split == "train":
            self.sources = self.sources + _extra_sources(extra_sources)
        if not self.sources.photos:
            raise DeblurStudioError(f"{data_root}: no background photos for split '{split}'")
        needs_objects = any(kinds.get(k, 0) > 0 for k in ("local", "mixed"))
        if needs_objects and not self.sources.objects:
            raise DeblurStudioError(f"{data_root}: 'local'/'mixed' blur needs object masks")
        # Object regions of each label map, found on first use (scanning them all up front would
        # take seconds at start-up and again in every worker).
        self._regions: dict[ObjectSource, list[ObjectRegion]] = {}
        # Cut-outs already shrunk to the largest size a sample can use: decoding a whole photo
        # for every pasted object would cost more than the synthesis itself.
        self._cutouts: dict[ObjectRegion, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = self._rng(index)
        kind = self.kind_names[rng.choice(len(self.kind_names), p=self.kind_weights)]
        photos = self.sources.photos
        # Validation walks through every background; training picks at random.
        photo = (
            photos[index % len(photos)]
            if self.split == "val"
            else photos[rng.integers(len(photos))]
        )
        scene, reference = self._scene(rng, kind, photo)
        sigma = rng.uniform(*self.noise_sigma)
        if self.device_shapes is not None:
            # The shot-noise share is drawn when (and as) `synthesis.add_noise` would draw it.
            shot_share = rng.uniform(*synthesis.SHOT_SHARE) if sigma > 0 else 0.0
            quality = self._jpeg_quality(rng)
            item = device_synthesis.ingredients(
                scene, self.device_shapes, sigma, shot_share, quality
            )
        else:
            sample = scene.render()
            blurred = synthesis.add_noise(rng, sample.blurred, sigma)
            quality = self._jpeg_quality(rng)
            if quality:
                blurred = synthesis.jpeg_roundtrip(blurred, quality)
            item = {
                "blurred": _chw(blurred),
                "sharp": _chw(sample.sharp),
                "blur_mask": _chw(sample.blur_mask),
                "motion": _chw(sample.motion),
                "motion_valid": _chw(sample.motion_valid),
                "kind": sample.kind,
            }
        if reference is not None:
            item["reference"] = _chw(reference)
        return item

    # ------------------------------------------------------------------------------- internals

    def _jpeg_quality(self, rng: np.random.Generator) -> int:
        """The JPEG quality "blurred" is saved at, 0 for none."""
        return int(rng.integers(60, 96)) if rng.random() < self.jpeg_probability else 0

    def _scene(
        self, rng: np.random.Generator, kind: str, photo: Path
    ) -> tuple[synthesis.Scene, np.ndarray | None]:
        kernel = None
        if kind in ("global", "mixed"):
            longest = self.max_blur if kind == "global" else self.max_blur / 2
            kernel = synthesis.random_kernel(rng, longest, self.linear_probability)
        margin = kernel.radius if kernel is not None else 0
        canvas = self.crop + 2 * margin
        # With a reference, load more of the photo around the canvas: the other view sees it.
        context = self.crop // 2 if self.with_reference else 0
        view = _BackgroundView.random(rng, photo, canvas + 2 * context, self.split == "train")
        region = view.load(photo)
        inner = (slice(context, context + canvas),) * 2
        keep = (margin, margin, self.crop, self.crop)
        layers = self._layers(rng, kind, keep)
        frames = synthesis.random_frame_count(rng) if kind in ("local", "mixed") else 1
        scene = synthesis.Scene(kind, region[inner], kernel, layers, frames)
        reference = None
        if self.with_reference:
            box = (context + margin, context + margin, self.crop, self.crop)
            reference = self._reference(rng, photo, view, region, box)
        return scene, reference

    def _layers(
        self, rng: np.random.Generator, kind: str, keep: tuple[int, int, int, int]
    ) -> list[tuple[synthesis.Cutout, synthesis.ObjectMotion]]:
        """Moving objects (local, mixed) and static distractors, in a random paint order."""
        moving = int(rng.integers(1, _MOST_MOVING + 1)) if kind in ("local", "mixed") else 0
        still = (
            int(rng.integers(0, _MOST_STILL + 1))
            if kind != "global" and self.sources.objects
            else 0
        )
        layers = []
        for number in range(moving + still):
            region = self._random_region(rng)
            size = rng.uniform(*_OBJECT_SIZE) * self.crop
            rgb, alpha = self._cutout(region)
            cutout, pose = synthesis.place_cutout(rng, rgb, alpha, keep, size)
            if number < moving:
                pose = synthesis.random_object_motion(rng, pose, cutout.alpha.shape, self.max_blur)
            layers.append((cutout, pose))
        order = rng.permutation(len(layers))
        return [layers[i] for i in order]

    def _cutout(self, region: ObjectRegion) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 RGB h×w×3, float32 alpha h×w) of a region, at most the largest pasted size."""
        if region not in self._cutouts:
            rgb, alpha = load_cutout(region)
            largest = _OBJECT_SIZE[1] * self.crop
            if max(alpha.shape) > largest:
                scale = largest / max(alpha.shape)
                size = (
                    max(1, round(alpha.shape[1] * scale)),
                    max(1, round(alpha.shape[0] * scale)),
                )
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
                alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
            self._cutouts[region] = (rgb, np.round(alpha * 255).astype(np.uint8))
        rgb, alpha = self._cutouts[region]
        return rgb, alpha.astype(np.float32) / 255.0

    def _random_region(self, rng: np.random.Generator) -> ObjectRegion:
        objects = self.sources.objects
        for _ in range(_OBJECT_TRIES):
            source = objects[rng.integers(len(objects))]
            if source not in self._regions:
                self._regions[source] = find_object_regions(source)
            regions = self._regions[source]
            if regions:
                return regions[rng.integers(len(regions))]
        raise DeblurStudioError(
            f"no usable object in {_OBJECT_TRIES} label maps tried (e.g. {objects[0].labels}): "
            "regions must be ≥ 150 px and ≤ 35 % of the image"
        )

    def _reference(
        self,
        rng: np.random.Generator,
        photo: Path,
        view: _BackgroundView,
        region: np.ndarray,
        box: tuple[int, int, int, int],
    ) -> np.ndarray:
        neighbours = self.sources.neighbours.get(photo)
        if neighbours and rng.random() < _NEIGHBOUR_REFERENCE_PROBABILITY:
            other = view.load(neighbours[rng.integers(len(neighbours))])
            # The camera already moved between the frames: only a small extra change.
            return synthesis.reference_view(rng, synthesis.srgb_to_linear(other), box, 0.3)
        return synthesis.reference_view(rng, synthesis.srgb_to_linear(region), box, 1.0)


class _BackgroundView:
    """Which part of a photo a sample uses: a square of the source, resized, flipped/rotated.

    Kept separate from the pixels so a neighbouring video frame can be cut the same way.
    """

    def __init__(self, top: int, left: int, side: int, size: int, op: int) -> None:
        self.top, self.left, self.side, self.size, self.op = top, left, side, size, op

    @classmethod
    def random(
        cls, rng: np.random.Generator, photo: Path, size: int, augment: bool
    ) -> _BackgroundView:
        height, width = _image_size(photo)
        smallest = size / min(height, width)  # scale at which the square just fits
        low = max(_MIN_BACKGROUND_SCALE, smallest)
        scale = rng.uniform(low, max(low, 1.0))
        side = min(min(height, width), max(1, math.ceil(size / scale)))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        return cls(top, left, side, size, int(rng.integers(8)) if augment else 0)

    def load(self, photo: Path) -> np.ndarray:
        """uint8 sRGB size×size×3 cut from ``photo``."""
        image = read_rgb_u8(photo)
        square = image[self.top : self.top + self.side, self.left : self.left + self.side]
        if square.shape[:2] != (self.side, self.side):
            raise DeblurStudioError(f"{photo}: smaller than the other frames of its sequence")
        interpolation = cv2.INTER_AREA if self.side > self.size else cv2.INTER_LINEAR
        square = cv2.resize(square, (self.size, self.size), interpolation=interpolation)
        return np.ascontiguousarray(_dihedral(square, self.op))


_IMAGE_SIZES: dict[Path, tuple[int, int]] = {}


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, from its header (cached)."""
    if path not in _IMAGE_SIZES:
        with Image.open(path) as image:
            _IMAGE_SIZES[path] = (image.height, image.width)
    return _IMAGE_SIZES[path]


class UnpairedDataset(_Seeded, Dataset):
    """Unpaired photos for NeurMAP (paper 002): real blurred photos or sharp photos, no pairs.

    Samples are {which: float32 3×crop×crop sRGB tensor} — key "blurred" (real camera-shake photos,
    ``real_blurred/lai2016``, no ground truth) or "sharp" (the training photos of
    ``training.data.splits``) — random crops at the photo's own resolution (resampling would change
    the blur's size), randomly flipped and rotated.

    Args:
        data_root: the shared training data.
        which: "blurred" or "sharp".
        crop: output height and width, px (photos smaller than that are enlarged to fit).
        length: samples per epoch (default 10 000).
        seed: base seed.
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        which: str = "blurred",
        crop: int = 128,
        length: int | None = None,
        seed: int = 0,
    ) -> None:
        _Seeded.__init__(self, "train", seed)
        self.which = which
        self.photos = unpaired_photos(data_root, which)
        if not self.photos:
            raise DeblurStudioError(f"{data_root}: no {which} photos")
        self.crop = int(crop)
        self.length = int(length) if length is not None else DEFAULT_TRAIN_LENGTH

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = self._rng(index)
        image = read_rgb_u8(self.photos[rng.integers(len(self.photos))])
        patch = _random_crops(rng, [image], self.crop, augment=True)[0]
        return {self.which: _chw(patch.astype(np.float32) / 255.0)}


def _random_crops(
    rng: np.random.Generator, images: Sequence[np.ndarray], crop: int, augment: bool
) -> list[np.ndarray]:
    """The same random crop (and flip/rotation) of equally sized images; too small ones enlarged."""
    height, width = images[0].shape[:2]
    if min(height, width) < crop:
        factor = crop / min(height, width)
        size = (max(crop, round(width * factor)), max(crop, round(height * factor)))
        images = [cv2.resize(im, size, interpolation=cv2.INTER_LINEAR) for im in images]
        height, width = images[0].shape[:2]
    top = int(rng.integers(0, height - crop + 1))
    left = int(rng.integers(0, width - crop + 1))
    op = int(rng.integers(8)) if augment else 0
    return [_dihedral(im[top : top + crop, left : left + crop], op) for im in images]


class PairedDataset(_Seeded, Dataset):
    """Real pairs from a public layout: GoPro, REDS, LODE, RealBlur or HIDE (``layouts``).

    Samples: "blurred", "sharp" (3×H×W), "blur_mask" (1×H×W) when the layout has masks (LODE with
    ``mask/`` folders), and "kind" ("local" for LODE, else "global").

    Args:
        layout: one of ``training.data.layouts.PAIRED_LAYOUTS``.
        root: the dataset's folder.
        split: the layout's split folder ("train", "test", …); "val"-like determinism comes from
            ``deterministic``.
        crop: output height and width, px; None gives whole images (batch size 1).
        deterministic: the same crop for an index every epoch, no flips (for evaluation).
        length: samples per epoch (default: one per pair).
        seed: base seed.
        options: layout options, e.g. RealBlur's ``variant="R"``.
    """

    def __init__(
        self,
        layout: str,
        root: str | os.PathLike,
        split: str = "train",
        crop: int | None = 256,
        deterministic: bool = False,
        length: int | None = None,
        seed: int = 0,
        **options: str,
    ) -> None:
        _Seeded.__init__(self, "val" if deterministic else "train", seed)
        self.pairs = paired_images(layout, root, split, **options)
        self.kind = PAIRED_KINDS[layout]
        with_mask = [p for p in self.pairs if p.mask is not None]
        if with_mask and len(with_mask) != len(self.pairs):
            missing = next(p for p in self.pairs if p.mask is None)
            raise DeblurStudioError(f"{missing.blurred}: no blur mask, but other pairs have one")
        self.has_masks = bool(with_mask)
        self.crop = crop
        self.length = int(length) if length is not None else len(self.pairs)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = self._rng(index)
        pair = self.pairs[index % len(self.pairs)]
        paths = [pair.blurred, pair.sharp]
        images = [read_image(pair.blurred).pixels, read_image(pair.sharp).pixels]
        if self.has_masks:
            labels = read_labels(pair.mask)
            mask = (labels > (127 if labels.max() > 1 else 0)).astype(np.float32)
            paths.append(pair.mask)
            images.append(mask[..., None])
        check_same_size(paths, images)
        if self.crop is not None:
            images = _random_crops(rng, images, self.crop, augment=self.split == "train")
        item: dict[str, Any] = {"blurred": _chw(images[0]), "sharp": _chw(images[1])}
        if self.has_masks:
            item["blur_mask"] = _chw(images[2])
        item["kind"] = self.kind
        return item


def data_loader(dataset: Dataset, *, workers: int, **options: Any) -> DataLoader:
    """A DataLoader over `dataset` whose `workers` processes start from a fork server.

    Forking the training (or test) process itself would copy its threads' locks (torch's and
    OpenCV's thread pools, Qt, a pin-memory thread) in whatever state they are; a worker that
    inherits one held waits forever (seen as a DataLoader that never yields, in CI). A fork server
    is a fresh single-threaded process, so workers start clean, at the price of importing torch
    once per worker. `options` are DataLoader's other arguments.
    """
    if workers > 0:
        options.setdefault("multiprocessing_context", "forkserver")
        options.setdefault("persistent_workers", True)
    return DataLoader(dataset, num_workers=workers, **options)
