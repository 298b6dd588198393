"""Opening rasters with clear errors, describing their bands and masks, copying metadata."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from srkit.common import __version__
from srkit.common.errors import first_line

from .errors import GeosrError

# GDAL block cache capped at 64 MB (rasterio takes bytes: a bare 64 would mean 64 bytes
# and make windowed reads ~100x slower); masks are written inside the TIFF.
COMPRESSION = "DEFLATE"
GDAL_ENV = {"GDAL_CACHEMAX": 64 * 2**20, "GDAL_TIFF_INTERNAL_MASK": True}


class RasterInputError(GeosrError):
    """An input that cannot be read; the message names the file and the problem."""


def open_raster(path: str | os.PathLike):
    """Opens ``path`` with rasterio; a missing, empty or unreadable file raises ``RasterInputError``."""
    path = Path(path)
    if not path.exists():
        raise RasterInputError(f"{path}: no such file")
    if path.is_dir():
        raise RasterInputError(f"{path}: is a folder, not a raster")
    if not path.is_file():
        raise RasterInputError(f"{path}: not a regular file (a FIFO, socket or device)")
    if path.stat().st_size == 0:
        raise RasterInputError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        detail = first_line(exc)
        raise RasterInputError(f"{path}: not a readable raster ({detail})") from None


@contextlib.contextmanager
def read_errors(name: str) -> Iterator[None]:
    """Turns a failed read inside the block (a truncated or corrupt file) into a
    ``RasterInputError`` that names the file and gives GDAL's reason."""
    try:
        yield
    except rasterio.errors.RasterioIOError as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        detail = first_line(cause)
        raise RasterInputError(
            f"{name}: truncated or corrupt raster, a read failed ({detail})"
        ) from None


def parse_bands(text: str | Sequence[int] | None, count: int) -> list[int]:
    """1-based band indices from ``"1,2,3"`` (or a sequence); ``None`` selects all bands.

    Raises:
        ValueError: malformed list, index out of ``1..count`` or repeated.
    """
    if text is None or text == "":
        return list(range(1, count + 1))
    if isinstance(text, str):
        try:
            bands = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise GeosrError(
                f"--bands {text!r}: expected comma-separated band numbers, e.g. 1,2,3"
            ) from None
    else:
        bands = [int(b) for b in text]
    if not bands:
        raise GeosrError("--bands selects no band")
    bad = [b for b in bands if not 1 <= b <= count]
    if bad:
        raise GeosrError(f"--bands {bad}: the raster has bands 1..{count}")
    if len(set(bands)) != len(bands):
        raise GeosrError(f"--bands {bands}: a band is repeated")
    return bands


@dataclass(frozen=True)
class BandLayout:
    """Which selected bands are data, which are alpha, and how invalid pixels are marked.

    ``mask_kind``: ``nodata`` (a nodata value), ``alpha`` (an alpha band), ``mask`` (a GDAL
    per-dataset mask band), ``nan`` (float data, no nodata: NaN marks invalid pixels) or
    ``none`` (integers, every pixel valid).
    """

    bands: tuple[int, ...]
    data_bands: tuple[int, ...]
    alpha_bands: tuple[int, ...]
    mask_kind: str


def band_layout(src, bands: Sequence[int]) -> BandLayout:
    """Classifies the selected ``bands`` of an open dataset (see ``BandLayout``)."""
    interp = src.colorinterp
    # GDAL: a nodata value shadows an alpha band, which is then ordinary data (e.g. the NIR
    # band of some 4-band RGBN files is labelled alpha); said once here, in our words,
    # instead of rasterio's NodataShadowWarning on every masked read
    shadowed = [b for b in bands if interp[b - 1] == ColorInterp.alpha and src.nodata is not None]
    if shadowed:
        warnings.warn(
            f"{Path(str(src.name)).name}: band(s) {shadowed} are labelled alpha, but the "
            f"nodata value {src.nodata:g} decides validity (GDAL's rule); they are enhanced "
            "as data",
            stacklevel=2,
        )
    alpha = tuple(b for b in bands if interp[b - 1] == ColorInterp.alpha and src.nodata is None)
    data = tuple(b for b in bands if b not in alpha)
    flags = src.mask_flag_enums[bands[0] - 1]
    if src.nodata is not None:
        kind = "nodata"
    elif alpha or MaskFlags.alpha in flags:
        kind = "alpha"
    elif MaskFlags.per_dataset in flags:
        kind = "mask"
    elif np.issubdtype(np.dtype(src.dtypes[bands[0] - 1]), np.floating):
        kind = "nan"
    else:
        kind = "none"
    return BandLayout(tuple(bands), data, alpha, kind)


def read_valid(
    src, bands: Sequence[int], window, layout: BandLayout, data: np.ndarray
) -> np.ndarray:
    """Boolean validity ``(len(bands), h, w)`` of ``data`` read from ``window``.

    Uses GDAL's masks (nodata, alpha, mask band) and treats non-finite values (NaN,
    +-Inf) as invalid: an Inf would spread over the model's whole receptive field.
    """
    if layout.mask_kind == "none":
        valid = np.ones(data.shape, dtype=bool)
    else:
        valid = _quiet_read_masks(src, bands, window) > 0
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data)
    return valid


def _quiet_read_masks(src, bands, window):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NodataShadowWarning)
        return src.read_masks(list(bands), window=window)


def valid_ranges(
    src, bands: Sequence[int], layout: BandLayout, name: str, chunk: int = 2**22
) -> list[tuple[float, float]]:
    """Exact per-band ``(min, max)`` of the valid raw values (``read_valid``), from one
    pass over row strips of about ``chunk`` pixels; ``(nan, nan)`` for a band without a
    valid value. Memory: one strip."""
    from rasterio.windows import Window
    from srkit.common.clipping import valid_range

    rows = max(1, chunk // max(1, src.width))
    low = np.full(len(bands), np.inf)
    high = np.full(len(bands), -np.inf)
    for top in range(0, src.height, rows):
        window = Window(0, top, src.width, min(rows, src.height - top))
        with read_errors(name):
            data = src.read(list(bands), window=window)
            valid = read_valid(src, bands, window, layout, data)
        for k in range(len(bands)):
            lo, hi = valid_range(data[k], valid[k])
            if np.isfinite(lo):
                low[k], high[k] = min(low[k], lo), max(high[k], hi)
    return [
        (float(lo), float(hi)) if np.isfinite(lo) else (float("nan"), float("nan"))
        for lo, hi in zip(low, high)
    ]


def block_size(scale: int, preferred: int = 512) -> int:
    """A GTiff block edge (multiple of 16) that is also a multiple of ``scale``.

    Block-aligned output windows then start on whole input pixels.
    """
    unit = 16 * scale // np.gcd(16, scale)
    return max(unit, preferred // unit * unit)


def creation_options(dtype: str, block: int) -> dict:
    """Tiled, compressed (DEFLATE with predictor 2 for integers, 3 for floats), BIGTIFF=IF_SAFER."""
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    return {
        "driver": "GTiff",
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": COMPRESSION,
        "predictor": 3 if floating else 2,
        "BIGTIFF": "IF_SAFER",
    }


def copy_metadata(src, dst, bands: Sequence[int], provenance: dict[str, str] | None = None) -> None:
    """Copies dataset tags, per-band tags, descriptions, colour interpretation, scales,
    offsets, units and colormaps of the selected ``bands`` of ``src`` to ``dst``, and adds
    ``provenance`` as dataset tags."""
    dst.update_tags(**src.tags())
    for i, b in enumerate(bands, start=1):
        tags = src.tags(b)
        if tags:
            dst.update_tags(i, **tags)
        description = src.descriptions[b - 1]
        if description:
            dst.set_band_description(i, description)
        unit = src.units[b - 1]
        if unit:
            dst.set_band_unit(i, unit)
    dst.scales = [src.scales[b - 1] for b in bands]
    dst.offsets = [src.offsets[b - 1] for b in bands]
    dst.colorinterp = [src.colorinterp[b - 1] for b in bands]
    for i, b in enumerate(bands, start=1):
        try:
            colormap = src.colormap(b)
        except ValueError:
            continue
        dst.write_colormap(i, colormap)
    if provenance:
        dst.update_tags(**provenance)


def provenance_tags(model: str, scale: int, note: str = "", **extra: str) -> dict[str, str]:
    """The ``SR_*`` dataset tags geosr adds: model, scale, toolkit version (and extras)."""
    tags = {"SR_MODEL": model, "SR_SCALE": str(scale), "SR_VERSION": __version__}
    if note:
        tags["SR_MODEL_NOTE"] = note
    tags.update({f"SR_{k.upper()}": str(v) for k, v in extra.items()})
    return tags


def estimate_ranges(
    src, bands: Sequence[int], max_side: int = 1024, name: str | None = None
) -> list[tuple[float, float]]:
    """Per-band 0.1 and 99.9 percentiles of valid raw values from a decimated read.

    The read uses overviews when present, else GDAL's nearest decimation, so memory stays
    bounded. A band with no valid pixel gives ``(nan, nan)``.
    """
    factor = max(1, int(np.ceil(max(src.height, src.width) / max_side)))
    shape = (len(bands), max(1, src.height // factor), max(1, src.width // factor))
    name = name or Path(src.name).name
    with read_errors(name), warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NodataShadowWarning)  # see band_layout
        data = src.read(list(bands), out_shape=shape, masked=True).astype(np.float64)
    return [percentile_range(band.compressed()) for band in data]


def percentile_range(values: np.ndarray) -> tuple[float, float]:
    """The 0.1 and 99.9 percentiles of the finite ``values``; ``(nan, nan)`` when none."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [0.1, 99.9])
    return float(low), float(high)
