"""A tiny copy of the shared-data folder layout, drawn from scikit-image's bundled photos.

Tests never read /work/shared/data; this builds the folders `training.data.splits` expects (two
small photos per folder, label maps with two objects, CamVid-named frames, real-blur photos).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

SIZE = 96
_PHOTOS = [
    skdata.astronaut(),
    skdata.chelsea(),
    skdata.coffee(),
    skdata.rocket(),
    skdata.immunohistochemistry(),
    skdata.colorwheel(),
]
PHOTO_FOLDERS = [
    "photos/bsds500_train",
    "photos/bsds500_test",
    "photos/urban100",
    "photos/set3c",
    "photos/mcmaster",
    "photos/set5",
    "photos/set14",
]


def _photo(index: int) -> np.ndarray:
    image = _PHOTOS[index % len(_PHOTOS)]
    side = min(image.shape[:2])
    return cv2.resize(image[:side, :side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _labels(first: int, second: int) -> np.ndarray:
    """Two rectangular objects, each about 12 % of the image."""
    labels = np.zeros((SIZE, SIZE), np.uint8)
    labels[10:40, 12:48] = first
    labels[50:84, 40:76] = second
    return labels


def make_data_root(root: Path) -> Path:
    """Write the fixture data root under `root` and return it."""
    count = 0
    for folder in PHOTO_FOLDERS:
        for number in range(2):
            name = f"{folder.split('/')[-1]}_{number}"
            _write_rgb(root / folder / f"{name}.jpg", _photo(count))
            count += 1
            if folder.startswith("photos/bsds500"):
                segments = root / folder.replace("photos", "segments")
                segments.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(segments / f"{name}.png"), _labels(1, 2))
    # CamVid: <sequence>_<frame> names; class 8 (car) and 9 (pedestrian) move.
    for split, sequence, frames in (("train", "0001TP", (30, 60)), ("val", "0016E5", (0, 2))):
        labels_dir = root / "camvid" / f"{split}_labels"
        labels_dir.mkdir(parents=True, exist_ok=True)
        for frame in frames:
            name = f"{sequence}_{frame:06d}"
            _write_rgb(root / "camvid" / split / f"{name}.png", _photo(count + frame))
            cv2.imwrite(str(labels_dir / f"{name}.png"), _labels(8, 9))
    for number in range(2):
        blurred = cv2.blur(_photo(number), (7, 1))
        _write_rgb(root / "real_blurred" / "lai2016" / f"blurred_{number}.jpg", blurred)
    return root
