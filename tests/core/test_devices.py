import os

import pytest
import torch

from deblurstudio.core.devices import (
    physical_cpu_cores,
    prepare_for_inference,
    resolve_device,
    resolve_precision,
)
from deblurstudio.core.errors import DeblurStudioError
from deblurstudio.models import build


def test_cpu_runs_in_fp32_and_half_precision_is_refused():
    cpu = resolve_device("cpu")
    assert cpu.type == "cpu"
    assert resolve_precision("auto", cpu) == resolve_precision("fp32", cpu) == torch.float32
    for half in ("fp16", "bf16"):
        with pytest.raises(DeblurStudioError, match=f"precision '{half}' is GPU-only"):
            resolve_precision(half, cpu)
    with pytest.raises(DeblurStudioError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu)
    with pytest.raises(DeblurStudioError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_auto_device_prefers_cuda_then_mps_then_cpu():
    auto = resolve_device("auto").type
    if torch.cuda.is_available():
        assert auto == "cuda"
    else:
        assert auto == ("mps" if torch.backends.mps.is_available() else "cpu")


def test_physical_cores_never_exceed_the_usable_cpus():
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= physical_cpu_cores() <= usable


def test_prepared_model_is_frozen_channels_last_inference():
    model = prepare_for_inference(
        build("lcnet", width=4, res_blocks=1, lc_blocks=1), torch.device("cpu"), torch.float32
    )
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
