"""Which model ``geosr enhance`` uses, and how it is applied to a raster's bands."""

from __future__ import annotations

from pathlib import Path

from srkit.common import load_model
from srkit.common.models import SRModule
from srkit.common.models.select import ModelChoice, select_model

from .errors import GeosrError

FALLBACK = "bicubic"


def weights_file(spec: str) -> Path | None:
    """The weights file a model spec loads (a shipped name or a path); ``None`` for an
    interpolation baseline."""
    from srkit.common.models.registry import BASELINES, SHIPPED, _shipped_path

    text = str(spec)
    if text in BASELINES:
        return None
    if text in SHIPPED:
        return _shipped_path(text)
    path = Path(text).expanduser()
    return path if path.is_file() else None


def weights_sha256(spec: str) -> str:
    """SHA-256 of the model's weights file, or ``none (interpolation)``."""
    from srkit.common.batch import sha256_file

    path = weights_file(spec)
    return sha256_file(path) if path is not None else "none (interpolation)"


def default_model(scale: int, band_count: int) -> ModelChoice:
    """The shipped remote-sensing model for ``scale`` and ``band_count``, else bicubic.

    :func:`common.models.select_model`, the rule both front ends share: an ``rs`` model
    with exactly ``band_count`` channels, then a 1-channel one (applied per band), then
    any-channel; ties go to the larger held-out gain. Shipped models added to the
    registry are picked up here without CLI changes.
    """
    return select_model("rs", (scale, scale), band_count)


# card domains a raster may be enhanced with (interpolators are domain-free)
RASTER_DOMAINS = ("rs", "natural")


def check_domain(
    name: str, spec: str, model: SRModule, force: bool, messages: list[str] | None
) -> None:
    """Refuses a trained model whose card domain is not ``rs`` or ``natural`` (an MRI or
    CT model on a raster); with ``force`` it runs, and a warning goes to ``messages``.
    Interpolators are domain-free.

    Raises:
        GeosrError: the domain does not fit and ``force`` is off.
    """
    domain = model.card.domain
    if model.flexible_scale or domain in RASTER_DOMAINS:
        return
    text = (
        f"{name}: model {spec!r} is trained on {domain} images (card domain {domain!r}), "
        "not on remote-sensing or natural images"
    )
    if not force:
        raise GeosrError(f"{text}; pass --force (force=True) to run it anyway")
    if messages is not None:
        messages.append(f"{text}; running it anyway (--force)")


def prepare_model(
    spec: str,
    scale: int,
    band_count: int,
    *,
    name: str = "raster",
    force: bool = False,
    messages: list[str] | None = None,
) -> SRModule:
    """Loads ``spec`` at ``scale`` and checks it can take ``band_count`` bands.

    The card's domain is checked first (``check_domain``: ``force``, ``messages``).
    Interpolation baselines take any scale; a trained model must match it on both axes.
    A model with ``channels == 1`` is applied to each band in turn; otherwise the channel
    count must equal the band count.

    Raises:
        GeosrError: domain, scale or channel mismatch (the message says what would work).
    """
    model = load_model(spec)
    check_domain(name, spec, model, force, messages)
    if model.dims != 2 and not model.flexible_scale:
        raise GeosrError(f"model {spec!r} is {model.dims}D; geosr needs a 2D model")
    if not model.serves(scale, dims=2):
        factors = tuple(model.scale)
        if len(set(factors)) > 1:
            raise GeosrError(
                f"model {spec!r} upsamples one axis only (factors {factors}, a slice-"
                f"thickness model); a raster needs x{scale} on both axes"
            )
        raise GeosrError(
            f"model {spec!r} is trained for x{factors[0]}, not x{scale}; "
            f"pass --scale {factors[0]} or another model"
        )
    model = model.at_scale(scale, dims=2)
    if model.channels not in (0, 1, band_count):
        raise GeosrError(
            f"model {spec!r} takes {model.channels} band(s), the selection has {band_count}; "
            "choose bands with --bands"
        )
    return model
