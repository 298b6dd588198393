"""Per-band intensity scaling between raster values and a model's normalized range.

Each band gets a linear map ``normalized = (raw - offset) / divisor`` whose exact inverse
is ``raw = normalized * divisor + offset`` (computed in float64; integer outputs are then
rounded and clipped, so every integer value round-trips unchanged). The map comes from,
in order:

1. the band's GDAL scale/offset (``physical = raw * scale + offset``) when they are not
   the identity: the model sees physical values, e.g. reflectance in [0, 1];
2. otherwise the mode: ``auto`` uses the dtype: uint8 ``/255``, uint16 and int16 ``/10000``
   (the surface-reflectance convention), float pass-through; ``dtype`` divides integers by
   their dtype maximum; ``stats`` maps the band's 0.1-99.9 % range (estimated from a
   decimated read) to [0, 1]; ``none`` passes values through.

``range_warnings`` flags bands whose normalized values fall far outside the model card's
``input_range``: the most common cause of bad results on satellite data (for example
Level-1 uint16 DNs, which ``/10000`` maps to 0.5-2.9).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from srkit.common.scaling import LinearScaling

from .errors import GeosrError

MODES = ("auto", "dtype", "stats", "none")
INTEGER_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32")
# How far (in units of the card's range width) normalized data may stray before a warning.
RANGE_TOLERANCE = 0.5


class BandScaling(LinearScaling):
    """One band's :class:`~common.scaling.LinearScaling`: ``normalized = (raw - offset) /
    divisor`` (``divisor`` is the span); ``source`` says where the numbers came from."""

    @property
    def divisor(self) -> float:
        """The raw width that maps to 1 (the span)."""
        return float(self.span)


def band_scaling(
    dtype: str,
    scale: float | None = None,
    offset: float | None = None,
    mode: str = "auto",
    stats: tuple[float, float] | None = None,
) -> BandScaling:
    """The scaling of one band from its dtype, GDAL scale/offset tags and the mode.

    Args:
        dtype: numpy dtype name of the band (``uint8``, ``uint16``, ``int16``, ``float32``...).
        scale, offset: the band's GDAL scale and offset (``None`` or 1/0 mean unset).
        mode: ``auto``, ``dtype``, ``stats`` or ``none`` (see the module docstring).
        stats: ``(low, high)`` raw values for ``stats`` mode (e.g. 0.1 and 99.9 percentiles).

    Raises:
        ValueError: unknown mode, ``stats`` mode without stats, or a zero scale tag.
    """
    if mode not in MODES:
        raise GeosrError(f"unknown normalization {mode!r}; choose from {', '.join(MODES)}")
    scale = 1.0 if scale is None else float(scale)
    offset = 0.0 if offset is None else float(offset)
    if mode == "none":
        return BandScaling(0.0, 1.0, "none")
    if mode == "stats":
        if stats is None:
            raise GeosrError("stats normalization needs the band's (low, high) range")
        low, high = float(stats[0]), float(stats[1])
        span = high - low if high > low else 1.0
        return BandScaling(low, span, f"stats [{low:g}, {high:g}]")
    if scale != 1.0 or offset != 0.0:
        if scale == 0:
            raise GeosrError("band scale tag is 0; cannot normalize")
        return BandScaling(
            -offset / scale, 1.0 / scale, f"scale/offset tags ({scale:g}, {offset:g})"
        )
    if mode == "dtype" and dtype in INTEGER_DTYPES:
        return BandScaling(0.0, float(np.iinfo(dtype).max), f"/{np.iinfo(dtype).max} (dtype)")
    if dtype == "uint8":
        return BandScaling(0.0, 255.0, "/255 (uint8)")
    if dtype in ("uint16", "int16"):
        return BandScaling(0.0, 10000.0, f"/10000 ({dtype} reflectance convention)")
    if dtype in INTEGER_DTYPES:
        return BandScaling(0.0, float(np.iinfo(dtype).max), f"/{np.iinfo(dtype).max} (dtype)")
    return BandScaling(0.0, 1.0, f"pass-through ({dtype})")


def to_output_dtype(
    raw: np.ndarray, dtype: str, valid: np.ndarray | None = None, nodata: float | None = None
) -> np.ndarray:
    """Raw float values to ``dtype``: rounded (half to even) and clipped for integers.

    Where ``valid`` is true and the result equals ``nodata``, the value is nudged one step
    (towards the dtype's interior) so valid pixels are never read back as nodata.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        out = np.clip(np.rint(raw), info.min, info.max).astype(dtype)
        if nodata is not None and valid is not None and not np.isnan(nodata):
            step = 1 if nodata < info.max else -1
            hit = valid & (out == nodata)
            out[hit] = (out[hit].astype(np.int64) + step).astype(dtype)
        return out
    out = raw.astype(dtype)
    if nodata is not None and valid is not None and not np.isnan(nodata):
        hit = valid & (out == nodata)
        out[hit] = np.nextafter(out[hit], np.array(np.inf, dtype=dtype))
    return out


def range_warnings(
    names: Sequence[str],
    normalized_ranges: Sequence[tuple[float, float]],
    input_range: tuple[float, float],
    model_name: str,
) -> list[str]:
    """Messages for bands whose normalized range is far outside ``input_range``.

    "Far" means more than ``RANGE_TOLERANCE`` times the range width beyond either end.
    """
    lo, hi = float(input_range[0]), float(input_range[1])
    tol = RANGE_TOLERANCE * (hi - lo)
    messages = []
    for name, (low, high) in zip(names, normalized_ranges):
        if low < lo - tol or high > hi + tol:
            messages.append(
                f"{name}: normalized values span [{low:.3g}, {high:.3g}], far outside the "
                f"[{lo:g}, {hi:g}] that model {model_name!r} expects; results will be poor. "
                "Check the band's scale/offset tags or pass --normalize stats|dtype"
            )
    return messages
