"""The explicit model registry: plain dicts, no import-time scanning.

- ``ARCHITECTURES`` maps an architecture key to its class.
- ``BASELINES`` names the interpolation baselines, which behave like models.
- ``SHIPPED`` maps a shipped model name to its weights file in ``common/weights/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._version import __version__
from .architectures import EDSR, ESPCN, SRCNN, Interpolator, SRModule
from ..errors import SRKitError
from .card import ModelCard
from .layers import interpolation_radius
from .weights import WEIGHT_SUFFIXES, WeightsError, read_weights

ARCHITECTURES: dict[str, type[SRModule]] = {
    "srcnn": SRCNN,
    "espcn": ESPCN,
    "edsr": EDSR,
}

BASELINES: tuple[str, ...] = ("bicubic", "bspline", "lanczos", "nearest")

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

# name -> weights file name in WEIGHTS_DIR (a JSON card with the same stem sits beside it)
SHIPPED: dict[str, str] = {
    "ct_inplane_x2": "ct_inplane_x2.safetensors",
    "ct_smore_x2": "ct_smore_x2.safetensors",
    "ct_smore_x3": "ct_smore_x3.safetensors",
    "ct_smore_x4": "ct_smore_x4.safetensors",
    "mri_inplane_x2": "mri_inplane_x2.safetensors",
    "mri_smore_x2": "mri_smore_x2.safetensors",
    "mri_smore_x3": "mri_smore_x3.safetensors",
    "mri_smore_x4": "mri_smore_x4.safetensors",
    "natural_edsr_x2": "natural_edsr_x2.safetensors",
    "natural_edsr_x4": "natural_edsr_x4.safetensors",
    "natural_srcnn_x3": "natural_srcnn_x3.safetensors",
    "rs_edsr_x2": "rs_edsr_x2.safetensors",
    "rs_edsr_x4": "rs_edsr_x4.safetensors",
}


class ModelNotFoundError(SRKitError, LookupError):
    """An unknown model spec; the message lists what is available."""


def build_model(architecture: str, **hparams: Any) -> SRModule:
    """A freshly initialized network of a registered architecture."""
    if architecture not in ARCHITECTURES:
        raise ModelNotFoundError(
            f"unknown architecture {architecture!r}; choose from {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[architecture](**hparams)


def baseline_card(kind: str, dims: int = 2, scale: int = 2) -> ModelCard:
    """The generated card of an interpolation baseline."""
    radius = interpolation_radius(kind)
    return ModelCard(
        name=kind,
        domain="any",
        scale=scale,
        channels=0,
        dims=dims,
        architecture=kind,
        hparams={"kind": kind},
        axis_scale=(scale,) * dims,
        receptive_field=2 * radius + 1,
        input_range=(0.0, 1.0),
        description=f"{kind} interpolation baseline (edges-kept grid, half-sample symmetric boundary)",
        license="n/a",
        version=__version__,
        supports_half=True,
        supports_bfloat16=True,
        tile_hint=512 if dims == 2 else 96,
    )


def make_baseline(kind: str, dims: int = 2, scale: int = 2) -> Interpolator:
    """An interpolation baseline as a model (any channel count; rescalable with ``with_scale``)."""
    if kind not in BASELINES:
        raise ModelNotFoundError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")
    model = Interpolator(kind, dims=dims, scale=scale)
    model.card = baseline_card(kind, dims, scale)
    return model


def _shipped_path(name: str) -> Path:
    return WEIGHTS_DIR / SHIPPED[name]


def available_shipped() -> list[str]:
    """Shipped model names whose weights are present in this installation."""
    return [name for name in SHIPPED if _shipped_path(name).is_file()]


def list_models(domain: str | None = None) -> list[ModelCard]:
    """Cards of the shipped models (of ``domain`` if given), read from their JSON cards.

    No weights are loaded.
    """
    cards = []
    for name in available_shipped():
        card_file = _shipped_path(name).with_suffix(".json")
        card = ModelCard.from_dict(json.loads(card_file.read_text()))
        if domain is None or card.domain == domain:
            cards.append(card)
    return cards


def model_from_weights(path: str | os.PathLike) -> SRModule:
    """Rebuilds a network from a weights file this toolkit wrote."""
    state, architecture, hparams, card = read_weights(path)
    try:
        model = build_model(architecture, **hparams)
        model.load_state_dict(state, strict=True)
    except (TypeError, RuntimeError, ModelNotFoundError) as exc:
        raise WeightsError(
            f"{path}: weights do not match architecture {architecture!r}: {exc}"
        ) from exc
    model.card = card
    return model.eval()


def load_model(spec: str | os.PathLike | SRModule) -> SRModule:
    """A ready-to-run model (eval mode, on the CPU) from a name, a path or a baseline.

    Args:
        spec: a shipped model name (see ``list_models()``), a path to a ``.safetensors``
            (or weights-only ``.pt``/``.pth``) file this toolkit wrote, or an interpolation
            baseline: ``"bicubic"``, ``"bspline"``, ``"lanczos"``, ``"nearest"``. A model
            instance is returned unchanged.

    Raises:
        ModelNotFoundError: the spec names nothing known; the message lists the options.
        WeightsError: the file exists but is not usable weights.
    """
    if isinstance(spec, SRModule):
        return spec
    text = str(spec)
    if text in BASELINES:
        return make_baseline(text)
    if text in SHIPPED:
        path = _shipped_path(text)
        if not path.is_file():
            raise ModelNotFoundError(
                f"shipped model {text!r} has no weights in this installation ({path})"
            )
        return model_from_weights(path)
    path = Path(text).expanduser()
    if path.suffix in WEIGHT_SUFFIXES or path.exists():
        return model_from_weights(path)
    options = ", ".join([*available_shipped(), *BASELINES])
    raise ModelNotFoundError(
        f"unknown model {text!r}; use a weights file path or one of: {options}"
    )
