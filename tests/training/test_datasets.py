"""Datasets, the validation split and the public folder layouts, on tiny fixture folders."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from deblurstudio.core.errors import DeblurStudioError
from training.data import (
    PairedDataset,
    SyntheticBlurDataset,
    UnpairedDataset,
    data_loader,
    layouts,
    splits,
)
from training.data.layouts import find_object_regions, load_cutout

CROP = 32
CONTRACT_KEYS = {"blurred", "sharp", "blur_mask", "motion", "motion_valid", "kind"}


def _photo(seed, height=72, width=96):
    """uint8 RGB: smooth colours plus fine texture (blur visibly changes it)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth + rng.normal(0, 25, size=(height, width, 3)), 0, 255).astype(np.uint8)


def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb.ndim == 2:
        assert cv2.imwrite(str(path), rgb)
    else:
        assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _quadrant_labels(height, width):
    """Label map: four quadrant regions (1–4), each a reasonable object."""
    labels = np.ones((height, width), np.uint8)
    labels[: height // 2, width // 2 :] = 2
    labels[height // 2 :, : width // 2] = 3
    labels[height // 2 :, width // 2 :] = 4
    return labels


def _camvid_labels(height, width):
    labels = np.full((height, width), 3, np.uint8)  # 3: some static class
    labels[20:44, 30:60] = 8  # a car
    return labels


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A miniature of ../shared/data: every folder the split reads, a few tiny images each."""
    root = tmp_path_factory.mktemp("shared_data")
    seed = iter(range(1000))
    for folder, names in {
        "photos/urban100": ["img_001"],
        "photos/mcmaster": ["1"],
        "photos/set3c": ["butterfly", "leaves"],
        "photos/set5": ["butterfly"],
        "photos/set14": ["zebra"],
        "real_blurred/lai2016": ["boat1"],
    }.items():
        for name in names:
            _write(root / folder / f"{name}.jpg", _photo(next(seed)))
    for split, names in {"train": ["1001", "1002"], "test": ["2001", "2002"]}.items():
        for name in names:
            _write(root / f"photos/bsds500_{split}/{name}.jpg", _photo(next(seed)))
            _write(root / f"segments/bsds500_{split}/{name}.png", _quadrant_labels(72, 96))
    camvid = {
        "train": ["0016E5_00390", "0016E5_00420", "0016E5_07920", "0001TP_006690"],
        "val": ["0016E5_07959", "0016E5_07961"],
    }
    for split, names in camvid.items():
        for name in names:
            _write(root / f"camvid/{split}/{name}.jpg", _photo(next(seed)))
            _write(root / f"camvid/{split}_labels/{name}.png", _camvid_labels(72, 96))
    return root


def _equal(a, b):
    return all(torch.equal(a[k], b[k]) if k != "kind" else a[k] == b[k] for k in a)


# ------------------------------------------------------------------------------------------ split


def test_split_keeps_validation_files_out_of_training(data_root):
    train = splits.split_files(data_root, "train")
    val = splits.split_files(data_root, "val")
    assert train and val and not train & val
    assert data_root / "photos/set3c/butterfly.jpg" not in train  # same photo as set5's
    assert data_root / "photos/set3c/leaves.jpg" in train
    # A CamVid training frame 1.3 s from a validation frame of the same sequence stays out.
    assert data_root / "camvid/train/0016E5_07920.jpg" not in train
    assert data_root / "camvid/train/0016E5_00420.jpg" in train
    objects = splits.split_sources(data_root, "train").objects
    assert not any(
        "val_labels" in str(o.labels) or "bsds500_test" in str(o.labels) for o in objects
    )


def test_training_never_reads_a_validation_file(data_root, monkeypatch):
    read = []

    def spy(function):
        def wrapped(path, *args, **kwargs):
            read.append(path)
            return function(path, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(layouts, "read_rgb_u8", spy(layouts.read_rgb_u8))
    monkeypatch.setattr(layouts, "read_labels", spy(layouts.read_labels))
    monkeypatch.setattr("training.data.datasets.read_rgb_u8", layouts.read_rgb_u8)
    dataset = SyntheticBlurDataset(data_root, crop=CROP, with_reference=True, length=60)
    for index in range(60):
        dataset[index]
    assert read
    val = splits.split_files(data_root, "val")
    assert not {p for p in read} & val
    assert any("camvid/train_labels" in str(p) for p in read)  # objects were pasted


def test_camvid_frames_get_neighbours_of_their_own_sequence_and_split(data_root):
    neighbours = splits.split_sources(data_root, "train").neighbours
    first = data_root / "camvid/train/0016E5_00390.jpg"
    assert neighbours[first] == [data_root / "camvid/train/0016E5_00420.jpg"]
    assert data_root / "camvid/train/0001TP_006690.jpg" not in neighbours
    val = splits.split_sources(data_root, "val").neighbours
    assert val[data_root / "camvid/val/0016E5_07959.jpg"] == [
        data_root / "camvid/val/0016E5_07961.jpg"
    ]


def test_turned_label_maps_are_aligned_with_their_photo(tmp_path):
    """Some BSDS500 photos in the shared copy are stored turned a quarter clockwise."""
    labels = _quadrant_labels(72, 96)
    colours = np.array([[0, 0, 0], [200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]])
    upright = colours[labels].astype(np.uint8)
    photo_path, labels_path = tmp_path / "photos/3001.png", tmp_path / "segments/3001.png"
    _write(photo_path, np.ascontiguousarray(np.rot90(upright, -1)))
    _write(labels_path, labels)
    source = splits.bsds_source(photo_path, labels_path)
    assert source.label_turns == -1
    regions = find_object_regions(source)
    assert len(regions) == 4
    for region in regions:
        rgb, alpha = load_cutout(region)
        pixels = rgb[alpha > 0]
        # Every cut-out pixel has its region's one colour.
        assert len(np.unique(pixels, axis=0)) == 1


# -------------------------------------------------------------------------------------- datasets


def test_samples_follow_the_contract(data_root):
    dataset = SyntheticBlurDataset(data_root, crop=CROP, with_reference=True, length=40)
    kinds = set()
    for index in range(24):
        sample = dataset[index]
        assert set(sample) == CONTRACT_KEYS | {"reference"}
        shapes = {k: tuple(v.shape) for k, v in sample.items() if k != "kind"}
        assert shapes == {
            "blurred": (3, CROP, CROP),
            "sharp": (3, CROP, CROP),
            "blur_mask": (1, CROP, CROP),
            "motion": (2, CROP, CROP),
            "motion_valid": (1, CROP, CROP),
            "reference": (3, CROP, CROP),
        }
        for key in ("blurred", "sharp", "reference", "blur_mask", "motion_valid"):
            assert sample[key].dtype == torch.float32
            assert 0 <= float(sample[key].min()) and float(sample[key].max()) <= 1
        kinds.add(sample["kind"])
        if sample["kind"] in ("global", "mixed"):
            assert float(sample["blur_mask"].mean()) > 0.5  # a shaken photo: mostly blurred
        if sample["kind"] == "sharp":
            assert torch.all(sample["blur_mask"] == 0) and torch.all(sample["motion"] == 0)
    assert kinds == {"global", "local", "mixed", "sharp"}


def test_sharp_kind_without_noise_is_its_own_ground_truth(data_root):
    dataset = SyntheticBlurDataset(
        data_root, crop=CROP, kinds={"sharp": 1}, noise_sigma=(0, 0), jpeg_probability=0
    )
    sample = dataset[0]
    assert torch.equal(sample["blurred"], sample["sharp"])


def test_val_samples_are_identical_across_calls_and_train_samples_vary(data_root):
    val = SyntheticBlurDataset(data_root, split="val", crop=CROP, with_reference=True)
    again = SyntheticBlurDataset(data_root, split="val", crop=CROP, with_reference=True)
    for index in (0, 3):
        assert _equal(val[index], val[index])
        assert _equal(val[index], again[index])
    assert not _equal(val[0], val[1])
    train = SyntheticBlurDataset(data_root, crop=CROP)
    assert not torch.equal(train[0]["blurred"], train[0]["blurred"])


def test_dataloader_workers_draw_different_samples(data_root):
    dataset = SyntheticBlurDataset(data_root, crop=CROP, kinds={"global": 1}, length=8)
    dataset[0]  # the parent process's generator exists before the workers fork
    loader = data_loader(dataset, workers=2, batch_size=2)
    batches = list(loader)
    assert len(batches) == 4 and batches[0]["blurred"].shape == (2, 3, CROP, CROP)
    assert batches[0]["kind"] == ["global", "global"]
    blurred = torch.cat([b["blurred"] for b in batches])
    for i in range(len(blurred)):
        for j in range(i + 1, len(blurred)):
            assert not torch.equal(blurred[i], blurred[j])


def test_unpaired_dataset_yields_real_blurred_or_sharp_crops(data_root):
    blurred = UnpairedDataset(data_root, which="blurred", crop=CROP, length=3)
    sharp = UnpairedDataset(data_root, which="sharp", crop=CROP, length=3)
    assert len(blurred) == 3
    assert set(blurred[0]) == {"blurred"} and blurred[0]["blurred"].shape == (3, CROP, CROP)
    assert set(sharp[0]) == {"sharp"} and sharp[0]["sharp"].dtype == torch.float32
    assert blurred.photos == [data_root / "real_blurred/lai2016/boat1.jpg"]
    assert not set(sharp.photos) & splits.split_files(data_root, "val")


# --------------------------------------------------------------------------------------- layouts


def _pair(root, blurred_path, sharp_path, seed, mask_path=None):
    sharp = _photo(seed, 40, 48)
    blurred = cv2.blur(sharp, (5, 5))
    _write(root / blurred_path, blurred)
    _write(root / sharp_path, sharp)
    if mask_path is not None:
        mask = np.zeros((40, 48), np.uint8)
        mask[10:20, 12:30] = 255
        _write(root / mask_path, mask)
    return blurred, sharp


def _check_whole_pair(dataset, index, blurred, sharp):
    sample = dataset[index]
    np.testing.assert_allclose(
        sample["blurred"].numpy().transpose(1, 2, 0), blurred / 255.0, atol=1e-6
    )
    np.testing.assert_allclose(sample["sharp"].numpy().transpose(1, 2, 0), sharp / 255.0, atol=1e-6)
    return sample


def test_gopro_layout(tmp_path):
    b1, s1 = _pair(
        tmp_path, "train/GOPR0372_07_00/blur/000047.png", "train/GOPR0372_07_00/sharp/000047.png", 1
    )
    _pair(
        tmp_path, "train/GOPR0374_11_00/blur/000001.png", "train/GOPR0374_11_00/sharp/000001.png", 2
    )
    pairs = layouts.gopro_pairs(tmp_path, "train")
    assert [p.blurred.name for p in pairs] == ["000047.png", "000001.png"]
    dataset = PairedDataset("gopro", tmp_path, crop=None)
    sample = _check_whole_pair(dataset, 0, b1, s1)
    assert set(sample) == {"blurred", "sharp", "kind"} and sample["kind"] == "global"
    cropped = PairedDataset("gopro", tmp_path, crop=16)[1]
    assert cropped["blurred"].shape == (3, 16, 16)


def test_reds_layout_reads_16_bit_sharp_frames(tmp_path):
    b1, s1 = _pair(tmp_path, "train_blur/000/00000000.png", "train_sharp/000/00000000.png", 3)
    sharp16 = (s1.astype(np.uint16) * 257 + 100).astype(np.uint16)
    _write(tmp_path / "train_sharp/000/00000000.png", sharp16)
    pairs = layouts.reds_pairs(tmp_path, "train")
    assert len(pairs) == 1
    sample = PairedDataset("reds", tmp_path, crop=None)[0]
    np.testing.assert_allclose(
        sample["sharp"].numpy().transpose(1, 2, 0), sharp16 / 65535.0, atol=1e-6
    )


def test_lode_layout_gives_blur_masks(tmp_path):
    b1, s1 = _pair(
        tmp_path,
        "train/street/blur/0001.png",
        "train/street/sharp/0001.png",
        4,
        "train/street/mask/0001.png",
    )
    dataset = PairedDataset("lode", tmp_path, crop=None)
    sample = _check_whole_pair(dataset, 0, b1, s1)
    assert sample["kind"] == "local" and sample["blur_mask"].shape == (1, 40, 48)
    assert float(sample["blur_mask"].sum()) == 10 * 18
    assert torch.all(sample["blur_mask"][0, 10:20, 12:30] == 1)


def test_realblur_layout_reads_its_list_file(tmp_path):
    scene = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene001"
    b1, s1 = _pair(tmp_path, f"{scene}/blur/blur_1.png", f"{scene}/gt/gt_1.png", 5)
    (tmp_path / "RealBlur_J_train_list.txt").write_text(
        f"{scene}/gt/gt_1.png {scene}/blur/blur_1.png\n\n"
    )
    pairs = layouts.realblur_pairs(tmp_path, "train", variant="J")
    assert pairs == [
        layouts.PairedImage(
            tmp_path / f"{scene}/blur/blur_1.png", tmp_path / f"{scene}/gt/gt_1.png"
        )
    ]
    _check_whole_pair(PairedDataset("realblur", tmp_path, crop=None, variant="J"), 0, b1, s1)


def test_hide_layout_pairs_test_subfolders_with_gt(tmp_path):
    b1, s1 = _pair(tmp_path, "test/test-close-ups/1fromGOPR0950.png", "GT/1fromGOPR0950.png", 6)
    _pair(tmp_path, "train/2fromGOPR0951.png", "GT/2fromGOPR0951.png", 7)
    pairs = layouts.hide_pairs(tmp_path, "test")
    assert [(p.blurred.name, p.sharp.parent.name) for p in pairs] == [("1fromGOPR0950.png", "GT")]
    _check_whole_pair(PairedDataset("hide", tmp_path, split="test", crop=None), 0, b1, s1)


def test_missing_sharp_image_is_a_one_line_error_naming_the_file(tmp_path):
    _write(tmp_path / "train/seq/blur/000001.png", _photo(8, 16, 16))
    (tmp_path / "train/seq/sharp").mkdir()
    with pytest.raises(DeblurStudioError, match="000001.png: no sharp image"):
        layouts.gopro_pairs(tmp_path)
    with pytest.raises(DeblurStudioError, match="no REDS pairs"):
        layouts.reds_pairs(tmp_path)


def test_voc_instances_are_cut_out_with_their_void_outline(tmp_path):
    photo = np.zeros((60, 80, 3), np.uint8)
    photo[20:40, 30:60] = (250, 20, 20)
    _write(tmp_path / "JPEGImages/2007_000032.jpg", photo)
    instances = np.zeros((60, 80), np.uint8)
    instances[18:42, 28:62] = 255  # VOC's void band around the object
    instances[20:40, 30:60] = 1
    palette = Image.fromarray(instances, mode="P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0, 0, 0] * 253 + [224, 224, 192])
    (tmp_path / "SegmentationObject").mkdir()
    palette.save(tmp_path / "SegmentationObject/2007_000032.png")
    (tmp_path / "ImageSets/Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("2007_000032\n")
    sources = layouts.voc_sources(tmp_path, "train")
    assert sources.photos == [tmp_path / "JPEGImages/2007_000032.jpg"]
    regions = find_object_regions(sources.objects[0])
    assert len(regions) == 1  # the void band itself is never an object
    rgb, alpha = load_cutout(regions[0])
    # The object (20×30) and the 2-px void band around it: 24×34, nothing else.
    rows, cols = np.nonzero(alpha)
    assert (np.ptp(rows) + 1, np.ptp(cols) + 1) == (24, 34) and float(alpha.sum()) == 24 * 34
    assert rgb[12, 17, 0] > 200


def test_plain_folder_with_masks_feeds_local_blur_synthesis(tmp_path, data_root):
    folder = tmp_path / "mine"
    for index in range(2):
        _write(folder / f"photo{index}.jpg", _photo(20 + index))
    mask = np.zeros((72, 96), np.uint8)
    mask[10:40, 20:50] = 255
    _write(folder / "masks/photo0.png", mask)
    sources = layouts.folder_sources(folder)
    assert len(sources.photos) == 2 and [o.image.name for o in sources.objects] == ["photo0.jpg"]
    assert [r.box for r in find_object_regions(sources.objects[0])] == [(20, 10, 30, 30)]
    dataset = SyntheticBlurDataset(
        data_root,
        crop=CROP,
        kinds={"local": 1},
        extra_sources=[{"layout": "folder", "root": str(folder)}],
    )
    assert folder / "photo1.jpg" in dataset.sources.photos
    assert dataset[0]["kind"] == "local"
    val = SyntheticBlurDataset(
        data_root, split="val", crop=CROP, extra_sources=[{"layout": "folder", "root": str(folder)}]
    )
    assert folder / "photo1.jpg" not in val.sources.photos
