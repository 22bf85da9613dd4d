"""Devices, precision and inference set-up: which torch device and dtype a job runs with.

Precision policy (decided here, relied on by the CLI and the GUI):
  * "auto" is bf16 on CUDA GPUs that support it (Ampere and newer: same tensor-core speed as fp16
    but fp32's exponent range, so activations cannot overflow to inf), else fp16 on CUDA, and fp32
    on CPU and MPS.
  * "fp16" / "bf16" on the CPU are refused with a DeblurStudioError rather than silently
    downgraded: CPU half-precision convolutions are slower than fp32 on CPUs without AMX and lose
    accuracy, so the request is almost certainly a mistake the user should hear about.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch
from torch import nn

from deblurstudio.core.errors import DeblurStudioError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

_threads_configured = False


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a user's device choice into a torch device.

    Args:
        name: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda" or "mps".

    Raises:
        DeblurStudioError: unknown name, or a device this machine / torch build does not have.
    """
    if name not in DEVICE_CHOICES:
        raise DeblurStudioError(
            f"unknown device '{name}' (choose one of {', '.join(DEVICE_CHOICES)})"
        )
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise DeblurStudioError(
            f"device 'cuda' is not available (torch {torch.__version__} is {build} or no NVIDIA "
            "GPU/driver was found); use --device cpu or auto"
        )
    if name == "mps" and not _mps_available():
        raise DeblurStudioError(
            "device 'mps' is not available (needs Apple silicon, macOS 12.3+ and an MPS-enabled "
            "torch); use --device cpu or auto"
        )
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Choose the inference dtype for `precision` on `device` (policy in the module docstring).

    Raises:
        DeblurStudioError: unknown precision, half precision on the CPU, or bf16 on a CUDA GPU
            without bf16 support.
    """
    if precision not in PRECISION_CHOICES:
        raise DeblurStudioError(
            f"unknown precision '{precision}' (choose one of {', '.join(PRECISION_CHOICES)})"
        )
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if cuda_bf16 else torch.float16
        return torch.float32
    if precision != "fp32" and device.type == "cpu":
        raise DeblurStudioError(
            f"precision '{precision}' is GPU-only (slower and less accurate than fp32 on the CPU); "
            "use --precision fp32 or auto"
        )
    if precision == "bf16" and device.type == "cuda" and not cuda_bf16:
        raise DeblurStudioError(
            f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16 support; "
            "use --precision fp16 or auto"
        )
    return _DTYPES[precision]


def physical_cpu_cores() -> int:
    """Physical cores this process may use (SMT siblings, CPU affinity and cgroup quota counted).

    Hyper-threads share a core's vector units, so more compute threads than physical cores only
    adds contention; containers often see the host's cores but get a smaller quota.
    """
    logical = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    cores = min(_physical_cores_from_os(usable) or usable, usable)
    return max(1, min(cores, _cgroup_cpu_quota() or cores))


def _physical_cores_from_os(usable: int) -> int | None:
    system = platform.system()
    if system == "Linux":
        return _linux_physical_cores()
    if system == "Darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True, timeout=5
            )
            return int(out.stdout.strip())
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
    return None


def _linux_physical_cores() -> int | None:
    """Count distinct (package, core) pairs among the CPUs this process may run on."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    allowed = os.sched_getaffinity(0)
    cores = set()
    for block in text.strip().split("\n\n"):
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (line.partition(":") for line in block.splitlines())
        )
        if "core id" not in fields or "processor" not in fields:
            return None  # e.g. ARM kernels do not report topology here
        if int(fields["processor"]) in allowed:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


def _cgroup_cpu_quota() -> int | None:
    """CPUs granted by a cgroup v2 quota (containers), rounded up; None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


def configure_cpu_threads() -> int:
    """Set torch's intra-op threads to the physical core count, once per process.

    An explicit OMP_NUM_THREADS (or a previous call) wins. Returns the thread count in effect.
    """
    global _threads_configured
    if not _threads_configured and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(physical_cpu_cores())
    _threads_configured = True
    return torch.get_num_threads()


def prepare_for_inference(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Make `model` ready and fast for inference on `device` in `dtype` (in place; returned).

    eval() fixes normalisation/dropout behaviour; requires_grad off frees autograd bookkeeping;
    channels_last lets cuDNN/oneDNN pick NHWC kernels (inputs must be channels_last too, see
    `to_model_input`); cuDNN autotuning pays off because tiles repeat the same shape.
    """
    model.eval().requires_grad_(False)
    model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif device.type == "cpu":
        configure_cpu_threads()
    return model


def to_model_input(array, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """H×W×C float32 numpy array -> 1×C×H×W tensor on `device` in `dtype`, channels_last."""
    tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)  # a view: NHWC memory already
    return tensor.to(device=device, dtype=dtype, memory_format=torch.channels_last)
