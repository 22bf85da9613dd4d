"""Trainers learn on a fixed batch; runs write their folder, resume exactly, and rescale stages."""

import hashlib
import json
import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from skimage.data import astronaut, chelsea

from deblurstudio.models.neurmap import reblur
from tests._models import as_if_trained
from tests.training._data_root import make_data_root
from training.config import config_digest, load_config
from training.metrics import psnr
from training.schedule import build_stages, lr_factor
from training.train import (
    BEST,
    CONFIG_NAME,
    LAST,
    METRICS,
    _rng_state,
    _set_rng_state,
    main,
    train,
)
from training.trainers import make_trainer

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: one thread is fastest, and spares a CPU shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _crop(image, size: int) -> torch.Tensor:
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    side = min(tensor.shape[-2:])
    return F.interpolate(tensor[..., :side, :side], size=(size, size), mode="area")[0]


def fixed_batch(size: int = 32) -> dict:
    """Two photos with a known local horizontal blur of 6 px on a square object.

    The blur is made by NeurMAP's own reblur module, so motion, mask and blurred all agree.
    """
    sharp = torch.stack([_crop(astronaut(), size), _crop(chelsea(), size)])
    motion = torch.zeros(2, 2, size, size)
    motion[:, 0, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 6.0
    blurred = reblur(sharp, motion, 8)
    return {
        "blurred": blurred,
        "sharp": sharp,
        "blur_mask": (motion.norm(dim=1, keepdim=True) > 0).float(),
        "motion": motion,
        "motion_valid": torch.ones(2, 1, size, size),
        "reference": torch.roll(sharp, shifts=2, dims=-1),  # another view: shifted 2 px
        "kind": ["local", "local"],
        "unpaired_blurred": torch.flip(blurred, dims=[-1]),
        "unpaired_sharp": torch.flip(sharp, dims=[-2]),
    }


def run(trainer, batch, steps, start=0) -> list[dict]:
    """Train `steps` steps on `batch`; the logged losses of each step."""
    logged = []
    for step in range(start, start + steps):
        logged.append(trainer.train_step(batch, step))
        trainer.end_step()
    return logged


def tiny(name: str, **sections) -> dict:
    config = load_config(CONFIGS / f"tiny_{name}.yaml")
    for section, values in sections.items():
        config[section] = {**(config.get(section) or {}), **values}
    return config


def test_an_override_config_merges_settings_but_replaces_the_mix_of_kinds(tmp_path):
    override = tmp_path / "global_only.yaml"
    override.write_text(
        f"base: {CONFIGS / 'motion.yaml'}\n"
        "model: {kwargs: {width: 8}}\n"
        "data: {kinds: {global: 1.0}}\n"
    )
    config = load_config(override)
    assert config["data"]["kinds"] == {"global": 1.0}  # not the base's local/mixed/sharp too
    assert config["model"] == {
        "arch": "neurmap_motion",
        "kwargs": {**load_config(CONFIGS / "motion.yaml")["model"]["kwargs"], "width": 8},
    }
    assert config["data"]["crop"] == load_config(CONFIGS / "motion.yaml")["data"]["crop"]


def test_lcnet_trainer_loss_goes_down():
    torch.manual_seed(0)
    trainer = make_trainer(tiny("lcnet"), CPU, total_steps=12)
    # From a random residual head: the zero-initialised one starts at the identity, which the
    # 4-channel test net cannot beat on this batch within a few steps.
    with torch.no_grad():
        as_if_trained(trainer.nets["model"])
    losses = [r["loss"] for r in run(trainer, fixed_batch(), 12)]
    assert losses[-1] < 0.7 * losses[0]


def test_a_compiled_trainer_learns_what_an_eager_one_learns():
    """`train.compile` changes the speed only: same losses, same weights, same checkpoint keys."""
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        trainer = make_trainer(tiny("lcnet", train={"compile": compiled}), CPU, total_steps=3)
        with torch.no_grad():
            as_if_trained(trainer.nets["model"])
        losses = [r["loss"] for r in run(trainer, fixed_batch(), 3)]
        is_compiled = isinstance(trainer.wrapped("model"), torch._dynamo.eval_frame.OptimizedModule)
        runs.append((is_compiled, losses, trainer.state_dict()["nets"]["model"]))
    (eager, eager_losses, eager_state), (compiled, compiled_losses, compiled_state) = runs
    assert not eager and compiled
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    assert compiled_state.keys() == eager_state.keys()
    assert all(torch.allclose(compiled_state[k], eager_state[k], atol=1e-5) for k in eager_state)


def test_a_non_finite_loss_stops_training_and_leaves_the_weights_intact():
    trainer = make_trainer(tiny("lcnet"), CPU, total_steps=2)
    batch = fixed_batch()
    batch["blurred"][0, :, 3, 3] = math.nan
    before = [p.clone() for p in trainer.nets["model"].parameters()]
    with pytest.raises(FloatingPointError, match="net 'model': non-finite loss"):
        trainer.train_step(batch, 0)
    after = list(trainer.nets["model"].parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_refdeblur_trainer_with_gan_lowers_its_content_loss():
    torch.manual_seed(0)
    config = tiny("refdeblur", train={"reference_dropout": 0.0, "lr": 1e-3})
    trainer = make_trainer(config, CPU, total_steps=12)
    assert "discriminator" in trainer.nets
    losses = [r["l1"] for r in run(trainer, fixed_batch(), 12)]
    assert losses[-1] < 0.7 * losses[0]


def test_refdeblur_matching_loss_teaches_the_encoder_to_tell_its_scene_from_another():
    """Untrained, every reference patch matches equally well (confidence ~1 for any scene)."""
    torch.manual_seed(0)
    config = tiny("refdeblur", train={"reference_dropout": 0.0, "lr": 1e-3}, loss={"gan": 0.0})
    trainer = make_trainer(config, CPU, total_steps=60)
    batch, model = fixed_batch(64), trainer.nets["model"]
    other_scene = batch["sharp"].flip(-1).roll(1, dims=0)

    def confidence_gap() -> float:
        with torch.no_grad():
            related = model.match(batch["blurred"], batch["sharp"])[1].mean()
            unrelated = model.match(batch["blurred"], other_scene)[1].mean()
        return (related - unrelated).item()

    gap_before = confidence_gap()
    losses = [r["match"] for r in run(trainer, batch, 60)]
    assert losses[-1] < 0.6 * losses[0]
    assert gap_before < 0.01 and confidence_gap() > 0.03


def test_refdeblur_unrelated_reference_steps_show_another_samples_view():
    config = tiny("refdeblur", train={"reference_dropout": 0.0, "reference_unrelated": 1.0})
    trainer = make_trainer(config, CPU, total_steps=1)
    batch, model = fixed_batch(), trainer.nets["model"].eval()
    with torch.no_grad():
        trained_on = trainer.restore(model, batch).restored
        expected = model(batch["blurred"], batch["reference"].roll(1, dims=0)).restored
        related = model(batch["blurred"], batch["reference"]).restored
    assert torch.equal(trained_on, expected) and not torch.equal(trained_on, related)


def global_blur_batch(size: int = 32) -> dict:
    """fixed_batch's photos blurred as a whole by 5.4 px of straight motion."""
    batch = fixed_batch(size)
    motion = torch.zeros(2, 2, size, size)
    motion[:, 0], motion[:, 1] = 5.0, 2.0
    blurred = reblur(batch["sharp"], motion, 8)
    return {
        **batch,
        "blurred": blurred,
        "blur_mask": torch.ones(2, 1, size, size),
        "motion": motion,
        "kind": ["global", "global"],
    }


# Each deblurring network, trained as its trainer trains it (BladeNet: its "main" stage), from
# fresh weights at a small width: the guard that a recipe can learn at all (docs/training.md).
OVERFIT = {
    "bladenet": ({"width": 8, "perception_width": 4}, {"stages": [{"name": "main", "steps": 1}]}),
    "lcnet": ({"width": 8}, {"compile": False}),
    "refdeblur": ({"width": 8}, {"reference_dropout": 0.0, "reference_unrelated": 0.0}),
}


@pytest.mark.parametrize("name", sorted(OVERFIT))
def test_each_deblurring_network_fits_one_fixed_batch_far_above_its_input(name):
    torch.manual_seed(0)
    kwargs, train_settings = OVERFIT[name]
    config = tiny(name, train={"lr": 1e-3, "warmup": 1, **train_settings}, loss={"gan": 0.0})
    config["model"]["kwargs"].update(kwargs)
    trainer = make_trainer(config, CPU, total_steps=300)
    batch, model = global_blur_batch(), trainer.nets["model"]
    run(trainer, batch, 300)
    with torch.no_grad():
        model.eval()
        references = (batch["reference"],) if model.needs_reference else ()
        restored = model(batch["blurred"], *references).restored.clamp(0, 1)
    gain = psnr(restored, batch["sharp"]) - psnr(batch["blurred"], batch["sharp"])
    assert gain.min() > 4.0  # dB


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["bladenet", "lcnet", "refdeblur", "motion"])
def test_every_trainer_stays_finite_under_half_precision_autocast(name, dtype):
    torch.manual_seed(0)
    trainer = make_trainer(tiny(name, train={"amp": dtype, "compile": False}), CPU, total_steps=6)
    assert trainer.amp and trainer.amp_dtype == getattr(torch, dtype)
    with torch.no_grad():  # non-zero residual heads, so the steps change every layer
        for net in trainer.nets.values():
            as_if_trained(net)
    logged = run(trainer, global_blur_batch(), 6)  # every stage of each schedule
    assert all(math.isfinite(value) for step in logged for value in step.values())
    for net in trainer.nets.values():
        assert all(torch.isfinite(p).all() for p in net.parameters())


def test_bladenet_stages_each_lower_their_own_loss():
    torch.manual_seed(0)
    trainer = make_trainer(tiny("bladenet", train={"lr": 3e-3}), CPU, total_steps=30)
    with torch.no_grad():  # a random residual head, as in test_lcnet_trainer_loss_goes_down
        as_if_trained(trainer.nets["model"])
    assert [(s.name, s.start, s.steps) for s in trainer.stages] == [
        ("lbp", 0, 10),
        ("main", 10, 10),
        ("joint", 20, 10),
    ]
    batch = fixed_batch()
    perception = [p.clone() for p in trainer.nets["model"].perception.parameters()]
    main_net = {k: v.clone() for k, v in trainer.nets["model"].deblur.state_dict().items()}
    bce = [r["bce"] for r in run(trainer, batch, 10)]
    assert bce[-1] < 0.8 * bce[0]
    # "lbp" does not run the main net: its weights and BatchNorm statistics stay as they were.
    for name, value in trainer.nets["model"].deblur.state_dict().items():
        assert torch.equal(value, main_net[name]), name
    after_lbp = [p.clone() for p in trainer.nets["model"].perception.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(perception, after_lbp, strict=True))
    negative_psnr = [r["psnr"] for r in run(trainer, batch, 10, start=10)]
    assert negative_psnr[-1] < negative_psnr[0] - 1.0  # at least 1 dB closer to the sharp batch
    # "main" keeps the LBP net fixed (weights; BatchNorm statistics may move).
    weights = [p for p in trainer.nets["model"].perception.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(after_lbp, weights, strict=True))
    joint = trainer.train_step(batch, 20)
    assert {"psnr", "bce", "dice"} <= set(joint)
    # DICE only where Local Blur Synthesis gave a mask: not on camera-shake samples.
    assert "dice" not in trainer.train_step({**batch, "kind": ["global", "global"]}, 21)


def test_bladenet_steps_see_both_streams_in_one_batch():
    """BatchNorm normalises per batch: a batch of one stream only would hide how blurred it is."""

    class Streams:
        def next(self, name):
            kind = {"global": "global", "local": "local"}[name]
            return {"blurred": torch.full((2, 3, 4, 4), len(kind) / 10), "kind": [kind, kind]}

    trainer = make_trainer(tiny("bladenet"), CPU, total_steps=3)
    for step in range(3):
        batch = trainer.next_batch(Streams(), step)
        assert batch["kind"] == ["global", "global", "local", "local"]
        assert batch["blurred"].shape == (4, 3, 4, 4)
        assert torch.equal(batch["blurred"][2:], torch.full((2, 3, 4, 4), 0.5))


def test_motion_trainer_supervised_lowers_end_point_error():
    torch.manual_seed(0)
    config = tiny("motion", neurmap={"deblur": None}, train={"lr": 3e-3})
    trainer = make_trainer(config, CPU, total_steps=15)
    assert set(trainer.nets) == {"model"}
    epe = [r["motion"] for r in run(trainer, fixed_batch(), 15)]
    assert epe[-1] < 0.8 * epe[0]


def test_motion_trainer_map_part_trains_all_three_networks():
    torch.manual_seed(0)
    trainer = make_trainer(tiny("motion", train={"lr": 3e-3}), CPU, total_steps=10)
    assert set(trainer.nets) == {"model", "deblur", "discriminator"}
    with torch.no_grad():  # a random residual head, as in test_lcnet_trainer_loss_goes_down
        as_if_trained(trainer.nets["deblur"])
    before = {name: [p.clone() for p in net.parameters()] for name, net in trainer.nets.items()}
    batch = fixed_batch()
    logged = run(trainer, batch, 10)
    for name, net in trainer.nets.items():
        assert any(
            not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)
        ), name
    assert logged[-1]["loss"] < logged[0]["loss"]
    assert logged[-1]["content"] < logged[0]["content"]


def test_resumed_trainer_continues_exactly_like_an_uninterrupted_one(tmp_path):
    # GAN and reference dropout: optimizer, scheduler, discriminator and RNG state all matter.
    config = tiny("refdeblur", train={"reference_dropout": 0.5})
    batch = fixed_batch()

    torch.manual_seed(1)
    random.seed(1)  # reference dropout draws from Python's RNG
    straight = make_trainer(config, CPU, total_steps=4)
    run(straight, batch, 4)

    torch.manual_seed(1)
    random.seed(1)
    first = make_trainer(config, CPU, total_steps=4)
    run(first, batch, 2)
    torch.save({**first.state_dict(), "rng": _rng_state()}, tmp_path / "state.pt")

    torch.manual_seed(99)  # different initial weights and RNG: all must come from the file
    random.seed(99)
    resumed = make_trainer(config, CPU, total_steps=4)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    resumed.load_state_dict(state)
    _set_rng_state(state["rng"])
    assert resumed.schedulers["model"].last_epoch == 2
    run(resumed, batch, 2, start=2)
    for name in ("model", "discriminator"):
        for a, b in zip(
            straight.nets[name].parameters(), resumed.nets[name].parameters(), strict=True
        ):
            assert torch.equal(a, b), name


def test_motion_curriculum_draws_each_stage_from_its_own_stream(tmp_path, data_root):
    # tiny_motion.yaml, like motion.yaml: camera shake alone, then the full mix.
    run_dir = tmp_path / "motion"
    train(CONFIGS / "tiny_motion.yaml", data_root, run_dir, device="cpu")
    drawn = torch.load(run_dir / LAST, weights_only=True)["drawn"]
    assert drawn["shake"] == 2 and drawn["all"] == 2
    kinds = load_config(CONFIGS / "motion.yaml")["streams"]["shake"]["kinds"]
    assert kinds == {"global": 1.0}


def test_a_stage_naming_a_missing_stream_is_refused(tmp_path, data_root):
    config = tmp_path / "typo.yaml"
    config.write_text(
        f"base: {CONFIGS / 'tiny_motion.yaml'}\n"
        "train: {stages: [{name: shake, steps: 2, stream: shaek}]}\n"
    )
    with pytest.raises(ValueError, match=r"streams \['shaek'\], but the config's streams"):
        train(config, data_root, tmp_path / "run", device="cpu")


def test_stages_rescale_in_proportion_and_lr_restarts_per_stage():
    train_config = {
        "stages": [
            {"name": "lbp", "steps": 100},
            {"name": "main", "steps": 300},
            {"name": "joint", "steps": 100, "lr_scale": 0.5},
        ]
    }
    stages = build_stages(train_config, total_steps=20)
    assert [(s.name, s.start, s.steps) for s in stages] == [
        ("lbp", 0, 4),
        ("main", 4, 12),
        ("joint", 16, 4),
    ]
    stages = build_stages(train_config)
    factors = [lr_factor(stages, 10, step) for step in range(500)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)  # warm-up
    assert factors[99] < 0.01 and factors[100] == pytest.approx(0.1)  # decayed, restarted
    assert max(factors[400:]) == pytest.approx(0.5)  # the joint stage's lr_scale


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp("data"))


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]


def test_run_writes_its_folder_and_resumes_from_the_saved_step(tmp_path, data_root):
    config = CONFIGS / "tiny_lcnet.yaml"
    straight = train(config, data_root, tmp_path / "straight", steps=4, device="cpu")
    interrupted = tmp_path / "interrupted"
    main(
        [
            "--config",
            str(config),
            "--data-root",
            str(data_root),
            "--run-dir",
            str(interrupted),
            "--steps",
            "4",
            "--device",
            "cpu",
            "--stop-at",
            "2",
        ]
    )
    saved = torch.load(interrupted / LAST, weights_only=True)
    assert saved["step"] == 2 and saved["drawn"] == {"train": 2}
    main(
        [
            "--config",
            str(config),
            "--data-root",
            str(data_root),
            "--run-dir",
            str(interrupted),
            "--steps",
            "4",
            "--device",
            "cpu",
            "--resume",
        ]
    )

    log = read_log(interrupted)
    train_steps = [r["step"] for r in log if r["split"] == "train"]
    assert train_steps == [1, 2, 3, 4]  # the resumed run went on at 3, not at 1
    straight_log = read_log(straight)
    lrs = [r["lr"] for r in log if r["split"] == "train"]
    assert lrs == [r["lr"] for r in straight_log if r["split"] == "train"]
    final = torch.load(interrupted / LAST, weights_only=True)
    assert final["step"] == 4 and final["schedulers"]["model"]["last_epoch"] == 4
    assert final["optimizers"]["model"]["state"][0]["step"] == 4  # Adam moments carried on
    assert final["train_seconds"] > saved["train_seconds"]
    val = [r for r in log if r["split"] == "val"]
    assert [r["step"] for r in val] == [2, 4] and "output_psnr" in val[0]
    assert (interrupted / BEST).is_file()
    copied = load_config(interrupted / CONFIG_NAME)
    assert copied["model"] == load_config(config)["model"] and copied["train"]["steps"] == 4
    assert final["config_digest"] == config_digest(copied)


@pytest.mark.parametrize("name", ["bladenet", "refdeblur", "motion"])
def test_every_tiny_config_trains_end_to_end(tmp_path, data_root, name):
    run_dir = train(CONFIGS / f"tiny_{name}.yaml", data_root, tmp_path, steps=3, device="cpu")
    log = read_log(run_dir)
    assert [r["step"] for r in log if r["split"] == "train"] == [1, 2, 3]
    assert torch.load(run_dir / LAST, weights_only=True)["step"] == 3


def test_a_run_can_start_from_a_shipped_checkpoint(tmp_path, data_root):
    from deblurstudio.models import build, save_checkpoint

    def train_from(model, name, card=None):
        save_checkpoint(tmp_path / f"{name}.safetensors", model, card)
        return train(
            CONFIGS / "tiny_lcnet.yaml",
            data_root,
            tmp_path / name,
            steps=1,
            device="cpu",
            init_from=tmp_path / f"{name}.safetensors",
        )

    start = build("lcnet", **load_config(CONFIGS / "tiny_lcnet.yaml")["model"]["kwargs"])
    earlier = {"title": "LCNet", "steps": 4000, "training_hours": 0.4, "metrics": {"psnr": 30.0}}
    run_dir = train_from(start, "start", earlier)
    trained = torch.load(run_dir / "last.pt", weights_only=True)
    # One Adam step moves each weight by about the learning rate (1e-3), no more.
    for name, value in start.state_dict().items():
        assert (trained["nets"]["model"][name].float() - value.float()).abs().max() <= 1.1e-3, name
    # The run records where it started, with that model's own training history, and keeps it
    # when resumed from a config that does not say it.
    digest = hashlib.sha256((tmp_path / "start.safetensors").read_bytes()).hexdigest()
    started = {
        "file": "start.safetensors",
        "sha256": digest,
        "title": "LCNet",
        "steps": 4000,
        "training_hours": 0.4,
    }
    assert load_config(run_dir / CONFIG_NAME)["train"]["init_from"] == started
    train(CONFIGS / "tiny_lcnet.yaml", data_root, run_dir, steps=2, device="cpu", resume=True)
    assert load_config(run_dir / CONFIG_NAME)["train"]["init_from"] == started

    with pytest.raises(ValueError, match="wider.safetensors.*cannot start a run"):
        train_from(build("lcnet", width=8, res_blocks=1, lc_blocks=1), "wider")
