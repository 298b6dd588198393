"""``medsr enhance`` in memory: normalize, super-resolve, restore units, NaNs and geometry.

The data flow is one way: a :class:`~medsr.io.Volume` and a :class:`~medsr.plan.Plan` in;
normalize (:mod:`medsr.intensity`), super-resolve (:mod:`medsr.methods`), resample any
non-integer remainder with a cubic B-spline on the same edges-kept grid, restore units
and NaNs; out comes the new volume with its affine
(:func:`medsr.geometry.upsampled_affine`) and a provenance record. Files, output naming
and sidecars are :mod:`medsr.files`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from srkit.common import __version__
from srkit.common.batch import sha256_file
from srkit.common.clipping import AUTO_MARGIN, ClipRule, clip_in_place, valid_range
from srkit.common.errors import SRKitError, first_line
from srkit.common.inference import choose_device
from srkit.common.inference.invalid import fill_nearest, parent_mask
from srkit.common.models.architectures import SRModule
from srkit.common.models.registry import weights_file
from srkit.common.resources import check_memory

from . import geometry
from .errors import MedsrError, input_error
from .intensity import detect_modality, normalization_for
from .io import Volume
from .methods import (
    FALLBACK_MODEL,
    MEDSR_METHODS,
    ModelChoice,
    check_domain,
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
    "clip_bounds",
    "default_model",
    "enhance_planned",
    "enhance_volume",
    "plan_volume",
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


def clip_bounds(volume: Volume, rule: ClipRule) -> tuple[float, float] | None:
    """The physical bounds ``rule`` gives the output of ``volume`` (``None``: no clipping).

    ``auto``: the input's finite range widened by :data:`common.clipping.AUTO_MARGIN` of
    its span on each side, then cut to what the input's own stored type can hold
    (:attr:`Volume.representable_range`, e.g. -1024..3071 HU for 12-bit CT), so a NIfTI
    and a DICOM output of the same run hold the same values. ``LO,HI``: exactly those.
    """
    bounds = rule.bounds(*valid_range(volume.data))
    representable = volume.representable_range
    if rule.mode == "auto" and bounds is not None and representable is not None:
        bounds = (max(bounds[0], representable[0]), min(bounds[1], representable[1]))
    return bounds


def _weights_sha256(spec: str) -> str | None:
    path = weights_file(spec)
    return sha256_file(path) if path is not None else None


def _library_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - both are dependencies
        return None


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
    clip: str | ClipRule | None = "auto",
    force: bool = False,
    device: str | None = None,
    tile: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> EnhanceResult:
    """Super-resolves ``volume`` as planned; output in the input's units and world frame.

    ``clip``: ``"auto"``, ``"none"`` or ``"LO,HI"`` (:func:`clip_bounds`), applied in
    physical units before NaNs are restored. ``force``: run a model whose card domain is
    not the input's modality (:func:`medsr.methods.check_domain`), with a warning.

    ``model=None`` picks :func:`default_model` for the modality; a model instance (an
    adapted one from :func:`medsr.self_supervised.adapt`) runs as it is, its card naming it
    (``model_reason`` says why, in the provenance); ``modality="auto"`` reads
    the DICOM Modality, else the value range (:func:`medsr.intensity.detect_modality`).
    """
    start = time.perf_counter()
    rule = check_options(modality=modality, clip=clip)
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
    name = volume.source if volume.source is not None else "image"
    domain_warning = check_domain(net, kind, name, force=force)
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
    bounds = clip_bounds(volume, rule)
    clipped = clip_in_place(out, bounds)
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
    input_range = valid_range(volume.data)
    provenance = {
        "tool": "medsr enhance",
        "version": __version__,
        "command_line": None,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": str(volume.source) if volume.source else None,
        "input_path": os.path.abspath(volume.source) if volume.source else None,
        "torch_version": _library_version("torch"),
        "monai_version": _library_version("monai"),
        "device": str(choose_device(device)),
        "model": {
            "spec": choice.spec,
            "name": model_name,
            "reason": choice.reason,
            "version": model_version,
            "domain": "any" if isinstance(net, str) else net.card.domain,
            "weights_sha256": None if isinstance(model, SRModule) else _weights_sha256(choice.spec),
            "domain_forced": domain_warning,
        },
        "clip": {
            "rule": rule.mode if rule.mode != "fixed" else f"{rule.low:g},{rule.high:g}",
            "bounds": list(bounds) if bounds is not None else None,
            "input_range": list(input_range) if np.isfinite(input_range).all() else None,
            "auto_margin": AUTO_MARGIN,
            "representable_range": (
                list(volume.representable_range) if volume.representable_range else None
            ),
            "clipped_fraction": round(clipped, 8),
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


def check_options(
    *, modality: str = "auto", clip: str | ClipRule | None = "auto", device: str | None = None
) -> ClipRule:
    """Checks the options every ``enhance`` path takes before any reading or work; returns
    the parsed ``clip`` rule. Raises an ``SRKitError`` naming the bad option."""
    if modality not in ("auto", "mri", "ct"):
        raise MedsrError(f"--modality must be auto, mri or ct, got {modality!r}")
    rule = ClipRule.parse(clip)
    if device is not None:
        choose_device(device)
    return rule


def plan_volume(
    volume: Volume,
    name: str | os.PathLike,
    *,
    scale: Sequence[int] | None = None,
    axis: int | None = None,
    target_spacing: float | None = None,
) -> Plan:
    """:func:`plan_enhance` for ``volume``; a problem is an error naming ``name``."""
    try:
        return plan_enhance(
            volume.shape, volume.affine, scale=scale, axis=axis, target_spacing=target_spacing
        )
    except ValueError as exc:
        raise input_error(name, str(exc)) from None


def enhance_planned(
    volume: Volume, plan: Plan, name: str | os.PathLike, **options: Any
) -> EnhanceResult:
    """:func:`enhance_volume` with every user error naming ``name`` (the input), the step
    ``medsr enhance`` on a file and :func:`medsr.enhance_image` share."""
    try:
        return enhance_volume(volume, plan, **options)
    except SRKitError as exc:  # name the input unless the message already does
        if str(exc).startswith(str(name)) or isinstance(exc, MedsrError):
            raise
        raise type(exc)(f"{name}: {first_line(exc)}") from exc
    except (ValueError, RuntimeError, LookupError, OSError) as exc:  # bad --model/--device
        raise input_error(name, first_line(exc)) from exc
