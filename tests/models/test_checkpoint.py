"""Every registered architecture survives build → save → load with identical output, and loading
refuses files that are not our checkpoints (never unpickling anything)."""

import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from deblurstudio.models import (
    ARCHS,
    CheckpointError,
    build,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from tests.conftest import TINY_MODELS

TINY_KWARGS = {arch: kwargs for arch, _task, kwargs in TINY_MODELS.values()}
TINY_KWARGS["patchgan"] = {"width": 4}


def _forward(model, image):
    if model.arch_id == "refdeblur":
        return model(image, torch.flip(image, dims=[-1]))
    output = model(image)
    return output if isinstance(output, torch.Tensor) else output.restored


def test_every_architecture_has_tiny_test_settings():
    assert set(TINY_KWARGS) == set(ARCHS)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_round_trip_gives_identical_output(arch, tmp_path):
    torch.manual_seed(0)
    model = build(arch, **TINY_KWARGS[arch]).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = _forward(model, image)
    card = {"trained_on": ["test"], "metrics": {"psnr": 1.5}}
    save_checkpoint(tmp_path / "m.safetensors", model, card)

    loaded, info = load_checkpoint(tmp_path / "m.safetensors")
    with torch.no_grad():
        actual = _forward(loaded, image)
    assert info.arch == arch and info.kwargs == TINY_KWARGS[arch] and info.card == card
    assert not loaded.training
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_pickle_file_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="evil.safetensors: not a safetensors checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_weights_of_another_size_are_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "a.safetensors", build("lcnet", **TINY_KWARGS["lcnet"]))
    wider = dict(TINY_KWARGS["lcnet"], width=8)
    # Same architecture, header claiming the wider size: the weights cannot fit.

    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata())
    metadata["kwargs"] = json.dumps(wider)
    save_file(tensors, tmp_path / "b.safetensors", metadata=metadata)
    with pytest.raises(CheckpointError, match="b.safetensors: weights do not fit 'lcnet'"):
        load_checkpoint(tmp_path / "b.safetensors")


def test_missing_file_and_unknown_architecture_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors: no such checkpoint file"):
        read_checkpoint_info(tmp_path / "nope.safetensors")
    save_file(
        {"w": torch.zeros(1)},
        tmp_path / "x.safetensors",
        metadata={"arch": "resnet", "kwargs": "{}"},
    )
    with pytest.raises(CheckpointError, match="x.safetensors: unknown architecture 'resnet'"):
        read_checkpoint_info(tmp_path / "x.safetensors")
