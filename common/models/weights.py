"""Saving and loading weights: safetensors plus a JSON card; never unpickled.

A weights file written here is self-describing: the safetensors metadata holds the
architecture, its hyperparameters and the card, and a ``<stem>.json`` card sits beside it
for humans (and wins over the embedded card, so metrics can be updated without touching
the weights). Training checkpoints (``last.pt``, a :class:`TrainingCheckpoint`) and
old-style ``.pt``/``.pth`` state dicts are read only with ``torch.load(weights_only=True)``;
a checkpoint with EMA weights loads as its EMA weights.

Every tensor read is checked to be finite, and every card to agree with the weights file's
architecture and hyperparameters, so a damaged or edited file is refused with its name.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import SRKitError
from ..io import atomic_outputs
from .architectures import SRModule
from .card import ModelCard

FORMAT = "srkit-weights"
FORMAT_VERSION = "1"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


class WeightsError(SRKitError):
    """A weights file that cannot be used; the message names the file and the problem."""


def card_path_for(weights_path: str | os.PathLike) -> Path:
    """The JSON card that accompanies a weights file."""
    return Path(weights_path).with_suffix(".json")


# --------------------------------------------------------------------------- checkpoints


@dataclass
class TrainingCheckpoint:
    """What a training ``last.pt`` holds; written by the runner, read by resume and loaders.

    Attributes:
        architecture: registry key of the network.
        hparams: constructor arguments that rebuild it.
        model: the raw network's state dict.
        ema: the EMA network's own state dict (same keys as ``model``), or ``None``.
        ema_n_averaged: how many updates the EMA has seen (to resume it exactly).
        optimizer, scheduler: their state dicts (``None`` in a weights-only checkpoint).
        epoch: epochs completed; step: optimizer steps taken.
        best: best validation score so far; best_metrics: the metrics of that epoch.
        rng: the NumPy patch sampler's bit-generator state; torch_rng: torch's CPU RNG.
        config: the run's configuration as plain data.
        world_size: processes that trained it.
        card: an optional model card as plain data.
    """

    architecture: str
    hparams: dict[str, Any]
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None = None
    ema_n_averaged: int = 0
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    epoch: int = 0
    step: int = 0
    best: float = -math.inf
    best_metrics: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] | None = None
    torch_rng: torch.Tensor | None = None
    config: dict[str, Any] | None = None
    world_size: int = 1
    card: dict[str, Any] | None = None

    @property
    def inference_state(self) -> dict[str, torch.Tensor]:
        """The weights to run: the EMA's when the run kept one, else the raw model's."""
        return self.ema if self.ema is not None else self.model

    def to_dict(self) -> dict[str, Any]:
        """Plain data that ``torch.load(weights_only=True)`` reads back (metrics and the
        NumPy RNG state as JSON text: they hold lists and 128-bit integers)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["best_metrics"] = json.dumps(self.best_metrics)
        data["rng"] = json.dumps(self.rng) if self.rng is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | os.PathLike) -> TrainingCheckpoint:
        """Reads ``to_dict`` output (also the older layout, whose ``ema`` was an
        ``AveragedModel`` state dict with ``module.`` keys and ``n_averaged``).

        Raises:
            WeightsError: naming ``source``, for missing or unknown keys.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(f"{source}: unknown checkpoint key(s): {', '.join(unknown)}")
        missing = [key for key in ("architecture", "hparams", "model") if key not in data]
        if missing:
            raise WeightsError(f"{source}: checkpoint lacks {', '.join(missing)}")
        values = dict(data)
        for key in ("best_metrics", "rng"):
            if isinstance(values.get(key), str):
                values[key] = json.loads(values[key])
        values["best_metrics"] = values.get("best_metrics") or {}
        ema = values.get("ema")
        if ema is not None and "n_averaged" in ema:  # an AveragedModel state dict
            values["ema_n_averaged"] = int(ema["n_averaged"])
            values["ema"] = {
                key.removeprefix("module."): value
                for key, value in ema.items()
                if key != "n_averaged"
            }
        values["hparams"] = dict(values["hparams"])
        return cls(**values)


# --------------------------------------------------------------------------- writing


def save_model(model: SRModule, path: str | os.PathLike, card: ModelCard) -> Path:
    """Writes ``model`` as ``path`` (``.safetensors``) plus ``<stem>.json`` with ``card``.

    Both files go through one ``common.io.atomic_outputs`` call: both land or neither, and
    a crash leaves no half-written weights. Existing files are replaced.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path}: weights are saved as .safetensors")
    if model.flexible_scale:
        raise WeightsError(
            f"{path}: {model.arch_name} is an interpolation baseline; it has no weights to save"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": model.arch_name,
        "hparams": json.dumps(model.hparams),
        "card": json.dumps(card.to_dict()),
    }
    card_text = json.dumps(card.to_dict(), indent=2) + "\n"
    with atomic_outputs([path, card_path_for(path)], overwrite=True) as (weights_tmp, card_tmp):
        save_file(tensors, str(weights_tmp), metadata=metadata)
        card_tmp.write_text(card_text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- reading


def card_from_data(data: Any, source: str | os.PathLike) -> ModelCard:
    """A card from plain data; any problem is a ``WeightsError`` naming ``source``."""
    if not isinstance(data, Mapping):
        raise WeightsError(f"{source}: a model card is a JSON object, got {type(data).__name__}")
    try:
        return ModelCard.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{source}: invalid model card: {exc}") from None


def read_card(path: str | os.PathLike) -> ModelCard:
    """Reads a JSON model card.

    Raises:
        WeightsError: naming the file, when it is not UTF-8 JSON or not a valid card, e.g.
            ``m.json: not valid JSON (line 1 col 2): Expecting property name...``.
        OSError: the file cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise WeightsError(f"{path}: not a UTF-8 text (JSON) model card") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WeightsError(
            f"{path}: not valid JSON (line {exc.lineno} col {exc.colno}): {exc.msg}"
        ) from None
    return card_from_data(data, path)


def check_finite(tensors: Mapping[str, Any], source: str | os.PathLike) -> None:
    """Refuses non-tensor values and floating-point tensors holding NaN or Inf.

    Raises:
        WeightsError: naming ``source`` and the first offending tensor.
    """
    for key, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise WeightsError(
                f"{source}: entry {key!r} is a {type(tensor).__name__}, not a tensor"
            )
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsError(
                f"{source}: tensor {key!r} holds {bad} non-finite value(s) (NaN or Inf); "
                "refusing to load it"
            )


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    if metadata.get("format") != FORMAT:
        raise WeightsError(
            f"{path}: safetensors file was not written by this toolkit (no '{FORMAT}' metadata)"
        )
    try:
        info = {
            "architecture": metadata["architecture"],
            "hparams": json.loads(metadata["hparams"]),
            "card": json.loads(metadata["card"]) if "card" in metadata else None,
        }
    except (KeyError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: incomplete toolkit metadata ({exc!r})") from exc
    return tensors, info


def load_checkpoint(path: str | os.PathLike) -> TrainingCheckpoint:
    """Reads a training ``last.pt`` with ``torch.load(weights_only=True)``.

    Raises:
        WeightsError: naming the file, when it is not a weights-only checkpoint of the
            :class:`TrainingCheckpoint` layout.
    """
    path = Path(path)
    return TrainingCheckpoint.from_dict(_torch_load_dict(path), path)


def _torch_load_dict(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a dict; anything else is a ``WeightsError``."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a loadable weights-only torch checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    return checkpoint


def _read_torch_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    checkpoint = _torch_load_dict(path)
    if "model" in checkpoint and "architecture" in checkpoint:  # written by common.training
        parsed = TrainingCheckpoint.from_dict(checkpoint, path)
        check_finite(parsed.model, path)  # the raw weights too, not only the EMA loaded
        info = {"architecture": parsed.architecture, "hparams": parsed.hparams, "card": parsed.card}
        return parsed.inference_state, info
    card_path = card_path_for(path)
    if not card_path.exists():
        raise WeightsError(
            f"{path}: a bare state dict needs {card_path.name} beside it naming the architecture"
        )
    card = read_card(card_path)
    return checkpoint, {
        "architecture": card.architecture,
        "hparams": dict(card.hparams),
        "card": card.to_dict(),
    }


def _check_card_matches(card: ModelCard, source: Path, path: Path, architecture, hparams) -> None:
    if card.architecture != architecture or dict(card.hparams) != dict(hparams):
        raise WeightsError(
            f"{source}: the card describes {card.architecture} {dict(card.hparams)}, but "
            f"{path.name} holds {architecture} {dict(hparams)}; refusing a mismatched card"
        )


def read_weights(
    path: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], str, dict[str, Any], ModelCard | None]:
    """Reads a weights file: ``(state_dict, architecture, hparams, card or None)``.

    A training checkpoint gives its EMA weights when it has them. Every tensor must be
    finite, and the card (the ``<stem>.json`` sidecar, else the embedded one) must name the
    file's architecture and hyperparameters.

    Raises:
        WeightsError: naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        tensors, info = _read_safetensors(path)
    elif path.suffix in (".pt", ".pth"):
        tensors, info = _read_torch_checkpoint(path)
    else:
        raise WeightsError(
            f"{path}: unknown weights format; expected one of {', '.join(WEIGHT_SUFFIXES)}"
        )
    check_finite(tensors, path)
    architecture, hparams = info["architecture"], info["hparams"]
    if not isinstance(hparams, dict):
        raise WeightsError(f"{path}: hparams must be a mapping, got {type(hparams).__name__}")
    sidecar = card_path_for(path)
    card = None
    if sidecar.exists() and path.suffix == ".safetensors":
        card = read_card(sidecar)
        _check_card_matches(card, sidecar, path, architecture, hparams)
    elif info["card"]:
        card = card_from_data(info["card"], path)
        _check_card_matches(card, path, path, architecture, hparams)
    return tensors, architecture, hparams, card
