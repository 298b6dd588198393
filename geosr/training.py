"""The ``geotiff`` reader for ``geosr train``: folders of GeoTIFFs, valid areas only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from .errors import GeosrError
from .normalize import band_scaling
from .raster import GDAL_ENV, band_layout, open_raster, read_valid


def largest_valid_rectangle(valid: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of the largest axis-aligned all-true rectangle of a 2D mask.

    The classic histogram-stack algorithm, O(H * W). An all-false mask gives empty slices.
    """
    h, w = valid.shape
    heights = np.zeros(w, dtype=np.int64)
    best = (0, 0, 0, 0, 0)  # area, row0, row1, col0, col1
    for row in range(h):
        heights = np.where(valid[row], heights + 1, 0)
        stack: list[int] = []
        for col in range(w + 1):
            current = heights[col] if col < w else 0
            while stack and heights[stack[-1]] >= current:
                top = stack.pop()
                height = heights[top]
                left = stack[-1] + 1 if stack else 0
                area = height * (col - left)
                if area > best[0]:
                    best = (int(area), row - int(height) + 1, row + 1, left, col)
            stack.append(col)
    _, r0, r1, c0, c1 = best
    return slice(r0, r1), slice(c0, c1)


def read_geotiff(path: Path) -> np.ndarray:
    """A GeoTIFF as normalized float32 ``(C, H, W)``, cropped to its largest valid rectangle.

    Alpha bands are dropped; nodata, NaN, mask bands and alpha mark invalid pixels, so
    training patches are only drawn from valid areas (the shared runner samples uniformly
    inside the returned array).
    """
    with rasterio.Env(**GDAL_ENV), open_raster(path) as src:
        layout = band_layout(src, list(range(1, src.count + 1)))
        bands = list(layout.data_bands)
        raw = src.read(bands)
        valid = read_valid(src, bands, None, layout, raw).all(axis=0)
        rows, cols = largest_valid_rectangle(valid)
        if rows.stop - rows.start == 0:
            raise GeosrError(f"{path}: no valid pixel to train on")
        scalings = [
            band_scaling(src.dtypes[b - 1], src.scales[b - 1], src.offsets[b - 1]) for b in bands
        ]
        return np.stack([sc.forward(band[rows, cols]) for sc, band in zip(scalings, raw)])


def geotiff_readers() -> dict:
    """Readers that ``geosr train`` adds to the shared runner."""
    return {"geotiff": read_geotiff}
