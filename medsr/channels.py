"""``medsr enhance`` on a channel-first array with an affine: what the MONAI and TorchIO
transforms share.

A framework hands over ``(C, X, Y, Z)`` data and one 4x4 affine for all channels. Each
channel is one scalar volume and goes through exactly the path of ``medsr enhance``:
:func:`medsr.plan.plan_enhance` (the thick axis and factors from the affine's voxel sizes),
then :func:`medsr.enhance.enhance_volume` (normalization, the model, the inverse
normalization, NaNs kept). The new affine is the one ``enhance_volume`` computes by the
edges-kept rule (:func:`medsr.geometry.upsampled_affine`), so it is never re-derived here.

The frame of the affine does not matter: the edges-kept rule multiplies the affine on the
right (index space) and voxel sizes are column norms, so an LPS affine (ITK, MONAI's
``space="LPS"``) gives the LPS version of the same grid.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from srkit.common.errors import SRKitError, first_line

from .enhance import enhance_volume
from .errors import MedsrError
from .io import Volume
from .plan import parse_scale, plan_enhance

PLAN_OPTIONS = ("scale", "axis", "target_spacing")
"""Options of :func:`medsr.plan.plan_enhance` (``--scale``, ``--axis``, ``--target-spacing``)."""


def _enhance_options() -> tuple[str, ...]:
    """Keyword options of :func:`medsr.enhance.enhance_volume`, read from its signature so
    that an option added there (say, ``clip``) is accepted here without a change."""
    params = inspect.signature(enhance_volume).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def check_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The options as a dict, after refusing unknown names (with a "did you mean").

    Raises:
        MedsrError: ``"<where>: unknown option 'scal' (did you mean 'scale'?)"``.
    """
    known = (*PLAN_OPTIONS, *_enhance_options())
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; options: {', '.join(known)}"
            raise MedsrError(f"{where}: unknown option {name!r}{hint}")
    options = dict(options)
    if options.get("scale") is not None:
        options["scale"] = parse_scale(
            options["scale"] if isinstance(options["scale"], str) else np.ravel(options["scale"])
        )
    return options


@dataclass
class ChannelsResult:
    """Enhanced ``(C, X', Y', Z')`` float32 data, its affine and one provenance per channel."""

    data: np.ndarray
    affine: np.ndarray
    provenance: list[dict[str, Any]] = field(default_factory=list)


def enhance_channels(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    model: Any = None,
    name: str = "image",
    **options: Any,
) -> ChannelsResult:
    """Runs ``medsr enhance`` on every channel of ``(C, X, Y, Z)`` ``data`` (physical units).

    Args:
        data: channel-first array, 3 spatial axes in the order of ``affine``'s columns.
        affine: 4x4 voxel-centre index to world (mm) matrix shared by all channels.
        model: a model spec or an ``SRModule``; ``None`` picks the modality's default, as
            ``medsr enhance`` does.
        name: what error messages call the image (a dictionary key, a subject's image).
        options: ``scale``, ``axis``, ``target_spacing`` (the plan) and the keyword options
            of :func:`medsr.enhance.enhance_volume` (``modality``, ``device``, ``tile``,
            ``batch_size``, ...); unknown names are refused.

    Every channel gets the same plan (one geometry); normalization and the modality are
    per channel, as if each channel were its own file.

    Raises:
        MedsrError: not ``(C, X, Y, Z)``, a bad affine, an unknown option, or anything
            ``medsr enhance`` refuses, prefixed with ``name``.
    """
    options = check_options(options, name)
    array = np.asarray(data)
    if array.ndim != 4:
        raise MedsrError(
            f"{name}: expected channel-first (C, X, Y, Z) data, got shape {tuple(array.shape)}"
        )
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise MedsrError(f"{name}: the affine must be a finite 4x4 matrix, got {matrix.shape}")
    plan_options = {k: options.pop(k) for k in PLAN_OPTIONS if k in options}
    try:
        plan = plan_enhance(array.shape[1:], matrix, **plan_options)
    except MedsrError as exc:
        raise MedsrError(f"{name}: {exc}") from None
    channels, provenance, out_affine = [], [], None
    for channel in array:
        volume = Volume(data=np.asarray(channel, dtype=np.float32), affine=matrix, modality=None)
        try:
            result = enhance_volume(volume, plan, model=model, **options)
        except SRKitError as exc:  # name the image, as enhance_file names the file
            raise type(exc)(f"{name}: {first_line(exc)}") from exc
        channels.append(result.volume.data)
        provenance.append(result.provenance)
        out_affine = result.volume.affine
    if out_affine is None:
        raise MedsrError(f"{name}: the data has no channel")
    return ChannelsResult(np.stack(channels).astype(np.float32, copy=False), out_affine, provenance)
