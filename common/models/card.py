"""The model card: what a model is, what it expects and how well it did."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DOMAINS = ("mri", "ct", "rs", "natural")
# Interpolation baselines are domain-agnostic; their cards say "any".
CARD_DOMAINS = (*DOMAINS, "any")
# The default window side, in input pixels, of tiled inference by spatial dimensions: what
# ``upscale`` uses when a card gives no ``tile_hint``, and the hint written on new cards.
DEFAULT_TILE_HINT: dict[int, int] = {2: 256, 3: 64}


@dataclass(frozen=True)
class ModelCard:
    """Describes one model; shipped models carry one, baselines get one generated.

    Attributes:
        name: registry name or file stem.
        domain: ``"mri"``, ``"ct"``, ``"rs"``, ``"natural"`` (``"any"`` for baselines).
        scale: largest per-axis factor, e.g. 4 for ``axis_scale=(1, 1, 4)``.
        channels: input and output channel count (``0`` means any, for baselines).
        dims: 2 or 3 spatial dimensions.
        architecture: registry key of the architecture (``"srcnn"``, ``"bicubic"``, ...).
        hparams: constructor arguments that rebuild the network.
        axis_scale: the integer factor per spatial axis.
        receptive_field: width in input pixels of the region one output pixel depends on
            (``2 * radius + 1`` along the widest axis).
        input_range: the normalized range the model was trained on, ``(low, high)``.
        n_parameters: trainable parameter count.
        description: one paragraph for humans.
        training_data: source files or sets, with licences.
        metrics: held-out metrics, including the interpolation baseline beside the model.
        license: licence of the weights.
        version: toolkit version that wrote the card.
        supports_half: float16 inference is safe.
        supports_bfloat16: bfloat16 inference is safe.
        tile_hint: a good default tile size in input pixels.
    """

    name: str
    domain: str
    scale: int
    channels: int
    dims: int
    architecture: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    axis_scale: tuple[int, ...] = ()
    receptive_field: int = 0
    input_range: tuple[float, float] = (0.0, 1.0)
    n_parameters: int = 0
    description: str = ""
    training_data: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    license: str = ""
    version: str = ""
    supports_half: bool = False
    supports_bfloat16: bool = True
    tile_hint: int = 0

    def __post_init__(self) -> None:
        if self.domain not in CARD_DOMAINS:
            raise ValueError(
                f"card {self.name!r}: domain must be one of {CARD_DOMAINS}, got {self.domain!r}"
            )
        if self.dims not in (2, 3):
            raise ValueError(f"card {self.name!r}: dims must be 2 or 3, got {self.dims}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Builds a card from a dict; unknown or missing keys are an error naming them."""
        fields = dataclasses.fields(cls)
        known = {f.name for f in fields}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model card key(s): {', '.join(unknown)}")
        required = [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"missing model card key(s): {', '.join(missing)}")
        values = dict(data)
        for key in ("axis_scale", "input_range", "training_data"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
