import json
import os

import pytest

from tests._models import as_if_trained

# Qt runs headless in every test session; set once, before any test imports PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Test tensors are tiny: one compute thread each. On a shared, busy CPU, torch's OpenMP threads
# spin-wait for each other and made the tiny nets 2-100× slower. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Tiny random-weight models, one per model-store role: id -> (arch, task, constructor kwargs).
TINY_MODELS = {
    "bladenet": ("bladenet", "deblur", {"width": 4, "perception_width": 4}),
    "lcnet": ("lcnet", "deblur", {"width": 4, "res_blocks": 1, "lc_blocks": 1}),
    "refdeblur": (
        "refdeblur",
        "reference",
        {"width": 4, "blocks": 1, "match_width": 4, "match_stride": 4},
    ),
    "motion": ("neurmap_motion", "motion", {"width": 4}),
}
TINY_DEFAULTS = {
    "deblur": "bladenet",
    "fast": "lcnet",
    "reference": "refdeblur",
    "motion": "motion",
}


def _calibrate_batchnorm(model):
    """Estimate BatchNorm statistics on random images, as training would. With fresh statistics
    (mean 0, variance 1) and PyTorch's default init a deep random U-Net (BladeNet) is a
    near-constant function, so tests could not see that masks or tiles make a difference."""
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.momentum = None  # a plain average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(2, 3, 64, 64))
    model.eval()


@pytest.fixture(scope="session")
def _tiny_models_dir(tmp_path_factory):
    import torch

    from deblurstudio.models import build, save_checkpoint

    folder = tmp_path_factory.mktemp("tiny_models")
    card = {"trained_on": ["nothing: random weights for tests"], "steps": 0, "metrics": {}}
    entries = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for model_id, (arch, task, kwargs) in TINY_MODELS.items():
            model = build(arch, **kwargs)
            as_if_trained(model)
            _calibrate_batchnorm(model)
            save_checkpoint(folder / f"{model_id}.safetensors", model, card)
            entries[model_id] = {
                "file": f"{model_id}.safetensors",
                "arch": arch,
                "task": task,
                "title": f"Tiny {arch}",
                "description": "Random weights, tiny width: for tests only.",
                "card": card,
            }
    manifest = {"format": 1, "defaults": TINY_DEFAULTS, "models": entries}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return folder


@pytest.fixture
def tiny_models(_tiny_models_dir, tmp_path_factory, monkeypatch):
    """A models folder with a tiny random-weight checkpoint for every role, made active.

    The folder (returned, a pathlib.Path; created once per session, treat it as read-only) holds
    bladenet.safetensors (task "deblur", default for "deblur"), lcnet.safetensors ("deblur",
    default for "fast"), refdeblur.safetensors ("reference") and motion.safetensors ("motion"),
    plus a manifest.json naming them as the defaults (ids and kwargs: TINY_MODELS above).
    Weights are random, with BatchNorm statistics estimated on random images so that every
    net's output depends on its inputs.

    For the test's duration DEBLURSTUDIO_MODELS_DIR points at it (subprocesses inherit it, so CLI
    tests see the same models) and XDG_DATA_HOME at an empty folder, so models a developer
    installed under the user data dir cannot leak in; the model store's load cache is cleared
    before and after. Outputs are deterministic but meaningless (random weights): assert shapes,
    ranges, plumbing — never image quality.
    """
    from deblurstudio.core.modelstore import clear_model_cache

    monkeypatch.setenv("DEBLURSTUDIO_MODELS_DIR", str(_tiny_models_dir))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg_data_home")))
    clear_model_cache()
    yield _tiny_models_dir
    clear_model_cache()
