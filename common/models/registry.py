"""The explicit model registry: plain dicts, no import-time scanning.

- ``ARCHITECTURES`` maps an architecture key to its class.
- ``BASELINES`` names the interpolation baselines, which behave like models.
- ``SHIPPED`` maps a shipped model name to its weights file in ``common/weights/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.nn.modules.module import register_module_parameter_registration_hook

from .._version import __version__
from ..errors import SRKitError
from .architectures import EDSR, ESPCN, SRCNN, GuidedResNet, Interpolator, SRModule
from .card import DEFAULT_TILE_HINT, ModelCard
from .layers import interpolation_radius
from .weights import WEIGHT_SUFFIXES, WeightsError, read_card, read_weights

ARCHITECTURES: dict[str, type[SRModule]] = {
    "srcnn": SRCNN,
    "espcn": ESPCN,
    "edsr": EDSR,
    "guided_resnet": GuidedResNet,
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
    "rs_guided": "rs_guided.safetensors",
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
        tile_hint=DEFAULT_TILE_HINT[dims],
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
        card = read_card(_shipped_path(name).with_suffix(".json"))
        if domain is None or card.domain == domain:
            cards.append(card)
    return cards


class _LargerThanTheFile(Exception):
    """Raised from the parameter-registration hook to stop building an oversized network."""


def _integers(value: Any, where: str) -> Iterator[tuple[str, int]]:
    """``(dotted path, value)`` of every integer inside hyperparameters."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _integers(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _integers(item, f"{where}[{index}]")


def check_hparams_fit(
    path: str | os.PathLike,
    architecture: str,
    hparams: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
) -> None:
    """Checks, without allocating, that ``hparams`` build a network shaped like ``state``.

    No count or width can exceed the number of values stored in the file; then the network
    is built on the ``meta`` device (no memory) and abandoned as soon as its parameters
    outgrow the file; finally its state-dict shapes are compared with the file's. An
    edited ``depth: 2000000`` is thus refused in milliseconds instead of exhausting memory.

    Raises:
        WeightsError: naming the file and what does not fit.
    """
    stored = sum(int(t.numel()) for t in state.values())
    for where, value in _integers(dict(hparams), "hparams"):
        if abs(value) > max(stored, 16):
            raise WeightsError(
                f"{path}: weights do not match architecture {architecture!r}: {where} = {value}"
                f" cannot fit the {stored} values stored in the file; refusing to build it"
            )
    registered = 0

    def count(module, name, parameter):  # noqa: ARG001
        nonlocal registered
        if parameter is not None:
            registered += int(parameter.numel())
            if registered > stored:
                raise _LargerThanTheFile

    handle = register_module_parameter_registration_hook(count)
    try:
        with torch.device("meta"):
            skeleton = build_model(architecture, **hparams)
    except _LargerThanTheFile:
        raise WeightsError(
            f"{path}: weights do not match architecture {architecture!r}: hparams {dict(hparams)}"
            f" describe more parameters than the {stored} values stored in the file;"
            " refusing to build it"
        ) from None
    except (TypeError, ValueError, RuntimeError, ModelNotFoundError) as exc:
        raise WeightsError(
            f"{path}: weights do not match architecture {architecture!r}: {exc}"
        ) from exc
    finally:
        handle.remove()
    expected = {key: tuple(t.shape) for key, t in skeleton.state_dict().items()}
    found = {key: tuple(t.shape) for key, t in state.items()}
    if expected != found:
        problems = [f"missing {k}" for k in sorted(set(expected) - set(found))]
        problems += [f"unexpected {k}" for k in sorted(set(found) - set(expected))]
        problems += [
            f"{k}: file {found[k]}, hparams {expected[k]}"
            for k in sorted(set(expected) & set(found))
            if expected[k] != found[k]
        ]
        raise WeightsError(
            f"{path}: weights do not match architecture {architecture!r} {dict(hparams)}: "
            + "; ".join(problems[:4])
            + (f" (and {len(problems) - 4} more)" if len(problems) > 4 else "")
        )


def model_from_weights(path: str | os.PathLike) -> SRModule:
    """Rebuilds a network from a weights file this toolkit wrote.

    The hyperparameters are checked against the file's tensors before anything is built
    (see ``check_hparams_fit``).
    """
    state, architecture, hparams, card = read_weights(path)
    check_hparams_fit(path, architecture, hparams, state)
    try:
        model = build_model(architecture, **hparams)
        model.load_state_dict(state, strict=True)
    except (TypeError, RuntimeError, ModelNotFoundError) as exc:
        raise WeightsError(
            f"{path}: weights do not match architecture {architecture!r}: {exc}"
        ) from exc
    model.card = card
    return model.eval()


def weights_file(spec: str | os.PathLike | SRModule) -> Path | None:
    """The weights file :func:`load_model` reads for ``spec`` (a shipped name or a path);
    ``None`` for a baseline, a model instance, or a spec that names no existing file."""
    if isinstance(spec, SRModule) or str(spec) in BASELINES:
        return None
    path = _shipped_path(str(spec)) if str(spec) in SHIPPED else Path(str(spec)).expanduser()
    return path if path.is_file() else None


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
