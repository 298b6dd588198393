"""``medsr evaluate``: PSNR/SSIM of a prediction against a reference, in a foreground mask.

The data range is explicit (``--data-range``, default the reference's range inside the
mask, reported with the numbers). The mask is a file (non-zero voxels) or an Otsu
threshold of the reference. With the low-res input, the cubic B-spline baseline is
computed on the same grid and the gain reported next to it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

import numpy as np
from srkit.common import upscale
from srkit.common.metrics import psnr, ssim

from .errors import MedsrError, input_error
from .geometry import fov_corners, upsampled_affine
from .io import Volume, read_volume

GRID_TOLERANCE_MM = 0.01


def otsu_mask(values: np.ndarray) -> np.ndarray:
    """Foreground of a reference volume: finite voxels above Otsu's threshold."""
    from skimage.filters import threshold_otsu

    finite = np.isfinite(values)
    threshold = threshold_otsu(values[finite])
    return finite & (values > threshold)


def grid_distance(a: Volume, b: Volume) -> float:
    """Largest distance (mm) between the field-of-view corners of two grids (inf: shapes)."""
    if a.shape != b.shape:
        return math.inf
    return float(np.abs(fov_corners(a.affine, a.shape) - fov_corners(b.affine, b.shape)).max())


def _crop_to(ref: Volume, pred: Volume) -> Volume:
    """``ref`` cut to ``pred``'s grid when that grid is its leading sub-grid (same affine,
    fewer voxels: ``simulate`` drops trailing slices that do not fill a thick slice)."""
    if ref.shape == pred.shape or any(p > r for p, r in zip(pred.shape, ref.shape)):
        return ref
    if np.abs(ref.affine - pred.affine).max() > 1e-4:
        return ref
    data = ref.data[: pred.shape[0], : pred.shape[1], : pred.shape[2]]
    return Volume(data=data, affine=ref.affine, modality=ref.modality, source=ref.source)


def baseline_from_lr(lr: Volume, ref: Volume) -> np.ndarray:
    """Cubic B-spline upsampling of ``lr`` onto ``ref``'s grid (integer factors, edges kept).

    Raises ValueError when ``ref``'s grid is not an integer edges-kept upsampling of ``lr``.
    """
    factors = [r / n for r, n in zip(ref.shape, lr.shape)]
    if any(f != int(f) or f < 1 for f in factors):
        raise MedsrError(f"reference shape {ref.shape} is not an integer multiple of {lr.shape}")
    factors = [int(f) for f in factors]
    expected = upsampled_affine(lr.affine, factors)
    gap = float(np.abs(fov_corners(expected, ref.shape) - fov_corners(ref.affine, ref.shape)).max())
    if gap > GRID_TOLERANCE_MM:
        raise MedsrError(
            f"the low-res grid upsampled by {factors} misses the reference by {gap:.3g} mm"
        )
    data = np.nan_to_num(lr.data)
    return upscale("bspline", data[None], scale=tuple(factors))[0]


def _scores(
    pred: np.ndarray, ref: np.ndarray, mask: np.ndarray, data_range: float, axis: int
) -> dict:
    out: dict[str, Any] = {
        "psnr": psnr(pred, ref, data_range=data_range, mask=mask),
        "ssim": ssim(pred, ref, data_range=data_range, mask=mask, channel_axis=None),
    }
    per_slice = []
    for k in range(ref.shape[axis]):
        m = np.take(mask, k, axis=axis)
        if not m.any():
            continue
        p, r = np.take(pred, k, axis=axis), np.take(ref, k, axis=axis)
        try:
            slice_ssim = ssim(p, r, data_range=data_range, mask=m, channel_axis=None)
        except ValueError:  # the slice's mask lies only in the SSIM border: undefined
            slice_ssim = float("nan")
        per_slice.append(
            {"slice": k, "psnr": psnr(p, r, data_range=data_range, mask=m), "ssim": slice_ssim}
        )
    out["slices"] = per_slice
    return out


def evaluate_volumes(
    pred: Volume,
    ref: Volume,
    *,
    mask: np.ndarray | None = None,
    lr: Volume | None = None,
    data_range: float | None = None,
    axis: int | None = None,
) -> dict[str, Any]:
    """PSNR (dB) and SSIM, 3D and per slice along ``axis``, inside ``mask``.

    ``axis`` defaults to the low-res volume's coarsest axis, else the last. The result
    holds ``data_range``, ``mask_voxels``, ``model`` scores and, with ``lr``, ``baseline``
    scores and ``gain_db`` / ``gain_ssim``.
    """
    ref = _crop_to(ref, pred)
    if mask is not None:
        mask = np.asarray(mask)[: ref.shape[0], : ref.shape[1], : ref.shape[2]]
    gap = grid_distance(pred, ref)
    if gap > GRID_TOLERANCE_MM:
        raise MedsrError(
            f"prediction grid {pred.shape} does not match the reference {ref.shape}"
            + (f" (off by {gap:.3g} mm)" if math.isfinite(gap) else "")
        )
    ref_data = ref.data.astype(np.float64)
    if mask is None:
        mask = otsu_mask(ref_data)
    mask = mask & np.isfinite(ref_data) & np.isfinite(pred.data)
    if not mask.any():
        raise MedsrError("the foreground mask is empty")
    if data_range is None:
        data_range = float(ref_data[mask].max() - ref_data[mask].min())
    if axis is None:
        axis = int(np.argmax(lr.spacing)) if lr is not None else 2
    result: dict[str, Any] = {
        "data_range": data_range,
        "mask_voxels": int(mask.sum()),
        "slice_axis": axis,
        "model": _scores(np.nan_to_num(pred.data), np.nan_to_num(ref_data), mask, data_range, axis),
    }
    if lr is not None:
        base = baseline_from_lr(lr, ref)
        result["baseline"] = _scores(base, np.nan_to_num(ref_data), mask, data_range, axis)
        result["baseline"]["name"] = "bspline"
        result["gain_db"] = result["model"]["psnr"] - result["baseline"]["psnr"]
        result["gain_ssim"] = result["model"]["ssim"] - result["baseline"]["ssim"]
    return result


def evaluate_files(
    pred_path: str | os.PathLike,
    ref_path: str | os.PathLike,
    *,
    mask_path: str | os.PathLike | None = None,
    lr_path: str | os.PathLike | None = None,
    data_range: float | None = None,
) -> dict[str, Any]:
    """Reads the files and runs :func:`evaluate_volumes`; errors name the file at fault."""
    pred, ref = read_volume(pred_path), read_volume(ref_path)
    mask = None
    if mask_path is not None:
        mask_volume = read_volume(mask_path)
        if mask_volume.shape != ref.shape:
            raise input_error(mask_path, f"mask shape {mask_volume.shape} differs from {ref.shape}")
        mask = np.nan_to_num(mask_volume.data) != 0
    lr = read_volume(lr_path) if lr_path is not None else None
    try:
        result = evaluate_volumes(pred, ref, mask=mask, lr=lr, data_range=data_range)
    except ValueError as exc:
        raise input_error(pred_path, str(exc)) from None
    result["pred"], result["ref"] = str(pred_path), str(ref_path)
    if lr_path is not None:
        result["lr"] = str(lr_path)
    return result


def format_text(result: dict[str, Any]) -> str:
    """A short human summary."""

    def row(name: str, scores: dict) -> str:
        per_slice = [r["psnr"] for r in scores["slices"] if math.isfinite(r["psnr"])]
        spread = (
            f"  per-slice PSNR median {np.median(per_slice):.2f} (min {min(per_slice):.2f})"
            f" over {len(per_slice)} slices"
            if per_slice
            else ""
        )
        return f"{name:9s} PSNR {scores['psnr']:.3f} dB  SSIM {scores['ssim']:.4f}{spread}"

    lines = [
        f"data range {result['data_range']:.6g}, mask {result['mask_voxels']} voxels,"
        f" slices along axis {'xyz'[result['slice_axis']]}",
        row("model", result["model"]),
    ]
    if "baseline" in result:
        lines.append(row("bspline", result["baseline"]))
        lines.append(f"gain      {result['gain_db']:+.3f} dB  {result['gain_ssim']:+.4f} SSIM")
    return "\n".join(lines)


def format_json(result: dict[str, Any]) -> str:
    """The whole result as JSON (inf PSNR written as null)."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(result), indent=2)


def format_csv(result: dict[str, Any]) -> str:
    """CSV rows ``method,scope,psnr,ssim``: ``3d`` then one row per slice."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "scope", "psnr", "ssim"])
    for method in ("model", "baseline"):
        if method not in result:
            continue
        scores = result[method]
        writer.writerow([method, "3d", f"{scores['psnr']:.6f}", f"{scores['ssim']:.6f}"])
        for row in scores["slices"]:
            writer.writerow(
                [method, f"slice_{row['slice']}", f"{row['psnr']:.6f}", f"{row['ssim']:.6f}"]
            )
    return buffer.getvalue()
