"""The command line, as a user or a script meets it: exit status, messages, files written.

Most tests call main(argv) in-process (fast); the tests that depend on the process itself (the
module entry point, Ctrl-C) run `python3 -m deblurstudio.cli.main` as a subprocess.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from deblurstudio.cli.main import main
from deblurstudio.core.batch import MANIFEST_NAME
from tests._photos import (
    CAMERA_MAKE,
    SRGB_ICC,
    exif_make,
    icc_profile,
    small_photo,
    write_16_bit_png,
    write_camera_jpeg,
    write_corrupt_jpeg,
)

REPO = Path(__file__).resolve().parents[2]


def cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_one_line_error(err: str, names: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert names in lines[0]


@pytest.fixture
def photo(tmp_path) -> Path:
    return write_camera_jpeg(tmp_path / "photo.jpg")


def test_deblur_writes_a_result_that_keeps_exif_and_icc(tiny_models, capsys, photo, tmp_path):
    out = tmp_path / "result.jpg"
    status, stdout, _ = cli(capsys, "deblur", photo, "-o", out, "--device", "cpu")
    assert status == 0
    assert str(out) in stdout
    assert exif_make(out) == CAMERA_MAKE
    assert icc_profile(out) == SRGB_ICC
    assert cv2.imread(str(out)).shape == (48, 64, 3)


def test_jpeg_results_keep_the_original_quality_unless_quality_is_given(
    tiny_models, capsys, tmp_path
):
    from PIL import Image

    from deblurstudio.core.imageio import read_image

    source = tmp_path / "in" / "q75.jpg"
    source.parent.mkdir()
    Image.fromarray(small_photo()).save(source, quality=75)
    assert cli(capsys, "deblur", source, "-o", tmp_path / "same.jpg")[0] == 0
    assert read_image(tmp_path / "same.jpg").quality == 75
    assert cli(capsys, "deblur", source, "-o", tmp_path / "q90.jpg", "--quality", "90")[0] == 0
    assert read_image(tmp_path / "q90.jpg").quality == 90
    assert cli(capsys, "batch", source.parent, tmp_path / "out", "--quality", "60")[0] == 0
    assert read_image(tmp_path / "out" / "q75.jpg").quality == 60
    assert cli(capsys, "deblur", source, "-o", tmp_path / "x.jpg", "--quality", "0")[0] == 2


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_grey_photo_stays_one_neutral_channel(tiny_models, capsys, tmp_path, suffix):
    from PIL import Image

    source = tmp_path / f"grey{suffix}"
    Image.fromarray(small_photo().mean(axis=2).astype(np.uint8)).save(source)
    out = tmp_path / f"result{suffix}"
    assert cli(capsys, "deblur", source, "-o", out, "--device", "cpu")[0] == 0
    with Image.open(out) as result:
        assert result.mode == "L"  # one channel: no tint possible


def test_a_cmyk_photo_says_its_result_is_rgb(tiny_models, capsys, tmp_path):
    from PIL import Image

    source = tmp_path / "print.jpg"
    Image.fromarray(np.zeros((48, 64, 4), np.uint8), mode="CMYK").save(source)
    status, _, err = cli(capsys, "deblur", source, "-o", tmp_path / "result.jpg")
    assert status == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "warning:" in lines[0] and "print.jpg" in lines[0]
    assert "CMYK" in lines[0] and "RGB" in lines[0]


def test_model_takes_a_role(tiny_models, capsys, photo, tmp_path):
    status, stdout, _ = cli(capsys, "deblur", photo, "-o", tmp_path / "fast.jpg", "--model", "fast")
    assert status == 0 and "deblurred with lcnet" in stdout


def test_deblur_keeps_16_bits(tiny_models, capsys, tmp_path):
    source = write_16_bit_png(tmp_path / "deep.png")
    out = tmp_path / "deep_result.png"
    status, _, _ = cli(capsys, "deblur", source, "-o", out, "--model", "lcnet")
    assert status == 0
    result = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert result.dtype == np.uint16
    assert np.any(result % 257 != 0)  # real 16-bit levels, not 8-bit ones scaled up


def test_deblur_with_a_mask_changes_only_the_masked_part(tiny_models, capsys, photo, tmp_path):
    mask = np.zeros((48, 64), np.uint8)
    mask[:, 32:] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    source = tmp_path / "photo.png"
    cv2.imwrite(str(source), small_photo()[..., ::-1])
    out = tmp_path / "masked.png"
    status, _, _ = cli(capsys, "deblur", source, "-o", out, "--mask", tmp_path / "mask.png")
    assert status == 0
    before = cv2.imread(str(source)).astype(int)
    after = cv2.imread(str(out)).astype(int)
    assert np.array_equal(after[:, :20], before[:, :20])  # outside the (feathered) mask: as was
    assert np.abs(after[:, 40:] - before[:, 40:]).mean() > 1  # inside: the network's output


def bad_inputs(tmp_path: Path, photo: Path) -> dict[str, tuple[list, str]]:
    """name -> (deblur arguments, the file the message must name)."""
    corrupt = write_corrupt_jpeg(tmp_path / "corrupt.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    wrong_shape_mask = tmp_path / "tall_mask.png"
    cv2.imwrite(str(wrong_shape_mask), np.zeros((64, 16), np.uint8))
    out = tmp_path / "out.jpg"
    return {
        "missing input": (["deblur", tmp_path / "missing.jpg", "-o", out], "missing.jpg"),
        "corrupt jpeg": (["deblur", corrupt, "-o", out], "corrupt.jpg"),
        "text file": (["deblur", text, "-o", out], "notes.jpg"),
        "mask not an image": (["deblur", photo, "-o", out, "--mask", text], "notes.jpg"),
        "mask of another shape": (
            ["deblur", photo, "-o", out, "--mask", wrong_shape_mask], "tall_mask.png"
        ),
        "missing output folder": (["deblur", photo, "-o", tmp_path / "no" / "o.jpg"], "o.jpg"),
        "output folder is a file": (["deblur", photo, "-o", text / "o.jpg"], "o.jpg"),
        "output is the input": (["deblur", photo, "-o", photo], "photo.jpg"),
        "output is the input by another name": (
            ["deblur", photo, "-o", tmp_path / "." / "photo.jpg"], "photo.jpg"
        ),
        "unknown output type": (["deblur", photo, "-o", tmp_path / "o.gif"], "o.gif"),
        "output is a folder": (["deblur", photo, "-o", tmp_path], f"{tmp_path}: is a folder"),
        "unknown model": (["deblur", photo, "-o", out, "--model", "nosuchmodel"], "nosuchmodel"),
        "motion model cannot deblur": (["deblur", photo, "-o", out, "--model", "motion"], "motion"),
        "missing reference": (
            ["deblur", photo, "-o", out, "--reference", tmp_path / "ref.jpg"], "ref.jpg"
        ),
        "analyse missing input": (["analyse", tmp_path / "missing.jpg"], "missing.jpg"),
        "analyse map over the input": (
            ["analyse", photo, "--motion-vis", photo], "photo.jpg"
        ),
        "batch missing folder": (["batch", tmp_path / "nofolder", tmp_path / "o"], "nofolder"),
        "batch into its own folder": (["batch", tmp_path, tmp_path], str(tmp_path)),
    }


BAD_INPUT_CASES = [
    "missing input", "corrupt jpeg", "text file", "mask not an image", "mask of another shape",
    "missing output folder", "output folder is a file", "output is the input",
    "output is the input by another name", "unknown output type", "output is a folder",
    "unknown model",
    "motion model cannot deblur", "missing reference", "analyse missing input",
    "analyse map over the input", "batch missing folder", "batch into its own folder",
]


def test_deblur_with_a_reference_of_another_scene_warns_and_deblurs_without_it(
    tiny_models, capsys, tmp_path
):
    from skimage import data

    photo = write_camera_jpeg(tmp_path / "photo.jpg", cv2.resize(data.astronaut(), (256, 192)))
    reference = write_camera_jpeg(tmp_path / "coffee.jpg", data.coffee())
    out = tmp_path / "result.jpg"
    status, stdout, err = cli(capsys, "deblur", photo, "-o", out, "--reference", reference)
    assert status == 0 and out.exists()
    assert "deblurred with bladenet" in stdout
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "warning:" in lines[0] and "coffee.jpg" in lines[0]
    assert "does not show the same scene" in lines[0]


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_bad_input_exits_2_with_one_line_naming_the_file_and_writes_nothing(
    tiny_models, capsys, photo, tmp_path, case
):
    argv, named = bad_inputs(tmp_path, photo)[case]
    before = listing(tmp_path)
    status, stdout, stderr = cli(capsys, *argv)
    assert status == 2
    assert_one_line_error(stderr, named)
    assert stdout == ""
    assert listing(tmp_path) == before


def test_bad_arguments_exit_2(tiny_models, capsys, photo):
    assert cli(capsys, "deblur", photo)[0] == 2  # -o missing
    assert cli(capsys, "deblur", photo, "-o", "x.png", "--tile", "-5")[0] == 2
    assert cli(capsys, "deblur", photo, "-o", "x.png", "--device", "tpu")[0] == 2
    assert cli(capsys, "frobnicate")[0] == 2
    assert cli(capsys)[0] == 2


def test_analyse_writes_the_blur_map_motion_map_and_motion_picture(
    tiny_models, capsys, photo, tmp_path
):
    blur, motion, picture = tmp_path / "blur.png", tmp_path / "motion.npy", tmp_path / "vis.png"
    status, stdout, _ = cli(
        capsys, "analyse", photo, "--blur-map", blur, "--motion-map", motion,
        "--motion-vis", picture,
    )
    assert status == 0
    assert "blurred" in stdout
    assert cv2.imread(str(blur), cv2.IMREAD_UNCHANGED).shape == (48, 64)  # one grey channel
    motion_map = np.load(motion)
    assert motion_map.shape == (48, 64, 2) and motion_map.dtype == np.float32
    assert np.isfinite(motion_map).all()
    assert cv2.imread(str(picture)).shape == (48, 64, 3)


def test_analyse_without_outputs_prints_a_summary(tiny_models, capsys, photo, tmp_path):
    before = listing(tmp_path)
    status, stdout, _ = cli(capsys, "analyse", photo)
    assert status == 0
    assert "% of the photo looks blurred" in stdout and "motion up to" in stdout
    assert listing(tmp_path) == before


@pytest.mark.parametrize("command", ["analyse", "deblur"])
def test_tile_is_taken_by_analyse_and_deblur_and_a_small_one_is_raised_with_a_warning(
    tiny_models, capsys, photo, tmp_path, command
):
    outputs = ["-o", tmp_path / "out.png"] if command == "deblur" else []
    status, _, err = cli(capsys, command, photo, *outputs, "--tile", "64", "--device", "cpu")
    assert status == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "warning: --tile 64" in lines[0] and "using 128" in lines[0]

    status, _, err = cli(capsys, command, photo, *outputs, "--tile", "256", "--device", "cpu")
    assert status == 0 and err == ""


def test_models_lists_every_model_with_its_card(tiny_models, capsys):
    status, stdout, _ = cli(capsys, "models")
    assert status == 0
    for model_id in ("bladenet", "lcnet", "refdeblur", "motion"):
        assert f"{model_id}  [" in stdout
    assert "default for: deblur" in stdout
    assert "trained on: nothing: random weights for tests" in stdout

    status, stdout, _ = cli(capsys, "models", "--json")
    models = {m["id"]: m for m in json.loads(stdout)}
    assert models["refdeblur"]["task"] == "reference"
    assert models["bladenet"]["default_for"] == ["deblur"]
    assert models["lcnet"]["card"]["steps"] == 0


def test_batch_with_a_corrupt_photo_finishes_records_it_and_exits_1(
    tiny_models, capsys, tmp_path
):
    source = tmp_path / "in"
    write_camera_jpeg(source / "a.jpg")
    write_corrupt_jpeg(source / "b.jpg")
    write_16_bit_png(source / "nested" / "c.png")
    out = tmp_path / "out"

    status, stdout, stderr = cli(capsys, "batch", source, out, "--recursive")
    assert status == 1
    assert "2 deblurred, 1 failed, 0 skipped" in stdout
    assert "b.jpg" in stderr and "Traceback" not in stderr
    files = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert {name: f["status"] for name, f in files.items()} == {
        "a.jpg": "done", "b.jpg": "failed", "nested/c.png": "done"
    }
    assert exif_make(out / "a.jpg") == CAMERA_MAKE
    assert cv2.imread(str(out / "nested" / "c.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    results = listing(out)

    status, stdout, _ = cli(capsys, "batch", source, out, "--recursive", "--skip-existing")
    assert status == 1  # b.jpg is retried and still fails
    assert "0 deblurred, 1 failed, 2 skipped" in stdout
    assert listing(out)["a.jpg"] == results["a.jpg"]


def test_batch_of_good_photos_exits_0(tiny_models, capsys, tmp_path):
    write_camera_jpeg(tmp_path / "in" / "a.jpg")
    status, stdout, stderr = cli(capsys, "batch", tmp_path / "in", tmp_path / "out")
    assert status == 0 and "1 deblurred, 0 failed" in stdout and stderr == ""


def run_cli(*argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deblurstudio.cli.main", *map(str, argv)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, **kwargs,
    )


def test_module_entry_point_reports_unreadable_input_without_traceback(tiny_models, tmp_path):
    corrupt = write_corrupt_jpeg(tmp_path / "broken.jpg")
    process = run_cli("deblur", corrupt, "-o", tmp_path / "out.jpg")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert_one_line_error(stderr, "broken.jpg")
    assert not (tmp_path / "out.jpg").exists()


def test_interrupting_a_batch_leaves_only_complete_results(tiny_models, tmp_path):
    source = tmp_path / "in"
    for index in range(8):
        write_camera_jpeg(source / f"{index}.jpg", small_photo(240, 320))
    out = tmp_path / "out"
    process = run_cli("batch", source, out)
    try:
        deadline = time.monotonic() + 120
        while not (out / MANIFEST_NAME).exists():  # written after the first photo is done
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    results = sorted(p.name for p in out.iterdir() if p.name != MANIFEST_NAME)
    assert 1 <= len(results) < 8
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files
    done = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert sorted(done) == results  # every result on disk is recorded, and only those
    for name in results:
        assert exif_make(out / name) == CAMERA_MAKE  # complete files


def test_bench_reports_throughput_of_a_model(tiny_models, capsys):
    status, stdout, _ = cli(capsys, "bench", "--model", "lcnet", "--size", "0.01", "--device",
                            "cpu")
    assert status == 0
    header, _, row = stdout.strip().splitlines()[:3]
    assert "MP/s" in header and "of matmul" in header
    assert row.startswith("lcnet")


def test_a_broken_checkpoint_is_a_failure_not_a_bad_argument(
    tiny_models, capsys, tmp_path, monkeypatch
):
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / "lcnet.safetensors").write_bytes(b"\0" * 64)
    manifest = {"format": 1, "models": {"lcnet": {
        "file": "lcnet.safetensors", "arch": "lcnet", "task": "deblur"}}}
    (broken / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("DEBLURSTUDIO_MODELS_DIR", f"{broken}{os.pathsep}{tiny_models}")
    photos = tmp_path / "in"
    write_camera_jpeg(photos / "a.jpg")
    write_camera_jpeg(photos / "b.jpg")

    status, _, stderr = cli(capsys, "deblur", photos / "a.jpg", "-o", tmp_path / "a_out.jpg",
                            "--model", "lcnet")
    assert status == 1
    assert_one_line_error(stderr, "lcnet.safetensors")
    status, _, stderr = cli(capsys, "batch", photos, tmp_path / "out", "--model", "lcnet")
    assert status == 1
    assert_one_line_error(stderr, "lcnet.safetensors")  # once, not once per photo
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "a_out.jpg").exists()


def test_a_damaged_tiff_is_one_line_on_the_terminal(tiny_models, capfd, tmp_path):
    from PIL import Image

    encoded = tmp_path / "whole.tif"
    Image.fromarray(small_photo()).save(encoded, compression="tiff_lzw")
    damaged = bytearray(encoded.read_bytes())
    damaged[300:-400:37] = bytes(b ^ 0x5A for b in damaged[300:-400:37])  # libtiff's LZW chokes
    source = tmp_path / "scan.tif"
    source.write_bytes(bytes(damaged))
    status = main(["deblur", str(source), "-o", str(tmp_path / "result.png")])
    assert status == 2
    assert_one_line_error(capfd.readouterr().err, "scan.tif")
