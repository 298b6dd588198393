"""Image-quality metrics for super-resolution (numpy in, Python float out).

Arrays are channel-first ``(C, H, W)`` / ``(C, D, H, W)`` or plain ``(H, W)`` / ``(D, H, W)``.
Every metric takes the intensity range explicitly where it matters; nothing is guessed
from the dtype.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

__all__ = ["ergas", "psnr", "rgb_to_y", "sam", "shave", "ssim", "y_psnr", "y_ssim"]

# BT.601 luma weights of MATLAB's rgb2ycbcr for RGB in [0, 1] (they sum to 219).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs ref {ref.shape}")
    return pred, ref


def _mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    try:
        out = np.broadcast_to(np.asarray(mask, dtype=bool), shape)
    except ValueError:
        raise ValueError(f"mask of shape {np.shape(mask)} does not broadcast to {shape}") from None
    if not out.any():
        raise ValueError("mask selects no voxels")
    return out


def _check_range(data_range: float) -> None:
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")


def psnr(
    pred: np.ndarray, ref: np.ndarray, *, data_range: float, mask: np.ndarray | None = None
) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / MSE)``.

    Accepts any shape (channel-first or plain); the MSE runs over all channels and the
    voxels selected by ``mask`` (boolean, broadcastable to the full shape, so a spatial
    ``(H, W)`` mask works for ``(C, H, W)``). Identical inputs give ``inf``.

    Raises:
        ValueError: shapes differ, ``data_range <= 0`` or the mask is empty.
    """
    _check_range(data_range)
    pred, ref = _pair(pred, ref)
    mse = float(np.mean((pred - ref)[_mask(mask, pred.shape)] ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    data_range: float,
    mask: np.ndarray | None = None,
    channel_axis: int | None = 0,
) -> float:
    """Mean structural similarity (Wang et al. 2004), 2D or 3D, unitless in [-1, 1].

    Uses ``skimage.metrics.structural_similarity`` with a Gaussian window (sigma 1.5,
    truncated at 3.5 sigma = 11 taps) and population covariance. ``channel_axis=0`` for
    ``(C, H, W)`` / ``(C, D, H, W)`` (per-channel mean), ``None`` for plain ``(H, W)`` /
    ``(D, H, W)``. ``win_size`` (only the border strip skimage excludes from the mean,
    ``(win_size - 1) // 2``) is 11, reduced to the largest odd size <= the smallest spatial
    dimension for thin volumes. With ``mask`` (broadcastable to the full shape) the SSIM
    map is averaged over masked voxels inside that border, so an all-true mask equals
    no mask.

    Raises:
        ValueError: shapes differ, ``data_range <= 0``, a spatial dimension is < 3, or
            the mask selects nothing inside the border.
    """
    _check_range(data_range)
    pred, ref = _pair(pred, ref)
    ch = None if channel_axis is None else channel_axis % pred.ndim
    spatial = tuple(n for i, n in enumerate(pred.shape) if i != ch)
    win = min(11, min(spatial))
    win -= 1 - win % 2  # largest odd size <= the above
    if win < 3:
        raise ValueError(f"spatial dimensions {spatial} too small for SSIM (need >= 3)")
    kwargs = dict(
        data_range=data_range,
        channel_axis=ch,
        win_size=win,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    if mask is None:
        return float(structural_similarity(pred, ref, **kwargs))
    m = _mask(mask, pred.shape)
    _, smap = structural_similarity(pred, ref, full=True, **kwargs)
    pad = (win - 1) // 2
    crop = tuple(slice(None) if i == ch else slice(pad, n - pad) for i, n in enumerate(pred.shape))
    m, smap = m[crop], smap[crop]
    if not m.any():
        raise ValueError("mask selects no voxels inside the SSIM border")
    return float(smap[m].mean())


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of MATLAB ``rgb2ycbcr`` on the 0..255 scale (16 black .. 235 white).

    Input: float RGB in [0, 1], channel-first ``(3, ...)``. Output: float64 ``(...)``,
    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``. Not rounded.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim < 2 or rgb.shape[0] != 3:
        raise ValueError(f"expected channel-first RGB (3, ...), got shape {rgb.shape}")
    return np.tensordot(_Y_WEIGHTS, rgb, axes=(0, 0)) + 16.0


def shave(x: np.ndarray, border: int, *, spatial_dims: int = 2) -> np.ndarray:
    """Crop ``border`` pixels from both ends of each of the last ``spatial_dims`` axes.

    ``border=0`` returns ``x`` unchanged (a view). Works on any leading axes.

    Raises:
        ValueError: ``border < 0`` or nothing would remain along some axis.
    """
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return x
    shape = x.shape[-spatial_dims:]
    if min(shape) <= 2 * border:
        raise ValueError(f"cannot shave {border} pixels from spatial shape {shape}")
    return x[(..., *[slice(border, -border)] * spatial_dims)]


def _y_pair(
    pred_rgb: np.ndarray, ref_rgb: np.ndarray, scale: int, quantize: bool
) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = _pair(pred_rgb, ref_rgb)
    if pred.ndim != 3 or pred.shape[0] not in (1, 3):
        raise ValueError(f"expected (3, H, W) RGB or (1, H, W) gray, got shape {pred.shape}")
    if quantize:
        pred = np.round(np.clip(pred, 0.0, 1.0) * 255.0) / 255.0
    if pred.shape[0] == 3:
        pred, ref = rgb_to_y(pred), rgb_to_y(ref)
    else:
        pred, ref = 255.0 * pred[0], 255.0 * ref[0]
    return shave(pred, scale), shave(ref, scale)


def y_psnr(
    pred_rgb: np.ndarray, ref_rgb: np.ndarray, *, scale: int, quantize: bool = True
) -> float:
    """PSNR (dB) on the luma channel, the standard natural-image SR protocol.

    Inputs: float ``(3, H, W)`` RGB or ``(1, H, W)`` gray in [0, 1]. RGB is converted with
    :func:`rgb_to_y` (0..255 scale); gray is used as Y directly (``255 * gray``, no 16..235
    mapping), as in the common SR evaluation code. ``scale`` pixels are shaved from every
    edge, then PSNR with ``data_range=255``. ``quantize`` rounds ``pred`` to uint8 levels
    (clip to [0, 1], ``round(x * 255) / 255``) first, as if saved as 8-bit; ``ref`` is used
    as given and Y is not rounded.
    """
    pred, ref = _y_pair(pred_rgb, ref_rgb, scale, quantize)
    return psnr(pred, ref, data_range=255.0)


def y_ssim(
    pred_rgb: np.ndarray, ref_rgb: np.ndarray, *, scale: int, quantize: bool = True
) -> float:
    """SSIM on the luma channel; same conventions as :func:`y_psnr` (``data_range=255``)."""
    pred, ref = _y_pair(pred_rgb, ref_rgb, scale, quantize)
    return ssim(pred, ref, data_range=255.0, channel_axis=None)


def sam(pred: np.ndarray, ref: np.ndarray, *, mask: np.ndarray | None = None) -> float:
    """Spectral angle mapper: mean angle in DEGREES between per-pixel spectra.

    Inputs ``(C, ...)`` with ``C >= 2`` bands on axis 0; ``mask`` broadcasts to the spatial
    shape. Pixels where either spectrum has zero norm are excluded; cosines are clipped to
    [-1, 1].

    Raises:
        ValueError: shapes differ, fewer than 2 bands, or no valid pixel remains.
    """
    pred, ref = _pair(pred, ref)
    if pred.ndim < 2 or pred.shape[0] < 2:
        raise ValueError(f"SAM needs (C, ...) with C >= 2 bands, got shape {pred.shape}")
    dot = np.sum(pred * ref, axis=0)
    norms = np.linalg.norm(pred, axis=0) * np.linalg.norm(ref, axis=0)
    valid = _mask(mask, dot.shape) & (norms > 0)
    if not valid.any():
        raise ValueError("no pixel with non-zero spectra inside the mask")
    cos = np.clip(dot[valid] / norms[valid], -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)).mean())


def ergas(
    pred: np.ndarray, ref: np.ndarray, *, scale: float, mask: np.ndarray | None = None
) -> float:
    """ERGAS (relative dimensionless global error), lower is better.

    ``ERGAS = 100 * (h / l) * sqrt(mean_k (RMSE_k / mean(ref_k))**2)`` with ``h / l =
    1 / scale`` the ratio of high- to low-resolution pixel size (``scale=4`` for 4x SR).
    Inputs ``(C, ...)`` with bands on axis 0; RMSE and mean run over the spatial ``mask``.

    Raises:
        ValueError: shapes differ, ``scale <= 0``, or a reference band has zero mean.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    pred, ref = _pair(pred, ref)
    m = _mask(mask, pred.shape[1:])
    p, r = pred[:, m], ref[:, m]
    means = r.mean(axis=1)
    if np.any(means == 0):
        raise ValueError(f"reference bands {np.flatnonzero(means == 0).tolist()} have zero mean")
    rmse = np.sqrt(np.mean((p - r) ** 2, axis=1))
    return float(100.0 / scale * np.sqrt(np.mean((rmse / means) ** 2)))
