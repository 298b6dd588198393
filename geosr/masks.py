"""Validity masks and the local, window-independent fill of invalid pixels.

Invalid pixels (nodata, NaN, GDAL mask band or alpha = 0) must not leak into valid output
pixels through the model's receptive field. They are filled before the model from nearby
valid pixels, and the output is masked again afterwards (nearest-neighbour upsampled mask).

The fill must give the same value whatever window the raster is cut into, or windows would
show seams near nodata. A global nearest-valid fill (``distance_transform_edt``) does not:
the nearest valid pixel may lie outside a window, and its tie-breaking depends on the array
origin. ``fill_invalid`` instead grows valid values inwards ring by ring: each pass sets
every still-invalid pixel with a valid 3x3 neighbour to the mean of those neighbours. After
``k`` passes a pixel's value depends only on input pixels within ``k`` (Chebyshev distance)
and on the raster edge, never on the window origin, and every invalid pixel with a valid
pixel within ``k`` is filled (the rest get a constant). With ``k`` equal to the model's
receptive radius ``r`` and windows read with a halo of ``2 r``, every input pixel that can
influence a window's core has the same value as in a whole-raster run: the output is
identical, bit for bit, to whole-raster processing (see ``enhance``).
"""

from __future__ import annotations

import numpy as np

_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def fill_invalid(
    data: np.ndarray, valid: np.ndarray, passes: int, constant: float = 0.0
) -> np.ndarray:
    """Fills invalid pixels of ``(C, H, W)`` float data from their valid neighbourhood.

    Args:
        data: float array ``(C, H, W)``; values at invalid pixels are ignored.
        valid: boolean ``(C, H, W)`` (or broadcastable ``(1, H, W)``), true where data is valid.
        passes: ring-growing passes; invalid pixels farther than this (Chebyshev distance)
            from any valid pixel get ``constant``.
        constant: value for pixels no pass reached (also for all-invalid bands).

    Returns:
        a new float32 array; valid pixels are unchanged.
    """
    out = np.array(data, dtype=np.float32, copy=True)
    known = np.broadcast_to(np.asarray(valid, dtype=bool), out.shape).copy()
    out[~known] = 0.0
    if known.all():
        return out
    c, h, w = out.shape
    for _ in range(passes):
        if known.all():
            break
        padded = np.zeros((c, h + 2, w + 2), dtype=np.float32)
        padded_known = np.zeros((c, h + 2, w + 2), dtype=np.float32)
        padded[:, 1:-1, 1:-1] = out
        padded_known[:, 1:-1, 1:-1] = known
        total = np.zeros_like(out)
        count = np.zeros_like(out)
        for dy, dx in _OFFSETS:  # fixed order: the same float sums in every window
            sl = (slice(None), slice(1 + dy, 1 + dy + h), slice(1 + dx, 1 + dx + w))
            total += padded[sl]
            count += padded_known[sl]
        grow = ~known & (count > 0)
        out[grow] = total[grow] / count[grow]
        known = known | grow
    out[~known] = constant
    return out


def upsample_nearest(mask: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes by an integer ``scale``."""
    return np.repeat(np.repeat(mask, scale, axis=-2), scale, axis=-1)
