"""``geosr info``: what a raster is and what ``geosr enhance`` would do with it.

``raster_info`` collects the facts as plain values (``geosr info --json``);
``describe_raster`` formats them as the text report.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
from srkit.common.cli import json_text

from .enhance import EnhanceOptions, check_scale, default_output, plan_enhance
from .errors import GeosrError
from .georef import GeoreferenceError, check_georeference, output_shape, output_transform
from .raster import GDAL_ENV, block_size, open_raster
from .stream import plan_stream


def raster_info(
    path: str | os.PathLike,
    scale: int = 2,
    model: str | None = None,
    bands: str | None = None,
    normalize: str = "auto",
) -> dict:
    """CRS, resolution, size, bands, dtype, nodata, masks, blocks, overviews, and the
    enhance plan (model, output size and transform, normalization, range warnings), as
    JSON-ready values. A missing CRS, GCPs or a refused plan are reported under
    ``refused``, not raised (``plan`` is then ``None``)."""
    path = Path(path)
    scale = check_scale(scale)
    with rasterio.Env(**GDAL_ENV), open_raster(path) as src:
        with warnings.catch_warnings():  # rasterio's bounds of a rotated grid use affine's *
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            bounds = src.bounds
        info: dict = {
            "file": str(path),
            "driver": src.driver,
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtypes": sorted(set(src.dtypes)),
            "crs": src.crs.to_string() if src.crs else None,
            "transform": [round(v, 9) for v in tuple(src.transform)[:6]],
            "rotated": bool(src.transform.b or src.transform.d),
            "resolution": list(src.res),
            "bounds": [round(v, 6) for v in bounds],
            "nodata": src.nodata,
            "block": [src.block_shapes[0][1], src.block_shapes[0][0]],
            "compression": src.compression.value if src.compression else None,
            "overviews": list(src.overviews(1)),
            "area_or_point": src.tags().get("AREA_OR_POINT"),
            "bands": [
                {
                    "band": b,
                    "dtype": src.dtypes[b - 1],
                    "colorinterp": src.colorinterp[b - 1].name,
                    "description": src.descriptions[b - 1] or "",
                    "mask": [f.name for f in src.mask_flag_enums[b - 1]],
                    "scale": src.scales[b - 1],
                    "offset": src.offsets[b - 1],
                    "unit": src.units[b - 1] or "",
                }
                for b in range(1, src.count + 1)
            ],
            "refused": [],
            "plan": None,
        }
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check_georeference(src, path.name)
        except GeoreferenceError as exc:
            info["refused"].append(str(exc))
        # clip none: the plan shown needs no pass over the pixels
        options = EnhanceOptions(
            scale=scale, model=model, bands=bands, normalize=normalize, clip="none"
        )
        messages: list[str] = []
        try:
            plan, choice = plan_enhance(src, path.name, options, messages)
        except GeosrError as exc:  # palette, complex or bad options: say so, plan nothing
            info["refused"].append(str(exc))
            return info
        height, width = output_shape(src.height, src.width, scale)
        block = block_size(scale, options.block)
        n_windows = len(plan_stream((src.height, src.width), scale, block, plan.radius, options))
        info["plan"] = {
            "model": choice.spec,
            "reason": choice.reason,
            "receptive_radius": plan.radius,
            "per_band": plan.per_band,
            "output": default_output(path, scale).name,
            "width": width,
            "height": height,
            "dtype": plan.out_dtype,
            "block": block,
            "windows": n_windows,
            "transform": [round(v, 9) for v in tuple(output_transform(src.transform, scale))[:6]],
            "masks": plan.layout.mask_kind,
            "alpha_bands": list(plan.layout.alpha_bands),
            "bands": [
                {
                    "band": b,
                    "normalization": sc.source,
                    "raw_range": [lo, hi] if np.isfinite(lo) else None,
                    "normalized_range": [float(sc.forward(lo)), float(sc.forward(hi))]
                    if np.isfinite(lo)
                    else None,
                }
                for b, sc, (lo, hi) in zip(plan.layout.data_bands, plan.scalings, plan.raw_ranges)
            ],
            "warnings": messages,
        }
    return info


def info_json(info: dict) -> str:
    """``raster_info`` as indented JSON (NaN nodata as ``null``)."""
    return json_text(info)


def describe_raster(
    path: str | os.PathLike,
    scale: int = 2,
    model: str | None = None,
    bands: str | None = None,
    normalize: str = "auto",
) -> str:
    """The ``raster_info`` facts as a multi-line text report."""
    info = raster_info(path, scale, model, bands, normalize)
    res = info["resolution"]
    rotated = "  (rotated/sheared)" if info["rotated"] else ""
    lines = [
        f"file:        {info['file']}",
        f"driver:      {info['driver']}",
        f"size:        {info['width']} x {info['height']} pixels, {info['count']} band(s), "
        + ", ".join(info["dtypes"]),
        f"crs:         {info['crs'] or 'none'}",
        f"transform:   {tuple(info['transform'])}{rotated}",
        f"resolution:  {res[0]:g} x {res[1]:g} (CRS units per pixel)",
        f"bounds:      {tuple(info['bounds'])}",
        f"nodata:      {info['nodata']}",
        f"blocks:      {info['block'][0]} x {info['block'][1]}"
        f", compression {info['compression'] or 'none'}"
        f", overviews {info['overviews'] or 'none'}",
    ]
    for band in info["bands"]:
        lines.append(
            f"band {band['band']}:      {band['dtype']} {band['colorinterp']}"
            f" '{band['description']}' mask={','.join(band['mask'])}"
            f" scale={band['scale']:g} offset={band['offset']:g}"
            f" unit='{band['unit']}'"
        )
    lines += [f"warning:     enhance refuses it: {reason}" for reason in info["refused"]]
    plan = info["plan"]
    if plan is None:
        return "\n".join(lines)
    per_band = ", applied per band" if plan["per_band"] else ""
    alpha = (
        f", alpha band(s) {plan['alpha_bands']} upsampled nearest" if plan["alpha_bands"] else ""
    )
    lines += [
        "enhance plan:",
        f"  model:       {plan['model']} ({plan['reason']}), "
        f"receptive radius {plan['receptive_radius']} px{per_band}",
        f"  output:      {plan['output']}, {plan['width']} x {plan['height']}, "
        f"{plan['dtype']}, {plan['block']}x{plan['block']} DEFLATE blocks, "
        f"{plan['windows']} window(s)",
        f"  transform:   {tuple(plan['transform'])}",
        f"  masks:       {plan['masks']}{alpha}",
    ]
    for band in plan["bands"]:
        text = f"  band {band['band']}:      {band['normalization']}; valid raw range "
        if band["raw_range"] is None:
            text += "~[nan, nan]"
        else:
            lo, hi = band["raw_range"]
            low, high = band["normalized_range"]
            text += f"~[{lo:g}, {hi:g}] -> [{low:.3g}, {high:.3g}]"
        lines.append(text)
    lines += [f"  warning:     {message}" for message in plan["warnings"]]
    return "\n".join(lines)
