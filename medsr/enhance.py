"""``medsr enhance`` in memory: normalize, super-resolve, restore units, NaNs and geometry.

The data flow is one way: a :class:`~medsr.io.Volume` and a :class:`~medsr.plan.Plan` in;
normalize (:mod:`medsr.intensity`), super-resolve (:mod:`medsr.methods`), resample any
non-integer remainder with a cubic B-spline on the same edges-kept grid, restore units
and NaNs; out comes the new volume with its affine
(:func:`medsr.geometry.upsampled_affine`) and a provenance record. Files, output naming
and sidecars are :mod:`medsr.files`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common import __version__
from common.inference.invalid import fill_nearest, parent_mask
from common.models.architectures import SRModule
from common.resources import check_memory

from . import geometry
from .errors import MedsrError
from .intensity import detect_modality, normalization_for
from .io import Volume
from .methods import (
    FALLBACK_MODEL,
    MEDSR_METHODS,
    ModelChoice,
    default_model,
    load_method_model,
    super_resolve,
)
from .plan import Plan, fmt_scale, parse_scale, plan_enhance

__all__ = [
    "FALLBACK_MODEL",
    "MEDSR_METHODS",
    "EnhanceResult",
    "ModelChoice",
    "Plan",
    "default_model",
    "enhance_volume",
    "fmt_scale",
    "parse_scale",
    "plan_enhance",
    "super_resolve",
]


def _resample(x: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
    """Cubic B-spline resampling to ``out_shape`` on the edges-kept grid (scipy zoom)."""
    from scipy.ndimage import zoom

    if tuple(x.shape) == tuple(out_shape):
        return x
    factors = [o / n for o, n in zip(out_shape, x.shape)]
    out = zoom(x, factors, order=3, mode="reflect", grid_mode=True)
    if tuple(out.shape) != tuple(out_shape):  # pragma: no cover - scipy rounding guard
        raise RuntimeError(f"resampling gave {out.shape}, expected {tuple(out_shape)}")
    return out.astype(np.float32)


@dataclass
class EnhanceResult:
    """The enhanced volume and its provenance record."""

    volume: Volume
    provenance: dict[str, Any] = field(default_factory=dict)


def enhance_volume(
    volume: Volume,
    plan: Plan,
    *,
    model: str | SRModule | None = None,
    modality: str = "auto",
    model_reason: str | None = None,
    device: str | None = None,
    tile: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> EnhanceResult:
    """Super-resolves ``volume`` as planned; output in the input's units and world frame.

    ``model=None`` picks :func:`default_model` for the modality; a model instance (an
    adapted one from :func:`medsr.self_supervised.adapt`) runs as it is, its card naming it
    (``model_reason`` says why, in the provenance); ``modality="auto"`` reads
    the DICOM Modality, else the value range (:func:`medsr.intensity.detect_modality`).
    """
    start = time.perf_counter()
    if modality not in ("auto", "mri", "ct"):
        raise MedsrError(f"--modality must be auto, mri or ct, got {modality!r}")
    # the output, the normalized copy and one plane orientation's result at once
    check_memory(volume.source or "volume", plan.out_shape, "the output", copies=4)
    kind = detect_modality(volume.data, volume.modality) if modality == "auto" else modality
    if isinstance(model, SRModule):  # a model in memory (e.g. medsr.self_supervised.adapt)
        choice = ModelChoice(model.card.name, model_reason or "a model given in memory")
        net = model
    else:
        choice = (
            default_model(kind, plan.axis_scale)
            if model is None
            else ModelChoice(str(model), model_reason or "given with --model")
        )
        net = load_method_model(choice.spec)
    norm = normalization_for(volume.data, kind)
    missing = ~np.isfinite(volume.data)
    x = norm.forward(fill_nearest(volume.data, missing))
    if max(plan.axis_scale) > 1:
        y, method = super_resolve(
            x,
            plan.axis_scale,
            net,
            device=device,
            tile=tile,
            batch_size=batch_size,
            progress=progress,
        )
    else:
        y, method = x, "none"
    if tuple(y.shape) != tuple(plan.out_shape):
        y = _resample(y, plan.out_shape)
        method += "+bspline-remainder"
    out = norm.inverse(y)
    if missing.any():
        out[parent_mask(missing, out.shape)] = np.nan
    total = tuple(o / n for o, n in zip(plan.out_shape, volume.shape))
    affine = geometry.upsampled_affine(volume.affine, total)
    result = Volume(
        data=out,
        affine=affine,
        modality=kind,
        source=volume.source,
        format=volume.format,
        stored_dtype=volume.stored_dtype,
        slope=volume.slope,
        inter=volume.inter,
        meta=volume.meta,
    )
    if isinstance(net, str):  # a medsr method: no weights, no card
        model_name, model_version = net, __version__
    else:
        model_name, model_version = net.card.name, net.card.version
    provenance = {
        "tool": "medsr enhance",
        "version": __version__,
        "input": str(volume.source) if volume.source else None,
        "model": {
            "spec": choice.spec,
            "name": model_name,
            "reason": choice.reason,
            "version": model_version,
        },
        "method": method,
        "modality": kind,
        "normalization": norm.to_dict(),
        "plan": plan.reason,
        "scale": list(plan.axis_scale),
        "total_scale": [round(t, 6) for t in total],
        "shape_before": list(volume.shape),
        "shape_after": list(result.shape),
        "spacing_before": [round(float(v), 6) for v in volume.spacing],
        "spacing_after": [round(float(v), 6) for v in result.spacing],
        "affine_before": np.round(volume.affine, 6).tolist(),
        "affine_after": np.round(affine, 6).tolist(),
        "nan_voxels": int(missing.sum()),
        "warnings": list(volume.warnings),
        "seconds": round(time.perf_counter() - start, 3),
    }
    return EnhanceResult(result, provenance)
