"""The run plan of ``geosr enhance``: options in, a typed plan out, every refusal up front.

``plan_enhance`` turns ``EnhanceOptions`` and an open dataset into an ``EnhancePlan``
(bands, dtypes, scalings, model). The checks that need no model run first, before any
pixel is read: scale, device, band selection, dtypes, class/index (palette) bands,
complex bands and the output size (``check_output_size``).
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.enums import ColorInterp
from srkit.common.clipping import ClipRule
from srkit.common.resources import check_memory

from .errors import GeosrError
from .models import ModelChoice, default_model, prepare_model
from .normalize import BandScaling, band_scaling, range_warnings
from .raster import BandLayout, band_layout, estimate_ranges, parse_bands, valid_ranges

DEFAULT_WINDOW = 1024  # output pixels per window side (rounded to whole blocks)
# 4e9 output values (width * height * bands): 4 GB of uint8, 16 GB of float32
DEFAULT_MAX_OUTPUT_PIXELS = 4_000_000_000
MAX_PIXELS_ENV = "SRKIT_MAX_OUTPUT_PIXELS"
# DEFLATE output is assumed to take at least raw size / 4 on disk (the disk-space check)
COMPRESSION_ESTIMATE = 4
CATEGORICAL_HINT = (
    "geosr does not interpolate class or index rasters; pass --categorical to upsample it "
    "by nearest neighbour (colour table kept)"
)


@dataclass
class EnhanceOptions:
    """Settings of ``enhance_raster`` (the CLI options, with the same defaults).

    Attributes:
        scale: integer factor >= 2 (1 copies the grid).
        model: model spec (``load_model``); ``None`` picks ``default_model``.
        bands: ``"1,2,3"`` or indices; ``None`` keeps all bands.
        dtype: ``None`` or ``"keep"`` keeps the input dtype (rounded and clipped); or
            ``"float32"``.
        normalize: ``auto``, ``dtype``, ``stats`` or ``none`` (see ``normalize``).
        cog: write a Cloud Optimized GeoTIFF with overviews.
        dst_crs: reproject the result to this CRS (e.g. ``"EPSG:4326"``); ``None`` keeps it.
        tile: input pixels per window and axis, halo included (as for ``upscale``); the
            core (tile minus the halo) is rounded down to whole output blocks. Default:
            from ``window``.
        batch_size: windows per forward pass (default 1); windows share one read shape, so
            the result does not depend on it (within float rounding).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; default CUDA when available.
        window: output window side in pixels, rounded down to whole blocks (at least one).
        block: preferred GTiff block edge (adjusted to a multiple of 16 and of the scale).
        allow_no_crs: upscale rasters without a CRS or geotransform (warning) instead of
            refusing them.
        categorical: the bands hold classes or palette indices: nearest neighbour, raw
            values, colour table kept. Without it such bands are refused.
        max_output_pixels: limit on output width * height * bands; ``None``: the
            ``SRKIT_MAX_OUTPUT_PIXELS`` environment variable, else 4e9.
        progress: tqdm bar over windows.
        overwrite: replace an existing output file (never the input); off, an existing
            output is refused before any work.
        log: called with one line (model and scale) once the output is written.
        clip: ``auto`` (default: each band's valid input range widened by 5 % of its
            span), ``none`` or ``"LO,HI"`` in the band's physical units (GDAL
            scale/offset applied); see ``common.clipping``.
        force: run a trained model whose card domain is not ``rs`` or ``natural``
            (a warning instead of a refusal).
        command: the command line recorded in the ``SR_COMMAND`` tag (``None``: the
            Python API call).
    """

    scale: int = 2
    model: str | None = None
    bands: str | Sequence[int] | None = None
    dtype: str | None = None
    normalize: str = "auto"
    cog: bool = False
    dst_crs: str | None = None
    tile: int | None = None
    batch_size: int | None = None
    device: str | None = None
    window: int = DEFAULT_WINDOW
    block: int = 512
    allow_no_crs: bool = False
    categorical: bool = False
    max_output_pixels: int | None = None
    progress: bool = False
    overwrite: bool = False
    log: Callable[[str], None] | None = None
    clip: str = "auto"
    force: bool = False
    command: str | None = None


@dataclass
class EnhancePlan:
    """The resolved settings of one enhance run (see ``plan_enhance``)."""

    scale: int
    bands: tuple[int, ...]
    data_index: list[int]  # positions of data bands in the output
    alpha_index: list[int]  # positions of alpha bands in the output
    layout: BandLayout
    scalings: list[BandScaling]
    out_dtype: str
    nodata: float | None
    radius: int
    model: object
    per_band: bool
    raw_ranges: list[tuple[float, float]]
    categorical: bool = False
    device: object = None  # the torch.device the model's parameters are on
    clip_bounds: list[tuple[float, float] | None] = field(default_factory=list)  # raw units
    clip_text: str = "none"  # per band, physical units (the SR_CLIP tag)


@dataclass(frozen=True)
class BandSelection:
    """The cheap part of a plan: what is read and written, decided without a model."""

    scale: int
    bands: tuple[int, ...]
    layout: BandLayout
    out_dtype: str
    categorical: bool


def check_scale(scale) -> int:
    """``scale`` as an int >= 1; rejects 0, negatives, fractions and non-numbers."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise GeosrError(f"--scale {scale!r}: not a number; use an integer such as 2") from None
    if not np.isfinite(value) or value != int(value):
        raise GeosrError(f"--scale {scale!r}: must be a whole number such as 2 or 4")
    if value < 1:
        raise GeosrError(f"--scale {scale!r}: must be >= 1")
    return int(value)


def check_device(device: str | None):
    """``device`` as a ``torch.device`` (``None``: CUDA when available, else the CPU).

    Raises:
        GeosrError: not a device name, or a CUDA/MPS device this machine does not have
            (``common.inference.choose_device``'s rule, as a geosr error).
    """
    from srkit.common.inference import TilingError, choose_device

    try:
        return choose_device(device)
    except TilingError as exc:
        raise GeosrError(str(exc)) from None


def _attribute_table_bands(src) -> set[int]:
    """Bands with a GDAL raster attribute table in the dataset's ``.aux.xml`` (PAM)."""
    bands: set[int] = set()
    for name in src.files:
        if not str(name).endswith(".aux.xml"):
            continue
        try:
            root = ET.parse(name).getroot()
        except (OSError, ET.ParseError):
            continue
        for band in root.iter("PAMRasterBand"):
            if band.find("GDALRasterAttributeTable") is not None:
                bands.add(int(band.get("band", "0")))
    return bands


def categorical_reason(src, band: int, attribute_tables: set[int] | None = None) -> str | None:
    """Why ``band`` holds classes or indices (colour table, attribute table), else ``None``."""
    if src.colorinterp[band - 1] == ColorInterp.palette:
        return "has a colour table (palette indices)"
    try:
        src.colormap(band)
    except ValueError:
        pass
    else:
        return "has a colour table (palette indices)"
    if attribute_tables is None:
        attribute_tables = _attribute_table_bands(src)
    if band in attribute_tables:
        return "has a raster attribute table (class values)"
    return None


def select_bands(src, name: str, options: EnhanceOptions) -> BandSelection:
    """Bands, layout and output dtype of a run: the checks that read no pixel.

    Raises:
        GeosrError: bad scale, bands or dtype; only alpha bands; mixed dtypes; complex
            bands; class/index bands without ``categorical``.
    """
    scale = check_scale(options.scale)
    ClipRule.parse(options.clip)  # a bad --clip is refused before any pixel is read
    bands = parse_bands(options.bands, src.count)
    in_dtypes = {src.dtypes[b - 1] for b in bands}
    if any("complex" in dtype for dtype in in_dtypes):
        raise GeosrError(
            f"{name}: complex-valued bands are not supported ({', '.join(sorted(in_dtypes))}); "
            "convert them to amplitude or intensity first"
        )
    layout = band_layout(src, bands)
    if not layout.data_bands:
        raise GeosrError(f"{name}: the selected bands are all alpha bands; nothing to enhance")
    if len(in_dtypes) != 1:
        raise GeosrError(f"{name}: selected bands mix dtypes {sorted(in_dtypes)}")
    in_dtype = in_dtypes.pop()
    if options.dtype not in (None, "keep", "same", in_dtype, "float32"):
        raise GeosrError(f"--dtype {options.dtype!r}: use float32 or keep ({in_dtype})")
    out_dtype = "float32" if options.dtype == "float32" else in_dtype
    if not options.categorical:
        tables = _attribute_table_bands(src)
        for b in layout.data_bands:
            reason = categorical_reason(src, b, tables)
            if reason:
                raise GeosrError(f"{name}: band {b} {reason}; {CATEGORICAL_HINT}")
    elif options.model not in (None, "nearest"):
        raise GeosrError(
            f"--categorical upsamples by nearest neighbour; --model {options.model} "
            "cannot be used with it"
        )
    return BandSelection(scale, tuple(bands), layout, out_dtype, options.categorical)


def max_output_pixels(options: EnhanceOptions) -> int:
    """The output size limit: the option, else ``SRKIT_MAX_OUTPUT_PIXELS``, else 4e9."""
    if options.max_output_pixels is not None:
        return int(options.max_output_pixels)
    text = os.environ.get(MAX_PIXELS_ENV)
    if not text:
        return DEFAULT_MAX_OUTPUT_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise GeosrError(f"{MAX_PIXELS_ENV}={text!r}: not a number of pixels") from None
    if value < 1:
        raise GeosrError(f"{MAX_PIXELS_ENV}={text!r}: must be >= 1")
    return value


def _size_text(n_bytes: float) -> str:
    """``40.0 GB``, ``3.2 MB``, ``12.0 kB`` (decimal units)."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:.1f} {unit}"
    return f"{n_bytes / 1e3:.1f} kB"


def check_output_size(
    name: str,
    shape: tuple[int, int, int],
    dtype: str,
    output: Path | None,
    limit: int,
    copies: int = 1,
) -> None:
    """Refuses an output larger than ``limit`` values, or one the disk cannot hold.

    Args:
        shape: output ``(width, height, bands)``.
        output: the output file (its folder also holds the temporaries); ``None``: an
            in-memory result (``enhance_dataset``), whose memory is checked instead.
        limit: most output values (width * height * bands).
        copies: files of this size that exist at once (1, plus one per post-processing
            step: the COG copy, the reprojected copy).

    The disk estimate assumes DEFLATE gives at least 4:1 (``raw / 4`` per copy): noisy
    float data may compress less, so a nearly full disk can still run out.

    Raises:
        GeosrError: over the limit, or less free space than the estimate.
    """
    width, height, count = shape
    pixels = width * height * count
    raw_bytes = pixels * np.dtype(dtype).itemsize
    if pixels > limit:
        raise GeosrError(
            f"{name}: output would be {width}x{height}x{count} {dtype} ({_size_text(raw_bytes)}"
            f" uncompressed), over the limit of {limit} pixels; raise the limit with "
            f"--max-output-pixels or {MAX_PIXELS_ENV}"
        )
    if output is None:  # the array, plus the in-memory GeoTIFF it is read back from
        check_memory(name, (count, height, width), "the enhanced array",
                     itemsize=np.dtype(dtype).itemsize, copies=2)  # fmt: skip
        return
    needed = raw_bytes * copies / COMPRESSION_ESTIMATE
    free = shutil.disk_usage(output.parent).free
    if needed > free:
        raise GeosrError(
            f"{name}: output {output} would be {width}x{height}x{count} {dtype}, about "
            f"{_size_text(needed)} on disk (uncompressed size / {COMPRESSION_ESTIMATE}), but "
            f"its folder has {_size_text(free)} free; free some space or choose another -o"
        )


def plan_enhance(
    src,
    name: str,
    options: EnhanceOptions,
    messages: list[str],
    selection: BandSelection | None = None,
) -> tuple[EnhancePlan, ModelChoice]:
    """What enhance will do with an open dataset: bands, model, scalings, dtypes.

    Appends range warnings (trained models only; interpolation is linear) to ``messages``.
    ``categorical`` runs use ``nearest`` on raw values (no normalization). ``selection``:
    the ``select_bands`` result when the caller already has it.

    Raises:
        GeosrError: bad scale, bands, dtype or model for this raster (``select_bands``).
    """
    selection = selection or select_bands(src, name, options)
    scale, bands, layout = selection.scale, selection.bands, selection.layout
    data_index = [i for i, b in enumerate(bands) if b in layout.data_bands]
    alpha_index = [i for i, b in enumerate(bands) if b in layout.alpha_bands]
    if selection.categorical:
        choice = ModelChoice("nearest", "--categorical: class/index bands, nearest neighbour")
    elif options.model:
        choice = ModelChoice(options.model, "chosen with --model")
    else:
        choice = default_model(scale, len(layout.data_bands))
    target = check_device(options.device)
    model = prepare_model(
        choice.spec, scale, len(layout.data_bands), name=name, force=options.force,
        messages=messages,
    ).to(target)  # fmt: skip
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else target  # cuda -> cuda:0
    radius = int(max(model.receptive_radius))
    normalize = "none" if selection.categorical else options.normalize

    stats = estimate_ranges(src, layout.data_bands, name=name)
    scalings = [
        band_scaling(
            src.dtypes[b - 1],
            None if selection.categorical else src.scales[b - 1],
            None if selection.categorical else src.offsets[b - 1],
            normalize,
            stats=st,
        )
        for b, st in zip(layout.data_bands, stats)
    ]
    normalized_ranges = [
        (float(sc.forward(np.array(lo))), float(sc.forward(np.array(hi))))
        for sc, (lo, hi) in zip(scalings, stats)
        if np.isfinite(lo)
    ]
    card = model.card
    input_range = tuple(card.input_range)
    names = [f"{name} band {b}" for b, (lo, _) in zip(layout.data_bands, stats) if np.isfinite(lo)]
    if not model.flexible_scale:  # interpolation is linear: any range works
        messages += range_warnings(names, normalized_ranges, input_range, choice.spec)
    bounds, clip_text = clip_plan(src, name, layout, options.clip, selection.categorical)
    plan = EnhancePlan(
        scale=scale,
        bands=bands,
        data_index=data_index,
        alpha_index=alpha_index,
        layout=layout,
        scalings=scalings,
        out_dtype=selection.out_dtype,
        nodata=src.nodata,
        radius=radius,
        model=model,
        per_band=model.channels == 1 and len(layout.data_bands) > 1,
        raw_ranges=stats,
        categorical=selection.categorical,
        device=device,
        clip_bounds=bounds,
        clip_text=clip_text,
    )
    return plan, choice


def clip_plan(
    src, name: str, layout: BandLayout, clip: str | ClipRule | None, categorical: bool
) -> tuple[list[tuple[float, float] | None], str]:
    """Per data band, the ``--clip`` bounds in raw (stored) units, and their text in
    physical units (GDAL scale/offset applied) for the ``SR_CLIP`` tag.

    ``auto`` measures each band's exact valid range (nodata, masks and NaN excluded) in
    one windowed pass over the input; ``categorical`` runs (nearest neighbour cannot
    overshoot) are not clipped.
    """
    rule = ClipRule.parse(clip)
    bands = layout.data_bands
    if categorical or rule.mode == "none":
        text = "none (categorical, nearest neighbour)" if categorical else "none"
        return [None] * len(bands), text
    ranges = valid_ranges(src, bands, layout, name) if rule.mode == "auto" else None
    bounds, texts = [], []
    for k, b in enumerate(bands):
        raw_range = ranges[k] if ranges is not None else (float("nan"), float("nan"))
        physical, raw = band_clip_bounds(
            rule, raw_range, src.scales[b - 1] or 1.0, src.offsets[b - 1] or 0.0
        )
        texts.append(f"b{b}: {rule.describe(physical)}")
        bounds.append(raw)
    return bounds, "; ".join(texts)


def band_clip_bounds(
    rule: ClipRule, raw_range: tuple[float, float], gain: float, shift: float
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """One band's ``--clip`` bounds, ``(physical, raw)``: the rule applies in physical
    units (``raw * gain + shift``, GDAL scale/offset) to the band's valid ``raw_range``
    (NaN when not measured), and the bounds go back to raw (stored) units for the cast."""
    low, high = sorted((raw_range[0] * gain + shift, raw_range[1] * gain + shift))
    physical = rule.bounds(low, high)
    if physical is None:
        return None, None
    raw = sorted(((physical[0] - shift) / gain, (physical[1] - shift) / gain))
    return physical, (float(raw[0]), float(raw[1]))
