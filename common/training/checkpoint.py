"""The training checkpoint ``last.pt``: written atomically, resumed exactly.

The layout is one typed record, ``common.models.weights.TrainingCheckpoint``; its
``to_dict``/``from_dict`` are the only place that knows the keys, for the writer here, for
resume, and for ``load_model("runs/x/last.pt")`` (which gives the EMA weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..io import atomic_output
from ..models.weights import TrainingCheckpoint, load_checkpoint

__all__ = ["TrainingCheckpoint", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(checkpoint: TrainingCheckpoint, path: str | os.PathLike) -> Path:
    """Writes ``checkpoint`` to ``path`` through ``common.io.atomic_output`` (replacing it)."""
    path = Path(path)
    with atomic_output(path, overwrite=True) as temporary:
        torch.save(checkpoint.to_dict(), temporary)
    return path
