"""The pieces a borrowed GPU machine needs: run folders small enough to send back, runs that fit
their schedule into a time budget, runs that stop on a non-finite loss, and training modules
that import with only the GPU machine's packages."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import training.train as train_module
from deblurstudio.models import load_checkpoint
from tests.training._data_root import make_data_root
from training.config import load_config
from training.export import export_run
from training.pack import PackError, main, pack_run
from training.train import LAST, train
from training.trainers.bladenet import BladeNetTrainer

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp("data"))


def test_a_run_travels_back_without_optimizer_state_and_exports(tmp_path, data_root):
    run_dir = train(
        CONFIGS / "tiny_bladenet.yaml", data_root, tmp_path / "run", steps=3, device="cpu"
    )
    written = pack_run(run_dir, tmp_path / "back")
    assert {p.name for p in written} == {"config.yaml", "metrics.jsonl", "best.pt", "last.pt"}
    full, slim = (torch.load(d / LAST, weights_only=True) for d in (run_dir, tmp_path / "back"))
    assert "optimizers" in full and "optimizers" not in slim and "rng" not in slim
    assert (tmp_path / "back" / LAST).stat().st_size < (run_dir / LAST).stat().st_size / 2
    entry = export_run(
        tmp_path / "back", "b", "deblur", "B", checkpoint="last", models_dir=tmp_path / "models"
    )
    assert entry["card"]["steps"] == 3
    exported, _ = load_checkpoint(tmp_path / "models" / "b.safetensors")
    for name, value in exported.state_dict().items():
        assert torch.equal(value, full["nets"]["model"][name])


def test_a_folder_without_a_run_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--run-dir", str(tmp_path), "--out", str(tmp_path / "back")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    with pytest.raises(PackError):
        pack_run(tmp_path, tmp_path / "back")


def test_a_time_budget_fits_the_whole_schedule_into_the_budget(tmp_path, data_root, monkeypatch):
    # Measure the rate over 2 s instead of 20, so the tiny run fits its schedule quickly.
    monkeypatch.setattr(train_module, "FIT_AFTER_SECONDS", 2.0)
    config = CONFIGS / "tiny_bladenet.yaml"
    started = time.monotonic()
    run_dir = train(
        config, data_root, tmp_path / "run", steps=100_000, device="cpu", time_budget=20
    )
    elapsed = time.monotonic() - started
    state = torch.load(run_dir / LAST, weights_only=True)
    schedule = load_config(run_dir / "config.yaml")["train"]
    assert elapsed < 20
    # The schedule was fitted to what fits (not the 100 000 steps asked for), with all three
    # stages in it, and the run reached the last one: a busy machine may end it a few steps
    # early at the backstop, never past the budget. The run folder states the schedule that ran.
    stages = schedule["stages"]
    assert [stage["name"] for stage in stages] == ["lbp", "main", "joint"]
    assert sum(stage["steps"] for stage in stages[:2]) < state["step"] <= schedule["steps"]
    assert schedule["steps"] < 100_000


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, data_root, monkeypatch
):
    # As a float16 run whose activations overflow: the grad scaler would skip the steps, but
    # the loss is NaN, and BatchNorm statistics would go on taking it in.
    config = CONFIGS / "tiny_bladenet.yaml"
    run_dir = train(config, data_root, tmp_path / "run", steps=2, device="cpu")
    good = torch.load(run_dir / LAST, weights_only=True)
    original = BladeNetTrainer.train_step

    def poisoned(self, batch, step):
        batch = {**batch, "blurred": batch["blurred"] * float("nan")}
        return original(self, batch, step)

    monkeypatch.setattr(BladeNetTrainer, "train_step", poisoned)
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        train(config, data_root, run_dir, steps=6, device="cpu", resume=True)
    kept = torch.load(run_dir / LAST, weights_only=True)
    assert kept["step"] == good["step"]
    for name, value in kept["nets"]["model"].items():
        assert torch.equal(value, good["nets"]["model"][name])


# The borrowed GPU machine has these (torch with its own requirements) and the standard library,
# nothing else: no PySide6, platformdirs or scikit-image. Training must import there.
ONLY_GPU_PACKAGES = """
import importlib.abc, importlib.metadata, re, sys
def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()
there = {"torch", "numpy", "opencv-python", "opencv-python-headless", "pillow", "safetensors",
         "pyyaml", "tqdm"}
for requirement in importlib.metadata.requires("torch"):
    there.add(canonical(re.match(r"[A-Za-z0-9_.-]+", requirement)[0]))
allowed = {"deblurstudio", "training"} | {
    module for module, dists in importlib.metadata.packages_distributions().items()
    if any(canonical(d) in there for d in dists)
}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top not in sys.stdlib_module_names and top not in allowed and not top.startswith("_"):
            raise ModuleNotFoundError(f"{name} is not on the GPU machine", name=name)
sys.meta_path.insert(0, Refuse())
import training.config, training.schedule, training.distributed, training.streams
import training.trainers, training.train, training.evaluate, training.export, training.pack
from deblurstudio.core.modelstore import model_dirs
assert model_dirs()[-1].name == "models"  # the shipped folder, found without platformdirs
print("imported")
"""


def test_training_imports_with_only_the_gpu_machines_packages():
    result = subprocess.run(
        [sys.executable, "-c", ONLY_GPU_PACKAGES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "imported"
