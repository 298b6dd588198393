"""Typed training configuration: YAML maps onto dataclasses, and unknown keys are errors.

A recipe file looks like ``configs/natural_srcnn_x3.yaml``::

    name: natural_srcnn_x3
    domain: natural
    model: {architecture: srcnn, dims: 2, channels: 1, scale: 3}
    data: {root: ../shared/data, train: [t91/*.png], val: [set5/*.png], reader: image, color: y}
    train: {epochs: 60, iters_per_epoch: 500, batch_size: 32, lr: 0.001}

Every section and key is checked: a misspelt key is reported with its dotted path and the
closest valid name, e.g. ``train.lerning_rate: unknown key (did you mean 'lr'?)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import SRKitError
from ..models.card import DOMAINS


class ConfigError(SRKitError):
    """An invalid configuration; the message names the file, the key and the problem."""


# A run name becomes a folder (runs/<name>) and a file stem: one plain path component.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class ModelConfig:
    """Which network to train.

    Attributes:
        architecture: registry key (``srcnn``, ``espcn``, ``edsr``).
        dims: 2 or 3.
        channels: image channels in and out.
        scale: factor, or one factor per spatial axis (e.g. ``[1, 1, 4]``).
        hparams: further constructor arguments of the architecture.
    """

    architecture: str = "srcnn"
    dims: int = 2
    channels: int = 1
    scale: int | list[int] = 2
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class DegradationConfig:
    """How low-resolution inputs are simulated from the high-resolution data.

    Attributes:
        kind: ``bicubic`` (MATLAB-compatible antialiased), ``thick_slice`` (volumes: a
            slice profile along each scaled axis; one scaled axis gives thick slices, two
            an in-plane point-spread function) or ``gaussian_mtf`` (rasters), or a list of
            them: every training item is then degraded once with each (with ``profile``
            lists too, once per combination), for a model robust to all of them.
        blur_sigma: extra Gaussian blur before downsampling, high-res pixels (0 = none).
        noise_sigma: Gaussian noise added to each low-res patch, normalized units.
        quantize: round low-res images to 8-bit levels (the natural-image protocol).
        profile: thick-slice profile, ``gaussian`` or ``box``, or a list of them: every
            training item is then degraded once with each (a model robust to both).
        gap: thick-slice gap, in high-res slices.
        mtf_at_nyquist: the Gaussian MTF's value at the low-res Nyquist frequency.
    """

    kind: str | list[str] = "bicubic"
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    quantize: bool = False
    profile: str | list[str] = "gaussian"
    gap: float = 0.0
    mtf_at_nyquist: float = 0.3

    @property
    def kinds(self) -> list[str]:
        """``kind`` as a list."""
        return [self.kind] if isinstance(self.kind, str) else list(self.kind)

    @property
    def profiles(self) -> list[str]:
        """``profile`` as a list."""
        return [self.profile] if isinstance(self.profile, str) else list(self.profile)


@dataclass
class DataConfig:
    """Where the high-resolution data is and how patches are drawn.

    Attributes:
        root: folder that relative ``train``/``val`` entries are resolved against
            (itself relative to the working directory). ``$VARS`` are expanded.
        train: files, folders or glob patterns of training images or volumes.
        val: held-out files, folders or globs, validated every epoch.
        reader: how files are read: ``image`` (PNG/JPEG/TIFF via imageio) here; front ends
            add ``nifti``, ``dicom`` and ``geotiff``.
        color: for ``image``: ``y`` (BT.601 luma), ``rgb`` or ``gray``.
        patch_size: high-resolution patch size per axis (must be divisible by the scale).
        augment: random flips and 90-degree rotations.
        rescale: extra copies of every training item downscaled by these factors (MATLAB
            bicubic, antialiased) before pairs are made, as in FSRCNN's data
            augmentation; e.g. ``[0.9, 0.8, 0.7, 0.6]``. Empty = original size only.
        planes: train a 2D model on 3D volumes: every volume is seen in all six plane
            orientations (each ordered pair of its axes), patches are drawn from single
            planes, and the model's first axis runs along each volume axis in turn. This is
            how a 2D ``(s, 1)`` through-plane model (applied SMORE-style by ``medsr``) or a
            2D in-plane model learns from isotropic volumes. Validation applies the model
            to the planes of each held-out volume with its last axis as the thick one.
        split_channels: every channel of a multi-channel item becomes an item of its own
            (a 1-channel, per-band model trained on multispectral rasters or RGB images).
        train_region: a spatial hold-out inside the same files: per spatial axis, the
            ``[start, stop]`` fractions of each training item that are kept (before
            degradation); e.g. ``[[0, 0.7], [0, 1]]`` keeps the top 70 % of rows. Empty =
            whole items.
        val_region: the same for validation items, e.g. ``[[0.7, 1], [0, 1]]``. A file may
            be listed under both ``train`` and ``val`` only when the two regions are
            disjoint on some axis.
        degradation: the low-resolution simulation.
    """

    root: str = "."
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    reader: str = "image"
    color: str = "y"
    patch_size: int | list[int] = 48
    augment: bool = True
    rescale: list[float] = field(default_factory=list)
    planes: bool = False
    split_channels: bool = False
    train_region: list[list[float]] = field(default_factory=list)
    val_region: list[list[float]] = field(default_factory=list)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)


@dataclass
class TrainConfig:
    """Optimization settings.

    Attributes:
        epochs: number of epochs; validation and checkpointing happen after each.
        iters_per_epoch: optimizer steps per epoch.
        batch_size: patches per step (per process under DDP).
        lr: Adam learning rate at the start of the cosine schedule.
        lr_min: learning rate at the end of the cosine schedule.
        weight_decay: Adam weight decay.
        loss: ``mse`` (SRCNN's) or ``l1``.
        ema_decay: decay of the exponential moving average of weights (0 disables it);
            the EMA weights are the ones validated and exported.
        amp: bf16 autocast on CUDA (ignored on the CPU).
        grad_clip: max gradient norm (0 disables).
        seed: random seed (each DDP process adds its rank).
        init_weights: start from this weights file (written by this toolkit, same
            architecture and hyper-parameters) instead of a fresh initialization: fine-tuning.
            Relative paths are resolved against the working directory.
        tensorboard: TensorBoard event files beside ``log.csv`` (which is always written):
            unset (default) when the ``tensorboard`` package is installed, ``true``
            requires it (the run stops before any work when it is absent: ``pip install
            'srkit[tensorboard]'``), ``false`` never.
    """

    epochs: int = 10
    iters_per_epoch: int = 500
    batch_size: int = 16
    lr: float = 1e-3
    lr_min: float = 1e-6
    weight_decay: float = 0.0
    loss: str = "mse"
    ema_decay: float = 0.999
    amp: bool = True
    grad_clip: float = 0.0
    seed: int = 0
    init_weights: str = ""
    tensorboard: bool | None = None


@dataclass
class ValidationConfig:
    """Validation after every epoch, next to the interpolation baseline.

    Attributes:
        baseline: interpolation compared against (``bicubic`` or ``bspline``).
        shave: border pixels excluded from metrics (default: the scale).
        max_items: validate on at most this many files (0 = all).
        tile: tile size for tiled inference during validation (0 = default).
    """

    baseline: str = "bicubic"
    shave: int | None = None
    max_items: int = 0
    tile: int = 0


@dataclass
class CardConfig:
    """Text for the exported model card.

    Attributes:
        description: one paragraph on what the model is for.
        training_data: sources and licences of the training files.
        license: licence of the exported weights.
        input_range: the normalized value range the model was trained on (front ends warn
            when an input falls far outside it).
    """

    description: str = ""
    training_data: list[str] = field(default_factory=list)
    license: str = "Apache-2.0"
    input_range: list[float] = field(default_factory=lambda: [0.0, 1.0])


@dataclass
class RunConfig:
    """A whole training recipe.

    Attributes:
        name: run and exported model name.
        domain: ``mri``, ``ct``, ``rs`` or ``natural``.
        output_dir: where checkpoints, logs and the exported model go
            (default ``runs/<name>``).
    """

    name: str
    domain: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    card: CardConfig = field(default_factory=CardConfig)
    output_dir: str = ""

    def __post_init__(self) -> None:
        if not PLAIN_NAME.fullmatch(self.name) or ".." in self.name:
            raise ConfigError(
                f"name: must be a plain name (letters, digits, '.', '_', '-'; starting with a"
                f" letter or digit; no path separators or '..'), got {self.name!r}"
            )
        if self.domain not in DOMAINS:
            raise ConfigError(f"domain: must be one of {', '.join(DOMAINS)}, got {self.domain!r}")
        if self.train.loss not in ("mse", "l1"):
            raise ConfigError(f"train.loss: must be 'mse' or 'l1', got {self.train.loss!r}")
        kinds = self.data.degradation.kinds
        for kind in kinds:
            if kind not in ("bicubic", "thick_slice", "gaussian_mtf"):
                raise ConfigError(
                    f"data.degradation.kind: must be bicubic, thick_slice or gaussian_mtf, got {kind!r}"
                )
        if not kinds:
            raise ConfigError("data.degradation.kind: the list is empty")
        for key in ("epochs", "iters_per_epoch", "batch_size"):
            if getattr(self.train, key) < 1:
                raise ConfigError(f"train.{key}: must be >= 1, got {getattr(self.train, key)}")
        for profile in self.data.degradation.profiles:
            if profile not in ("gaussian", "box"):
                raise ConfigError(
                    f"data.degradation.profile: must be gaussian or box, got {profile!r}"
                )
        if self.data.planes and self.model.dims != 2:
            raise ConfigError("data.planes: only for 2D models (model.dims: 2)")
        low_high = self.card.input_range
        if len(low_high) != 2 or not low_high[0] < low_high[1]:
            raise ConfigError(
                f"card.input_range: needs [low, high] with low < high, got {low_high!r}"
            )
        for key in ("train_region", "val_region"):
            for axis, bounds in enumerate(getattr(self.data, key)):
                if len(bounds) != 2 or not 0 <= bounds[0] < bounds[1] <= 1:
                    raise ConfigError(
                        f"data.{key}[{axis}]: needs [start, stop] with 0 <= start < stop <= 1,"
                        f" got {bounds!r}"
                    )
        for factor in self.data.rescale:
            if not 0 < factor < 1:
                raise ConfigError(f"data.rescale: factors must be in (0, 1), got {factor!r}")
        if not self.output_dir:
            self.output_dir = str(Path("runs") / self.name)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data (what checkpoints store)."""
        return dataclasses.asdict(self)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not fit type {hint}")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected null, got {value!r}")
        return None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            path = f"{where}.{key}" if where else str(key)
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = (
                f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(names)})"
            )
            raise ConfigError(f"{path}: unknown key{hint}")
    values = {}
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name in data:
            values[f.name] = _check_type(data[f.name], hints[f.name], path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{path}: required key is missing")
    return cls(**values)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Builds a ``RunConfig`` from plain data, checking every key and type."""
    return _build(RunConfig, data, "")


def load_config(path: str | os.PathLike) -> RunConfig:
    """Reads a YAML recipe; errors name the file and the offending key."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text YAML file (byte {exc.start} is not UTF-8)") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: not a text YAML file (it holds NUL bytes)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return config_from_dict(data if data is not None else {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
