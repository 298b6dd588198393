"""``medsr enhance``: plan the scale, normalize, super-resolve, restore units, write.

The data flow is one way: read a :class:`~medsr.io.Volume`, choose per-axis factors
(:func:`plan_enhance`), normalize (:mod:`medsr.intensity`), super-resolve with
``common.upscale`` (3D, or a 2D model applied slice-wise; SMORE-style averaging of the two
plane orientations that contain the thick axis), resample any non-integer remainder with a
cubic B-spline on the same edges-kept grid, restore units and NaNs, and write the result
with its new affine (:func:`medsr.geometry.upsampled_affine`) and a JSON provenance sidecar.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common import __version__, list_models, load_model, upscale
from common.inference import upscale_planes

from . import geometry
from .errors import MedsrError
from .intensity import detect_modality, normalization_for
from .io import Volume

FALLBACK_MODEL = "bspline"
# Methods medsr runs itself (not common models): name -> one-line description.
MEDSR_METHODS = {
    "ibp": "iterative back-projection of a Gaussian slice profile (FWHM = the low-res"
    " spacing), initialised and back-projected with cubic B-spline",
}
IBP_ITERATIONS = 6


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Plan:
    """What ``enhance`` will do to one volume.

    Attributes:
        axis_scale: integer super-resolution factor per voxel axis.
        out_shape: final voxel grid; differs from ``shape * axis_scale`` only when
            ``--target-spacing`` needs a non-integer remainder (B-spline resampled).
        thick_axis: the through-plane axis (detected or given), or None.
        reason: one human sentence.
    """

    axis_scale: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    thick_axis: int | None
    reason: str


def parse_scale(text: str | float | Sequence[float]) -> tuple[int, ...]:
    """``"2"`` or ``"1,1,4"`` to integer factors >= 1; anything else is a ValueError."""
    parts = (
        [p.strip() for p in str(text).split(",")] if isinstance(text, str) else list(np.ravel(text))
    )
    if len(parts) not in (1, 3):
        raise MedsrError(f"--scale needs 1 or 3 comma-separated factors, got {text!r}")
    factors = []
    for part in parts:
        try:
            value = float(part)
        except (TypeError, ValueError):
            raise MedsrError(f"--scale: {part!r} is not a number") from None
        if not math.isfinite(value) or value < 1 or value != int(value):
            raise MedsrError(
                f"--scale: factors must be integers >= 1, got {part!r}"
                " (use --target-spacing for non-integer factors)"
            )
        factors.append(int(value))
    if len(factors) == 3 and max(factors) == 1:
        raise MedsrError("--scale 1,1,1 does nothing; give a factor >= 2 on some axis")
    if len(factors) == 1 and factors[0] == 1:
        raise MedsrError("--scale 1 does nothing; give a factor >= 2")
    return tuple(factors)


def plan_enhance(
    shape: Sequence[int],
    affine: np.ndarray,
    *,
    scale: Sequence[int] | None = None,
    axis: int | None = None,
    target_spacing: float | None = None,
) -> Plan:
    """Chooses per-axis factors for a volume of ``shape`` and ``affine``.

    - default: an anisotropic volume (thickest / finest spacing >= 1.5) gets its thick axis
      (``axis`` overrides the detection) super-resolved by ``round(thick / finest)``; an
      isotropic one gets x2 in-plane (the two axes other than ``axis``, default the last).
    - ``scale=(S,)``: in-plane xS around the thick axis (or ``axis``, or the last axis);
      ``scale=(a, b, c)``: per voxel axis.
    - ``target_spacing`` (mm, may be non-integer): every axis coarser than it (or only
      ``axis``) goes to ``round(n * spacing / target)`` voxels: super-resolution by the
      nearest integer factor, then B-spline resampling of the remainder. Edges are kept,
      so the final spacing is ``n * spacing / n_out`` (closest to the target).
    """
    shape = tuple(int(n) for n in shape[:3])
    sizes = geometry.voxel_sizes(affine)
    detected = geometry.thick_axis(affine)
    thick = detected if axis is None else axis
    slice_axis = 2 if thick is None else thick
    names = geometry.AXIS_NAMES
    if target_spacing is not None:
        if not (math.isfinite(target_spacing) and target_spacing > 0):
            raise MedsrError(f"--target-spacing must be > 0 mm, got {target_spacing}")
        if scale is not None:
            raise MedsrError("give either --scale or --target-spacing, not both")
        axes = [axis] if axis is not None else [a for a in range(3)]
        factors, out = [1, 1, 1], list(shape)
        for a in axes:
            ratio = sizes[a] / target_spacing
            if ratio <= 1.0 + 1e-6:
                continue
            factors[a] = max(1, round(ratio))
            out[a] = max(1, round(shape[a] * ratio))
        if tuple(out) == shape:
            raise MedsrError(
                f"--target-spacing {target_spacing} mm is not finer than the voxel size"
                f" {fmt_scale(sizes)} mm on any axis; nothing to do"
            )
        reason = f"target spacing {target_spacing} mm: " + ", ".join(
            f"{names[a]} {sizes[a]:.4g}->{sizes[a] * shape[a] / out[a]:.4g} mm"
            for a in range(3)
            if out[a] != shape[a]
        )
        return Plan(tuple(factors), tuple(out), thick, reason)
    if scale is not None:
        scale = tuple(int(s) for s in scale)
        if len(scale) == 3:
            factors = scale
            reason = f"per-axis scale {'x'.join(map(str, scale))}"
        else:
            factors = tuple(1 if a == slice_axis else scale[0] for a in range(3))
            reason = f"in-plane x{scale[0]} (slice axis {names[slice_axis]})"
    elif thick is not None:
        fine = min(sizes[a] for a in range(3) if a != thick)
        factor = round(sizes[thick] / fine)
        if factor < 2:
            raise MedsrError(
                f"axis {names[thick]} ({sizes[thick]:.4g} mm) is not thicker than the others"
                f" ({fmt_scale(sizes)} mm); give --scale"
            )
        factors = tuple(factor if a == thick else 1 for a in range(3))
        how = "given" if axis is not None else "detected"
        reason = (
            f"anisotropic {fmt_scale(sizes)} mm: thick axis {names[thick]} ({how})"
            f" x{factor} to {sizes[thick] / factor:.4g} mm"
        )
    else:
        factors = tuple(1 if a == slice_axis else 2 for a in range(3))
        reason = f"isotropic {fmt_scale(sizes)} mm: in-plane x2 (slice axis {names[slice_axis]})"
    out = tuple(n * f for n, f in zip(shape, factors))
    return Plan(tuple(int(f) for f in factors), out, thick, reason)


def fmt_scale(values: Sequence[float]) -> str:
    return "x".join(f"{v:.4g}" for v in values)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelChoice:
    """The model ``enhance`` uses: a spec for ``load_model`` and why it was chosen."""

    spec: str
    reason: str


def default_model(modality: str, axis_scale: Sequence[int]) -> ModelChoice:
    """The shipped model of ``modality`` for ``axis_scale``, else the B-spline baseline.

    A 3D card must match ``axis_scale`` exactly; a 2D card matches through-plane work
    when its scale is the thick-axis factor (applied slice-wise, SMORE-style), and
    in-plane work when its scale equals the two in-plane factors.
    """
    wanted = tuple(int(s) for s in axis_scale)
    scaled = [s for s in wanted if s > 1]
    for card in list_models():
        if card.domain != modality:
            continue
        card_scale = tuple(card.axis_scale) or (card.scale,) * card.dims
        if card.dims == 3 and card_scale == wanted:
            return ModelChoice(card.name, f"shipped {modality} 3D model for x{fmt_scale(wanted)}")
        if card.dims == 2 and len(scaled) == 1 and sorted(card_scale) == [1, scaled[0]]:
            return ModelChoice(card.name, f"shipped {modality} 2D through-plane model (SMORE)")
        if card.dims == 2 and len(scaled) == 2 and card_scale == tuple(scaled):
            return ModelChoice(card.name, f"shipped {modality} 2D in-plane model")
    return ModelChoice(
        FALLBACK_MODEL,
        f"no shipped {modality} model for x{'x'.join(map(str, wanted))}:"
        f" cubic B-spline interpolation ({FALLBACK_MODEL})",
    )


def _upscale_planes(
    model, x: np.ndarray, along: int, plane_scale: dict[int, int], first: int | None, **kw
) -> np.ndarray:
    """Applies a 2D model to every plane of ``x`` perpendicular to axis ``along``.

    ``plane_scale`` maps the two in-plane axes to their factors; ``first`` (if given) is
    put first in each plane (2D models trained as ``(s, 1)`` expect the scaled axis first).
    """
    axes = [a for a in range(3) if a != along]
    if first is not None and axes[0] != first:
        axes = axes[::-1]
    moved = np.ascontiguousarray(np.moveaxis(x, [along, *axes], [0, 1, 2]))
    scale = (plane_scale[axes[0]], plane_scale[axes[1]])
    if tuple(model.scale) != scale:
        raise MedsrError(
            f"the 2D model's scale {tuple(model.scale)} is not the plane scale {scale}"
        )
    out = upscale_planes(model, moved[None], **kw)[0]
    return np.moveaxis(out, [0, 1, 2], [along, *axes])


def iterative_back_projection(
    normalized: np.ndarray,
    axis_scale: Sequence[int],
    *,
    iterations: int = IBP_ITERATIONS,
    **upscale_options: Any,
) -> np.ndarray:
    """Irani-Peleg iterative back-projection for thick slices (no learned weights).

    Starts from the cubic B-spline upsampling ``x`` of the low-res ``y`` and repeats
    ``x += bspline_up(y - D(x))``, where ``D`` is the edges-kept thick-slice model of
    ``common.degradation.thick_slice`` (Gaussian profile, FWHM = one low-res voxel) along
    every scaled axis. The result reproduces the low-res data under ``D`` far better than
    interpolation does; it assumes that slice profile (typical of 2D MRI and CT
    reconstructions with thickness = spacing).
    """
    from common.degradation import thick_slice

    scale = tuple(int(s) for s in axis_scale)

    def up(values: np.ndarray) -> np.ndarray:
        batch = values.astype(np.float32)[None]
        return upscale(FALLBACK_MODEL, batch, scale=scale, **upscale_options)[0].astype(np.float64)

    def down(values: np.ndarray) -> np.ndarray:
        for axis, factor in enumerate(scale):
            if factor > 1:
                values = thick_slice(values, factor, axis, profile="gaussian")
        return values

    low = normalized.astype(np.float64)
    x = up(low)
    for _ in range(iterations):
        x += up(low - down(x))
    return x.astype(np.float32)


def super_resolve(
    normalized: np.ndarray,
    axis_scale: Sequence[int],
    model: Any = FALLBACK_MODEL,
    *,
    device: str | None = None,
    tile: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, str]:
    """Super-resolves a normalized ``(X, Y, Z)`` array by integer ``axis_scale``.

    Interpolation baselines and 3D models run in 3D. A 2D model runs on planes: for one
    scaled axis (through-plane), on both plane orientations containing it, averaged
    (SMORE); for two equally scaled axes, on the planes perpendicular to the third.

    ``model="ibp"`` runs :func:`iterative_back_projection` instead of a network.

    Returns:
        the float32 result and the method used (``"3d"``, ``"2d-smore"``, ``"2d-inplane"``,
        ``"ibp"``).
    """
    scale = tuple(int(s) for s in axis_scale)
    kw = {"tile": tile, "device": device, "batch_size": batch_size, "progress": progress}
    if isinstance(model, str) and model in MEDSR_METHODS:
        return iterative_back_projection(normalized, scale, **kw), model
    model = load_model(model)
    if getattr(model, "flexible_scale", False) or model.dims == 3:
        return upscale(model, normalized[None], scale=scale, **kw)[0], "3d"
    scaled = [a for a in range(3) if scale[a] > 1]
    if len(scaled) == 1:
        thick = scaled[0]
        others = [a for a in range(3) if a != thick]
        results = [
            _upscale_planes(model, normalized, along, {a: scale[a] for a in range(3)}, thick, **kw)
            for along in others
        ]
        return ((results[0] + results[1]) / 2).astype(np.float32), "2d-smore"
    if len(scaled) == 2 and scale[scaled[0]] == scale[scaled[1]]:
        along = next(a for a in range(3) if scale[a] == 1)
        out = _upscale_planes(model, normalized, along, {a: scale[a] for a in range(3)}, None, **kw)
        return out.astype(np.float32), "2d-inplane"
    raise MedsrError(f"a 2D model cannot apply scale {scale}; use a 3D model or a baseline")


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


def fill_nearest(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``values`` with each non-finite voxel replaced by its nearest finite voxel's value
    (so a NaN hole does not pull its neighbours towards an arbitrary fill value)."""
    if not missing.any() or missing.all():
        return values
    from scipy.ndimage import distance_transform_edt

    index = distance_transform_edt(missing, return_distances=False, return_indices=True)
    return values[tuple(index)]


def parent_mask(mask: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
    """``mask`` carried to ``out_shape``: each output voxel takes the input voxel its centre
    falls in (edges-kept), so NaN regions are restored without spreading."""
    index = []
    for n, m in zip(mask.shape, out_shape):
        parent = np.floor((np.arange(m) + 0.5) * n / m).astype(np.int64)
        index.append(np.clip(parent, 0, n - 1))
    return mask[np.ix_(*index)]


@dataclass
class EnhanceResult:
    """The enhanced volume and its provenance record."""

    volume: Volume
    provenance: dict[str, Any] = field(default_factory=dict)


def enhance_volume(
    volume: Volume,
    plan: Plan,
    *,
    model: str | None = None,
    modality: str = "auto",
    device: str | None = None,
    tile: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> EnhanceResult:
    """Super-resolves ``volume`` as planned; output in the input's units and world frame.

    ``model=None`` picks :func:`default_model` for the modality; ``modality="auto"`` reads
    the DICOM Modality, else the value range (:func:`medsr.intensity.detect_modality`).
    """
    start = time.perf_counter()
    if modality not in ("auto", "mri", "ct"):
        raise MedsrError(f"--modality must be auto, mri or ct, got {modality!r}")
    kind = detect_modality(volume.data, volume.modality) if modality == "auto" else modality
    choice = (
        default_model(kind, plan.axis_scale)
        if model is None
        else ModelChoice(str(model), "given with --model")
    )
    net = choice.spec if choice.spec in MEDSR_METHODS else load_model(choice.spec)
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
        header=volume.header,
    )
    card = getattr(net, "card", None)
    provenance = {
        "tool": "medsr enhance",
        "version": __version__,
        "input": str(volume.source) if volume.source else None,
        "model": {
            "spec": choice.spec,
            "name": getattr(card, "name", choice.spec),
            "reason": choice.reason,
            "version": __version__
            if choice.spec in MEDSR_METHODS
            else getattr(card, "version", None),
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
