"""Training data: blur synthesis (``synthesis``, and ``device_synthesis``, its batched torch twin
on the training device), PyTorch datasets (``datasets``), the folder layouts of public deblurring
sets (``layouts``) and the fixed validation split of the shared data (``splits``)."""

from training.data.datasets import (
    PairedDataset,
    SyntheticBlurDataset,
    UnpairedDataset,
    data_loader,
)
from training.data.device_synthesis import synthesize_on_device
from training.data.splits import VALIDATION_SPLIT

__all__ = [
    "PairedDataset",
    "SyntheticBlurDataset",
    "UnpairedDataset",
    "VALIDATION_SPLIT",
    "data_loader",
    "synthesize_on_device",
]
