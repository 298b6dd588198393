"""Intensity normalization to the models' range and back, in the input's units.

- MRI: robust percentiles (0.5 and 99.5 by default) of the foreground map to 0 and 1.
- CT: the HU window [-1024, 3071] maps to [0, 1].

Both are affine maps without clipping, so the inverse is exact (up to float rounding) and
values outside the range (negative MRI, HU below -1024) pass through instead of being cut.
NaN voxels are filled with the normalized value 0 before the model and restored after.
"""

from __future__ import annotations

import numpy as np
from srkit.common.scaling import LinearScaling

from .errors import MedsrError

CT_WINDOW = (-1024.0, 3071.0)
MRI_PERCENTILES = (0.5, 99.5)
MODALITIES = ("mri", "ct")


class Normalization(LinearScaling):
    """A modality's :class:`~common.scaling.LinearScaling`: ``normalized = (value - low) /
    (high - low)``, ``value = normalized * (high - low) + low``; ``source`` is the modality."""

    def __init__(self, modality: str, low: float, high: float):
        super().__init__(offset=float(low), span=float(high) - float(low), source=modality)

    @property
    def modality(self) -> str:
        """``"mri"`` or ``"ct"``."""
        return self.source

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Physical units to the model range (float32); NaN becomes 0, +-inf are clipped."""
        x = np.asarray(values, dtype=np.float64)
        x = np.where(np.isfinite(x), x, np.where(np.isposinf(x), self.high, self.low))
        return ((x - self.low) / (self.high - self.low)).astype(np.float32)

    def inverse(self, normalized: np.ndarray) -> np.ndarray:
        """Model range back to physical units (float32)."""
        y = np.asarray(normalized, dtype=np.float64)
        return (y * (self.high - self.low) + self.low).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-ready description for the provenance sidecar."""
        return {"modality": self.modality, "low": self.low, "high": self.high}


def foreground(values: np.ndarray) -> np.ndarray:
    """Boolean mask of finite, non-background voxels (non-zero; all finite if <1 % non-zero)."""
    finite = np.isfinite(values)
    mask = finite & (values != 0)
    return mask if mask.sum() >= 0.01 * max(int(finite.sum()), 1) else finite


def mri_normalization(
    values: np.ndarray, percentiles: tuple[float, float] = MRI_PERCENTILES
) -> Normalization:
    """Percentile normalization fitted on the foreground of ``values`` (physical units).

    A constant (or empty) volume gets a unit range so the map stays invertible.
    """
    values = np.asarray(values)
    mask = foreground(values)
    if not mask.any():
        return Normalization("mri", 0.0, 1.0)
    low, high = np.percentile(values[mask].astype(np.float64), percentiles)
    if not high > low:
        low, high = float(low), float(low) + 1.0
    return Normalization("mri", float(low), float(high))


def ct_normalization(window: tuple[float, float] = CT_WINDOW) -> Normalization:
    """The fixed HU window map (default [-1024, 3071] to [0, 1])."""
    return Normalization("ct", float(window[0]), float(window[1]))


def detect_modality(values: np.ndarray, tag: str | None = None) -> str:
    """``"ct"`` or ``"mri"``: the DICOM Modality when known, else the value range.

    Without a tag, a volume whose 1st percentile is below -500 (air in HU) is CT; anything
    else (including 8-bit display copies of CT) is treated as MRI-like.
    """
    if tag in MODALITIES:
        return tag
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size and np.percentile(finite, 1) < -500:
        return "ct"
    return "mri"


def normalization_for(values: np.ndarray, modality: str) -> Normalization:
    """The normalization of ``modality`` (``"mri"`` or ``"ct"``) for these values."""
    if modality == "ct":
        return ct_normalization()
    if modality == "mri":
        return mri_normalization(values)
    raise MedsrError(f"modality must be 'mri' or 'ct', got {modality!r}")
