"""Models: architectures, interpolation baselines, the registry, cards and weights I/O."""

from __future__ import annotations

from .architectures import EDSR, ESPCN, SRCNN, Interpolator, SRModule
from .card import DOMAINS, ModelCard
from .registry import (
    ARCHITECTURES,
    BASELINES,
    SHIPPED,
    ModelNotFoundError,
    build_model,
    list_models,
    load_model,
    make_baseline,
)
from .select import ModelChoice, select_model
from .weights import WeightsError, read_weights, save_model

__all__ = [
    "ARCHITECTURES",
    "BASELINES",
    "DOMAINS",
    "EDSR",
    "ESPCN",
    "SHIPPED",
    "SRCNN",
    "Interpolator",
    "ModelCard",
    "ModelChoice",
    "ModelNotFoundError",
    "SRModule",
    "WeightsError",
    "build_model",
    "list_models",
    "load_model",
    "make_baseline",
    "read_weights",
    "save_model",
    "select_model",
]
