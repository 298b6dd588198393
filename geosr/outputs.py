"""Where ``geosr enhance`` writes, and what: output paths, checks, profile, tags, the write.

Outputs are never replaced without ``overwrite`` (checked before any work, and again at
the final rename by ``common.io.atomic_output``), never equal to an input, and written to
a temporary beside the target that is removed on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import rasterio
from srkit.common import __version__
from srkit.common.errors import OutputError
from srkit.common.io import check_not_input, check_targets

from .georef import Georeference, output_shape, output_transform
from .models import ModelChoice, weights_sha256
from .plan import EnhanceOptions, EnhancePlan
from .raster import block_size, copy_metadata, creation_options, provenance_tags
from .stream import stream_windows


def default_output(input_path: Path, scale: int) -> Path:
    """``<stem>_sr_x<scale>.tif`` next to the input."""
    return input_path.with_name(f"{input_path.stem}_sr_x{scale}.tif")


def batch_targets(
    files: Sequence[Path], output: str | os.PathLike | None, scale: int
) -> list[Path]:
    """Output paths of a batch: ``<stem>_sr_x<s>.tif`` in ``output`` or beside each input.

    The folder ``output`` is not created here (the caller creates it once the batch is
    known to be valid, and removes it again if nothing was written).

    Raises:
        OutputError: ``output`` is a file, its parent is missing, two inputs map to one
            output, or an output would replace one of the inputs.
    """
    if output is not None:
        folder = Path(output)
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder}: several inputs need an output folder, not a file")
        if not folder.parent.is_dir():
            raise OutputError(f"{folder}: parent folder {folder.parent} does not exist")
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


def check_output(input_path: Path, output: Path, overwrite: bool = False) -> None:
    """Refuses an output equal to the input, an existing one without ``overwrite``, a
    folder, or one in a missing or unwritable folder (before any work)."""
    check_not_input(output, [input_path])
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give a file name")
    check_targets([output], overwrite=overwrite)


def output_profile(src, plan: EnhancePlan, georef: Georeference, block: int) -> dict:
    """Creation options of the upscaled raster: size, dtype, CRS, transform, nodata."""
    height, width = output_shape(src.height, src.width, plan.scale)
    profile = creation_options(plan.out_dtype, block)
    profile.update(
        width=width, height=height, count=len(plan.bands), dtype=plan.out_dtype, crs=georef.crs
    )
    if georef.transform is not None:  # no geotransform in, none out
        profile["transform"] = output_transform(georef.transform, plan.scale)
    if plan.nodata is not None:
        profile["nodata"] = plan.nodata
    if profile["count"] == 3 and plan.out_dtype == "uint8" and not plan.categorical:
        profile["photometric"] = "RGB" if not plan.alpha_index else "MINISBLACK"
    return profile


def library_versions() -> str:
    """``srkit X; torch Y; monai Z; rasterio W; gdal V`` (the ``SR_VERSIONS`` tag)."""
    import monai
    import torch

    return (
        f"srkit {__version__}; torch {torch.__version__}; monai {monai.__version__}; "
        f"rasterio {rasterio.__version__}; gdal {rasterio.__gdal_version__}"
    )


def output_tags(
    src, plan: EnhancePlan, choice: ModelChoice, options: EnhanceOptions | None = None
) -> dict[str, str]:
    """The ``SR_*`` provenance tags: model, scale, reason, normalization, clip, and the
    run's provenance: command line, UTC time, absolute input path, library versions,
    device and the weights' SHA-256."""
    normalization = "; ".join(
        f"b{plan.bands[i]}: {sc.source}" for i, sc in zip(plan.data_index, plan.scalings)
    )
    command = options.command if options is not None else None
    return provenance_tags(
        choice.spec,
        plan.scale,
        choice.reason,
        input=input_location(src.name),
        normalization=normalization,
        clip=plan.clip_text,
        command=command or "python API (geosr.enhance_raster / enhance_dataset)",
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=library_versions(),
        device=str(plan.device),
        weights_sha256=weights_sha256(choice.spec),
    )


def input_location(name: str) -> str:
    """The absolute path of a dataset's file; a ``/vsimem/`` or other GDAL name as is."""
    path = Path(name)
    return str(path.resolve()) if path.exists() else str(name)


def write_sr(
    src,
    name: str,
    plan: EnhancePlan,
    choice: ModelChoice,
    georef: Georeference,
    path: Path,
    options: EnhanceOptions,
) -> tuple[int, int, int]:
    """Streams the upscaled raster into ``path``; returns ``(windows, skipped, passes)``."""
    block = block_size(plan.scale, options.block)
    profile = output_profile(src, plan, georef, block)
    with rasterio.open(path, "w", **profile) as dst:
        copy_metadata(src, dst, plan.bands, output_tags(src, plan, choice, options))
        return stream_windows(src, name, plan, dst, block, options)
