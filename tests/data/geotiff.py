"""Generates small seeded GeoTIFF fixtures with a real CRS and affine (the torchgeo way).

Each ``make_*`` function writes one raster and returns its path. Run
``python -m tests.data.geotiff OUT_DIR`` to write them all by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp
from scipy.ndimage import gaussian_filter

UTM = "EPSG:32618"
ORIGIN = (600000.0, 4500000.0)


def field(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """Smooth random texture with edges in [0, 1], float64 ``(count, height, width)``."""
    base = gaussian_filter(rng.random((count, height, width)), sigma=(0, 1.5, 1.5))
    base = (base - base.min()) / max(np.ptp(base), 1e-9)
    yy, xx = np.mgrid[:height, :width]
    edge = (xx + 0.7 * yy > (width + height) / 3).astype(float)
    return np.clip(0.1 + 0.6 * base + 0.25 * edge, 0, 1)


def rotated_transform(pixel: float = 10.0, angle: float = 30.0, shear: float = 0.0) -> Affine:
    """A north-up-breaking grid: origin at ``ORIGIN``, rotated by ``angle`` degrees, sheared."""
    return (
        Affine.translation(*ORIGIN)
        @ Affine.rotation(angle)
        @ Affine.shear(shear, 0)
        @ Affine.scale(pixel, -pixel)
    )


def _write(path: Path, data: np.ndarray, **profile) -> Path:
    count, height, width = data.shape
    base = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype,
    }
    base.update(profile)
    with rasterio.open(path, "w", **base) as dst:
        dst.write(data)
    return path


def make_rich_uint16(out_dir: Path, seed: int = 0) -> Path:
    """Rotated + sheared 3-band uint16 (nodata 0 corner), descriptions, tags, scales, units."""
    rng = np.random.default_rng(seed)
    data = np.round(field(rng, 3, 45, 61) * 9000 + 500).astype(np.uint16)
    data[:, :12, :17] = 0
    path = _write(
        Path(out_dir) / "rich_uint16.tif",
        data,
        crs=UTM,
        transform=rotated_transform(10.0, 30.0, 5.0),
        nodata=0,
    )
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(SENSOR="synthetic", ACQUIRED="2020-01-01")
        for i, name in enumerate(["red", "green", "nir"], start=1):
            dst.set_band_description(i, name)
            dst.update_tags(i, WAVELENGTH=str(600 + 50 * i))
            dst.set_band_unit(i, "reflectance")
        dst.scales = [0.0001, 0.0001, 0.00008]
        dst.offsets = [0.0, -0.01, 0.0]
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.undefined]
    return path


def make_uint8_rgb(out_dir: Path, seed: int = 1, size: tuple[int, int] = (50, 70)) -> Path:
    """North-up 3-band uint8 RGB, nodata 0 on a collar, 30 m pixels."""
    rng = np.random.default_rng(seed)
    h, w = size
    data = np.round(field(rng, 3, h, w) * 254 + 1).astype(np.uint8)
    data[:, :, :5] = 0
    data[:, -3:, :] = 0
    return _write(
        Path(out_dir) / "rgb_uint8.tif",
        data,
        crs=UTM,
        transform=Affine.translation(*ORIGIN) @ Affine.scale(30.0, -30.0),
        nodata=0,
        photometric="RGB",
    )


def make_nan_float32(out_dir: Path, seed: int = 2) -> Path:
    """2-band float32 reflectance with NaN holes, no nodata value, rotated grid."""
    rng = np.random.default_rng(seed)
    data = field(rng, 2, 40, 33).astype(np.float32)
    data[:, 10:16, 8:20] = np.nan
    data[1, 30:, 25:] = np.nan
    return _write(
        Path(out_dir) / "nan_float32.tif", data, crs=UTM, transform=rotated_transform(20.0, -15.0)
    )


def make_int16(out_dir: Path, seed: int = 3) -> Path:
    """1-band int16 (negative values), nodata -9999 in a block."""
    rng = np.random.default_rng(seed)
    data = np.round(field(rng, 1, 37, 29) * 6000 - 1000).astype(np.int16)
    data[:, 20:, :10] = -9999
    return _write(
        Path(out_dir) / "int16.tif",
        data,
        crs="EPSG:4326",
        transform=Affine.translation(10.0, 50.0) @ Affine.scale(0.001, -0.001),
        nodata=-9999,
    )


def make_alpha(out_dir: Path, seed: int = 4) -> Path:
    """RGBA uint8 with an alpha band that hides a triangle."""
    rng = np.random.default_rng(seed)
    rgb = np.round(field(rng, 3, 36, 44) * 255).astype(np.uint8)
    yy, xx = np.mgrid[:36, :44]
    alpha = np.where(xx > yy + 20, 0, 255).astype(np.uint8)
    data = np.concatenate([rgb, alpha[None]])
    path = _write(
        Path(out_dir) / "alpha.tif",
        data,
        crs=UTM,
        transform=Affine.translation(*ORIGIN) @ Affine.scale(2.0, -2.0),
        photometric="RGB",
        alpha="YES",
    )
    return path


def make_mask_band(out_dir: Path, seed: int = 5) -> Path:
    """2-band uint8 with an internal GDAL per-dataset mask band (no nodata value)."""
    rng = np.random.default_rng(seed)
    data = np.round(field(rng, 2, 30, 40) * 255).astype(np.uint8)
    mask = np.full((30, 40), 255, dtype=np.uint8)
    mask[5:12, 20:33] = 0
    path = Path(out_dir) / "mask_band.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        _write(
            path,
            data,
            crs=UTM,
            transform=Affine.translation(*ORIGIN) @ Affine.scale(5.0, -5.0),
        )
        with rasterio.open(path, "r+") as dst:
            dst.write_mask(mask)
    return path


def make_all_nodata_tile(out_dir: Path, seed: int = 6) -> Path:
    """1-band uint8 200x150 whose left 96 columns are nodata 255 (whole output windows)."""
    rng = np.random.default_rng(seed)
    data = np.round(field(rng, 1, 150, 200) * 250).astype(np.uint8)
    data[:, :, :96] = 255
    return _write(
        Path(out_dir) / "all_nodata_tile.tif",
        data,
        crs="EPSG:3857",
        transform=Affine.translation(1e6, 2e6) @ Affine.scale(9.5, -9.5),
        nodata=255,
    )


def make_no_crs(out_dir: Path, seed: int = 7) -> Path:
    """1-band uint8 without CRS (pixel-space transform)."""
    rng = np.random.default_rng(seed)
    data = np.round(field(rng, 1, 20, 24) * 255).astype(np.uint8)
    return _write(Path(out_dir) / "no_crs.tif", data)


def make_gcps(out_dir: Path, seed: int = 8) -> Path:
    """1-band uint8 located by four GCPs instead of an affine transform."""
    rng = np.random.default_rng(seed)
    data = np.round(field(rng, 1, 20, 24) * 255).astype(np.uint8)
    gcps = [
        GroundControlPoint(row=r, col=c, x=ORIGIN[0] + 10 * c, y=ORIGIN[1] - 10 * r)
        for r, c in [(0, 0), (0, 24), (20, 24), (20, 0)]
    ]
    return _write(Path(out_dir) / "gcps.tif", data, gcps=gcps, crs=UTM)


ALL = (
    make_rich_uint16,
    make_uint8_rgb,
    make_nan_float32,
    make_int16,
    make_alpha,
    make_mask_band,
    make_all_nodata_tile,
    make_no_crs,
    make_gcps,
)


def write_all(out_dir: Path) -> dict[str, Path]:
    """Writes every fixture into ``out_dir``; returns ``{stem: path}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {path.stem: path for path in (make(out_dir) for make in ALL)}


if __name__ == "__main__":
    for stem, path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else ".")).items():
        print(stem, path)


def make_demo_raster(path: Path) -> Path:
    """The ``make demo`` raster (examples/demo.py): a generated 3-band uint8 raster (EPSG:32618, 10 m pixels, nodata 0 in one corner)."""
    import rasterio
    from rasterio.transform import from_origin
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[:300, :400].astype(np.float32)
    rng = np.random.default_rng(0)
    texture = gaussian_filter(rng.random((300, 400)), 1.5)  # field-like fine texture
    texture = (texture - texture.min()) / np.ptp(texture)
    bands = [
        40 + 170 * texture + 30 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
        128 + 100 * np.tanh((xx - 2 * yy + 100) / 3.0),
        40 + 200 * ((xx // 40 + yy // 40) % 2),
    ]
    data = np.clip(np.stack(bands), 1, 255).astype(np.uint8)
    data[:, :60, :80] = 0  # nodata corner
    profile = dict(
        driver="GTiff",
        width=400,
        height=300,
        count=3,
        dtype="uint8",
        nodata=0,
        crs="EPSG:32618",
        transform=from_origin(500000.0, 4500000.0, 10.0, 10.0),
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(
            DESCRIPTION="synthetic demo raster generated by examples/demo.py (not real imagery)"
        )
    return path
