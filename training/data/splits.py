"""The held-out validation split of the shared training data (``../shared/data``, see SOURCES.md).

Validation — no training run ever reads these files:

- ``photos/bsds500_test`` with ``segments/bsds500_test`` (its objects are pasted only in val),
- ``photos/set5`` and ``photos/set14`` (classic test images),
- ``camvid/val`` with ``camvid/val_labels`` (its cars, pedestrians and bicyclists are pasted only in
  val).

Training: ``photos/bsds500_train`` with ``segments/bsds500_train``, ``photos/urban100``,
``photos/set3c``, ``photos/mcmaster`` and ``camvid/train`` with ``camvid/train_labels``, minus

- ``photos/set3c/butterfly.jpg``: the very photo of ``photos/set5/butterfly.jpg``;
- the CamVid training frames within ``CAMVID_GUARD_FRAMES`` (10 s) of a validation frame of the
  same sequence: CamVid's val is a stretch of sequence 0016E5 whose neighbours are in its train
  folder, and a frame a second away shows nearly the same scene.

Unpaired real blur (``real_blurred/lai2016``, no ground truth) is training-only data for NeurMAP;
its sharp counterpart is the training photos above.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

from PIL import Image

from deblurstudio.core.errors import DeblurStudioError
from training.data.layouts import ObjectSource, SynthesisSources, list_images

SPLITS = ("train", "val")
VALIDATION_SPLIT = "shared-data val v1: photos/bsds500_test, photos/set5, photos/set14, camvid/val"

PHOTO_DIRS = {
    "train": ("photos/bsds500_train", "photos/urban100", "photos/set3c", "photos/mcmaster"),
    "val": ("photos/bsds500_test", "photos/set5", "photos/set14"),
}
# Photo folder → folder of its region label maps (same stems, .png).
SEGMENT_DIRS = {
    "photos/bsds500_train": "segments/bsds500_train",
    "photos/bsds500_test": "segments/bsds500_test",
}
CAMVID_DIRS = {
    "train": ("camvid/train", "camvid/train_labels"),
    "val": ("camvid/val", "camvid/val_labels"),
}
CAMVID_MOVING_CLASSES = (8, 9, 10)  # car, pedestrian, bicyclist: things that really move
CAMVID_FPS = 30
CAMVID_GUARD_FRAMES = 10 * CAMVID_FPS
# Reference views: another frame of the same sequence at most 2 s away (training frames are 1 s
# apart, validation frames 1/15 s).
CAMVID_NEIGHBOUR_FRAMES = 2 * CAMVID_FPS
# Training files that duplicate a validation file (found by comparing thumbnails of all photos).
DUPLICATES_OF_VAL = {"photos/set3c/butterfly.jpg": "photos/set5/butterfly.jpg"}
UNPAIRED_BLURRED_DIRS = ("real_blurred/lai2016",)

_CAMVID_NAME = re.compile(r"^(?P<sequence>.+)_f?(?P<frame>\d+)$")


def _folder(data_root: Path, relative: str) -> Path:
    folder = data_root / relative
    if not folder.is_dir():
        raise DeblurStudioError(f"{folder}: missing (is {data_root} the shared training data?)")
    return folder


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not '{split}'")


def camvid_frame(path: Path) -> tuple[str, int]:
    """(sequence, frame number) of a CamVid file, e.g. ``0016E5_07959.jpg``, ``0006R0_f01140``."""
    match = _CAMVID_NAME.match(path.stem)
    if match is None:
        raise DeblurStudioError(f"{path}: not a CamVid frame name (<sequence>_<frame number>)")
    return match["sequence"], int(match["frame"])


def _camvid_frames(data_root: Path, split: str) -> list[Path]:
    frames = list_images(_folder(data_root, CAMVID_DIRS[split][0]))
    if split == "val":
        return frames
    val_frames = defaultdict(list)
    for path in list_images(_folder(data_root, CAMVID_DIRS["val"][0])):
        sequence, number = camvid_frame(path)
        val_frames[sequence].append(number)
    kept = []
    for path in frames:
        sequence, number = camvid_frame(path)
        if all(abs(number - v) > CAMVID_GUARD_FRAMES for v in val_frames.get(sequence, ())):
            kept.append(path)
    return kept


def _neighbours(frames: list[Path]) -> dict[Path, list[Path]]:
    by_sequence = defaultdict(list)
    for path in frames:
        sequence, number = camvid_frame(path)
        by_sequence[sequence].append((number, path))
    neighbours = {}
    for members in by_sequence.values():
        for number, path in members:
            close = [
                p for n, p in members if p != path and abs(n - number) <= CAMVID_NEIGHBOUR_FRAMES
            ]
            if close:
                neighbours[path] = close
    return neighbours


def bsds_source(photo: Path, labels: Path) -> ObjectSource:
    """A BSDS500 photo with its region map.

    In this copy 63 of the 400 photos are stored turned a quarter clockwise while their label maps
    are not (checked by matching region boundaries to image edges), so those maps are turned too.
    """
    with Image.open(photo) as image, Image.open(labels) as label_map:
        turned = (image.height, image.width) == (label_map.width, label_map.height)
        turned &= image.size != label_map.size
    return ObjectSource(photo, labels, label_turns=-1 if turned else 0)


def split_sources(data_root: str | os.PathLike, split: str) -> SynthesisSources:
    """Backgrounds, cut-out objects and video neighbours of one split of the shared data."""
    _check_split(split)
    root = Path(data_root)
    duplicates = {root / relative for relative in DUPLICATES_OF_VAL}
    sources = SynthesisSources()
    for relative in PHOTO_DIRS[split]:
        photos = [p for p in list_images(_folder(root, relative)) if p not in duplicates]
        sources.photos += photos
        if relative in SEGMENT_DIRS:
            segments = _folder(root, SEGMENT_DIRS[relative])
            sources.objects += [bsds_source(p, segments / f"{p.stem}.png") for p in photos]
    frames = _camvid_frames(root, split)
    labels = _folder(root, CAMVID_DIRS[split][1])
    sources.photos += frames
    sources.objects += [
        ObjectSource(p, labels / f"{p.stem}.png", ids=CAMVID_MOVING_CLASSES) for p in frames
    ]
    sources.neighbours = _neighbours(frames)
    return sources


def split_files(data_root: str | os.PathLike, split: str) -> set[Path]:
    """Every file (photos and label maps) that ``split`` reads."""
    sources = split_sources(data_root, split)
    files = set(sources.photos)
    for source in sources.objects:
        files |= {source.image, source.labels}
    for close in sources.neighbours.values():
        files |= set(close)
    return files


def unpaired_photos(data_root: str | os.PathLike, which: str) -> list[Path]:
    """Training photos for NeurMAP's unpaired data: real blurred photos or sharp ones."""
    root = Path(data_root)
    if which == "blurred":
        return [
            p for relative in UNPAIRED_BLURRED_DIRS for p in list_images(_folder(root, relative))
        ]
    if which == "sharp":
        return split_sources(root, "train").photos
    raise ValueError(f"which must be 'blurred' or 'sharp', not '{which}'")
