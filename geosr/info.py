"""``geosr info``: what a raster is and what ``geosr enhance`` would do with it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import rasterio

from .enhance import EnhanceOptions, check_scale, default_output, plan_enhance
from .errors import GeosrError
from .georef import GeoreferenceError, check_georeference, output_shape, output_transform
from .raster import GDAL_ENV, block_size, open_raster
from .stream import plan_stream


def _affine_text(transform) -> str:
    return str(tuple(round(v, 9) for v in tuple(transform)[:6]))


def describe_raster(
    path: str | os.PathLike,
    scale: int = 2,
    model: str | None = None,
    bands: str | None = None,
    normalize: str = "auto",
) -> str:
    """A multi-line report: CRS, resolution, size, bands, dtype, nodata, masks, blocks,
    overviews, and the enhance plan (model, output size and transform, normalization,
    range warnings). A missing CRS or GCPs are reported, not raised."""
    path = Path(path)
    scale = check_scale(scale)
    lines: list[str] = []
    with rasterio.Env(**GDAL_ENV), open_raster(path) as src:
        res = src.res
        rotated = "  (rotated/sheared)" if src.transform.b or src.transform.d else ""
        lines += [
            f"file:        {path}",
            f"driver:      {src.driver}",
            f"size:        {src.width} x {src.height} pixels, {src.count} band(s), "
            + ", ".join(sorted(set(src.dtypes))),
            f"crs:         {src.crs.to_string() if src.crs else 'none'}",
            f"transform:   {_affine_text(src.transform)}{rotated}",
            f"resolution:  {res[0]:g} x {res[1]:g} (CRS units per pixel)",
            f"bounds:      {tuple(round(v, 6) for v in src.bounds)}",
            f"nodata:      {src.nodata}",
            f"blocks:      {src.block_shapes[0][1]} x {src.block_shapes[0][0]}"
            f", compression {src.compression.value if src.compression else 'none'}"
            f", overviews {src.overviews(1) or 'none'}",
        ]
        for b in range(1, src.count + 1):
            flags = ",".join(f.name for f in src.mask_flag_enums[b - 1])
            lines.append(
                f"band {b}:      {src.dtypes[b - 1]} {src.colorinterp[b - 1].name}"
                f" '{src.descriptions[b - 1] or ''}' mask={flags}"
                f" scale={src.scales[b - 1]:g} offset={src.offsets[b - 1]:g}"
                f" unit='{src.units[b - 1] or ''}'"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check_georeference(src, path.name)
        except GeoreferenceError as exc:
            lines.append(f"warning:     enhance refuses it: {exc}")
        options = EnhanceOptions(scale=scale, model=model, bands=bands, normalize=normalize)
        messages: list[str] = []
        try:
            plan, choice = plan_enhance(src, path.name, options, messages)
        except GeosrError as exc:  # palette, complex or bad options: say so, plan nothing
            lines.append(f"warning:     enhance refuses it: {exc}")
            return "\n".join(lines)
        height, width = output_shape(src.height, src.width, scale)
        block = block_size(scale, options.block)
        n_windows = len(plan_stream((src.height, src.width), scale, block, plan.radius, options))
        per_band = ", applied per band" if plan.per_band else ""
        alpha = (
            f", alpha band(s) {list(plan.layout.alpha_bands)} upsampled nearest"
            if plan.layout.alpha_bands
            else ""
        )
        lines += [
            "enhance plan:",
            f"  model:       {choice.spec} ({choice.reason}), "
            f"receptive radius {plan.radius} px{per_band}",
            f"  output:      {default_output(path, scale).name}, {width} x {height}, "
            f"{plan.out_dtype}, {block}x{block} DEFLATE blocks, {n_windows} window(s)",
            f"  transform:   {_affine_text(output_transform(src.transform, scale))}",
            f"  masks:       {plan.layout.mask_kind}{alpha}",
        ]
        for b, sc, (lo, hi) in zip(plan.layout.data_bands, plan.scalings, plan.raw_ranges):
            text = f"  band {b}:      {sc.source}; valid raw range ~[{lo:g}, {hi:g}]"
            if np.isfinite(lo):
                text += f" -> [{float(sc.forward(lo)):.3g}, {float(sc.forward(hi)):.3g}]"
            lines.append(text)
        lines += [f"  warning:     {message}" for message in messages]
    return "\n".join(lines)
