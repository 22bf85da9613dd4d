"""The networks of the four papers, the architecture registry, checkpoint load/save.

Imports torch and numpy only — nothing else of ours, never Qt.
"""

from deblurstudio.models.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from deblurstudio.models.outputs import DeblurOutput
from deblurstudio.models.registry import ARCHS, build

__all__ = [
    "ARCHS",
    "CheckpointError",
    "CheckpointInfo",
    "DeblurOutput",
    "build",
    "load_checkpoint",
    "read_checkpoint_info",
    "save_checkpoint",
]
