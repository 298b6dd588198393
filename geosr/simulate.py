"""``geosr simulate``: a low-resolution twin of a high-resolution raster, on the contract grid.

The high-resolution raster is cropped (from the right and bottom) to a multiple of the
factor, degraded per band in normalized units (MATLAB-compatible antialiased bicubic, or
a Gaussian MTF), and written with transform ``hr.transform @ Affine.scale(factor)``: the
inverse of the enhance contract, so ``simulate`` then ``enhance`` lands exactly on the
original grid. A low-resolution pixel is invalid when any high-resolution pixel it covers
is invalid. The raster is read whole: meant for chips and scenes that fit in memory.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
from srkit.common import degradation as deg
from srkit.common.io import atomic_output

from .errors import GeosrError
from .georef import check_georeference, output_transform
from .masks import fill_invalid
from .normalize import band_scaling, to_output_dtype
from .outputs import check_output
from .plan import check_scale
from .raster import (
    GDAL_ENV,
    band_layout,
    block_size,
    copy_metadata,
    creation_options,
    open_raster,
    parse_bands,
    provenance_tags,
    read_valid,
)

KERNELS = ("bicubic", "gaussian")


def degrade_array(
    normalized: np.ndarray, factor: int, kernel: str, mtf_at_nyquist: float = 0.3
) -> np.ndarray:
    """Downsamples float ``(C, H, W)`` (H, W multiples of ``factor``) by ``factor``."""
    if kernel == "bicubic":
        return deg.bicubic_downsample(normalized, factor, spatial_dims=2).astype(np.float32)
    if kernel == "gaussian":
        return deg.gaussian_mtf_downsample(
            normalized, factor, mtf_at_nyquist, spatial_dims=2
        ).astype(np.float32)
    raise GeosrError(f"--kernel {kernel!r}: choose from {', '.join(KERNELS)}")


def simulate_raster(
    hr_path: str | os.PathLike,
    lr_path: str | os.PathLike,
    factor: int = 2,
    kernel: str = "bicubic",
    bands: str | None = None,
    mtf_at_nyquist: float = 0.3,
    allow_no_crs: bool = False,
) -> Path:
    """Writes the low-resolution twin of ``hr_path`` to ``lr_path``; returns ``lr_path``.

    Raises:
        RasterInputError, GeoreferenceError, OutputError, ValueError: bad input or
        settings; nothing is written then.
    """
    hr_path, lr_path = Path(hr_path), Path(lr_path)
    factor = check_scale(factor)
    if kernel not in KERNELS:
        raise GeosrError(f"--kernel {kernel!r}: choose from {', '.join(KERNELS)}")
    check_output(hr_path, lr_path, overwrite=True)  # simulate replaces its output
    with rasterio.Env(**GDAL_ENV), open_raster(hr_path) as src:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if allow_no_crs else "default")
            georef = check_georeference(src, hr_path.name, allow_no_crs=allow_no_crs)
        selected = parse_bands(bands, src.count)
        layout = band_layout(src, selected)
        h, w = src.height // factor * factor, src.width // factor * factor
        if h == 0 or w == 0:
            raise GeosrError(
                f"{hr_path.name}: {src.width}x{src.height} is smaller than factor {factor}"
            )
        window = rasterio.windows.Window(0, 0, w, h)
        raw = src.read(selected, window=window)
        valid = read_valid(src, selected, window, layout, raw)
        valid_all = valid.all(axis=0, keepdims=True)
        dtype = src.dtypes[selected[0] - 1]
        scalings = [
            band_scaling(src.dtypes[b - 1], src.scales[b - 1], src.offsets[b - 1]) for b in selected
        ]
        normalized = np.stack([sc.forward(band) for sc, band in zip(scalings, raw)])
        filled = fill_invalid(normalized, valid_all, passes=4 * factor)
        lr = degrade_array(filled, factor, kernel, mtf_at_nyquist)
        lr_valid = valid_all[0].reshape(h // factor, factor, w // factor, factor).all(axis=(1, 3))
        nodata = src.nodata
        fill = (
            nodata
            if nodata is not None
            else (np.nan if np.issubdtype(np.dtype(dtype), np.floating) else 0)
        )
        out = np.stack(
            [to_output_dtype(sc.inverse(b), dtype, lr_valid, nodata) for sc, b in zip(scalings, lr)]
        )
        out[:, ~lr_valid] = fill
        for i, b in enumerate(selected):
            if b in layout.alpha_bands:
                out[i] = np.where(lr_valid, raw[i].max(), 0).astype(dtype)
        profile = creation_options(dtype, block_size(1, 256))
        profile.update(
            width=w // factor,
            height=h // factor,
            count=len(selected),
            dtype=dtype,
            crs=georef.crs,
            transform=output_transform(src.transform, 1.0 / factor),
        )
        if nodata is not None:
            profile["nodata"] = nodata
        tags = provenance_tags("simulate", factor, "", kernel=kernel, input=hr_path.name)
        tags["SR_SCALE"] = f"1/{factor}"
        with (
            atomic_output(lr_path, overwrite=True) as tmp,
            rasterio.open(tmp, "w", **profile) as dst,
        ):
            copy_metadata(src, dst, selected, tags)
            dst.write(out)
            if layout.mask_kind == "mask":
                dst.write_mask(np.where(lr_valid, 255, 0).astype(np.uint8))
    return lr_path
