"""The readers ``medsr train`` adds to the shared training runner (``common.training``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .intensity import detect_modality, normalization_for
from .io import read_volume


def read_normalized(path: Path) -> np.ndarray:
    """Training reader: a NIfTI file or DICOM series as float32 ``(1, X, Y, Z)`` in [0, 1]-ish.

    Normalized per volume like ``enhance`` does (MRI percentiles, CT HU window); NaN -> 0.
    """
    volume = read_volume(path)
    norm = normalization_for(volume.data, detect_modality(volume.data, volume.modality))
    return norm.forward(volume.data)[None]


def train_readers() -> dict[str, Any]:
    """The readers ``medsr train`` adds to the runner: ``nifti`` and ``dicom``."""
    return {"nifti": read_normalized, "dicom": read_normalized}
