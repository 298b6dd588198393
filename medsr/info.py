"""``medsr info``: what a scan is and what ``enhance`` would do with it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import geometry
from .enhance import default_model, plan_enhance
from .intensity import detect_modality
from .io import read_volume


def describe(path: str | os.PathLike, **read_options: Any) -> dict[str, Any]:
    """Shape, spacing, orientation codes, modality, thick axis and the default enhance plan."""
    import nibabel as nib

    volume = read_volume(path, **read_options)
    modality = detect_modality(volume.data, volume.modality)
    thick = geometry.thick_axis(volume.affine)
    plan = plan_enhance(volume.shape, volume.affine)
    finite = volume.data[np.isfinite(volume.data)]
    return {
        "file": str(path),
        "format": volume.format,
        "shape": list(volume.shape),
        "spacing_mm": [round(float(v), 6) for v in volume.spacing],
        "orientation": "".join(nib.aff2axcodes(volume.affine)),
        "affine": np.round(volume.affine, 6).tolist(),
        "stored_dtype": volume.stored_dtype,
        "scaling": {"slope": volume.slope, "inter": volume.inter},
        "modality": modality,
        "modality_source": "DICOM Modality" if volume.modality else "value range",
        "value_range": [float(finite.min()), float(finite.max())] if finite.size else None,
        "nan_voxels": int(volume.data.size - finite.size),
        "thick_axis": geometry.AXIS_NAMES[thick] if thick is not None else None,
        "enhance_plan": plan.reason,
        "enhance_scale": list(plan.axis_scale),
        "enhance_model": default_model(modality, plan.axis_scale).reason,
        "warnings": volume.warnings,
    }


def format_info(info: dict[str, Any]) -> str:
    """The :func:`describe` record as aligned ``key: value`` lines."""
    keys = (
        "file", "format", "shape", "spacing_mm", "orientation", "stored_dtype", "modality",
        "modality_source", "value_range", "nan_voxels", "thick_axis", "enhance_plan",
        "enhance_model",
    )  # fmt: skip
    lines = [f"{key:16s} {info[key]}" for key in keys]
    lines += [f"{'warning':16s} {w}" for w in info["warnings"]]
    return "\n".join(lines)
