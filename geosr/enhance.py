"""Streaming super-resolution of a raster: block-aligned windows, exact halos, metadata kept.

The output is cut into windows aligned to its GTiff blocks (the block edge is a multiple
of 16 and of the scale, so a window starts on a whole input pixel). For each window:

1. read its input core plus a halo of ``2 r`` pixels (``r``: the model's receptive radius),
   clamped at the raster edge, where a whole-raster run sees the same boundary padding;
2. if every pixel of the core is invalid, write nodata without running the model;
3. normalize per band, fill invalid pixels with ``masks.fill_invalid`` (``r`` passes),
4. run ``common.upscale`` (itself tiled and exact), crop the core, denormalize, round and
   clip to the output dtype, and write nodata where the nearest-upsampled input mask is
   invalid; alpha bands are upsampled with nearest neighbour;
5. write the window: every block is written exactly once.

Every input pixel within ``r`` of a window's core then has the value it has in a
whole-raster run (the fill reaches ``r`` pixels and sees ``r`` more), so the output is
identical to whole-raster processing whatever the window and tile sizes. Peak memory
depends on the window, tile and batch sizes, never on the raster size (GDAL's block cache
is capped at 64 MB).

The result is written to a temporary file in the output folder and moved into place only
when complete: a failure leaves no partial output. ``--cog`` converts it with GDAL's COG
driver (overviews included); ``dst_crs`` reprojects it with rasterio's warper.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from common import upscale
from common.errors import OutputError

from .georef import check_georeference, output_shape, output_transform
from .masks import fill_invalid, upsample_nearest
from .models import ModelChoice, default_model, prepare_model
from .normalize import BandScaling, band_scaling, range_warnings, to_output_dtype
from .raster import (
    GDAL_ENV,
    band_layout,
    block_size,
    copy_metadata,
    creation_options,
    estimate_ranges,
    open_raster,
    parse_bands,
    provenance_tags,
    read_valid,
)

DEFAULT_WINDOW = 1024  # output pixels per window side (rounded to whole blocks)


@dataclass
class EnhanceOptions:
    """Settings of ``enhance_raster`` (the CLI options, with the same defaults).

    Attributes:
        scale: integer factor >= 2 (1 copies the grid).
        model: model spec (``load_model``); ``None`` picks ``default_model``.
        bands: ``"1,2,3"`` or indices; ``None`` keeps all bands.
        dtype: ``None`` keeps the input dtype (rounded and clipped); or ``"float32"``.
        normalize: ``auto``, ``dtype``, ``stats`` or ``none`` (see ``normalize``).
        cog: write a Cloud Optimized GeoTIFF with overviews.
        dst_crs: reproject the result to this CRS (e.g. ``"EPSG:4326"``); ``None`` keeps it.
        tile: input pixels per forward pass and axis (halo excluded); sets the window to
            ``tile * scale`` output pixels. Default: ``window``.
        batch_size, device: passed to ``common.upscale``.
        window: output window side in pixels, rounded down to whole blocks (at least one).
        block: preferred GTiff block edge (adjusted to a multiple of 16 and of the scale).
        allow_no_crs: upscale rasters without a CRS (warning) instead of refusing.
        progress: tqdm bar over windows.
        overwrite: replace an existing output file (never the input).
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
    progress: bool = False
    overwrite: bool = True
    log: Callable[[str], None] | None = None


@dataclass
class EnhanceResult:
    """What ``enhance_raster`` did."""

    output: Path
    model: str
    model_reason: str
    windows: int
    skipped_windows: int
    warnings: list[str] = field(default_factory=list)


def check_scale(scale) -> int:
    """``scale`` as an int >= 1; rejects 0, negatives, fractions and non-numbers."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"--scale {scale!r}: not a number; use an integer such as 2") from None
    if not np.isfinite(value) or value != int(value):
        raise ValueError(f"--scale {scale!r}: must be a whole number such as 2 or 4")
    if value < 1:
        raise ValueError(f"--scale {scale!r}: must be >= 1")
    return int(value)


def default_output(input_path: Path, scale: int) -> Path:
    """``<stem>_sr_x<scale>.tif`` next to the input."""
    return input_path.with_name(f"{input_path.stem}_sr_x{scale}.tif")


def batch_targets(
    files: Sequence[Path], output: str | os.PathLike | None, scale: int
) -> list[Path]:
    """Output paths of a batch: ``<stem>_sr_x<s>.tif`` in ``output`` (created) or beside each input.

    Raises:
        OutputError: ``output`` is a file, two inputs map to one output, or an output
            would replace one of the inputs.
    """
    if output is not None:
        folder = Path(output)
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder}: several inputs need an output folder, not a file")
        if not folder.parent.is_dir():
            raise OutputError(f"{folder}: parent folder {folder.parent} does not exist")
        folder.mkdir(exist_ok=True)
        targets = [folder / default_output(path, scale).name for path in files]
    else:
        targets = [default_output(path, scale) for path in files]
    seen: dict[Path, Path] = {}
    inputs = {path.resolve() for path in files}
    for path, target in zip(files, targets):
        key = target.resolve()
        if key in seen:
            raise OutputError(f"{path} and {seen[key]} would both be written to {target}")
        if key in inputs:
            raise OutputError(f"{target}: is also an input of this batch; choose another -o")
        seen[key] = path
    return targets


def check_output(input_path: Path, output: Path, overwrite: bool = True) -> None:
    """Refuses an output equal to the input, in a missing or unwritable folder."""
    same = output.resolve() == input_path.resolve()
    if not same and output.exists() and input_path.exists():
        same = os.path.samefile(output, input_path)  # hard links
    if same:
        raise OutputError(f"{output}: output is the input file; choose another -o")
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give a file name")
    folder = output.parent
    if not folder.is_dir():
        raise OutputError(f"{output}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: folder {folder} is not writable")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: exists; pass --overwrite to replace it")


@contextlib.contextmanager
def temporary_path(final: Path, suffix: str = ".tif") -> Iterator[Path]:
    """A temporary file path in ``final``'s folder, removed on exit unless it was moved."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix, dir=final.parent)
    except OSError as exc:
        raise OutputError(f"{final}: cannot write in {final.parent} ({exc.strerror})") from None
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        for leftover in (
            path,
            path.with_name(path.name + ".aux.xml"),
            path.with_name(path.name + ".msk"),
        ):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def move_into_place(temporary: Path, output: Path) -> None:
    """Renames a finished temporary raster (and any GDAL ``.aux.xml`` side-car) to ``output``."""
    side_car = temporary.with_name(temporary.name + ".aux.xml")
    if side_car.exists():
        os.replace(side_car, output.with_name(output.name + ".aux.xml"))
    os.replace(temporary, output)


def window_step(scale: int, block: int, options: EnhanceOptions) -> int:
    """Output window side: ``tile * scale`` or ``window``, rounded down to whole blocks (>= 1)."""
    wanted = options.tile * scale if options.tile else options.window
    return max(block, wanted // block * block)


def iter_windows(height: int, width: int, step: int) -> Iterator[Window]:
    """Row-major output windows of ``step`` pixels (smaller at the right and bottom edges)."""
    for row in range(0, height, step):
        for col in range(0, width, step):
            yield Window(col, row, min(step, width - col), min(step, height - row))


@dataclass
class EnhancePlan:
    """The resolved settings of one enhance run (see ``plan_enhance``)."""

    scale: int
    bands: tuple[int, ...]
    data_index: list[int]  # positions of data bands in the output
    alpha_index: list[int]  # positions of alpha bands in the output
    layout: object
    scalings: list[BandScaling]
    out_dtype: str
    nodata: float | None
    radius: int
    model: object
    per_band: bool
    raw_ranges: list[tuple[float, float]]


def _fill_value(dtype: str, nodata: float | None) -> float:
    if nodata is not None:
        return nodata
    return float("nan") if np.issubdtype(np.dtype(dtype), np.floating) else 0


def _process_window(
    src, plan: EnhancePlan, out_window: Window, options: EnhanceOptions
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Output data ``(bands, h, w)`` and validity ``(h, w)`` of one output window."""
    s = plan.scale
    core_row, core_col = out_window.row_off // s, out_window.col_off // s
    core_h, core_w = out_window.height // s, out_window.width // s
    halo = 2 * plan.radius
    row0, col0 = max(0, core_row - halo), max(0, core_col - halo)
    row1 = min(src.height, core_row + core_h + halo)
    col1 = min(src.width, core_col + core_w + halo)
    read_window = Window(col0, row0, col1 - col0, row1 - row0)
    core = (
        slice(None),
        slice(core_row - row0, core_row - row0 + core_h),
        slice(core_col - col0, core_col - col0 + core_w),
    )

    n_out = len(plan.bands)
    out = np.empty((n_out, out_window.height, out_window.width), dtype=plan.out_dtype)
    data_bands = [plan.bands[i] for i in plan.data_index]
    raw = src.read(data_bands, window=read_window)
    valid = read_valid(src, data_bands, read_window, plan.layout, raw)
    valid_core_up = upsample_nearest(valid[core], s)
    fill = _fill_value(plan.out_dtype, plan.nodata)
    ran_model = bool(valid[core].any())
    if ran_model:
        normalized = np.stack([sc.forward(band) for sc, band in zip(plan.scalings, raw)])
        filled = fill_invalid(normalized, valid, passes=plan.radius)
        # one forward pass per window: geosr's halo makes windows exact, and a single pass
        # keeps them bit-identical (sub-tiles averaged by MONAI can differ by 1 ulp)
        kwargs = {
            "tile": filled.shape[1:],
            "device": options.device,
            "batch_size": options.batch_size,
        }
        if plan.per_band:
            sr = np.concatenate([upscale(plan.model, band[None], **kwargs) for band in filled])
        else:
            sr = upscale(plan.model, filled, **kwargs)
        ry, rx = core[1], core[2]
        sr = sr[:, ry.start * s : ry.stop * s, rx.start * s : rx.stop * s]
        for k, (i, sc) in enumerate(zip(plan.data_index, plan.scalings)):
            values = to_output_dtype(
                sc.inverse(sr[k]), plan.out_dtype, valid_core_up[k], plan.nodata
            )
            values[~valid_core_up[k]] = fill
            out[i] = values
    else:
        for i in plan.data_index:
            out[i] = fill
    if plan.alpha_index:
        alpha_bands = [plan.bands[i] for i in plan.alpha_index]
        alpha = src.read(alpha_bands, window=read_window)[core]
        for k, i in enumerate(plan.alpha_index):
            out[i] = upsample_nearest(alpha[k], s).astype(plan.out_dtype)
    return out, valid_core_up.all(axis=0), ran_model


def plan_enhance(
    src, name: str, options: EnhanceOptions, messages: list[str]
) -> tuple[EnhancePlan, ModelChoice]:
    """What enhance will do with an open dataset: bands, model, scalings, dtypes.

    Appends range warnings (trained models only; interpolation is linear) to ``messages``.

    Raises:
        ValueError: bad scale, bands, dtype or model for this raster.
    """
    scale = check_scale(options.scale)
    bands = parse_bands(options.bands, src.count)
    layout = band_layout(src, bands)
    if not layout.data_bands:
        raise ValueError(f"{name}: the selected bands are all alpha bands; nothing to enhance")
    data_index = [i for i, b in enumerate(bands) if b in layout.data_bands]
    alpha_index = [i for i, b in enumerate(bands) if b in layout.alpha_bands]
    in_dtypes = {src.dtypes[b - 1] for b in bands}
    if len(in_dtypes) != 1:
        raise ValueError(f"{name}: selected bands mix dtypes {sorted(in_dtypes)}")
    in_dtype = in_dtypes.pop()
    if options.dtype not in (None, "same", in_dtype, "float32"):
        raise ValueError(f"--dtype {options.dtype!r}: use float32 (or omit it to keep {in_dtype})")
    out_dtype = "float32" if options.dtype == "float32" else in_dtype

    choice = (
        ModelChoice(options.model, "chosen with --model")
        if options.model
        else default_model(scale, len(layout.data_bands))
    )
    model = prepare_model(choice.spec, scale, len(layout.data_bands))
    radius = int(max(model.receptive_radius))

    stats = estimate_ranges(src, layout.data_bands)
    scalings = [
        band_scaling(
            src.dtypes[b - 1], src.scales[b - 1], src.offsets[b - 1], options.normalize, stats=st
        )
        for b, st in zip(layout.data_bands, stats)
    ]
    normalized_ranges = [
        (float(sc.forward(np.array(lo))), float(sc.forward(np.array(hi))))
        for sc, (lo, hi) in zip(scalings, stats)
        if np.isfinite(lo)
    ]
    card = model.card
    input_range = tuple(card.input_range) if card is not None else (0.0, 1.0)
    names = [f"{name} band {b}" for b, (lo, _) in zip(layout.data_bands, stats) if np.isfinite(lo)]
    if not model.flexible_scale:  # interpolation is linear: any range works
        messages += range_warnings(names, normalized_ranges, input_range, choice.spec)
    plan = EnhancePlan(
        scale=scale,
        bands=tuple(bands),
        data_index=data_index,
        alpha_index=alpha_index,
        layout=layout,
        scalings=scalings,
        out_dtype=out_dtype,
        nodata=src.nodata,
        radius=radius,
        model=model,
        per_band=model.channels == 1 and len(layout.data_bands) > 1,
        raw_ranges=stats,
    )
    return plan, choice


def _write_sr(
    src,
    plan: EnhancePlan,
    choice: ModelChoice,
    path: Path,
    options: EnhanceOptions,
    allow_no_crs: bool,
) -> tuple[int, int]:
    georef = check_georeference(src, Path(src.name).name, allow_no_crs=allow_no_crs)
    s = plan.scale
    height, width = output_shape(src.height, src.width, s)
    block = block_size(s, options.block)
    step = window_step(s, block, options)
    profile = creation_options(plan.out_dtype, block)
    profile.update(
        width=width,
        height=height,
        count=len(plan.bands),
        dtype=plan.out_dtype,
        crs=georef.crs,
        transform=output_transform(src.transform, s),
    )
    if plan.nodata is not None:
        profile["nodata"] = plan.nodata
    if profile["count"] == 3 and plan.out_dtype == "uint8":
        profile["photometric"] = "RGB" if not plan.alpha_index else "MINISBLACK"
    normalization = "; ".join(
        f"b{plan.bands[i]}: {sc.source}" for i, sc in zip(plan.data_index, plan.scalings)
    )
    tags = provenance_tags(
        choice.spec, s, choice.reason, input=Path(src.name).name, normalization=normalization
    )
    windows = list(iter_windows(height, width, step))
    skipped = 0
    write_mask = plan.layout.mask_kind == "mask"
    from tqdm import tqdm

    with rasterio.open(path, "w", **profile) as dst:
        copy_metadata(src, dst, plan.bands, tags)
        for window in tqdm(
            windows, desc="windows", unit="win", disable=None if options.progress else True
        ):
            data, valid, ran = _process_window(src, plan, window, options)
            skipped += not ran
            dst.write(data, window=window)
            if write_mask:
                dst.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=window)
    return len(windows), skipped


RGB = ["red", "green", "blue"]


def _reproject(path: Path, dst_crs: str, out_path: Path, plan: EnhancePlan) -> None:
    """Warps ``path`` to ``dst_crs`` (bilinear) into ``out_path``, keeping validity.

    Pixels outside the source footprint, or invalid in it, become nodata when the raster
    has a nodata value (NaN for floats without one). An integer raster without nodata gets
    an internal GDAL mask band instead (GDAL's ``-dstalpha``, stored as a mask), so zero
    stays a valid value and the warp's empty corners are still masked. Written block by
    block from a ``WarpedVRT``, so memory stays bounded.
    """
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import calculate_default_transform

    try:
        crs = CRS.from_user_input(dst_crs)
    except Exception as exc:  # rasterio raises CRSError with GDAL's text
        raise ValueError(f"--dst-crs {dst_crs!r}: not a CRS ({exc})") from None
    with rasterio.open(path) as sr:
        if sr.crs is None:
            raise ValueError("--dst-crs needs a georeferenced input (it has no CRS)")
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


def _to_cog(path: Path, out_path: Path, dtype: str) -> None:
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


def enhance_raster(
    input_path: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: EnhanceOptions | None = None,
) -> EnhanceResult:
    """Super-resolves one raster into a new GeoTIFF (see the module docstring).

    Args:
        input_path: anything rasterio opens (GeoTIFF, COG, VRT).
        output: output file; default ``<stem>_sr_x<scale>.tif`` next to the input.
        options: ``EnhanceOptions``.

    Raises:
        RasterInputError, GeoreferenceError, OutputError, ValueError: bad input or
        settings; nothing is written then.
    """
    options = options or EnhanceOptions()
    input_path = Path(input_path)
    scale = check_scale(options.scale)
    output = Path(output) if output is not None else default_output(input_path, scale)
    check_output(input_path, output, options.overwrite)
    messages: list[str] = []
    with rasterio.Env(**GDAL_ENV), open_raster(input_path) as src:
        name = input_path.name
        check_georeference(src, name, allow_no_crs=options.allow_no_crs)
        plan, choice = plan_enhance(src, name, options, messages)
        if options.log:
            options.log(f"{name}: model {choice.spec} ({choice.reason}), x{plan.scale}")
        for message in messages:
            warnings.warn(message, stacklevel=2)
        with contextlib.ExitStack() as stack:
            sr_path = stack.enter_context(temporary_path(output))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the CRS warning was already given
                n_windows, skipped = _write_sr(src, plan, choice, sr_path, options, True)
            final = sr_path
            if options.dst_crs:
                warped = stack.enter_context(temporary_path(output))
                _reproject(final, options.dst_crs, warped, plan)
                final = warped
            if options.cog:
                cog = stack.enter_context(temporary_path(output))
                _to_cog(final, cog, plan.out_dtype)
                final = cog
            move_into_place(final, output)
    return EnhanceResult(output, choice.spec, choice.reason, n_windows, skipped, messages)
