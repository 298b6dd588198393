"""Low-resolution simulation (degradation models) for training and front ends.

All functions take numpy float arrays, channel-first, whose last ``spatial_dims`` axes are
spatial (e.g. ``(C, H, W)`` or ``(C, D, H, W)``). Float32/float64 inputs keep their dtype,
anything else is computed in float64. Separable resampling is done with one sparse
``(n_out, n_in)`` matrix per axis whose columns already fold in the half-sample symmetric
boundary (``d c b a | a b c d | d c b a``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter

__all__ = [
    "add_noise",
    "bicubic_downsample",
    "gaussian_blur",
    "gaussian_mtf_downsample",
    "imresize",
    "mod_crop",
    "thick_slice",
]


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _per_axis(value: float | Sequence[float], n: int, name: str) -> tuple:
    values = tuple(np.ravel(value).tolist())
    values = values * n if len(values) == 1 else values
    if len(values) != n:
        raise ValueError(f"{name} needs 1 or {n} values, got {value!r}")
    return values


def _spatial_axes(x: np.ndarray, spatial_dims: int) -> range:
    if not 1 <= spatial_dims <= x.ndim:
        raise ValueError(f"spatial_dims={spatial_dims} invalid for an array of shape {x.shape}")
    return range(x.ndim - spatial_dims, x.ndim)


def _check_factor(factor: float) -> int:
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    return int(factor)


def _matrix(weights: np.ndarray, idx: np.ndarray, n_in: int) -> sp.csr_array:
    """Sparse (n_out, n_in) matrix from per-row weights at (possibly out-of-range) indices."""
    idx = np.mod(idx, 2 * n_in)
    idx = np.where(idx < n_in, idx, 2 * n_in - 1 - idx)  # half-sample symmetric fold
    rows = np.repeat(np.arange(weights.shape[0]), weights.shape[1])
    return sp.csr_array((weights.ravel(), (rows, idx.ravel())), shape=(len(weights), n_in))


def _apply(x: np.ndarray, axis: int, mat: sp.csr_array) -> np.ndarray:
    xm = np.moveaxis(x, axis, 0)
    out = mat.astype(x.dtype) @ xm.reshape(xm.shape[0], -1)
    return np.moveaxis(out.reshape(mat.shape[0], *xm.shape[1:]), 0, axis)


def _cubic(d: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    a = np.abs(d)
    return np.where(
        a <= 1,
        (1.5 * a - 2.5) * a**2 + 1,
        np.where(a <= 2, ((-0.5 * a + 2.5) * a - 4) * a + 2, 0.0),
    )


def _gauss_rows(d: np.ndarray, sigma: float, radius: float) -> np.ndarray:
    """Gaussian weights per row, cut at ``|d| > radius`` but always keeping ``|d| <= 0.5``."""
    d2 = d**2
    w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (2 * sigma**2))  # no underflow
    return np.where(d2 <= max(radius, 0.5) ** 2, w, 0.0)


def _resize_matrix(n_in: int, n_out: int, scale: float, antialias: bool) -> sp.csr_array:
    stretch = antialias and scale < 1
    width = 4.0 / scale if stretch else 4.0
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate
    idx = np.floor(u - width / 2)[:, None] + np.arange(math.ceil(width) + 2)
    d = u[:, None] - idx
    w = scale * _cubic(d * scale) if stretch else _cubic(d)
    return _matrix(w / w.sum(axis=1, keepdims=True), idx.astype(np.int64) - 1, n_in)


def _imresize(x, scales, out_shape, antialias, spatial_dims) -> np.ndarray:
    x = _as_float(x)
    axes = _spatial_axes(x, spatial_dims)
    for i in np.argsort(scales, kind="stable"):  # MATLAB: smallest scale first
        n_in, n_out, s = x.shape[axes[i]], out_shape[i], scales[i]
        if s == 1 and n_out == n_in:
            continue
        x = _apply(x, axes[i], _resize_matrix(n_in, n_out, s, antialias))
    return x


def imresize(
    x: np.ndarray,
    scale: float | Sequence[float] | None = None,
    *,
    output_shape: Sequence[int] | None = None,
    antialias: bool = True,
    spatial_dims: int = 2,
) -> np.ndarray:
    """MATLAB-compatible bicubic ``imresize`` over the last ``spatial_dims`` axes.

    Keys cubic kernel (a = -0.5), MATLAB coordinate mapping ``u = x / s + 0.5 (1 - 1 / s)``
    (1-based), kernel stretched by ``1 / s`` when downscaling with ``antialias``, weights
    normalised, symmetric boundary; axes processed smallest scale first, like MATLAB.
    Give exactly one of ``scale`` (scalar or per-axis; output size ``ceil(n * s)``) or
    ``output_shape`` (spatial sizes; then ``s = n_out / n_in``). Axes with scale 1 are
    left untouched. Output is not clipped (bicubic overshoots).
    """
    x = _as_float(x)
    shape = tuple(x.shape[a] for a in _spatial_axes(x, spatial_dims))
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale or output_shape")
    if scale is not None:
        scales = tuple(float(s) for s in _per_axis(scale, spatial_dims, "scale"))
        if min(scales) <= 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        out = tuple(math.ceil(n * s) for n, s in zip(shape, scales))
    else:
        out = tuple(int(n) for n in _per_axis(output_shape, spatial_dims, "output_shape"))
        if min(out) < 1:
            raise ValueError(f"output_shape must be >= 1, got {output_shape!r}")
        scales = tuple(o / n for o, n in zip(out, shape))
    return _imresize(x, scales, out, antialias, spatial_dims)


def mod_crop(x: np.ndarray, factor: int | Sequence[int], spatial_dims: int = 2) -> np.ndarray:
    """Crop the spatial shape (from the end) down to a multiple of ``factor`` (a view)."""
    axes = _spatial_axes(x, spatial_dims)
    factors = [_check_factor(f) for f in _per_axis(factor, spatial_dims, "factor")]
    return x[(..., *[slice(0, x.shape[a] - x.shape[a] % f) for a, f in zip(axes, factors)])]


def bicubic_downsample(
    x: np.ndarray, factor: int | Sequence[int], spatial_dims: int = 2
) -> np.ndarray:
    """MATLAB bicubic (antialiased) downscaling by integer ``factor``: ``imresize(x, 1/factor)``.

    Raises:
        ValueError: a spatial size is not divisible by its factor (crop with ``mod_crop``).
    """
    x = _as_float(x)
    axes = _spatial_axes(x, spatial_dims)
    factors = [_check_factor(f) for f in _per_axis(factor, spatial_dims, "factor")]
    shape = tuple(x.shape[a] for a in axes)
    if any(n % f for n, f in zip(shape, factors)):
        raise ValueError(
            f"spatial shape {shape} not divisible by factor {tuple(factors)}; crop with mod_crop"
        )
    out = tuple(n // f for n, f in zip(shape, factors))
    return _imresize(x, tuple(1 / f for f in factors), out, True, spatial_dims)


def gaussian_blur(
    x: np.ndarray, sigma: float | Sequence[float], spatial_dims: int = 2
) -> np.ndarray:
    """Gaussian blur over the spatial axes only; ``sigma`` in pixels (scalar or per axis).

    Uses ``scipy.ndimage.gaussian_filter`` with ``mode='reflect'`` (half-sample symmetric).
    """
    x = _as_float(x)
    _spatial_axes(x, spatial_dims)
    sigmas = _per_axis(sigma, spatial_dims, "sigma")
    if min(sigmas) < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    return gaussian_filter(x, (0,) * (x.ndim - spatial_dims) + sigmas, mode="reflect")


def add_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add i.i.d. Gaussian noise of std ``sigma`` (in the array's units) drawn from ``rng``."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    x = _as_float(x)
    return x + rng.normal(0.0, sigma, x.shape).astype(x.dtype)


def _centres(n: int, factor: int) -> np.ndarray:
    """HR coordinates of the LR sample centres: LR k covers HR [k f, (k+1) f)."""
    return np.arange(n // factor) * factor + (factor - 1) / 2


def gaussian_mtf_downsample(
    x: np.ndarray, factor: int, mtf_at_nyquist: float = 0.3, spatial_dims: int = 2
) -> np.ndarray:
    """Remote-sensing degradation: Gaussian PSF with a given MTF at LR Nyquist, then decimation.

    A Gaussian PSF of std ``sigma`` (HR pixels) has ``MTF(f) = exp(-2 pi^2 sigma^2 f^2)``;
    at the LR Nyquist frequency ``f = 1 / (2 factor)`` cycles/HR pixel this equals
    ``mtf_at_nyquist`` for ``sigma = factor * sqrt(-2 ln(mtf_at_nyquist)) / pi``.
    LR pixel k covers HR pixels ``[k f, (k+1) f)``; its value is the PSF-weighted sum
    centred exactly at HR coordinate ``k f + (f - 1) / 2`` (the Gaussian is evaluated at
    the half-integer offsets for even f, so no extra interpolation blur), truncated at
    4 sigma, normalised, with half-sample symmetric boundaries. Trailing HR pixels that do
    not fill an LR pixel are dropped: output size ``n // factor``.
    """
    factor = _check_factor(factor)
    if not 0 < mtf_at_nyquist < 1:
        raise ValueError(f"mtf_at_nyquist must be in (0, 1), got {mtf_at_nyquist}")
    x = _as_float(x)
    sigma = factor * math.sqrt(-2 * math.log(mtf_at_nyquist)) / math.pi
    for axis in _spatial_axes(x, spatial_dims):
        if x.shape[axis] < factor:
            raise ValueError(f"axis {axis} of size {x.shape[axis]} is smaller than factor {factor}")
        c = _centres(x.shape[axis], factor)
        r = math.ceil(4 * sigma) + 1
        idx = np.floor(c)[:, None].astype(np.int64) + np.arange(-r, r + 2)
        w = _gauss_rows(idx - c[:, None], sigma, 4 * sigma)
        x = _apply(x, axis, _matrix(w / w.sum(axis=1, keepdims=True), idx, x.shape[axis]))
    return x


def thick_slice(
    x: np.ndarray, factor: int, axis: int, *, profile: str = "gaussian", gap: float = 0.0
) -> np.ndarray:
    """Simulate thick slices along ``axis`` (an index into ``x``, negative allowed).

    LR slice k covers HR slices ``[k f, (k+1) f)`` and is the weighted mean of HR slices
    under a slice profile centred at HR coordinate ``k f + (f - 1) / 2``, thickness
    ``T = f - gap`` HR slices (``0 <= gap < f``). ``'box'``: uniform over
    ``[c - T/2, c + T/2]``, each HR slice weighted by its overlap length (``gap=0`` gives
    the exact block mean). ``'gaussian'``: Gaussian with FWHM ``T`` evaluated at the HR
    slice positions, truncated at 3 sigma (never fewer than the nearest slices).
    Weights are normalised; boundary is half-sample symmetric. Output length
    ``n // f`` (trailing HR slices that do not fill an LR slice are dropped).
    """
    factor = _check_factor(factor)
    if not 0 <= gap < factor:
        raise ValueError(f"gap must satisfy 0 <= gap < factor={factor}, got {gap}")
    if profile not in ("box", "gaussian"):
        raise ValueError(f"profile must be 'box' or 'gaussian', got {profile!r}")
    x = _as_float(x)
    axis = axis % x.ndim
    n = x.shape[axis]
    if n < factor:
        raise ValueError(f"axis {axis} of size {n} is smaller than factor {factor}")
    c = _centres(n, factor)[:, None]
    thick = factor - gap
    sigma = thick / (2 * math.sqrt(2 * math.log(2)))
    r = math.ceil(3 * sigma) + 1  # 3 sigma > T/2: also covers the box
    idx = np.floor(c).astype(np.int64) + np.arange(-r, r + 2)
    if profile == "box":
        lo, hi = np.maximum(idx - 0.5, c - thick / 2), np.minimum(idx + 0.5, c + thick / 2)
        w = np.clip(hi - lo, 0, None)
    else:
        w = _gauss_rows(idx - c, sigma, 3 * sigma)
    return _apply(x, axis, _matrix(w / w.sum(axis=1, keepdims=True), idx, n))
