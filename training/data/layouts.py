"""Folder layouts users have on disk: paired deblurring sets, object cut-outs and sharp photos.

Paired sets (each function returns ``PairedImage`` records, blurred/sharp/optional mask paths):

- GoPro: ``<root>/<split>/<sequence>/blur/*.png`` and ``.../sharp/*.png`` (same names).
- REDS: ``<root>/<split>_blur/<sequence>/*.png`` (or ``<split>_blur_jpeg``) and
  ``<root>/<split>_sharp/<sequence>/*.png``.
- LODE (paper 000: real locally blurred photos with sharp high-frame-rate ground truth, grouped by
  scene; the authors had not published a layout, so DeblurStudio uses this one):
  ``<root>/<split>/<scene>/blur/<name>.<ext>``, ``.../sharp/<name>.<ext>`` and optionally
  ``.../mask/<name>.png`` (8-bit, > 127 = blurred region) — masks give ``blur_mask``.
- RealBlur: ``<root>/RealBlur_<J|R>_<split>_list.txt`` with lines ``gt_path blur_path`` relative
  to ``<root>`` (as in the official archive).
- HIDE: ``<root>/<split>/**/<name>.png`` blurred (``test`` has ``test-close-ups`` and
  ``test-long-shot``) and ``<root>/GT/<name>.png`` sharp.

Synthesis sources (``SynthesisSources``: background photos and object cut-outs for Local Blur
Synthesis):

- PASCAL VOC: ``<root>/JPEGImages/<id>.jpg`` and ``<root>/SegmentationObject/<id>.png`` (palette
  PNG: 0 background, 255 the void band around each object, others object instances), ids from
  ``<root>/ImageSets/Segmentation/<split>.txt``.
- Plain folder: ``<root>/*.{jpg,png,…}`` sharp photos and optionally ``<root>/masks/<stem>.png``:
  a binary mask or a label map; each connected region of one non-zero value is an object.

Pixel conventions: ``read_rgb_u8`` gives uint8 RGB H×W×3, ``read_labels`` an integer H×W label
map.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from deblurstudio.core.errors import DeblurStudioError, ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# -------------------------------------------------------------------------------------- image I/O


def read_rgb_u8(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 RGB H×W×3, fast (the synthesis hot path; 16-bit files are rounded
    to 8 bits). Paired data, which must keep 16-bit precision, is read with
    ``deblurstudio.core.imageio.read_image``."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(path, "not a readable image")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ImageReadError(path, f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a label map or mask as an int32 H×W array.

    Palette PNGs (PASCAL VOC) give their palette indices, grey images their values; colour masks
    are reduced to one value per colour (black stays 0).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode in ("RGB", "RGBA"):
                rgb = np.asarray(image.convert("RGB"), dtype=np.int32)
                packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
                colours, ids = np.unique(packed, return_inverse=True)
                # Small consecutive ids (black, if present, is the smallest colour and stays 0).
                return (ids.reshape(packed.shape) + (colours[0] != 0)).astype(np.int32)
            return np.asarray(image, dtype=np.int32)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except (OSError, ValueError) as error:
        raise ImageReadError(path, f"not a readable label map ({error})") from None


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


# ------------------------------------------------------------------------------ synthesis sources


@dataclass(frozen=True)
class ObjectSource:
    """A photo with a label map whose regions can be cut out and pasted.

    Attributes:
        image: the photo.
        labels: its label map (same size); value 0 is never an object.
        ids: label values that are objects (None: every value but 0 and ``void``).
        void: a label value marking an unlabelled band around objects (PASCAL VOC's 255); the band
            next to a cut-out object is added to it, so its outline is not eaten away.
        label_turns: counter-clockwise quarter turns (``np.rot90``'s k) that align the label map
            with the photo, for copies whose photos were stored rotated.
    """

    image: Path
    labels: Path
    ids: tuple[int, ...] | None = None
    void: int | None = None
    label_turns: int = 0

    def read_labels(self) -> np.ndarray:
        """The label map, aligned with the photo (int32 H×W)."""
        labels = read_labels(self.labels)
        return (
            np.ascontiguousarray(np.rot90(labels, self.label_turns)) if self.label_turns else labels
        )


@dataclass(frozen=True, eq=False)
class ObjectRegion:
    """One connected region of one label value: an object ready to be cut out.

    Attributes:
        source: where it comes from.
        box: (x, y, width, height) px of the cut-out window in the photo.
        mask: bool height×width, the object's pixels in the window (kept, so cutting the object
            out later reads only the photo).
    """

    source: ObjectSource
    box: tuple[int, int, int, int]
    mask: np.ndarray


# Object regions worth pasting: not specks, not most of the photo, not thin slivers.
MIN_OBJECT_AREA = 150
MAX_OBJECT_FRACTION = 0.35
MIN_BOX_FILL = 0.25
_VOID_BAND_PX = 3


def find_object_regions(source: ObjectSource) -> list[ObjectRegion]:
    """Connected regions of ``source``'s label map that make reasonable objects.

    A region qualifies with at least ``MIN_OBJECT_AREA`` px, at most ``MAX_OBJECT_FRACTION`` of the
    image, and filling at least ``MIN_BOX_FILL`` of its bounding box.
    """
    labels = source.read_labels()
    try:
        with Image.open(source.image) as image:
            photo_size = image.size
    except OSError as error:
        raise ImageReadError(source.image, f"not a readable image ({error})") from None
    if photo_size != (labels.shape[1], labels.shape[0]):
        raise DeblurStudioError(
            f"{source.labels}: label map is {labels.shape[1]}×{labels.shape[0]} px but "
            f"{source.image.name} is {photo_size[0]}×{photo_size[1]} px"
        )
    counts = np.bincount(labels.ravel())
    excluded = {0, source.void}
    values = source.ids if source.ids is not None else np.flatnonzero(counts)
    regions = []
    max_area = MAX_OBJECT_FRACTION * labels.size
    pad = _VOID_BAND_PX if source.void is not None else 0
    for value in values:
        value = int(value)
        if value in excluded or value >= len(counts) or counts[value] < MIN_OBJECT_AREA:
            continue
        mask = (labels == value).astype(np.uint8)
        # Label only inside the value's bounding box: several times faster on small objects.
        left, top, box_w, box_h = cv2.boundingRect(mask)
        count, components, stats, _ = cv2.connectedComponentsWithStats(
            mask[top : top + box_h, left : left + box_w], connectivity=8
        )
        for component in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[component])
            if not MIN_OBJECT_AREA <= area <= max_area or area < MIN_BOX_FILL * w * h:
                continue
            x0, y0 = max(left + x - pad, 0), max(top + y - pad, 0)
            x1 = min(left + x + w + pad, labels.shape[1])
            y1 = min(top + y + h + pad, labels.shape[0])
            region_mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
            oy, ox = top + y - y0, left + x - x0  # the component's box inside the window
            region_mask[oy : oy + h, ox : ox + w] = components[y : y + h, x : x + w] == component
            if pad:
                band = np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)
                grown = cv2.dilate(region_mask.astype(np.uint8), band) > 0
                region_mask |= grown & (labels[y0:y1, x0:x1] == source.void)
            regions.append(ObjectRegion(source, (x0, y0, x1 - x0, y1 - y0), region_mask))
    return regions


def load_cutout(region: ObjectRegion) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``region`` out of its photo.

    Returns:
        (uint8 RGB h×w×3, float32 h×w alpha in {0, 1}) over the region's window.
    """
    x, y, w, h = region.box
    image = read_rgb_u8(region.source.image)
    return image[y : y + h, x : x + w], region.mask.astype(np.float32)


@dataclass
class SynthesisSources:
    """What Local Blur Synthesis draws from.

    Attributes:
        photos: sharp background photos.
        objects: photos with label maps to cut objects from.
        neighbours: for video frames, other frames of the same sequence close in time (sharp
            reference views of the same scene, paper 001).
    """

    photos: list[Path] = field(default_factory=list)
    objects: list[ObjectSource] = field(default_factory=list)
    neighbours: dict[Path, list[Path]] = field(default_factory=dict)

    def __add__(self, other: SynthesisSources) -> SynthesisSources:
        return SynthesisSources(
            self.photos + other.photos,
            self.objects + other.objects,
            {**self.neighbours, **other.neighbours},
        )


def voc_sources(root: str | os.PathLike, split: str = "train") -> SynthesisSources:
    """PASCAL VOC (2007–2012) instance masks as cut-out objects; its photos as backgrounds too."""
    root = Path(root)
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        raise DeblurStudioError(f"{list_file}: no such file (is {root} a VOC20xx folder?)")
    sources = []
    for line in list_file.read_text().split():
        image = root / "JPEGImages" / f"{line}.jpg"
        labels = root / "SegmentationObject" / f"{line}.png"
        if not labels.is_file():
            raise DeblurStudioError(f"{labels}: missing (listed in {list_file.name})")
        sources.append(ObjectSource(image, labels, void=255))
    return SynthesisSources([s.image for s in sources], sources)


def folder_sources(root: str | os.PathLike, masks: str = "masks") -> SynthesisSources:
    """Sharp photos in a folder; those with a mask of the same stem in ``root/masks`` also give
    objects."""
    root = Path(root)
    if not root.is_dir():
        raise DeblurStudioError(f"{root}: not a folder")
    photos = list_images(root)
    if not photos:
        raise DeblurStudioError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)})")
    mask_dir = root / masks
    by_stem = {p.stem: p for p in list_images(mask_dir)} if mask_dir.is_dir() else {}
    objects = [ObjectSource(p, by_stem[p.stem]) for p in photos if p.stem in by_stem]
    return SynthesisSources(photos, objects)


SOURCE_LAYOUTS = {"voc": voc_sources, "folder": folder_sources}


# ----------------------------------------------------------------------------------- paired layouts


@dataclass(frozen=True)
class PairedImage:
    """A blurred photo, its sharp ground truth and, when known, its blur mask (paths)."""

    blurred: Path
    sharp: Path
    mask: Path | None = None


def _stem_map(paths: Iterable[Path]) -> dict[str, Path]:
    return {p.stem: p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES}


def _pair_folders(
    blur_dir: Path, sharp_dir: Path, mask_dir: Path | None = None
) -> list[PairedImage]:
    """Pair images of two folders by stem; every blurred image needs its sharp one."""
    sharp = _stem_map(sharp_dir.iterdir()) if sharp_dir.is_dir() else {}
    masks = _stem_map(mask_dir.iterdir()) if mask_dir is not None and mask_dir.is_dir() else {}
    pairs = []
    for blurred in list_images(blur_dir):
        if blurred.stem not in sharp:
            raise DeblurStudioError(f"{blurred}: no sharp image of that name in {sharp_dir}")
        pairs.append(PairedImage(blurred, sharp[blurred.stem], masks.get(blurred.stem)))
    return pairs


def _require(pairs: list[PairedImage], root: Path, layout: str, expected: str) -> list[PairedImage]:
    if not pairs:
        raise DeblurStudioError(f"{root}: no {layout} pairs found (expected {expected})")
    return pairs


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def gopro_pairs(root: str | os.PathLike, split: str = "train") -> list[PairedImage]:
    """GoPro (GOPRO_Large): ``<root>/<split>/<sequence>/{blur,sharp}/*.png``."""
    root = Path(root)
    pairs = []
    for sequence in _subfolders(root / split):
        pairs += _pair_folders(sequence / "blur", sequence / "sharp")
    return _require(pairs, root, "GoPro", f"{split}/<sequence>/blur/*.png and .../sharp/*.png")


def reds_pairs(root: str | os.PathLike, split: str = "train") -> list[PairedImage]:
    """REDS: ``<root>/<split>_blur[_jpeg]/<seq>/*`` and ``<root>/<split>_sharp/<seq>/*``."""
    root = Path(root)
    blur_root = root / f"{split}_blur"
    if not blur_root.is_dir():
        blur_root = root / f"{split}_blur_jpeg"
    pairs = []
    for sequence in _subfolders(blur_root):
        pairs += _pair_folders(sequence, root / f"{split}_sharp" / sequence.name)
    return _require(pairs, root, "REDS", f"{split}_blur/<sequence>/*.png and {split}_sharp/...")


def lode_pairs(root: str | os.PathLike, split: str = "train") -> list[PairedImage]:
    """LODE: ``<root>/<split>/<scene>/{blur,sharp}/<name>.*`` with optional ``mask/<name>.png``."""
    root = Path(root)
    pairs = []
    for scene in _subfolders(root / split):
        pairs += _pair_folders(scene / "blur", scene / "sharp", scene / "mask")
    return _require(pairs, root, "LODE", f"{split}/<scene>/blur/*.png and .../sharp/*.png")


def realblur_pairs(
    root: str | os.PathLike, split: str = "train", variant: str = "J"
) -> list[PairedImage]:
    """RealBlur: list file ``<root>/RealBlur_<variant>_<split>_list.txt``, lines ``gt blur``."""
    root = Path(root)
    list_file = root / f"RealBlur_{variant}_{split}_list.txt"
    if not list_file.is_file():
        raise DeblurStudioError(f"{list_file}: no such file (RealBlur list of 'gt_path blur_path')")
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DeblurStudioError(f"{list_file}: line {number} is not 'gt_path blur_path'")
        pairs.append(PairedImage(blurred=root / fields[1], sharp=root / fields[0]))
    return _require(pairs, root, "RealBlur", list_file.name)


def hide_pairs(root: str | os.PathLike, split: str = "train") -> list[PairedImage]:
    """HIDE: blurred ``<root>/<split>/**/<name>.png``, sharp ``<root>/GT/<name>.png``."""
    root = Path(root)
    sharp = _stem_map((root / "GT").glob("*")) if (root / "GT").is_dir() else {}
    blurred = sorted(p for p in (root / split).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs = []
    for path in blurred:
        if path.stem not in sharp:
            raise DeblurStudioError(f"{path}: no sharp image of that name in {root / 'GT'}")
        pairs.append(PairedImage(path, sharp[path.stem]))
    return _require(pairs, root, "HIDE", f"{split}/**/*.png and GT/*.png")


PAIRED_LAYOUTS = {
    "gopro": gopro_pairs,
    "reds": reds_pairs,
    "lode": lode_pairs,
    "realblur": realblur_pairs,
    "hide": hide_pairs,
}
# What a paired layout's blur is, for the sample's "kind": LODE is local blur by design, the
# others are dominated by camera shake (paper 000, Fig. 3).
PAIRED_KINDS = {
    "gopro": "global",
    "reds": "global",
    "lode": "local",
    "realblur": "global",
    "hide": "global",
}


def paired_images(
    layout: str, root: str | os.PathLike, split: str = "train", **options: str
) -> list[PairedImage]:
    """Pairs of one of ``PAIRED_LAYOUTS`` (``options``: e.g. RealBlur's ``variant``)."""
    try:
        lister = PAIRED_LAYOUTS[layout]
    except KeyError:
        raise DeblurStudioError(
            f"unknown paired layout '{layout}' (known: {', '.join(PAIRED_LAYOUTS)})"
        ) from None
    return lister(root, split, **options)


def check_same_size(paths: Sequence[Path], arrays: Sequence[np.ndarray]) -> None:
    """Raise a one-line error naming the file when paired images differ in size."""
    height, width = arrays[0].shape[:2]
    for path, array in zip(paths[1:], arrays[1:], strict=True):
        if array.shape[:2] != (height, width):
            raise DeblurStudioError(
                f"{path}: {array.shape[1]}×{array.shape[0]} px, but {paths[0].name} is "
                f"{width}×{height} px"
            )
