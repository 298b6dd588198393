"""``medsr simulate``: thick-slice low-resolution twins whose grids align exactly.

The low-res volume keeps the high-res field of view's outer edges on the thick axis
(low-res voxel ``k`` covers high-res voxels ``[k f, (k + 1) f)``), so ``enhance`` of the
low-res volume by ``f`` lands exactly on the high-res grid (its first ``(n // f) f`` slices).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from srkit.common.degradation import thick_slice

from .errors import MedsrError, input_error
from .geometry import downsampled_affine
from .io import Volume, read_volume, write_nifti


def simulate_volume(
    volume: Volume,
    *,
    axis: int | Sequence[int],
    factor: int,
    profile: str = "gaussian",
    gap_mm: float = 0.0,
) -> Volume:
    """Thick slices along voxel ``axis``: ``factor`` HR slices per LR slice.

    ``axis`` may list several axes: the same profile is then applied along each (two
    in-plane axes simulate a lower in-plane resolution, a separable point-spread function
    of one LR voxel). ``profile``: ``"gaussian"`` (FWHM = slice thickness) or ``"box"``;
    ``gap_mm``: the gap between slices in mm (slice thickness = factor * spacing - gap).
    NaNs are not allowed in the high-res input. Trailing slices that do not fill a LR
    slice are dropped.
    """
    if int(factor) != factor or factor < 2:
        raise MedsrError(f"--factor must be an integer >= 2, got {factor}")
    factor = int(factor)
    axes = [axis] if isinstance(axis, int) else list(dict.fromkeys(int(a) for a in axis))
    if not axes or any(a not in (0, 1, 2) for a in axes):
        raise MedsrError(f"axis must be one or more of 0, 1, 2, got {axis!r}")
    low = np.nan_to_num(volume.data.astype(np.float64))
    scale = [1, 1, 1]
    for a in axes:
        spacing = float(volume.spacing[a])
        gap = gap_mm / spacing
        if not 0 <= gap < factor:
            raise MedsrError(
                f"--gap {gap_mm} mm must be >= 0 and below the LR spacing {factor * spacing:.4g} mm"
            )
        if volume.shape[a] < factor:
            raise MedsrError(f"axis has {volume.shape[a]} slices, fewer than --factor {factor}")
        low = thick_slice(low, factor, a, profile=profile, gap=gap)
        scale[a] = factor
    return Volume(
        data=low.astype(np.float32),
        affine=downsampled_affine(volume.affine, scale),
        modality=volume.modality,
        source=volume.source,
        format="nifti",
        stored_dtype="float32",
    )


def simulate_file(
    hr_path: str | os.PathLike,
    lr_path: str | os.PathLike,
    *,
    axis: int | Sequence[int] = 2,
    factor: int = 4,
    profile: str = "gaussian",
    gap_mm: float = 0.0,
    overwrite: bool = False,
) -> Volume:
    """Reads ``hr_path``, simulates thick slices and writes NIfTI ``lr_path`` (float32)."""
    lr_path = Path(lr_path)
    hr = read_volume(hr_path)
    if not str(lr_path).endswith((".nii", ".nii.gz")):
        raise input_error(lr_path, "simulate writes NIfTI: use a .nii or .nii.gz output name")
    if lr_path.resolve() == Path(hr_path).resolve():
        raise input_error(lr_path, "output is the input; refusing to overwrite it")
    if lr_path.exists() and not overwrite:
        raise input_error(lr_path, "output already exists; pass --overwrite")
    try:
        low = simulate_volume(hr, axis=axis, factor=factor, profile=profile, gap_mm=gap_mm)
    except ValueError as exc:
        raise input_error(hr_path, str(exc)) from None
    write_nifti(low, lr_path)
    return low
