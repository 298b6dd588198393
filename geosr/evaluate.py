"""``geosr evaluate``: per-band PSNR/SSIM, SAM and ERGAS of a prediction against a reference.

Both rasters must share the grid (CRS, transform, size, band count). Metrics run on the
pixels valid in both, in the reference's normalized units (``normalize.band_scaling``), with
an explicit data range (default 1.0 normalized, i.e. 255 for uint8 or 10000 for uint16
reflectance) that is always reported. With ``lr``, the bicubic upscaling of the
low-resolution input is scored the same way and the gain over it is reported.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import rasterio
from srkit.common import metrics, upscale

from .errors import GeosrError
from .georef import output_transform
from .masks import fill_invalid
from .normalize import band_scaling
from .raster import GDAL_ENV, band_layout, open_raster, read_valid


def _read(path: Path):
    with rasterio.Env(**GDAL_ENV), open_raster(path) as src:
        bands = list(range(1, src.count + 1))
        layout = band_layout(src, bands)
        data_bands = list(layout.data_bands)
        raw = src.read(data_bands)
        valid = read_valid(src, data_bands, None, layout, raw)
        scalings = [
            band_scaling(src.dtypes[b - 1], src.scales[b - 1], src.offsets[b - 1])
            for b in data_bands
        ]
        grid = (src.crs, src.transform, src.width, src.height)
        return raw, valid, scalings, grid


def _check_grid(a, b, name_a: str, name_b: str) -> None:
    if (a[2], a[3]) != (b[2], b[3]):
        raise GeosrError(
            f"{name_a} is {a[2]}x{a[3]} but {name_b} is {b[2]}x{b[3]}; they must share the grid"
        )
    if a[0] != b[0]:
        raise GeosrError(f"{name_a} and {name_b} have different CRS ({a[0]} vs {b[0]})")
    if not a[1].almost_equals(b[1], precision=1e-6 * max(abs(b[1].a), abs(b[1].e), 1e-12)):
        raise GeosrError(f"{name_a} and {name_b} have different transforms ({a[1]!r} vs {b[1]!r})")


def _scores(
    pred: np.ndarray, ref: np.ndarray, mask: np.ndarray, data_range: float, scale: float
) -> dict:
    bands = []
    for k in range(ref.shape[0]):
        bands.append(
            {
                "band": k + 1,
                "psnr": metrics.psnr(pred[k], ref[k], data_range=data_range, mask=mask),
                "ssim": metrics.ssim(
                    pred[k], ref[k], data_range=data_range, mask=mask, channel_axis=None
                ),
            }
        )
    out = {
        "bands": bands,
        "psnr": float(np.mean([b["psnr"] for b in bands])),
        "ssim": float(np.mean([b["ssim"] for b in bands])),
        "sam_deg": metrics.sam(pred, ref, mask=mask) if ref.shape[0] >= 2 else None,
        "ergas": metrics.ergas(pred, ref, scale=scale, mask=mask),
    }
    return out


def evaluate_rasters(
    pred_path: str | os.PathLike,
    ref_path: str | os.PathLike,
    lr_path: str | os.PathLike | None = None,
    data_range: float = 1.0,
    scale: float | None = None,
) -> dict:
    """Scores ``pred`` against ``ref`` (and the bicubic baseline from ``lr``).

    Args:
        data_range: peak-to-peak range for PSNR/SSIM in normalized units (1.0 = the
            reference's full normalized range).
        scale: the SR factor for ERGAS; default from ``lr`` (ref width / lr width), else
            the prediction's ``SR_SCALE`` tag, else 1.

    Returns:
        a JSON-ready dict: ``model`` scores, and with ``lr`` also ``baseline`` and ``gain_db``.
    """
    pred_path, ref_path = Path(pred_path), Path(ref_path)
    pred_raw, pred_valid, _, pred_grid = _read(pred_path)
    ref_raw, ref_valid, scalings, ref_grid = _read(ref_path)
    _check_grid(pred_grid, ref_grid, pred_path.name, ref_path.name)
    if pred_raw.shape[0] != ref_raw.shape[0]:
        raise GeosrError(
            f"{pred_path.name} has {pred_raw.shape[0]} bands, {ref_path.name} {ref_raw.shape[0]}"
        )
    pred = np.stack([sc.forward(b) for sc, b in zip(scalings, pred_raw)])
    ref = np.stack([sc.forward(b) for sc, b in zip(scalings, ref_raw)])
    mask = (pred_valid & ref_valid).all(axis=0)
    if not mask.any():
        raise GeosrError(f"{pred_path.name} and {ref_path.name} have no valid pixel in common")
    if scale is None:
        with open_raster(pred_path) as src:
            tag = src.tags().get("SR_SCALE", "1")
        scale = float(tag) if tag.replace(".", "", 1).isdigit() else 1.0
    result: dict = {
        "pred": pred_path.name,
        "ref": ref_path.name,
        "data_range": data_range,
        "normalization": [sc.source for sc in scalings],
        "valid_pixels": int(mask.sum()),
    }
    if lr_path is not None:
        lr_path = Path(lr_path)
        lr_raw, lr_valid, _, lr_grid = _read(lr_path)
        factor = ref_grid[2] / lr_grid[2]
        if factor != int(factor) or ref_grid[3] != lr_grid[3] * int(factor):
            raise GeosrError(
                f"{ref_path.name} ({ref_grid[2]}x{ref_grid[3]}) is not an integer multiple of "
                f"{lr_path.name} ({lr_grid[2]}x{lr_grid[3]})"
            )
        scale = int(factor)
        expected = output_transform(lr_grid[1], scale)
        if lr_grid[0] != ref_grid[0] or not expected.almost_equals(
            ref_grid[1], precision=1e-9 * max(abs(ref_grid[1].a), 1e-12)
        ):
            raise GeosrError(
                f"{lr_path.name} upscaled x{scale} does not land on {ref_path.name}'s grid "
                f"({expected!r} vs {ref_grid[1]!r})"
            )
        lr = np.stack([sc.forward(b) for sc, b in zip(scalings, lr_raw)])
        lr = fill_invalid(lr, lr_valid, passes=4)
        baseline = upscale("bicubic", lr, scale=scale)
        lr_mask = np.repeat(np.repeat(lr_valid.all(axis=0), scale, 0), scale, 1)
        mask &= lr_mask
        result["model"] = _scores(pred, ref, mask, data_range, scale)
        result["baseline"] = _scores(baseline, ref, mask, data_range, scale)
        result["baseline"]["name"] = "bicubic"
        result["gain_db"] = result["model"]["psnr"] - result["baseline"]["psnr"]
    else:
        result["model"] = _scores(pred, ref, mask, data_range, scale)
    result["scale"] = scale
    return result


def format_table(result: dict) -> str:
    """Human-readable lines of an ``evaluate_rasters`` result."""
    lines = [
        f"{result['pred']} vs {result['ref']}: data range {result['data_range']:g} (normalized: "
        f"{', '.join(result['normalization'])}), {result['valid_pixels']} valid pixels, scale {result['scale']}"
    ]
    for key in ("model", "baseline"):
        if key not in result:
            continue
        r = result[key]
        label = "bicubic" if key == "baseline" else "prediction"
        per_band = "  ".join(
            f"b{b['band']} {b['psnr']:.2f} dB / {b['ssim']:.4f}" for b in r["bands"]
        )
        sam = f"{r['sam_deg']:.3f} deg" if r["sam_deg"] is not None else "n/a"
        lines.append(
            f"{label:10s} PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.4f}  SAM {sam}  ERGAS {r['ergas']:.3f}  [{per_band}]"
        )
    if "gain_db" in result:
        lines.append(f"gain over bicubic: {result['gain_db']:+.2f} dB")
    return "\n".join(lines)


def format_csv(result: dict) -> str:
    """CSV rows ``method,band,psnr,ssim,sam_deg,ergas,data_range`` (band ``all`` = mean)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "band", "psnr", "ssim", "sam_deg", "ergas", "data_range"])
    for key in ("model", "baseline"):
        if key not in result:
            continue
        r = result[key]
        method = "bicubic" if key == "baseline" else "prediction"
        for b in r["bands"]:
            writer.writerow(
                [
                    method,
                    b["band"],
                    f"{b['psnr']:.6f}",
                    f"{b['ssim']:.6f}",
                    "",
                    "",
                    result["data_range"],
                ]
            )
        sam = "" if r["sam_deg"] is None else f"{r['sam_deg']:.6f}"
        writer.writerow(
            [
                method,
                "all",
                f"{r['psnr']:.6f}",
                f"{r['ssim']:.6f}",
                sam,
                f"{r['ergas']:.6f}",
                result["data_range"],
            ]
        )
    return buffer.getvalue()


def format_json(result: dict) -> str:
    """The result as indented JSON."""
    return json.dumps(result, indent=2)
