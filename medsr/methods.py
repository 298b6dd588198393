"""How ``medsr`` super-resolves a normalized volume: a dispatch table of methods.

- ``3d``: a 3D model or an interpolation baseline on the whole volume;
- ``2d-smore``: a 2D through-plane model on both plane orientations that contain the
  thick axis, averaged (SMORE);
- ``2d-inplane``: a 2D model on the planes perpendicular to the unscaled axis;
- ``ibp``: iterative back-projection of a Gaussian slice profile (no weights).

:func:`choose_method` says which applies to a model and a scale; every method runs through
``common.inference`` (tiled, seam-free, bounded memory).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from srkit.common import load_model, upscale
from srkit.common.inference import upscale_planes
from srkit.common.models.select import ModelChoice, select_model

from .errors import MedsrError

FALLBACK_MODEL = "bspline"
# Methods medsr runs itself (not common models): name -> one-line description.
MEDSR_METHODS = {
    "ibp": "iterative back-projection of a Gaussian slice profile (FWHM = the low-res"
    " spacing), initialised and back-projected with cubic B-spline",
}
IBP_ITERATIONS = 6


def default_model(modality: str, axis_scale: Sequence[int]) -> ModelChoice:
    """The shipped model of ``modality`` for ``axis_scale``, else the B-spline baseline
    (:func:`common.models.select_model`, the rule every front end shares)."""
    return select_model(modality, axis_scale)


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
    if not model.serves(scale, dims=2):
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
    from srkit.common.degradation import thick_slice

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


def _run_3d(normalized, scale, model, **kw) -> np.ndarray:
    return upscale(model, normalized[None], scale=scale, **kw)[0]


def _run_smore(normalized, scale, model, **kw) -> np.ndarray:
    """A 2D through-plane model on both plane orientations containing the thick axis,
    averaged (SMORE)."""
    thick = next(a for a in range(3) if scale[a] > 1)
    factors = dict(enumerate(scale))
    results = [
        _upscale_planes(model, normalized, along, factors, thick, **kw)
        for along in range(3)
        if along != thick
    ]
    return ((results[0] + results[1]) / 2).astype(np.float32)


def _run_inplane(normalized, scale, model, **kw) -> np.ndarray:
    """A 2D model on the planes perpendicular to the one unscaled axis."""
    along = next(a for a in range(3) if scale[a] == 1)
    return _upscale_planes(model, normalized, along, dict(enumerate(scale)), None, **kw).astype(
        np.float32
    )


def _run_ibp(normalized, scale, model, **kw) -> np.ndarray:
    return iterative_back_projection(normalized, scale, **kw)


# method name -> how it runs; which one applies is :func:`choose_method`'s rule
METHODS: dict[str, Callable[..., np.ndarray]] = {
    "3d": _run_3d,
    "2d-smore": _run_smore,
    "2d-inplane": _run_inplane,
    "ibp": _run_ibp,
}


def choose_method(model: Any, scale: Sequence[int]) -> str:
    """The :data:`METHODS` entry for ``model`` (a loaded model or a medsr method name)."""
    if isinstance(model, str) and model in MEDSR_METHODS:
        return model
    if getattr(model, "flexible_scale", False) or model.dims == 3:
        return "3d"
    scaled = [a for a in range(3) if scale[a] > 1]
    if len(scaled) == 1:
        return "2d-smore"
    if len(scaled) == 2 and scale[scaled[0]] == scale[scaled[1]]:
        return "2d-inplane"
    raise MedsrError(f"a 2D model cannot apply scale {tuple(scale)}; use a 3D model or a baseline")


DOMAIN_FREE = "any"
"""The card domain of interpolation baselines (and of networks built in memory)."""


def check_domain(model: Any, modality: str, name: str, *, force: bool = False) -> str | None:
    """Refuses a model trained on another domain than the input's modality.

    A medsr method (``ibp``) and an interpolation baseline (card domain ``any``) fit every
    input. Any other card domain (``mri``, ``ct``, ``rs``, ``natural``) must equal
    ``modality``.

    Returns:
        ``None`` when the model fits, else (with ``force``) the warning it also issues.

    Raises:
        MedsrError: ``"<name>: model M is for domain D, but the input is a CT/MRI ..."``
            when the domains differ and ``force`` is false.
    """
    if isinstance(model, str):
        return None
    card = model.card
    if card.domain in (DOMAIN_FREE, modality):
        return None
    problem = (
        f"model {card.name} is for domain {card.domain!r}, but the input's modality is {modality!r}"
    )
    if not force:
        raise MedsrError(f"{name}: {problem}; pass --force (force=True) to run it anyway")
    message = f"{name}: {problem}; running it anyway (--force)"
    warnings.warn(message, stacklevel=3)
    return message


def load_method_model(spec: str) -> Any:
    """A medsr method name as it is, anything else through ``load_model``."""
    return spec if spec in MEDSR_METHODS else load_model(spec)


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
        the float32 result and the method used (a :data:`METHODS` name).
    """
    scale = tuple(int(s) for s in axis_scale)
    kw = {"tile": tile, "device": device, "batch_size": batch_size, "progress": progress}
    model = load_method_model(model) if isinstance(model, str) else load_model(model)
    method = choose_method(model, scale)
    return METHODS[method](normalized, scale, model, **kw), method
