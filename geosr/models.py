"""Which model ``geosr enhance`` uses, and how it is applied to a raster's bands."""

from __future__ import annotations

from common import load_model
from common.models import SRModule
from common.models.select import ModelChoice, select_model

from .errors import GeosrError

FALLBACK = "bicubic"


def default_model(scale: int, band_count: int) -> ModelChoice:
    """The shipped remote-sensing model for ``scale`` and ``band_count``, else bicubic.

    :func:`common.models.select_model`, the rule both front ends share: an ``rs`` model
    with exactly ``band_count`` channels, then a 1-channel one (applied per band), then
    any-channel; ties go to the larger held-out gain. Shipped models added to the
    registry are picked up here without CLI changes.
    """
    return select_model("rs", (scale, scale), band_count)


def prepare_model(spec: str, scale: int, band_count: int) -> SRModule:
    """Loads ``spec`` at ``scale`` and checks it can take ``band_count`` bands.

    Interpolation baselines take any scale; a trained model must match it. A model with
    ``channels == 1`` is applied to each band in turn; otherwise the channel count must
    equal the band count.

    Raises:
        ValueError: scale or channel mismatch (the message says what would work).
    """
    model = load_model(spec)
    if model.dims != 2 and not model.flexible_scale:
        raise GeosrError(f"model {spec!r} is {model.dims}D; geosr needs a 2D model")
    if not model.serves(scale, dims=2):
        raise GeosrError(
            f"model {spec!r} is trained for x{model.scale[0]}, not x{scale}; "
            f"pass --scale {model.scale[0]} or another model"
        )
    model = model.at_scale(scale, dims=2)
    if model.channels not in (0, 1, band_count):
        raise GeosrError(
            f"model {spec!r} takes {model.channels} band(s), the selection has {band_count}; "
            "choose bands with --bands"
        )
    return model
