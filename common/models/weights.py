"""Saving and loading weights: safetensors plus a JSON card; never unpickled.

A weights file written here is self-describing: the safetensors metadata holds the
architecture, its hyperparameters and the card, and a ``<stem>.json`` card sits beside it
for humans (and wins over the embedded card, so metrics can be updated without touching
the weights). Old-style ``.pt``/``.pth`` checkpoints are read only with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import SRKitError
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


def _umask_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (``mkstemp`` makes files 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: SRModule, path: str | os.PathLike, card: ModelCard) -> Path:
    """Writes ``model`` as ``path`` (``.safetensors``) plus ``<stem>.json`` with ``card``.

    Both files are written to temporary names first and renamed, so a crash leaves no
    half-written weights.
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_bytes(card_path_for(path), (json.dumps(card.to_dict(), indent=2) + "\n").encode())
    return path


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


def _read_torch_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a loadable weights-only torch checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    if "model" in checkpoint and "architecture" in checkpoint:  # written by common.training
        info = {
            "architecture": checkpoint["architecture"],
            "hparams": dict(checkpoint["hparams"]),
            "card": checkpoint.get("card"),
        }
        state = checkpoint.get("ema_model") or checkpoint["model"]
        return state, info
    card_path = card_path_for(path)
    if not card_path.exists():
        raise WeightsError(
            f"{path}: a bare state dict needs {card_path.name} beside it naming the architecture"
        )
    card = json.loads(card_path.read_text())
    return checkpoint, {
        "architecture": card["architecture"],
        "hparams": card["hparams"],
        "card": card,
    }


def read_weights(
    path: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], str, dict[str, Any], ModelCard | None]:
    """Reads a weights file: ``(state_dict, architecture, hparams, card or None)``."""
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
    card_data = info["card"]
    sidecar = card_path_for(path)
    if sidecar.exists() and path.suffix == ".safetensors":
        card_data = json.loads(sidecar.read_text())
    card = ModelCard.from_dict(card_data) if card_data else None
    return tensors, info["architecture"], info["hparams"], card
