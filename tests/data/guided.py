"""Seeded multi-resolution fixtures for ``geosr sharpen``: guides on a fine grid and
coarse bands on a nested grid, with the fine-resolution truth of the coarse bands.

``make_guided_scene`` writes ``guide.tif`` (``K`` bands, fine grid) and ``coarse.tif``
(the truth degraded by ``ratio`` with ``geosr.guided.degrade``, i.e. the Gaussian MTF that
``geosr sharpen`` assumes), and returns their paths with the truth.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from srkit.geosr.guided import degrade

from tests.data.geotiff import ORIGIN, UTM, field

PIXEL = 10.0


@dataclass(frozen=True)
class GuidedScene:
    """Paths of a generated scene, the truth ``(C, H, W)`` and the guides ``(K, H, W)``."""

    coarse: Path
    guide: Path
    truth: np.ndarray
    guides: np.ndarray
    ratio: int
    guide_transform: Affine


def guide_bands(seed: int, count: int, height: int, width: int) -> np.ndarray:
    """Smooth textured guides in [0.1, 0.95] (float32)."""
    return field(np.random.default_rng(seed), count, height, width).astype(np.float32)


def linear_band(guides: np.ndarray) -> np.ndarray:
    """A band that is an exact linear mix of the (three) guides."""
    return (0.2 + 0.5 * guides[0] - 0.3 * guides[1] + 0.6 * guides[2])[None].astype(np.float32)


def nonlinear_band(guides: np.ndarray) -> np.ndarray:
    """A band with a strongly nonlinear relation to the guides (a product and a switch)."""
    switch = np.where(guides[2] > 0.5, guides[0], guides[1])
    return (0.1 + 0.8 * guides[0] * guides[1] + 0.4 * switch)[None].astype(np.float32)


def make_guided_scene(
    out_dir: Path,
    *,
    ratio: int = 2,
    coarse_size: tuple[int, int] = (24, 32),
    relation: str = "linear",
    offset: tuple[float, float] = (0.0, 0.0),
    guide_crs: str = UTM,
    coarse_crs: str = UTM,
    pixel_ratio: float | None = None,
    coarse_nodata: float | None = None,
    nodata_box: tuple[slice, slice] | None = None,
    dtype: str = "float32",
    seed: int = 0,
) -> GuidedScene:
    """Writes the scene (see the module docstring); returns it.

    Args:
        ratio: coarse pixel size in guide pixels (the truth is degraded by it).
        coarse_size: coarse rows and columns; the guide grid is ``ratio`` times that.
        relation: ``"linear"`` or ``"nonlinear"`` (how the coarse band follows the guides).
        offset: the coarse origin's offset from the guide origin, in guide pixels (x, y);
            the guide raster grows by ``ceil(offset)`` so the coarse footprint stays inside.
        pixel_ratio: written coarse pixel size in guide pixels, when it must differ from
            ``ratio`` (a non-integer ratio fixture).
        coarse_nodata, nodata_box: nodata value and a coarse-pixel box set to it.
        dtype: of the coarse raster (``uint16`` scales by 10000).
    """
    out_dir = Path(out_dir)
    h, w = coarse_size
    ox, oy = offset
    extra_x, extra_y = int(np.ceil(ox)), int(np.ceil(oy))
    gh, gw = h * ratio + extra_y, w * ratio + extra_x
    guides = guide_bands(seed, 3, gh, gw)
    band = linear_band(guides) if relation == "linear" else nonlinear_band(guides)
    rows = slice(extra_y, extra_y + h * ratio)
    cols = slice(extra_x, extra_x + w * ratio)
    truth = band[:, rows, cols]
    coarse = degrade(truth, ratio)
    guide_transform = Affine.translation(*ORIGIN) @ Affine.scale(PIXEL, -PIXEL)
    size = PIXEL * (pixel_ratio or ratio)
    coarse_transform = (
        guide_transform @ Affine.translation(ox, oy) @ Affine.scale(size / PIXEL, size / PIXEL)
    )
    if dtype == "uint16":
        coarse = np.round(coarse * 10000).astype(np.uint16)
    else:
        coarse = coarse.astype(dtype)
    if nodata_box is not None:
        coarse[(slice(None), *nodata_box)] = coarse_nodata
    guide_path = out_dir / "guide.tif"
    with rasterio.open(
        guide_path, "w", driver="GTiff", width=gw, height=gh, count=3, dtype="float32",
        crs=guide_crs, transform=guide_transform,
    ) as dst:  # fmt: skip
        dst.write(guides)
        for i, name in enumerate(("blue", "green", "red"), start=1):
            dst.set_band_description(i, name)
    coarse_path = out_dir / "coarse.tif"
    profile = {"nodata": coarse_nodata} if coarse_nodata is not None else {}
    with rasterio.open(
        coarse_path, "w", driver="GTiff", width=w, height=h, count=1, dtype=dtype,
        crs=coarse_crs, transform=coarse_transform, **profile,
    ) as dst:  # fmt: skip
        dst.write(coarse)
        dst.set_band_description(1, "swir")
        dst.update_tags(1, WAVELENGTH="1610")
        dst.update_tags(SENSOR="synthetic")
    return GuidedScene(coarse_path, guide_path, truth, guides, ratio, guide_transform)


if __name__ == "__main__":
    make_guided_scene(Path(sys.argv[1] if len(sys.argv) > 1 else "."))


def make_landsat_folder(out_dir: Path, size: int = 24, seed: int = 0) -> Path:
    """A Landsat-collection-like folder: ``LC08_..._B1.TIF`` ... ``_B7.TIF`` (30 m, uint16)
    and ``_B8.TIF`` (15 m pan), the pan grid half a pan pixel up-left of the MS grid as in
    real Landsat products. Returns the folder."""
    folder = Path(out_dir) / "LC08_L1TP_016037_20230101_20230110_02_T1"
    folder.mkdir(parents=True)
    pan = guide_bands(seed, 1, 2 * size, 2 * size)
    ms_transform = Affine.translation(*ORIGIN) @ Affine.scale(30.0, -30.0)
    pan_transform = Affine.translation(ORIGIN[0] - 7.5, ORIGIN[1] + 7.5) @ Affine.scale(15.0, -15.0)
    for band in range(1, 9):
        if band == 8:
            data, transform = pan, pan_transform
        else:
            data, transform = degrade(pan * (0.5 + 0.1 * band), 2), ms_transform
        dn = np.round(data * 20000 + 5000).astype(np.uint16)
        with rasterio.open(
            folder / f"{folder.name}_B{band}.TIF", "w", driver="GTiff", width=dn.shape[2],
            height=dn.shape[1], count=1, dtype="uint16", crs=UTM, transform=transform,
        ) as dst:  # fmt: skip
            dst.write(dn)
    return folder
