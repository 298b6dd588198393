"""Post-processing of a finished upscaled raster: reprojection and COG conversion.

Both read a complete temporary GeoTIFF and write another one; ``enhance_raster`` chains
them and renames only the last into place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil

from .errors import GeosrError
from .raster import copy_metadata, creation_options

RGB = ["red", "green", "blue"]


def check_dst_crs(dst_crs: str, src_crs=None, georeferenced: bool = True):
    """``dst_crs`` parsed; refused when it is not a CRS or the input has no CRS or grid."""
    from rasterio.crs import CRS

    try:
        crs = CRS.from_user_input(dst_crs)
    except Exception as exc:  # rasterio raises CRSError with GDAL's text
        raise GeosrError(f"--dst-crs {dst_crs!r}: not a CRS ({exc})") from None
    if src_crs is None or not georeferenced:
        raise GeosrError("--dst-crs needs a georeferenced input (CRS and geotransform)")
    return crs


def reproject_raster(path: Path, dst_crs: str, out_path: Path) -> None:
    """Warps ``path`` to ``dst_crs`` (bilinear) into ``out_path``, keeping validity.

    Pixels outside the source footprint, or invalid in it, become nodata when the raster
    has a nodata value (NaN for floats without one). An integer raster without nodata gets
    an internal GDAL mask band instead (GDAL's ``-dstalpha``, stored as a mask), so zero
    stays a valid value and the warp's empty corners are still masked. Written block by
    block from a ``WarpedVRT``, so memory stays bounded.
    """
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import calculate_default_transform

    with rasterio.open(path) as sr:
        crs = check_dst_crs(dst_crs, sr.crs)
        transform, width, height = calculate_default_transform(
            sr.crs, crs, sr.width, sr.height, *sr.bounds
        )
        dtype = sr.dtypes[0]
        nodata = sr.nodata
        if nodata is None and np.issubdtype(np.dtype(dtype), np.floating):
            nodata = float("nan")
        vrt_options = {
            "crs": crs,
            "transform": transform,
            "width": width,
            "height": height,
            "resampling": Resampling.bilinear,
        }
        if nodata is not None:
            vrt_options["nodata"] = nodata
        else:
            vrt_options["add_alpha"] = True
        opts = creation_options(dtype, sr.block_shapes[0][0])
        profile = dict(opts, width=width, height=height, count=sr.count, dtype=dtype, crs=crs)
        profile["transform"] = transform
        if nodata is not None:
            profile["nodata"] = nodata
        if sr.count == 3 and dtype == "uint8" and [c.name for c in sr.colorinterp] == RGB:
            profile["photometric"] = "RGB"
        with (
            WarpedVRT(sr, **vrt_options) as vrt,
            rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
            rasterio.open(out_path, "w", **profile) as dst,
        ):
            bands = list(range(1, sr.count + 1))
            for _, window in dst.block_windows(1):
                dst.write(vrt.read(bands, window=window), window=window)
                if nodata is None:
                    alpha = vrt.read(sr.count + 1, window=window)
                    dst.write_mask(np.where(alpha > 0, 255, 0).astype(np.uint8), window=window)
            copy_metadata(sr, dst, bands, {"SR_REPROJECTED_FROM": sr.crs.to_string()})


def to_cog(path: Path, out_path: Path, dtype: str) -> None:
    """Copies ``path`` to a Cloud Optimized GeoTIFF (DEFLATE, 512 blocks, overviews)."""
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    rasterio.shutil.copy(
        path,
        out_path,
        driver="COG",
        COMPRESS="DEFLATE",
        PREDICTOR="FLOATING_POINT" if floating else "YES",
        BLOCKSIZE=512,
        BIGTIFF="IF_SAFER",
        OVERVIEW_RESAMPLING="AVERAGE",
    )


def overview_plan(src, scale: int, categorical: bool) -> tuple[list[int], str] | None:
    """The overviews to build on the output of an input with internal overviews.

    Factors: the input's, extended (doubling, or the input's own ratio) until the
    coarsest output level is no larger than the input's coarsest (the output has
    ``scale`` times more pixels per axis). Resampling: ``nearest`` for categorical runs,
    else the input's ``OVR_RESAMPLING_ALG`` / ``OVR_RESAMPLING`` tag, else ``average``.
    ``None`` when the input has no overviews.
    """
    from rasterio.enums import Resampling

    factors = list(src.overviews(1))
    if not factors:
        return None
    ratio = 2
    if len(factors) > 1 and factors[-1] % factors[-2] == 0:
        ratio = max(2, factors[-1] // factors[-2])
    coarsest = factors[-1] * scale
    while factors[-1] < coarsest:
        factors.append(factors[-1] * ratio)
    tags = src.tags()
    method = (tags.get("OVR_RESAMPLING_ALG") or tags.get("OVR_RESAMPLING") or "").lower()
    if categorical:
        method = "nearest"
    elif method not in Resampling.__members__:
        method = "average"
    return factors, method


def build_overviews(path: Path, factors: list[int], method: str) -> None:
    """Builds internal overviews with ``method`` (a ``Resampling`` name) in ``path``
    (before its rename into place) and records them in the ``SR_OVERVIEWS`` tag."""
    from rasterio.enums import Resampling

    with rasterio.open(path, "r+") as dst:
        dst.build_overviews(factors, Resampling[method])
        dst.update_tags(SR_OVERVIEWS=f"{','.join(map(str, factors))} {method}")
