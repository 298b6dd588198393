"""Planning ``medsr enhance``: which integer factor on which voxel axis, and why.

:func:`plan_enhance` turns the volume's geometry and the user's ``--scale``/``--axis``/
``--target-spacing`` into a :class:`Plan`: anisotropic volumes get their thick axis
refined to the in-plane spacing, isotropic ones an in-plane x2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import geometry
from .errors import MedsrError


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
