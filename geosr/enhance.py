"""Streaming super-resolution of a raster: read -> plan -> stream -> post-process -> rename.

``enhance_raster`` is the pipeline of ``geosr enhance``; ``enhance_dataset`` and
``enhance_array`` run the same stages (``prepare_run``, ``write_run``) in memory. Each
stage lives in its own module:

- ``plan``: options to a typed run plan (bands, dtypes, scalings, model) and the checks
  made before any pixel is read (scale, device, palette/complex bands, output size and
  free disk space);
- ``stream``: block-aligned output windows, each read with a halo of ``2 r`` pixels
  (``r``: the model's receptive radius) so that the result equals whole-raster
  processing whatever the window, tile and batch sizes; all-invalid windows skip the
  model; ``batch_size`` windows share one forward pass;
- ``outputs``: output paths and their checks, the output profile and ``SR_*`` tags;
- ``postprocess``: ``--dst-crs`` reprojection, ``--cog`` conversion, and the input's
  overviews rebuilt on the output.

Peak memory depends on the window, tile and batch sizes, never on the raster size (GDAL's
block cache is capped at 64 MB). The result is written to a temporary beside the output
(``common.io.atomic_output``) and renamed into place only when complete: a failure,
Ctrl-C or SIGTERM leaves no partial output, and an existing output is replaced only with
``overwrite``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import tempfile
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.io
import rasterio.shutil
from affine import Affine
from srkit.common.io import atomic_output

from .errors import GeosrError
from .georef import Georeference, check_georeference, output_shape
from .models import ModelChoice
from .outputs import batch_targets, check_output, default_output, write_sr
from .plan import (
    DEFAULT_WINDOW,
    EnhanceOptions,
    EnhancePlan,
    check_device,
    check_output_size,
    check_scale,
    max_output_pixels,
    plan_enhance,
    select_bands,
)
from .postprocess import build_overviews, check_dst_crs, overview_plan, reproject_raster, to_cog
from .raster import GDAL_ENV, open_raster
from .stream import plan_stream

__all__ = [
    "DEFAULT_WINDOW",
    "EnhanceOptions",
    "EnhancePlan",
    "EnhanceResult",
    "batch_targets",
    "check_device",
    "check_output",
    "check_scale",
    "default_output",
    "enhance_array",
    "enhance_dataset",
    "enhance_raster",
    "plan_enhance",
    "plan_stream",
]


@dataclass
class EnhanceResult:
    """What ``enhance_raster`` did; ``forward_passes`` counts model runs (batches)."""

    output: Path
    model: str
    model_reason: str
    windows: int
    skipped_windows: int
    warnings: list[str] = field(default_factory=list)
    forward_passes: int = 0


@dataclass
class PreparedRun:
    """An open input checked and planned (``prepare_run``): what ``write_run`` needs."""

    name: str
    georef: Georeference
    plan: EnhancePlan
    choice: ModelChoice
    messages: list[str]


def prepare_run(src, name: str, options: EnhanceOptions, output: Path | None) -> PreparedRun:
    """Every check and decision of a run on an open dataset, before any pixel is written.

    ``output``: the output file (its folder's free space is checked), or ``None`` for an
    in-memory result (the memory is checked). Plan messages (range, ``--force``) are
    issued as Python warnings and kept in the result.

    Raises:
        GeosrError: georeferencing, ``--dst-crs``, bands, dtype, ``--clip``, model,
            domain or size refused.
    """
    georef = check_georeference(src, name, allow_no_crs=options.allow_no_crs)
    if options.dst_crs:
        check_dst_crs(options.dst_crs, georef.crs, georef.transform is not None)
    selection = select_bands(src, name, options)
    height, width = output_shape(src.height, src.width, selection.scale)
    check_output_size(
        name,
        (width, height, len(selection.bands)),
        selection.out_dtype,
        output,
        max_output_pixels(options),
        copies=1 + bool(options.cog) + bool(options.dst_crs),
    )
    messages: list[str] = []
    plan, choice = plan_enhance(src, name, options, messages, selection)
    for message in messages:
        warnings.warn(message, stacklevel=3)
    return PreparedRun(name, georef, plan, choice, messages)


def write_run(
    src,
    run: PreparedRun,
    final: Path,
    work: Path,
    options: EnhanceOptions,
    *,
    extra_tags: Mapping[str, str] | None = None,
    writer: Callable[..., tuple[int, int, int]] | None = None,
    overviews: bool = True,
) -> tuple[int, int, int]:
    """Streams the planned run into ``final`` (intermediates in ``work``): upscale,
    extra tags, ``--dst-crs``, then ``--cog`` or the input's overviews rebuilt
    (``overviews``). Returns ``(windows, skipped, forward passes)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        current = work / "sr.tif" if (options.dst_crs or options.cog) else final
        counts = (writer or write_sr)(
            src, run.name, run.plan, run.choice, run.georef, current, options
        )
        if extra_tags:
            with rasterio.open(current, "r+") as written:
                written.update_tags(**extra_tags)
        if options.dst_crs:
            warped = final if not options.cog else work / "warped.tif"
            reproject_raster(current, options.dst_crs, warped)
            current = warped
        if options.cog:
            to_cog(current, final, run.plan.out_dtype)
        elif overviews:
            pyramid = overview_plan(src, run.plan.scale, run.plan.categorical)
            if pyramid is not None:
                build_overviews(final, *pyramid)
    return counts


def enhance_raster(
    input_path: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: EnhanceOptions | None = None,
    *,
    extra_tags: Mapping[str, str] | None = None,
    writer: Callable[..., tuple[int, int, int]] | None = None,
) -> EnhanceResult:
    """Super-resolves one raster into a new GeoTIFF (see the module docstring).

    Args:
        input_path: anything rasterio opens (GeoTIFF, COG, VRT).
        output: output file; default ``<stem>_sr_x<scale>.tif`` next to the input.
        options: ``EnhanceOptions``.
        extra_tags: more dataset tags (a batch's resume record, ``SR_BATCH``).
        writer: what streams the upscaled raster into the (temporary) path, with the
            signature of ``write_sr`` (default); ``geosr.distributed`` passes one that
            runs the row bands on a Dask cluster.

    Raises:
        GeosrError (RasterInputError, GeoreferenceError), OutputError: bad input,
        settings or output; nothing is written then.
    """
    options = options or EnhanceOptions()
    input_path = Path(input_path)
    scale = check_scale(options.scale)
    check_device(options.device)
    output = Path(output) if output is not None else default_output(input_path, scale)
    check_output(input_path, output, options.overwrite)
    with rasterio.Env(**GDAL_ENV), open_raster(input_path) as src:
        run = prepare_run(src, input_path.name, options, output)
        with (
            atomic_output(output, overwrite=options.overwrite) as final,
            contextlib.ExitStack() as stack,
        ):
            work = output.parent
            if options.dst_crs or options.cog:  # intermediates in a hidden folder beside it
                work = Path(
                    stack.enter_context(
                        tempfile.TemporaryDirectory(
                            dir=output.parent, prefix=f".{output.name}.", suffix=".partial"
                        )
                    )
                )
            counts = write_run(src, run, final, work, options, extra_tags=extra_tags, writer=writer)
    choice = run.choice
    if options.log:
        options.log(f"{run.name}: model {choice.spec} ({choice.reason}), x{run.plan.scale}")
    windows, skipped, passes = counts
    return EnhanceResult(output, choice.spec, choice.reason, windows, skipped, run.messages, passes)


# --------------------------------------------------------------------------- in memory

# EnhanceOptions fields the in-memory API does not take (they concern files or the CLI)
_FILE_OPTIONS = ("cog", "overwrite", "log", "command")


class EnhancedProfile(dict):
    """The output's rasterio profile (a plain ``dict``: ``rasterio.open(path, "w",
    **profile)`` writes it), with the output's dataset tags (``SR_*`` provenance, the
    input's tags) in ``.tags``."""

    tags: dict[str, str]


def api_options(options: Mapping[str, object]) -> EnhanceOptions:
    """``EnhanceOptions`` from keyword arguments; an unknown name is an error that names
    it (with a "did you mean")."""
    names = [f.name for f in dataclasses.fields(EnhanceOptions) if f.name not in _FILE_OPTIONS]
    for key in options:
        if key in names:
            continue
        if key == "cog":
            raise GeosrError("cog=True writes a file; use geosr.enhance.enhance_raster")
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; options: {', '.join(names)}"
        raise GeosrError(f"unknown option {key!r}{hint}")
    return EnhanceOptions(**options)


def _enhance_open(src, name: str, options: EnhanceOptions) -> tuple[np.ndarray, EnhancedProfile]:
    """``enhance_raster``'s stages on an open dataset, into an in-memory GeoTIFF."""
    check_scale(options.scale)
    check_device(options.device)
    run = prepare_run(src, name, options, None)
    work = Path(f"/vsimem/srkit-{uuid.uuid4().hex}")
    final = work / "out.tif"
    try:
        write_run(src, run, final, work, options, overviews=False)
        with rasterio.open(final) as out:
            array = out.read()
            profile = EnhancedProfile(out.profile)
            profile.tags = out.tags()
    finally:
        for path in (final, work / "sr.tif", work / "warped.tif"):
            with contextlib.suppress(Exception):
                rasterio.shutil.delete(path)
    return array, profile


def enhance_dataset(dataset, **options) -> tuple[np.ndarray, EnhancedProfile]:
    """Super-resolves an open rasterio dataset; returns ``(array, profile)``.

    Runs exactly the stages of ``geosr enhance`` (plan, ``BandScaling``, nodata and
    masks, model choice, ``clip``, windowed reads and tiling) into an in-memory GeoTIFF
    and reads it back.

    Args:
        dataset: an open rasterio dataset (read mode).
        **options: ``EnhanceOptions`` fields: ``scale`` (2), ``model``, ``bands``,
            ``dtype`` (``None`` keeps the input's, or ``"float32"``), ``normalize``,
            ``clip`` (``"auto"``, ``"none"``, ``"LO,HI"``), ``force``, ``tile``,
            ``batch_size``, ``device``, ``dst_crs``, ``categorical``, ``allow_no_crs``...

    Returns:
        ``(bands, H*s, W*s)`` array in the output dtype, and the output profile
        (transform ``src.transform @ Affine.scale(1/s)``, width, height, nodata, CRS,
        dtype; provenance tags in ``profile.tags``).

    Raises:
        GeosrError: what ``geosr enhance`` refuses, with the same one-line message.
    """
    name = Path(str(dataset.name)).name or "dataset"
    with rasterio.Env(**GDAL_ENV):
        return _enhance_open(dataset, name, api_options(options))


# GTiff cannot hold these; they are computed in the dtype on the right and cast back
_WIDENED = {"float16": "float32"}


def enhance_array(
    array,
    profile_or_transform: Mapping | Affine,
    *,
    crs=None,
    nodata: float | None = None,
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    **options,
) -> tuple[np.ndarray, EnhancedProfile]:
    """Super-resolves a ``(bands, H, W)`` or ``(H, W)`` array on a georeferenced grid.

    The array becomes an in-memory GeoTIFF and goes through ``enhance_dataset``, i.e. the
    code ``geosr enhance`` runs on a file.

    Args:
        array: numeric array of any GeoTIFF dtype (float16 is computed as float32).
        profile_or_transform: a rasterio profile (its ``transform``, ``crs`` and
            ``nodata`` are used) or an ``affine.Affine``.
        crs, nodata: override (or, with a bare transform, give) the CRS and nodata.
            Without a CRS the run is in pixel space (``allow_no_crs``) with a warning.
        scales, offsets: per band, GDAL's ``physical = raw * scale + offset`` (a rasterio
            profile does not carry them: pass ``src.scales``, ``src.offsets`` to get the
            normalization ``geosr enhance`` uses on that file, or use
            ``enhance_dataset``). Default: 1 and 0.
        **options: as for ``enhance_dataset``.

    Returns:
        ``(array, profile)``: ``(bands, H*s, W*s)`` (``(H*s, W*s)`` for a 2D input) in the
        input dtype (``float32`` with ``dtype="float32"``), and the output profile.

    Raises:
        GeosrError: a bad shape, dtype or profile, or what ``geosr enhance`` refuses.
    """
    data = np.asarray(array)
    flat = data.ndim == 2
    if flat:
        data = data[None]
    if data.ndim != 3 or 0 in data.shape:
        raise GeosrError(f"array: expected (bands, H, W) or (H, W), got shape {data.shape}")
    if data.dtype == bool or not np.issubdtype(data.dtype, np.number):
        raise GeosrError(f"array: dtype {data.dtype} is not numeric raster data")
    if isinstance(profile_or_transform, Affine):
        base: dict = {"transform": profile_or_transform}
    elif isinstance(profile_or_transform, Mapping):
        base = dict(profile_or_transform)
    else:
        raise GeosrError(
            "profile_or_transform: expected a rasterio profile (dict) or an affine.Affine, "
            f"got {type(profile_or_transform).__name__}"
        )
    transform = base.get("transform")
    if not isinstance(transform, Affine):
        raise GeosrError("profile_or_transform: the profile has no affine 'transform'")
    crs = crs if crs is not None else base.get("crs")
    nodata = nodata if nodata is not None else base.get("nodata")
    in_dtype = data.dtype.name
    work_dtype = _WIDENED.get(in_dtype, in_dtype)
    options.setdefault("allow_no_crs", crs is None)
    count, height, width = data.shape
    source = {
        "driver": "GTiff",
        "count": count,
        "height": height,
        "width": width,
        "dtype": work_dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    with rasterio.Env(**GDAL_ENV), rasterio.io.MemoryFile() as memory:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with memory.open(**source) as dst:
                dst.write(data.astype(work_dtype, copy=False))
                if scales is not None:
                    dst.scales = [float(v) for v in scales]
                if offsets is not None:
                    dst.offsets = [float(v) for v in offsets]
            src = memory.open()
        with src:
            out, profile = _enhance_open(src, "array", api_options(options))
    if work_dtype != in_dtype and out.dtype.name == work_dtype:
        out = out.astype(in_dtype)
        profile["dtype"] = in_dtype
    return (out[0] if flat else out), profile
