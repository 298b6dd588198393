"""The one intensity map both front ends use: ``normalized = (value - offset) / span``.

``medsr`` fits it from a modality (MRI percentiles, the CT HU window), ``geosr`` per band
from the dtype, GDAL scale/offset tags or statistics; both then map to the model's range
with :meth:`LinearScaling.forward` and back with the exact inverse. Arithmetic is float64
internally; ``forward`` returns float32 (what models take), ``inverse`` float64 (callers
round and clip to their output dtype). There is no clipping, so values outside the range
(negative MRI, HU below -1024, reflectance above 1) pass through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SRKitError


@dataclass(frozen=True)
class LinearScaling:
    """``normalized = (value - offset) / span``; ``value = normalized * span + offset``.

    Attributes:
        offset: the value that maps to 0 (physical or raw units).
        span: the width that maps to 1; must be finite and non-zero.
        source: where the numbers came from, for provenance (``"mri p0.5-p99.5"``,
            ``"dtype uint16 /10000"``...).
    """

    offset: float
    span: float
    source: str = ""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.offset) and np.isfinite(self.span) and self.span != 0):
            raise SRKitError(
                f"a linear scaling needs a finite offset and a finite, non-zero span; got"
                f" offset {self.offset}, span {self.span} ({self.source or 'no source'})"
            )

    @property
    def low(self) -> float:
        """The value that maps to 0."""
        return float(self.offset)

    @property
    def high(self) -> float:
        """The value that maps to 1."""
        return float(self.offset + self.span)

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Values to the normalized range, float32 (computed in float64; NaN stays NaN)."""
        x = np.asarray(values, dtype=np.float64)
        return ((x - self.offset) / self.span).astype(np.float32)

    def inverse(self, normalized: np.ndarray) -> np.ndarray:
        """Normalized values back to the original units, float64 (not rounded)."""
        return np.asarray(normalized, dtype=np.float64) * self.span + self.offset

    def to_dict(self) -> dict:
        """JSON-ready description for provenance: offset, span, low, high and source."""
        return {
            "offset": float(self.offset),
            "span": float(self.span),
            "low": self.low,
            "high": self.high,
            "source": self.source,
        }
