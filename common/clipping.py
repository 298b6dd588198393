"""Output value range: ``--clip auto|none|LO,HI``, one rule for both front ends.

A model or an interpolator overshoots at edges (a CNN's residual, B-spline's and bicubic's
ringing), so an output can leave the input's physical range: MRI intensities below the
input's minimum, HU below air, negative reflectance. ``auto`` clips the output to the
input's valid range (finite values, nodata excluded) widened by :data:`AUTO_MARGIN` of its
span on each side, so genuine sharpening of small bright or dark structures survives but
values no acquisition could give do not. ``none`` keeps the raw output; ``LO,HI`` clips to
fixed physical values (HU, reflectance, DN). The same bounds apply to every output format
of a run, so a NIfTI and a DICOM of one run agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SRKitError

AUTO_MARGIN = 0.05
"""``auto`` widens the input's valid range by this fraction of its span on each side."""


@dataclass(frozen=True)
class ClipRule:
    """How outputs are clipped: ``mode`` is ``"auto"``, ``"none"`` or ``"fixed"``.

    Attributes:
        mode: ``auto`` (input range plus :data:`AUTO_MARGIN`), ``none`` or ``fixed``.
        low, high: the bounds of a ``fixed`` rule (physical units), else ``None``.
    """

    mode: str = "auto"
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: str | ClipRule | None) -> ClipRule:
        """``"auto"``, ``"none"`` or ``"LO,HI"`` (``None`` means auto).

        Raises:
            SRKitError: anything else, or ``LO >= HI``, or a non-finite bound.
        """
        if isinstance(text, ClipRule):
            return text
        if text is None:
            return cls()
        spec = str(text).strip().lower()
        if spec in ("auto", "none"):
            return cls(spec)
        parts = spec.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            low, high = (float(p) for p in parts)
        except ValueError:
            raise SRKitError(
                f"--clip {text!r}: expected auto, none or LO,HI (for example -1024,3071)"
            ) from None
        if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
            raise SRKitError(f"--clip {text!r}: LO must be finite and below HI")
        return cls("fixed", low, high)

    def bounds(self, low: float, high: float) -> tuple[float, float] | None:
        """The clip bounds for an input whose valid values span ``[low, high]``.

        Returns ``None`` for ``none``, and for ``auto`` when the input has no finite
        valid value (nothing to measure a range on).
        """
        if self.mode == "none":
            return None
        if self.mode == "fixed":
            return float(self.low), float(self.high)
        if not (np.isfinite(low) and np.isfinite(high)):
            return None
        margin = AUTO_MARGIN * (high - low)
        return float(low - margin), float(high + margin)

    def describe(self, bounds: tuple[float, float] | None) -> str:
        """Provenance text: ``"auto [-1230.0, 3271.0]"``, ``"none"``..."""
        if bounds is None:
            return self.mode if self.mode != "auto" else "auto (no valid input value)"
        return f"{self.mode} [{bounds[0]:.6g}, {bounds[1]:.6g}]"


def valid_range(values: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """Min and max of the finite values (where ``valid`` is true); NaN, NaN when none."""
    data = np.asarray(values)
    keep = np.isfinite(data) if np.issubdtype(data.dtype, np.floating) else None
    if valid is not None:
        keep = valid if keep is None else keep & valid
    chosen = data if keep is None else data[keep]
    if chosen.size == 0:
        return float("nan"), float("nan")
    return float(chosen.min()), float(chosen.max())


def clip_in_place(values: np.ndarray, bounds: tuple[float, float] | None) -> float:
    """Clips a float array to ``bounds`` in place (NaN stays NaN); returns the fraction of
    finite values that were changed (0 when ``bounds`` is ``None``)."""
    if bounds is None or values.size == 0:
        return 0.0
    low, high = bounds
    outside = (values < low) | (values > high)
    changed = float(np.count_nonzero(outside)) / values.size
    np.clip(values, low, high, out=values)
    return changed
