"""Streaming super-resolution of a raster: read -> plan -> stream -> post-process -> rename.

``enhance_raster`` is the pipeline; each stage lives in its own module:

- ``plan``: options to a typed run plan (bands, dtypes, scalings, model) and the checks
  made before any pixel is read (scale, device, palette/complex bands, output size and
  free disk space);
- ``stream``: block-aligned output windows, each read with a halo of ``2 r`` pixels
  (``r``: the model's receptive radius) so that the result equals whole-raster
  processing whatever the window, tile and batch sizes; all-invalid windows skip the
  model; ``batch_size`` windows share one forward pass;
- ``outputs``: output paths and their checks, the output profile and ``SR_*`` tags;
- ``postprocess``: ``--dst-crs`` reprojection and ``--cog`` conversion.

Peak memory depends on the window, tile and batch sizes, never on the raster size (GDAL's
block cache is capped at 64 MB). The result is written to a temporary beside the output
(``common.io.atomic_output``) and renamed into place only when complete: a failure,
Ctrl-C or SIGTERM leaves no partial output, and an existing output is replaced only with
``overwrite``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import rasterio

from common.io import atomic_output

from .georef import check_georeference, output_shape
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
from .postprocess import check_dst_crs, reproject_raster, to_cog
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
    name = input_path.name
    messages: list[str] = []
    with rasterio.Env(**GDAL_ENV), open_raster(input_path) as src:
        georef = check_georeference(src, name, allow_no_crs=options.allow_no_crs)
        if options.dst_crs:
            check_dst_crs(options.dst_crs, georef.crs, georef.transform is not None)
        selection = select_bands(src, name, options)
        height, width = output_shape(src.height, src.width, scale)
        check_output_size(
            name,
            (width, height, len(selection.bands)),
            selection.out_dtype,
            output,
            max_output_pixels(options),
            copies=1 + bool(options.cog) + bool(options.dst_crs),
        )
        plan, choice = plan_enhance(src, name, options, messages, selection)
        for message in messages:
            warnings.warn(message, stacklevel=2)
        with (
            atomic_output(output, overwrite=options.overwrite) as final,
            contextlib.ExitStack() as stack,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            if options.dst_crs or options.cog:  # intermediates in a hidden folder beside it
                work = Path(
                    stack.enter_context(
                        tempfile.TemporaryDirectory(
                            dir=output.parent, prefix=f".{output.name}.", suffix=".partial"
                        )
                    )
                )
                current = work / "sr.tif"
            else:
                current = final
            counts = (writer or write_sr)(src, name, plan, choice, georef, current, options)
            if extra_tags:
                with rasterio.open(current, "r+") as written:
                    written.update_tags(**extra_tags)
            if options.dst_crs:
                warped = final if not options.cog else work / "warped.tif"
                reproject_raster(current, options.dst_crs, warped)
                current = warped
            if options.cog:
                to_cog(current, final, plan.out_dtype)
    if options.log:
        options.log(f"{name}: model {choice.spec} ({choice.reason}), x{plan.scale}")
    windows, skipped, passes = counts
    return EnhanceResult(output, choice.spec, choice.reason, windows, skipped, messages, passes)
