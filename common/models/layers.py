"""Building blocks shared by the architectures: N-d convolutions, pixel shuffle and
separable polyphase interpolation (the interpolation baselines and SRCNN's pre-upsampling).

Conventions: tensors are ``(N, C, *spatial)``; a scale is one integer per spatial axis.
Interpolation follows the edges-kept (``align_corners=False``) convention: output sample
``j`` of an axis upsampled by ``s`` sits at input coordinate ``(j + 0.5) / s - 0.5``, so the
outer edges of the first and last input pixels stay fixed. Boundaries use half-sample
symmetric extension, as MATLAB's ``imresize`` and ``scipy.ndimage`` ``mode="reflect"`` do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def expand_per_axis(value: int | Sequence[int], dims: int, name: str = "value") -> tuple[int, ...]:
    """Expands an int to a ``dims``-tuple, or checks that a sequence has ``dims`` entries."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * dims
    values = tuple(int(v) for v in value)
    if len(values) != dims:
        raise ValueError(f"{name} needs 1 or {dims} entries, got {len(values)}: {values}")
    return values


def conv_nd(dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """``nn.Conv2d`` or ``nn.Conv3d`` for 2 or 3 spatial dimensions."""
    if dims == 2:
        return nn.Conv2d
    if dims == 3:
        return nn.Conv3d
    raise ValueError(f"dims must be 2 or 3, got {dims}")


def same_conv(dims: int, cin: int, cout: int, kernel: int) -> nn.Module:
    """A stride-1 convolution with odd ``kernel`` and zero padding that keeps the size."""
    if kernel % 2 != 1:
        raise ValueError(f"kernel size must be odd, got {kernel}")
    return conv_nd(dims)(cin, cout, kernel, padding=kernel // 2)


def pixel_shuffle_nd(x: torch.Tensor, scale: Sequence[int]) -> torch.Tensor:
    """Rearranges ``(N, C*prod(scale), *S)`` into ``(N, C, *(S*scale))``.

    The channel layout is ``(C, s_1, ..., s_d)``, which for 2D matches ``torch.pixel_shuffle``.
    """
    n, c_total, *spatial = x.shape
    dims = len(spatial)
    factor = math.prod(scale)
    if c_total % factor:
        raise ValueError(f"{c_total} channels are not divisible by prod(scale)={factor}")
    c = c_total // factor
    x = x.reshape(n, c, *scale, *spatial)
    # (N, C, s1..sd, d1..dd) -> (N, C, d1, s1, d2, s2, ...)
    order = [0, 1]
    for axis in range(dims):
        order += [2 + dims + axis, 2 + axis]
    x = x.permute(*order)
    return x.reshape(n, c, *(size * s for size, s in zip(spatial, scale)))


# --------------------------------------------------------------------------- kernels


def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys cubic convolution kernel (``a=-0.5`` is MATLAB's bicubic)."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _lanczos3(t: np.ndarray) -> np.ndarray:
    return np.where(np.abs(t) < 3, np.sinc(t) * np.sinc(t / 3), 0.0)


def _bspline3(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    return np.where(t < 1, 2 / 3 - t * t + t**3 / 2, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))


def _nearest(t: np.ndarray) -> np.ndarray:
    return ((t >= -0.5) & (t < 0.5)).astype(np.float64)


# B-spline interpolation needs the inverse of the sampled spline [1/6, 4/6, 1/6], an IIR
# filter with impulse response sqrt(3) * z^|n|, z = sqrt(3) - 2. Truncating it at |n| <= 12
# leaves a relative error below 2e-7, so the whole operator stays local (tileable).
_BSPLINE_POLE = math.sqrt(3.0) - 2.0
_BSPLINE_PREFILTER_RADIUS = 12

INTERPOLATION_KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    # name: (kernel function, support radius in input pixels)
    "nearest": (_nearest, 1),
    "bicubic": (_cubic, 2),
    "lanczos": (_lanczos3, 3),
    "bspline": (_bspline3, 2),
}


def polyphase_weights(kind: str, scale: int) -> np.ndarray:
    """Weights ``(scale, 2p+1)`` for each output phase over input taps ``-p..p``.

    Output phase ``r`` of input pixel ``i`` is ``sum_k w[r, k + p] * x[i + k]``.
    """
    if kind not in INTERPOLATION_KERNELS:
        raise ValueError(
            f"unknown interpolation {kind!r}; choose from {sorted(INTERPOLATION_KERNELS)}"
        )
    kernel, support = INTERPOLATION_KERNELS[kind]
    offsets = (np.arange(scale) + 0.5) / scale - 0.5  # position of each phase, input pixels
    if kind == "bspline":
        radius = support + _BSPLINE_PREFILTER_RADIUS
        n = np.arange(-_BSPLINE_PREFILTER_RADIUS, _BSPLINE_PREFILTER_RADIUS + 1)
        prefilter = math.sqrt(3.0) * _BSPLINE_POLE ** np.abs(n)
        taps = np.arange(-radius, radius + 1)
        # w[m] = sum_n h[n] * beta3(u - m - n)
        arg = offsets[:, None, None] - taps[None, :, None] - n[None, None, :]
        weights = (_bspline3(arg) * prefilter).sum(axis=-1)
    else:
        taps = np.arange(-support, support + 1)
        weights = kernel(offsets[:, None] - taps[None, :])
    return weights / weights.sum(axis=1, keepdims=True)


def interpolation_radius(kind: str) -> int:
    """How many input pixels each side an interpolated sample depends on."""
    support = INTERPOLATION_KERNELS[kind][1]
    return support + (_BSPLINE_PREFILTER_RADIUS if kind == "bspline" else 0)


def symmetric_indices(size: int, pad: int) -> torch.Tensor:
    """Indices of a half-sample symmetric extension ``d c b a | a b c d | d c b a``."""
    idx = np.arange(-pad, size + pad)
    period = 2 * size
    idx = np.mod(idx, period)
    idx = np.where(idx >= size, period - 1 - idx, idx)
    return torch.from_numpy(idx)


class PolyphaseUpsample(nn.Module):
    """Separable integer-factor interpolation (nearest, bicubic, lanczos, bspline).

    Args:
        kind: interpolation kernel; ``bicubic`` is Keys ``a=-0.5`` (MATLAB ``imresize``),
            ``bspline`` is cubic B-spline interpolation (``scipy.ndimage.zoom(order=3,
            mode="reflect", grid_mode=True)`` to about 1e-6).
        scale: one integer factor per spatial axis; axes with factor 1 are left unchanged.
    """

    def __init__(self, kind: str, scale: Sequence[int]):
        super().__init__()
        self.kind = kind
        self.scale = tuple(int(s) for s in scale)
        self.radius = interpolation_radius(kind)
        for axis, s in enumerate(self.scale):
            if s < 1:
                raise ValueError(f"scale must be >= 1, got {self.scale}")
            if s > 1:
                weights = torch.from_numpy(polyphase_weights(kind, s)).float()
                self.register_buffer(f"weights_{axis}", weights[:, None, :], persistent=False)

    def _upsample_axis(self, x: torch.Tensor, axis: int, s: int) -> torch.Tensor:
        weights = getattr(self, f"weights_{axis}").to(dtype=x.dtype)
        dim = 2 + axis
        x = x.movedim(dim, -1)
        lead, size = x.shape[:-1], x.shape[-1]
        idx = symmetric_indices(size, self.radius).to(x.device)
        padded = x.reshape(-1, 1, size).index_select(-1, idx)
        out = F.conv1d(padded, weights)  # (B, s, size)
        out = out.transpose(1, 2).reshape(*lead, size * s)
        return out.movedim(-1, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, s in enumerate(self.scale):
            if s > 1:
                x = self._upsample_axis(x, axis, s)
        return x
