"""ONNX export of any model ``load_model`` accepts, with its card as ONNX metadata.

The graph maps float32 ``(N, C, *S)`` to ``(N, C, *(S * scale))`` with dynamic batch and
spatial axes (and a dynamic channel axis for the interpolation baselines, which take any
channel count). It is what the optional ``onnx`` and ``openvino`` inference backends run
(:mod:`common.inference.backends`), and what other runtimes (QGIS plugins, 3D Slicer,
Orfeo ToolBox, TensorRT) can load. The export uses the TorchScript-based exporter of
``torch.onnx`` (``dynamo=False``), which needs only the ``onnx`` package.

Metadata (``metadata_props``, every value a string; JSON where noted):

- ``srkit.name``, ``srkit.architecture``, ``srkit.domain``, ``srkit.version``
- ``srkit.dims`` (2 or 3), ``srkit.channels`` (output channels, 0 = any),
  ``srkit.input_channels`` (more than ``channels`` for a guided model), ``srkit.layout``
  (``NCHW``/``NCDHW``)
- ``srkit.scale`` (JSON, one factor per spatial axis)
- ``srkit.input_range`` (JSON ``[low, high]``: the normalized range the model expects)
- ``srkit.receptive_radius`` (JSON, input pixels each side an output pixel depends on, per
  axis) and ``srkit.halo`` (the same: the least overlap that keeps tiling exact)
- ``srkit.weights_sha256`` (of the float32 tensors, see :func:`weights_digest`)
- ``srkit.card`` (JSON: the whole model card)

Command line::

    srkit-export MODEL -o model.onnx [--scale 2] [--dims 3] [--opset 17] [--overwrite]
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SRKitError
from .io import atomic_output
from .models.architectures import ScaleError, SRModule
from .models.card import ModelCard
from .models.layers import PolyphaseUpsample
from .models.registry import load_model

DEFAULT_OPSET = 17
ONNX_SUFFIX = ".onnx"
METADATA_PREFIX = "srkit."
INPUT_NAME, OUTPUT_NAME = "input", "output"


class ExportError(SRKitError):
    """An export that cannot be done: bad model, scale, dims, path or missing ``onnx``."""


class _ExportablePolyphase(nn.Module):
    """:class:`PolyphaseUpsample` written with shape-generic torch ops only.

    The original computes its symmetric-extension indices in NumPy from the traced size,
    which would freeze the spatial size into the graph. Here the indices come from
    ``arange``/``remainder`` on the tensor's own size and each axis is one convolution
    with a kernel that is long along that axis, so the graph has dynamic spatial axes.
    Same weights, same result (to float32 rounding, ~1e-7).
    """

    def __init__(self, source: PolyphaseUpsample):
        super().__init__()
        self.scale, self.radius = tuple(source.scale), source.radius
        for axis, s in enumerate(self.scale):
            if s > 1:
                weights = getattr(source, f"weights_{axis}").detach().clone()
                self.register_buffer(f"weights_{axis}", weights, persistent=False)

    def _symmetric_pad(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        size = x.shape[dim]
        index = torch.arange(-self.radius, size + self.radius, device=x.device)
        period = 2 * size
        index = torch.remainder(index, period)
        index = torch.where(index >= size, period - 1 - index, index)
        return x.index_select(dim, index)

    def _upsample_axis(self, x: torch.Tensor, axis: int, s: int) -> torch.Tensor:
        dims = x.ndim - 2
        n, c, spatial = x.shape[0], x.shape[1], list(x.shape[2:])
        weights = getattr(self, f"weights_{axis}").to(dtype=x.dtype)  # (s, 1, K)
        kernel_shape = [1] * dims
        kernel_shape[axis] = weights.shape[-1]
        kernel = weights.reshape(s, 1, *kernel_shape)
        planes = self._symmetric_pad(x.reshape(n * c, 1, *spatial), 2 + axis)
        out = (F.conv2d if dims == 2 else F.conv3d)(planes, kernel)  # (N*C, s, *S)
        order = [0, *(2 + a for a in range(dims))]
        order.insert(2 + axis, 1)  # the phase right after its axis
        spatial[axis] = spatial[axis] * s
        return out.permute(*order).reshape(n, c, *spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, s in enumerate(self.scale):
            if s > 1:
                x = self._upsample_axis(x, axis, s)
        return x


def exportable(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` (eval, CPU, contiguous) with every
    :class:`PolyphaseUpsample` replaced by its shape-generic twin."""
    clone = copy.deepcopy(model).cpu().eval()
    for module in list(clone.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, PolyphaseUpsample):
                setattr(module, name, _ExportablePolyphase(child))
    return clone.to(memory_format=torch.contiguous_format)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and persistent buffers (name, shape, float32
    bytes, in ``state_dict`` order): the same for the same weights whatever file they came
    from; a baseline (no tensors) hashes its architecture and scale instead."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    if not state:
        digest.update(json.dumps(getattr(model, "hparams", {}), sort_keys=True).encode())
    return digest.hexdigest()


def prepare(
    model: SRModule | str | os.PathLike,
    *,
    scale: int | Sequence[int] | None = None,
    dims: int | None = None,
) -> SRModule:
    """The model ready to export: loaded, at ``scale`` on ``dims`` spatial axes.

    A 2D model with ``dims=3`` becomes a :class:`~common.inference.planes.Planewise`
    network on ``(N, C, P, H, W)`` (the plane axis has scale 1), the form medsr runs.
    """
    from .inference.planes import Planewise

    model = load_model(model)
    if dims not in (None, 2, 3):
        raise ExportError(f"--dims must be 2 or 3, got {dims}")
    try:
        if dims == 3 and model.dims == 2 and not model.flexible_scale:
            inner = model.at_scale(scale[1:] if isinstance(scale, Sequence) else scale, 2)
            return Planewise(inner)
        return model.at_scale(scale, dims)
    except (ScaleError, ValueError) as exc:
        raise ExportError(f"{model.card.name}: {exc}") from None


def input_channels(model: SRModule) -> int:
    """Channels the network reads: ``channels`` plus any guide planes (a guided model
    reads its coarse bands and then ``guide_channels`` guide planes); 0 = any."""
    inner = getattr(model, "inner", model)  # a Planewise wraps the 2D network
    return model.channels + getattr(inner, "guide_channels", 0)


def metadata(model: SRModule) -> dict[str, str]:
    """The ``srkit.*`` metadata entries of ``model`` (see the module docstring)."""
    card = model.card
    radius = list(model.receptive_radius)
    entries: dict[str, Any] = {
        "name": card.name,
        "architecture": card.architecture,
        "domain": card.domain,
        "version": card.version,
        "dims": model.dims,
        "channels": model.channels,
        "input_channels": input_channels(model),
        "layout": "NCHW" if model.dims == 2 else "NCDHW",
        "scale": json.dumps(list(model.scale)),
        "input_range": json.dumps(list(card.input_range)),
        "receptive_radius": json.dumps(radius),
        "halo": json.dumps(radius),
        "weights_sha256": weights_digest(model),
        "card": json.dumps(card.to_dict(), sort_keys=True),
    }
    return {METADATA_PREFIX + key: str(value) for key, value in entries.items()}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'srkit[onnx]'") from None
    return onnx


def onnx_bytes(model: SRModule, *, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialized ONNX model of a prepared ``model`` (see :func:`prepare`), with
    :func:`metadata` attached."""
    onnx = _onnx()
    dims = model.dims
    axes = {0: "batch", **{2 + i: f"in_{i}" for i in range(dims)}}
    out_axes = {0: "batch", **{2 + i: f"out_{i}" for i in range(dims)}}
    if not model.channels:
        axes[1] = out_axes[1] = "channels"
    # trace on a sample big enough for every kernel; the axes stay dynamic
    side = [max(2, 2 * r + 1) for r in model.receptive_radius]
    if dims == 3 and model.scale[0] == 1:
        side[0] = 2  # plane axis
    sample = torch.rand(1, input_channels(model) or 1, *side)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shape arithmetic
        torch.onnx.export(
            exportable(model),
            (sample,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: out_axes},
            opset_version=opset,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "srkit"
    proto.doc_string = model.card.description
    return proto.SerializeToString()


def export_onnx(
    model: SRModule | str | os.PathLike,
    path: str | os.PathLike,
    *,
    scale: int | Sequence[int] | None = None,
    dims: int | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> Path:
    """Writes ``model`` as ONNX to ``path`` (atomically) and returns the path.

    Args:
        model: a model, a shipped name, a weights path or a baseline name.
        path: the ``.onnx`` file to write.
        scale: factor per axis; a trained model accepts only its own, a baseline any
            (default 2).
        dims: 2 or 3 (default the model's). 3 for a 2D model exports it plane by plane on
            ``(N, C, P, H, W)``.
        opset: ONNX opset (default 17).
        overwrite: replace an existing file.

    Raises:
        ExportError: a bad extension, scale or dims, or the ``onnx`` package missing.
        ModelNotFoundError, WeightsError: the model cannot be loaded.
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.suffix.lower() != ONNX_SUFFIX:
        raise ExportError(f"{path}: the output must end in {ONNX_SUFFIX}")
    prepared = prepare(model, scale=scale, dims=dims)
    with atomic_output(path, overwrite=overwrite) as temporary:  # refuses before any work
        temporary.write_bytes(onnx_bytes(prepared, opset=opset))
    return path


def read_metadata(source: str | os.PathLike | bytes) -> dict[str, Any]:
    """The ``srkit.*`` metadata of an exported file (or its bytes), decoded: JSON values
    parsed, ``dims``/``channels`` as ints, ``card`` as a :class:`ModelCard`.

    Raises:
        ExportError: the file has no srkit metadata (not written by :func:`export_onnx`).
    """
    onnx = _onnx()
    proto = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
    raw = {
        p.key.removeprefix(METADATA_PREFIX): p.value
        for p in proto.metadata_props
        if p.key.startswith(METADATA_PREFIX)
    }
    if "card" not in raw:
        where = "the ONNX bytes" if isinstance(source, bytes) else os.fspath(source)
        raise ExportError(f"{where}: no srkit metadata (not written by srkit-export)")
    return decode_metadata(raw)


def decode_metadata(raw: Mapping[str, str]) -> dict[str, Any]:
    """:func:`metadata` entries (prefix removed) back to Python values."""
    values: dict[str, Any] = dict(raw)
    for key in ("scale", "input_range", "receptive_radius", "halo"):
        values[key] = json.loads(raw[key])
    for key in ("dims", "channels", "input_channels"):
        values[key] = int(raw[key])
    values["card"] = ModelCard.from_dict(json.loads(raw["card"]))
    return values


def _parse_scale(text: str | None) -> int | tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ExportError(f"--scale {text}: not an integer or a list such as 2,2") from None
    return values[0] if len(values) == 1 else values


def _export_params(command):
    """The arguments and options of ``srkit-export`` and ``medsr/geosr export``."""
    import click

    for decorator in reversed(
        [
            click.argument("model"),
            click.option(
                "-o",
                "--output",
                required=True,
                type=click.Path(path_type=Path),
                help="The .onnx file to write.",
            ),
            click.option(
                "--scale", default=None, help="Factor, or one per axis (baselines: default 2)."
            ),
            click.option(
                "--dims", type=click.IntRange(2, 3), default=None, help="2 or 3 spatial axes."
            ),
            click.option(
                "--opset",
                type=int,
                default=DEFAULT_OPSET,
                show_default=True,
                help="ONNX opset version.",
            ),
            click.option("--overwrite", is_flag=True, help="Replace an existing output."),
        ]
    ):
        command = decorator(command)
    return command


EXPORT_HELP = (
    "Write MODEL (a shipped name, a weights file or an interpolation baseline) as ONNX, with"
    " its card as metadata (scale, input range, receptive radius / halo) and dynamic batch"
    " and spatial axes. --dims 3 exports a 2D model plane by plane on (N, C, P, H, W)."
)


def export_command():
    """The ``export`` subcommand the front ends add to their groups."""
    import click

    @click.command("export", help=EXPORT_HELP)
    @_export_params
    def export(model, output, scale, dims, opset, overwrite):
        click.echo(export_summary(model, output, scale, dims, opset, overwrite))

    return export


def main(argv: Sequence[str] | None = None) -> None:
    """``srkit-export MODEL -o model.onnx``: errors are one line on stderr, exit 2."""
    import click

    from .cli import SRGroup

    # a group without subcommands: SRGroup gives the one-line error reporting
    @click.group(
        "srkit-export",
        cls=SRGroup,
        invoke_without_command=True,
        subcommand_metavar="",
        help=EXPORT_HELP,
        context_settings={"help_option_names": ["-h", "--help"], "allow_interspersed_args": True},
    )
    @_export_params
    @click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
    def export(model, output, scale, dims, opset, overwrite, verbose):  # noqa: ARG001
        click.echo(export_summary(model, output, scale, dims, opset, overwrite))

    export.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="srkit-export")


def export_summary(model, output, scale=None, dims=None, opset=DEFAULT_OPSET, overwrite=False):
    """Exports (``scale`` as CLI text) and returns the one-line summary the CLIs print."""
    path = export_onnx(
        model, output, scale=_parse_scale(scale), dims=dims, opset=opset, overwrite=overwrite
    )
    info = read_metadata(path)
    return (
        f"{path}: {info['name']} {info['dims']}D x{'x'.join(map(str, info['scale']))},"
        f" halo {info['halo']}, input range {info['input_range']}"
    )


if __name__ == "__main__":
    main()
