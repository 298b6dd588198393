"""Voxel grids in world (RAS, mm) coordinates and the edges-kept convention.

A volume's ``affine`` maps voxel indices ``(i, j, k)`` (voxel centres) to RAS millimetres.
The field of view spans the voxel *corners*, indices ``-0.5`` to ``n - 0.5`` on each axis.

Edges kept: upsampling an axis by ``s`` divides its voxel size by ``s``, moves the first
voxel centre by ``-(s - 1) / (2 s)`` old voxels and multiplies the voxel count by ``s``, so
the outer edges of the field of view stay fixed in world coordinates. Downsampling by an
integer ``f`` (``simulate``) is the exact inverse: low-res voxel ``k`` covers high-res voxels
``[k f, (k + 1) f)`` and its centre sits at high-res index ``k f + (f - 1) / 2``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .errors import MedsrError

ANISOTROPY_RATIO = 1.5  # thickest / finest spacing at or above which a volume is anisotropic
AXIS_NAMES = ("x", "y", "z")


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size in mm along each voxel axis (the norms of the affine's first 3 columns)."""
    return np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))


def _per_axis(scale: float | Sequence[float]) -> np.ndarray:
    values = np.ravel(np.asarray(scale, dtype=np.float64))
    values = np.repeat(values, 3) if values.size == 1 else values
    if values.size != 3:
        raise MedsrError(f"need 1 or 3 per-axis factors, got {scale!r}")
    if not np.all(values > 0):
        raise MedsrError(f"factors must be > 0, got {scale!r}")
    return values


def upsampled_affine(affine: np.ndarray, axis_scale: float | Sequence[float]) -> np.ndarray:
    """The affine of a grid upsampled by ``axis_scale`` (per voxel axis) with edges kept.

    New index ``i'`` sits at old index ``(i' + 0.5) / s - 0.5``. Non-integer factors are
    allowed (the grid of ``n`` voxels resampled to ``n * s``); ``s = 1`` leaves an axis alone.
    """
    s = _per_axis(axis_scale)
    step = np.eye(4)
    step[:3, :3] = np.diag(1.0 / s)
    step[:3, 3] = -(s - 1) / (2 * s)
    return np.asarray(affine, dtype=np.float64) @ step


def downsampled_affine(affine: np.ndarray, axis_factor: int | Sequence[int]) -> np.ndarray:
    """The affine of a grid downsampled by integer ``axis_factor`` (edges-kept inverse).

    Low-res index ``k`` sits at high-res index ``k f + (f - 1) / 2``; so
    ``upsampled_affine(downsampled_affine(A, f), f) == A`` exactly (up to float rounding).
    """
    f = _per_axis(axis_factor)
    step = np.eye(4)
    step[:3, :3] = np.diag(f)
    step[:3, 3] = (f - 1) / 2
    return np.asarray(affine, dtype=np.float64) @ step


def fov_corners(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World coordinates (8, 3) of the field-of-view corners (voxel corners -0.5, n - 0.5)."""
    idx = np.array(list(itertools.product(*[(-0.5, n - 0.5) for n in shape[:3]])), dtype=np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def thick_axis(affine: np.ndarray, ratio: float = ANISOTROPY_RATIO) -> int | None:
    """The voxel axis with the largest spacing if thickest/finest >= ``ratio``, else None."""
    sizes = voxel_sizes(affine)
    if sizes.max() / sizes.min() < ratio:
        return None
    return int(np.argmax(sizes))


def parse_axis(text: str | int) -> int:
    """A voxel axis from ``x``/``y``/``z``, ``i``/``j``/``k`` or ``0``/``1``/``2``."""
    names = {"x": 0, "y": 1, "z": 2, "i": 0, "j": 1, "k": 2, "0": 0, "1": 1, "2": 2}
    key = str(text).strip().lower()
    if key not in names:
        raise MedsrError(f"axis must be x, y, z (or 0, 1, 2), got {text!r}")
    return names[key]
