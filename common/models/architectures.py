"""Super-resolution networks, each in 2D and 3D, any channel count, integer per-axis scales.

Every network maps a low-resolution tensor ``(N, C, *S)`` to ``(N, C, *(S * scale))`` and
reports ``receptive_radius``: per spatial axis, how many input pixels each side an output
pixel can depend on. Tiled inference uses it as the halo that makes tiling exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..errors import SRKitError
from .card import DEFAULT_TILE_HINT, ModelCard
from .layers import (
    PolyphaseUpsample,
    expand_per_axis,
    interpolation_radius,
    pixel_shuffle_nd,
    same_conv,
)


class ScaleError(SRKitError):
    """A trained model asked for a scale or dimensionality it was not trained for."""


class SRModule(nn.Module):
    """Base class: records the hyperparameters that rebuild the network.

    Attributes:
        arch_name: registry key of the architecture.
        dims: spatial dimensions, 2 or 3.
        channels: channel count in and out (0 = any, for interpolation).
        scale: integer factor per spatial axis.
        receptive_radius: per axis, input pixels each side an output pixel depends on.
        card: the model card: the loaded one, else a generated card that describes the
            untrained network (never ``None``).
    """

    arch_name = ""
    flexible_scale = False  # True for interpolation: any scale at call time

    def __init__(self, dims: int, channels: int, scale: int | Sequence[int]):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        if channels < 0:
            raise ValueError(f"channels must be >= 0, got {channels}")
        self.dims = dims
        self.channels = channels
        self.scale = expand_per_axis(scale, dims, "scale")
        if any(s < 1 for s in self.scale):
            raise ValueError(f"scale factors must be >= 1, got {self.scale}")
        self._card: ModelCard | None = None
        self._hparams: dict[str, Any] = {}

    @property
    def card(self) -> ModelCard:
        """The loaded card, else one generated from the network itself (domain ``any``)."""
        if self._card is not None:
            return self._card
        return ModelCard(
            name=self.arch_name,
            domain="any",
            scale=max(self.scale),
            channels=self.channels,
            dims=self.dims,
            architecture=self.arch_name,
            hparams=self.hparams,
            axis_scale=tuple(self.scale),
            receptive_field=2 * max(self.receptive_radius) + 1,
            n_parameters=self.n_parameters(),
            description="a network built in memory; no card was loaded",
            version=__version__,
            tile_hint=DEFAULT_TILE_HINT[self.dims],
        )

    @card.setter
    def card(self, value: ModelCard | None) -> None:
        self._card = value

    def at_scale(self, scale: int | Sequence[int] | None, dims: int | None = None) -> SRModule:
        """This model ready to run at ``scale`` on ``dims`` spatial axes (the one rule).

        Interpolation (``flexible_scale``) gives a rescaled copy for any scale; a trained
        model returns itself when ``scale``/``dims`` match (``None``: its own), else
        raises :class:`ScaleError`.
        """
        dims = self.dims if dims is None else dims
        if self.flexible_scale:
            if scale is None:
                scale = self.scale if self.dims == dims else self.scale[0]
            wanted = expand_per_axis(scale, dims, "scale")
            if wanted == self.scale and self.dims == dims:
                return self
            return self.with_scale(wanted, dims=dims)
        if self.dims != dims:
            raise ScaleError(f"model is {self.dims}D but the array has {dims} spatial axes")
        if scale is not None and expand_per_axis(scale, dims, "scale") != self.scale:
            raise ScaleError(f"model is trained for scale {self.scale}, not {scale}")
        return self

    def serves(self, scale: int | Sequence[int], dims: int | None = None) -> bool:
        """True when :meth:`at_scale` would succeed."""
        try:
            self.at_scale(scale, dims)
        except ScaleError:
            return False
        return True

    def with_scale(self, scale: int | Sequence[int], dims: int | None = None) -> SRModule:
        """A copy at another scale; only interpolation baselines have one."""
        raise ScaleError(f"{self.arch_name} is trained for scale {self.scale}; it has no other")

    @property
    def has_card(self) -> bool:
        """True when a card was loaded or set (a shipped, trained or baseline model)."""
        return self._card is not None

    @property
    def hparams(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) that rebuild this network."""
        return {
            "dims": self.dims,
            "channels": self.channels,
            "scale": list(self.scale),
            **self._hparams,
        }

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        raise NotImplementedError

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _hr_radius_in_lr(hr_radius: int, scale: Sequence[int]) -> tuple[int, ...]:
    """Input-pixel reach of ``hr_radius`` output pixels, per axis.

    Output pixel ``j`` belongs to input pixel ``j // s``; ``j + r`` belongs to at most
    ``ceil(r / s)`` input pixels further on, whatever the phase of ``j``.
    """
    return tuple(math.ceil(hr_radius / s) for s in scale)


class Interpolator(SRModule):
    """An interpolation baseline as a module: ``nearest``, ``bicubic``, ``lanczos``, ``bspline``.

    It has no parameters and accepts any channel count; ``with_scale`` gives a copy with
    another factor, which is how ``upscale(..., scale=s)`` uses it.
    """

    flexible_scale = True

    def __init__(self, kind: str, dims: int = 2, scale: int | Sequence[int] = 2, channels: int = 0):
        super().__init__(dims, channels, scale)
        self.arch_name = kind
        self.kind = kind
        self.upsample = PolyphaseUpsample(kind, self.scale)
        self._hparams = {"kind": kind}

    def with_scale(self, scale: int | Sequence[int], dims: int | None = None) -> Interpolator:
        """The same interpolation at another scale or dimensionality."""
        dims = self.dims if dims is None else dims
        clone = Interpolator(self.kind, dims=dims, scale=scale, channels=self.channels)
        if self.has_card:
            clone.card = self.card.replace(
                dims=dims, scale=max(clone.scale), axis_scale=clone.scale
            )
        return clone

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        r = interpolation_radius(self.kind)
        return tuple(r if s > 1 else 0 for s in self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class SRCNN(SRModule):
    """SRCNN as in the seed: bicubic upsampling, then conv 5→64, ReLU, 3→32, ReLU, 5→C.

    Args:
        dims: 2 or 3.
        channels: image channels in and out.
        scale: factor per axis (int or sequence).
        kernels: the three kernel sizes (default ``(5, 3, 5)``; the paper's 9-1-5 is
            ``(9, 1, 5)``).
        widths: feature counts of the first two layers (default ``(64, 32)``).
        init: ``"default"`` (PyTorch's) or ``"identity"``: one channel of each layer
            starts as a centre tap carrying the (non-negative) input through both ReLUs,
            and the last layer starts near zero elsewhere (std 1e-3, as in the paper), so
            the untrained network already returns the bicubic image. The architecture is
            unchanged; only the starting point differs.
    """

    arch_name = "srcnn"

    def __init__(
        self,
        dims: int = 2,
        channels: int = 1,
        scale: int | Sequence[int] = 3,
        kernels: Sequence[int] = (5, 3, 5),
        widths: Sequence[int] = (64, 32),
        init: str = "default",
    ):
        super().__init__(dims, channels, scale)
        kernels, widths = tuple(kernels), tuple(widths)
        if init not in ("default", "identity"):
            raise ValueError(f"init must be 'default' or 'identity', got {init!r}")
        if len(kernels) != 3 or len(widths) != 2:
            raise ValueError(f"SRCNN needs 3 kernels and 2 widths, got {kernels} and {widths}")
        self._hparams = {"kernels": list(kernels), "widths": list(widths), "init": init}
        self.kernels = kernels
        self.upsample = PolyphaseUpsample("bicubic", self.scale)
        self.body = nn.Sequential(
            same_conv(dims, channels, widths[0], kernels[0]),
            nn.ReLU(inplace=True),
            same_conv(dims, widths[0], widths[1], kernels[1]),
            nn.ReLU(inplace=True),
            same_conv(dims, widths[1], channels, kernels[2]),
        )
        if init == "identity":
            self._identity_init()

    @torch.no_grad()
    def _identity_init(self) -> None:
        """Channel ``c`` of every layer carries input channel ``c`` unchanged."""
        convs = [m for m in self.body if isinstance(m, nn.Conv2d | nn.Conv3d)]
        if min(m.out_channels for m in convs[:2]) < self.channels:
            raise ValueError("identity init needs widths >= channels")
        first, second, last = convs
        for conv in (first, second):  # output channel c = input channel c, centre tap only
            centre = tuple(k // 2 for k in conv.kernel_size)
            for c in range(self.channels):
                conv.weight[c].zero_()
                conv.weight[(c, c, *centre)] = 1.0
                conv.bias[c] = 0.0
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.zeros_(last.bias)
        centre = tuple(k // 2 for k in last.kernel_size)
        for c in range(self.channels):
            last.weight[(c, c, *centre)] = 1.0

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        hr = sum(k // 2 for k in self.kernels)
        reach = _hr_radius_in_lr(hr, self.scale)
        bicubic = interpolation_radius("bicubic")
        return tuple(r + (bicubic if s > 1 else 0) for r, s in zip(reach, self.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.upsample(x))


class ESPCN(SRModule):
    """ESPCN: convolutions at low resolution, then a sub-pixel (pixel-shuffle) upsampler.

    Args:
        dims: 2 or 3.
        channels: image channels in and out.
        scale: factor per axis.
        widths: feature counts of the hidden layers (default ``(64, 32)``).
        kernels: kernel sizes, one per hidden layer plus the output layer
            (default ``(5, 3, 3)``).
        activation: ``"tanh"`` (the paper's) or ``"relu"``.
        residual: add bicubic upsampling of the input to the output (global skip).
    """

    arch_name = "espcn"

    def __init__(
        self,
        dims: int = 2,
        channels: int = 1,
        scale: int | Sequence[int] = 2,
        widths: Sequence[int] = (64, 32),
        kernels: Sequence[int] = (5, 3, 3),
        activation: str = "tanh",
        residual: bool = True,
    ):
        super().__init__(dims, channels, scale)
        widths, kernels = tuple(widths), tuple(kernels)
        if len(kernels) != len(widths) + 1:
            raise ValueError(
                f"ESPCN needs len(kernels) == len(widths) + 1, got {kernels}, {widths}"
            )
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        self._hparams = {
            "widths": list(widths),
            "kernels": list(kernels),
            "activation": activation,
            "residual": residual,
        }
        self.kernels = kernels
        act = nn.Tanh if activation == "tanh" else nn.ReLU
        layers: list[nn.Module] = []
        cin = channels
        for width, kernel in zip(widths, kernels):
            layers += [same_conv(dims, cin, width, kernel), act()]
            cin = width
        layers.append(same_conv(dims, cin, channels * math.prod(self.scale), kernels[-1]))
        self.body = nn.Sequential(*layers)
        self.skip = PolyphaseUpsample("bicubic", self.scale) if residual else None

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        reach = sum(k // 2 for k in self.kernels)
        skip = interpolation_radius("bicubic") if self.skip is not None else 0
        return tuple(max(reach, skip) for _ in self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = pixel_shuffle_nd(self.body(x), self.scale)
        if self.skip is not None:
            out = out + self.skip(x)
        return out


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with a scaled identity skip (EDSR, no batch norm)."""

    def __init__(self, dims: int, width: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(
            same_conv(dims, width, width, 3),
            nn.ReLU(inplace=True),
            same_conv(dims, width, width, 3),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place on the body's fresh output: one pass and no temporary (the last
        # convolution's backward does not need its output, so autograd allows it)
        out = self.body(x)
        if self.res_scale != 1.0:
            out = out.mul_(self.res_scale)
        return out.add_(x)


class EDSR(SRModule):
    """EDSR-baseline-style residual network with a sub-pixel upsampler.

    Args:
        dims: 2 or 3.
        channels: image channels in and out.
        scale: factor per axis.
        width: feature count (EDSR-baseline: 64).
        depth: number of residual blocks (EDSR-baseline: 16).
        res_scale: residual scaling inside blocks.
        residual: add bicubic upsampling of the input to the output (global skip).
        upsampler: ``"conv"`` (EDSR's: conv to ``width * prod(scale)`` features, pixel
            shuffle, then a conv at high resolution) or ``"direct"`` (the lightweight
            IMDN/SwinIR one: one conv to ``channels * prod(scale)``, then pixel shuffle;
            every convolution runs at low resolution, about 2x faster at width 32, x4).
    """

    arch_name = "edsr"

    def __init__(
        self,
        dims: int = 2,
        channels: int = 1,
        scale: int | Sequence[int] = 2,
        width: int = 64,
        depth: int = 16,
        res_scale: float = 1.0,
        residual: bool = True,
        upsampler: str = "conv",
    ):
        super().__init__(dims, channels, scale)
        if width < 1 or depth < 0:
            raise ValueError(f"EDSR needs width >= 1 and depth >= 0, got {width}, {depth}")
        if upsampler not in ("conv", "direct"):
            raise ValueError(f"EDSR upsampler must be 'conv' or 'direct', got {upsampler!r}")
        self._hparams = {
            "width": width,
            "depth": depth,
            "res_scale": res_scale,
            "residual": residual,
        }
        if upsampler != "conv":  # cards written before the option existed stay valid
            self._hparams["upsampler"] = upsampler
        self.upsampler_kind = upsampler
        self.depth = depth
        self.head = same_conv(dims, channels, width, 3)
        self.body = nn.Sequential(
            *[ResidualBlock(dims, width, res_scale) for _ in range(depth)],
            same_conv(dims, width, width, 3),
        )
        if upsampler == "conv":
            self.upsampler = same_conv(dims, width, width * math.prod(self.scale), 3)
            self.tail = same_conv(dims, width, channels, 3)
        else:
            self.upsampler = same_conv(dims, width, channels * math.prod(self.scale), 3)
            self.tail = nn.Identity()
        self.skip = PolyphaseUpsample("bicubic", self.scale) if residual else None

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        lr = 1 + 2 * self.depth + 1 + 1  # head, blocks, body tail, upsampler conv
        if self.upsampler_kind == "direct":
            reach = (lr,) * self.dims
        else:  # plus the tail conv at high resolution
            reach = tuple(lr + r for r in _hr_radius_in_lr(1, self.scale))
        skip = interpolation_radius("bicubic") if self.skip is not None else 0
        return tuple(max(r, skip) for r in reach)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        features = self.body(features).add_(features)
        out = self.tail(pixel_shuffle_nd(self.upsampler(features), self.scale))
        if self.skip is not None:
            out = out.add_(self.skip(x))
        return out


class GuidedResNet(SRModule):
    """Guided residual CNN for multi-resolution sharpening: works on the fine (guide) grid.

    Input ``(N, channels + guide_channels, H, W)``: the coarse bands already upsampled to
    the guide grid (first ``channels`` planes), then the guide features. Output ``(N,
    channels, H, W)``: the upsampled coarse bands plus a learned residual, so ``scale`` is
    1 (the ratio was applied before the network). The residual has two paths: a linear
    1x1 ``inject`` path and ``depth`` EDSR residual blocks of ``width`` features.

    Args:
        dims: 2 (rasters).
        channels: coarse bands in and out.
        guide_channels: guide feature planes after the coarse planes (any count >= 1).
        width, depth: feature count and residual blocks of the convolutional path.
        init: ``"zero"`` (the untrained network returns the upsampled coarse bands) or
            ``"injection"``: guide planes ``2 c`` and ``2 c + 1`` are taken as coarse band
            ``c``'s synthetic guide and its low-pass, and the inject path starts at ``+1,
            -1`` on them: the untrained network is detail injection (see
            ``geosr.guided``). The convolutional tail starts at zero either way.
    """

    arch_name = "guided_resnet"

    def __init__(
        self,
        dims: int = 2,
        channels: int = 1,
        scale: int | Sequence[int] = 1,
        guide_channels: int = 2,
        width: int = 32,
        depth: int = 4,
        init: str = "injection",
    ):
        super().__init__(dims, channels, scale)
        if any(s != 1 for s in self.scale):
            raise ValueError(f"guided_resnet works on the guide grid: scale must be 1, got {scale}")
        if channels < 1 or guide_channels < 1 or width < 1 or depth < 0:
            raise ValueError(
                "guided_resnet needs channels, guide_channels, width >= 1 and depth >= 0, got "
                f"{channels}, {guide_channels}, {width}, {depth}"
            )
        if init not in ("zero", "injection"):
            raise ValueError(f"init must be 'zero' or 'injection', got {init!r}")
        if init == "injection" and guide_channels < 2 * channels:
            raise ValueError("injection init needs 2 guide planes (guide, low-pass) per band")
        self._hparams = {
            "guide_channels": guide_channels,
            "width": width,
            "depth": depth,
            "init": init,
        }
        self.guide_channels = guide_channels
        self.depth = depth
        cin = channels + guide_channels
        self.inject = nn.Conv2d(cin, channels, 1, bias=False) if dims == 2 else None
        if self.inject is None:
            raise ValueError("guided_resnet is 2D only (dims: 2)")
        self.head = same_conv(dims, cin, width, 3)
        self.body = nn.Sequential(*[ResidualBlock(dims, width, 1.0) for _ in range(depth)])
        self.tail = same_conv(dims, width, channels, 3)
        with torch.no_grad():
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
            self.inject.weight.zero_()
            if init == "injection":
                for c in range(channels):
                    self.inject.weight[c, channels + 2 * c] = 1.0
                    self.inject.weight[c, channels + 2 * c + 1] = -1.0

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        return (1 + 2 * self.depth + 1,) * self.dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels + self.guide_channels:
            raise ValueError(
                f"guided_resnet expects {self.channels} + {self.guide_channels} input planes, "
                f"got {x.shape[1]}"
            )
        residual = self.inject(x) + self.tail(torch.relu(self.body(self.head(x))))
        return x[:, : self.channels] + residual
