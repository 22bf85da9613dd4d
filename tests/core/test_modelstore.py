import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from deblurstudio.core import modelstore
from deblurstudio.core.errors import DeblurStudioError, ModelNotFoundError
from deblurstudio.models import build, save_checkpoint


def test_lists_the_checkpoints_of_the_models_dir(tiny_models):
    entries = {entry.id: entry for entry in modelstore.list_models()}
    assert {"bladenet", "lcnet", "refdeblur", "motion"} <= set(entries)
    blade = entries["bladenet"]
    assert blade.path == tiny_models / "bladenet.safetensors" and blade.path.is_file()
    assert (blade.arch, blade.task, blade.title) == ("bladenet", "deblur", "Tiny bladenet")
    assert blade.card["steps"] == 0
    assert entries["motion"].task == "motion" and entries["refdeblur"].task == "reference"


def test_default_model_for_each_role(tiny_models):
    defaults = {role: modelstore.default_model_id(role) for role in modelstore.ROLES}
    assert defaults == {
        "deblur": "bladenet",
        "fast": "lcnet",
        "reference": "refdeblur",
        "motion": "motion",
    }


def test_bare_checkpoints_are_listed_from_their_header_card(tiny_models, tmp_path, monkeypatch):
    save_checkpoint(
        tmp_path / "my_lcnet.safetensors",
        build("lcnet", width=4, res_blocks=1, lc_blocks=1),
        card={"task": "deblur", "title": "My fine-tuned LCNet"},
    )
    save_checkpoint(tmp_path / "critic.safetensors", build("patchgan"))  # training-only net
    (tmp_path / "notes.safetensors").write_text("not a checkpoint")
    monkeypatch.setenv(
        modelstore.MODELS_DIR_ENV, os.pathsep.join([str(tmp_path), str(tiny_models)])
    )
    entries = {entry.id: entry for entry in modelstore.list_models()}
    assert entries["my_lcnet"].title == "My fine-tuned LCNet"
    assert entries["my_lcnet"].arch == "lcnet" and entries["my_lcnet"].task == "deblur"
    assert "critic" not in entries and "notes" not in entries
    assert "bladenet" in entries  # the second folder of the variable is searched too


def test_first_folder_wins_for_an_id(tiny_models, tmp_path, monkeypatch):
    save_checkpoint(
        tmp_path / "bladenet.safetensors",
        build("bladenet", width=4, perception_width=4),
        card={"title": "Override"},
    )
    monkeypatch.setenv(
        modelstore.MODELS_DIR_ENV, os.pathsep.join([str(tmp_path), str(tiny_models)])
    )
    (blade,) = [entry for entry in modelstore.list_models() if entry.id == "bladenet"]
    assert blade.title == "Override"


def test_missing_checkpoint_says_how_to_train_one(tiny_models, tmp_path, monkeypatch):
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))  # lists files that are absent
    monkeypatch.setenv(modelstore.MODELS_DIR_ENV, str(tmp_path))
    # Hermetic: the motion model shipped in resources/models must not be found either.
    monkeypatch.setattr(modelstore, "resources_dir", lambda: tmp_path / "no_resources")
    with pytest.raises(ModelNotFoundError) as caught:
        modelstore.load_model("motion", torch.device("cpu"))
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "motion.safetensors") in message
    assert "python -m training.train --config training/configs/motion.yaml" in message
    assert "python -m training.export" in message and "--id motion --task motion" in message


def test_unknown_model_id_lists_the_installed_models_with_their_roles(tiny_models):
    with pytest.raises(ModelNotFoundError) as caught:
        modelstore.load_model("nope", torch.device("cpu"))
    message = str(caught.value)
    assert "\n" not in message and "model 'nope' is not installed" in message
    assert "bladenet (deblur), lcnet (fast), refdeblur (reference), motion (motion)" in message
    assert "training.train" not in message  # no recipe for a model nobody ships


def test_a_role_names_its_default_model(tiny_models):
    assert modelstore.find_model("fast").id == "lcnet"
    assert modelstore.find_model("deblur").id == "bladenet"


def test_load_model_is_cached_and_ready_for_inference(tiny_models, tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    model = modelstore.load_model("lcnet", cpu)
    assert modelstore.load_model("lcnet", cpu) is model
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.arch_id == "lcnet"
    # A re-exported checkpoint (new file contents) is picked up by a running app.
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    monkeypatch.setenv(modelstore.MODELS_DIR_ENV, str(folder))
    first = modelstore.load_model("lcnet", cpu)
    save_checkpoint(
        folder / "lcnet.safetensors", build("lcnet", width=4, res_blocks=1, lc_blocks=1)
    )
    os.utime(folder / "lcnet.safetensors", ns=(0, 1))  # a different mtime, however fast the disk
    assert modelstore.load_model("lcnet", cpu) is not first


def test_broken_manifest_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "manifest.json").write_text('{"format": 1, "models": {"x": {"file": "x.st"}}}')
    monkeypatch.setenv(modelstore.MODELS_DIR_ENV, str(tmp_path))
    with pytest.raises(DeblurStudioError, match=r"manifest.json: not a valid model manifest"):
        modelstore.list_models()


def test_resources_inside_a_pyinstaller_bundle(tmp_path, monkeypatch):
    assert (
        modelstore.resources_dir() == Path(modelstore.__file__).resolve().parents[2] / "resources"
    )
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert modelstore.resources_dir() == tmp_path / "resources"


def test_card_fields_show_training_facts_then_one_row_per_target_condition():
    card = {
        "steps": 1200,
        "started_from": {"file": "a.safetensors", "steps": 50, "started_from": {"steps": 9}},
        "trained_on": ["photos/bsds500_train", "camvid/train"],
        "metrics": {"output_psnr": 27.123456},
        "targets": {"global": {"input_psnr": 24.0, "output_psnr": 27.5}, "sharp": {"x": 1}},
    }
    rows = modelstore.card_fields(card)
    assert rows == [
        ("trained on", "photos/bsds500_train; camvid/train"),
        ("steps", "1200"),
        ("started from", "file a.safetensors, steps 50, started_from (steps 9)"),
        ("validation scores", "output_psnr 27.12"),
        ("scores, global", "input_psnr 24, output_psnr 27.5"),
        ("scores, sharp", "x 1"),
    ]
