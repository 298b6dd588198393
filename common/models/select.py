"""Which shipped model fits a job: one rule for every front end.

``select_model(domain, axis_scale, channels)`` looks through the shipped cards of
``domain`` (no weights are loaded) and returns the best fit, or the domain's
interpolation baseline with the reason there is none. A card fits when:

- 3D: its ``axis_scale`` equals the wanted one;
- 2D, one scaled axis (through-plane, SMORE-style on planes): its two factors are
  ``(1, s)`` in some order, with ``s`` the wanted factor;
- 2D, two scaled axes (in-plane, or a raster): its factors equal the wanted ones;
- and, when ``channels`` is given, it takes that many channels, or 1 (applied per
  channel), or any (0).

Ties go to the exact channel count, then to the larger validation gain, then the name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .card import ModelCard
from .registry import list_models

FALLBACKS = {"mri": "bspline", "ct": "bspline", "rs": "bicubic", "natural": "bicubic"}
DOMAIN_NAMES = {"mri": "mri", "ct": "ct", "rs": "remote-sensing", "natural": "natural-image"}
CHANNEL_NAMES = {"rs": "band"}  # what a channel is called in the domain's messages


@dataclass(frozen=True)
class ModelChoice:
    """A model spec for ``load_model`` and why it was chosen.

    Attributes:
        spec: a shipped model name, a baseline name or a path.
        reason: one human sentence (shown on stderr, stored in provenance).
        card: the chosen shipped card; ``None`` for a baseline or a user-given spec.
        fallback: True when no shipped model fits and ``spec`` is the baseline.
    """

    spec: str
    reason: str
    card: ModelCard | None = None
    fallback: bool = False


def _card_axis_scale(card: ModelCard) -> tuple[int, ...]:
    return tuple(card.axis_scale) or (card.scale,) * card.dims


def fits(card: ModelCard, axis_scale: Sequence[int], channels: int | None = None) -> str | None:
    """How ``card`` serves ``axis_scale``: ``"3d"``, ``"planes"``, ``"in-plane"`` or None."""
    wanted = tuple(int(s) for s in axis_scale)
    if channels is not None and card.channels not in (channels, 1, 0):
        return None
    scaled = [s for s in wanted if s > 1]
    card_scale = _card_axis_scale(card)
    if card.dims == 3 and len(wanted) == 3 and card_scale == wanted:
        return "3d"
    if card.dims == 2 and len(wanted) == 3 and len(scaled) == 1:
        return "planes" if sorted(card_scale) == [1, scaled[0]] else None
    if card.dims == 2 and len(scaled) == 2 and card_scale == tuple(scaled):
        return "in-plane"
    return None


def select_model(
    domain: str, axis_scale: Sequence[int], channels: int | None = None
) -> ModelChoice:
    """The best shipped model of ``domain`` for ``axis_scale``, else the baseline.

    Args:
        domain: ``"mri"``, ``"ct"``, ``"rs"`` or ``"natural"``.
        axis_scale: the factor per spatial axis: 3 values for a volume, 2 for an image.
        channels: the input's channel count (bands); ``None`` skips the channel check.

    Returns:
        a :class:`ModelChoice`; ``fallback=True`` names the domain's baseline.
    """
    if domain not in FALLBACKS:
        raise ValueError(f"unknown domain {domain!r}; choose from {', '.join(FALLBACKS)}")
    wanted = tuple(int(s) for s in axis_scale)
    label = DOMAIN_NAMES[domain]
    found = []
    for card in list_models(domain=domain):
        how = fits(card, wanted, channels)
        if how is not None:
            fit = (
                0
                if channels is None or card.channels == channels
                else (1 if card.channels == 1 else 2)
            )
            gain = float(card.metrics.get("gain_db", 0.0) or 0.0)
            found.append(((fit, -gain, card.name), card, how))
    factor = str(wanted[0]) if len(set(wanted)) == 1 else "x".join(map(str, wanted))
    if not found:
        baseline = FALLBACKS[domain]
        unit = CHANNEL_NAMES.get(domain, "channel")
        bands = f" with {channels} {unit}(s)" if channels is not None else ""
        return ModelChoice(
            baseline,
            f"no shipped {label} model for x{factor}{bands}; using {baseline} interpolation",
            None,
            True,
        )
    _, card, how = min(found, key=lambda item: item[0])
    kind = {
        "3d": "3D model",
        "planes": "2D through-plane model (SMORE)",
        "in-plane": "2D in-plane model",
    }
    return ModelChoice(card.name, f"shipped {label} {kind[how]} for x{factor}", card, False)
