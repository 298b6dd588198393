"""Invalid (NaN/Inf) input values: fill before the model, mask after it.

A convolution spreads one NaN over its whole receptive field, so a NaN hole would grow in
the output. The rule every front end and :func:`common.upscale` follow (``nan_policy=
"mask"``): each non-finite input value is replaced by its nearest finite neighbour's value
before the model runs, and its footprint in the output (the output values whose centre
falls in it) is set to NaN afterwards. So invalid stays invalid, at its upscaled
footprint, and no valid output value becomes NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NAN_POLICIES = ("mask", "propagate", "raise")


def fill_nearest(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``values`` with each ``missing`` element replaced by its nearest valid one's value
    (so a hole does not pull its neighbours towards an arbitrary fill value). All-missing
    arrays become 0."""
    if not missing.any():
        return values
    if missing.all():
        return np.zeros_like(values)
    from scipy.ndimage import distance_transform_edt

    index = distance_transform_edt(missing, return_distances=False, return_indices=True)
    return values[tuple(index)]


def parent_mask(mask: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
    """``mask`` carried to ``out_shape``: each output element takes the input element its
    centre falls in (edges-kept grids), so masked regions are restored without spreading."""
    index = []
    for n, m in zip(mask.shape, out_shape):
        parent = np.floor((np.arange(m) + 0.5) * n / m).astype(np.int64)
        index.append(np.clip(parent, 0, n - 1))
    return mask[np.ix_(*index)]


def fill_channels(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fills each channel of ``(C, *spatial)`` from its own nearest finite values.

    Returns the filled float32 array and the boolean mask of the non-finite inputs.
    """
    missing = ~np.isfinite(array)
    if not missing.any():
        return array, missing
    filled = np.stack([fill_nearest(a, m) for a, m in zip(array, missing)])
    return filled.astype(np.float32, copy=False), missing


def mask_channels(out: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Sets the footprint of each channel's ``missing`` inputs to NaN in ``out`` (in place)."""
    for channel, (o, m) in enumerate(zip(out, missing)):
        if m.any():
            out[channel][parent_mask(m, o.shape)] = np.nan
    return out
