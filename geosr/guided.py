"""Guided sharpening on arrays: coarse bands brought to a finer guide grid by its own bands.

Conventions (normalized float units, see ``geosr.normalize``):

- a coarse array ``(C, h, w)`` and a guide array ``(K, h r, w r)`` nest exactly: coarse
  pixel ``(i, j)`` covers guide pixels ``[i r, (i + 1) r) x [j r, (j + 1) r)``;
- the sensor seen by the coarse bands is a Gaussian PSF with ``mtf`` at the coarse Nyquist
  frequency (``common.degradation.gaussian_mtf_downsample``): ``degrade(x, r)`` is what a
  guide band would look like on the coarse grid;
- ``upsample`` is edges-kept bicubic (``common.models.layers.PolyphaseUpsample``).

Methods (``sharpen_block``):

- ``bicubic``: ``up(coarse)``.
- ``detail-injection`` (GSA/HPF-type): per coarse band ``c`` a least-squares fit
  ``coarse_c ~ b_c + sum_k w_ck degrade(guide_k)`` over valid coarse pixels gives the
  synthetic guide ``s_c = b_c + sum_k w_ck guide_k``; its high-pass detail
  ``s_c - up(degrade(s_c))`` is added: ``up(coarse_c) + s_c - up(degrade(s_c))``. A band
  that is an exact linear mix of the guides is recovered exactly (up to the boundary).
- ``cnn``: a ``guided_resnet`` model (``common.models.architectures.GuidedResNet``) gets,
  per coarse band, ``[up(coarse_c), s_c, up(degrade(s_c))]`` z-scored with the coarse
  band's mean and standard deviation (so one model serves any band, dtype and guide
  count), optionally followed by every guide z-scored on its own (a model with
  ``guide_channels == 2 + K``), and returns ``up(coarse_c)`` plus its residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from srkit.common.degradation import gaussian_mtf_downsample
from srkit.common.models.layers import PolyphaseUpsample

from .errors import GeosrError

METHODS = ("bicubic", "detail-injection", "cnn")
DEFAULT_MTF = 0.3  # Gaussian MTF at the coarse Nyquist frequency (as geosr simulate)
MIN_STD = 1e-6  # a constant band is z-scored with this instead of 0
# How far (in coarse pixels) one output pixel of detail injection reaches: bicubic (2)
# plus the degradation's Gaussian (4 sigma of at most 0.5 r... up to 3) plus bicubic again.
INJECTION_RADIUS = 6


def upsample(x: np.ndarray, ratio: int) -> np.ndarray:
    """Edges-kept bicubic upsampling of float ``(C, h, w)`` by ``ratio`` (float32)."""
    if ratio == 1:
        return np.asarray(x, dtype=np.float32)
    with torch.no_grad():
        tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        return PolyphaseUpsample("bicubic", (ratio, ratio))(tensor)[0].numpy()


def degrade(x: np.ndarray, ratio: int, mtf: float = DEFAULT_MTF) -> np.ndarray:
    """``(C, h r, w r)`` to ``(C, h, w)``: Gaussian PSF with ``mtf`` at Nyquist, decimated."""
    return gaussian_mtf_downsample(np.asarray(x, dtype=np.float32), ratio, mtf).astype(np.float32)


@dataclass(frozen=True)
class BandFit:
    """One coarse band's regression on the degraded guides, and its own statistics.

    ``coarse ~ intercept + weights . degrade(guides)`` (normalized units); ``mean`` and
    ``std`` are the band's over its valid pixels; ``r2`` the fraction of its variance the
    guides explain (0 when nothing was valid).
    """

    weights: np.ndarray
    intercept: float
    mean: float
    std: float
    r2: float
    pixels: int


@dataclass(frozen=True)
class InjectionFit:
    """Per-band fits plus the guides' own means and standard deviations."""

    bands: tuple[BandFit, ...]
    guide_mean: np.ndarray
    guide_std: np.ndarray


class FitAccumulator:
    """Least-squares normal equations summed window by window (float64), then solved.

    Args:
        bands: coarse band count ``C``.
        guides: guide band count ``K``.
    """

    def __init__(self, bands: int, guides: int):
        self.k = guides
        self.xtx = np.zeros((bands, guides + 1, guides + 1))
        self.xty = np.zeros((bands, guides + 1))
        self.yy = np.zeros(bands)
        self.g_sum = np.zeros(guides)
        self.g_sq = np.zeros(guides)
        self.g_n = 0

    def add(self, coarse: np.ndarray, degraded: np.ndarray, valid: np.ndarray) -> None:
        """Adds coarse ``(C, h, w)`` against degraded guides ``(K, h, w)``; ``valid`` is
        ``(C, h, w)`` and already includes the guides' validity."""
        g = degraded.reshape(self.k, -1).astype(np.float64)
        any_valid = valid.any(axis=0).ravel()
        self.g_sum += g[:, any_valid].sum(axis=1)
        self.g_sq += (g[:, any_valid] ** 2).sum(axis=1)
        self.g_n += int(any_valid.sum())
        for c in range(coarse.shape[0]):
            keep = valid[c].ravel()
            if not keep.any():
                continue
            x = np.vstack([np.ones(int(keep.sum())), g[:, keep]])
            y = coarse[c].ravel()[keep].astype(np.float64)
            self.xtx[c] += x @ x.T
            self.xty[c] += x @ y
            self.yy[c] += y @ y

    def solve(self) -> InjectionFit:
        """The per-band least-squares solutions (minimum norm where singular)."""
        bands = []
        for c in range(self.xtx.shape[0]):
            n = self.xtx[c, 0, 0]
            if n == 0:
                bands.append(BandFit(np.zeros(self.k), 0.0, 0.0, 1.0, 0.0, 0))
                continue
            coef = np.linalg.lstsq(self.xtx[c], self.xty[c], rcond=None)[0]
            mean = self.xty[c, 0] / n
            var = max(self.yy[c] / n - mean**2, 0.0)
            residual = self.yy[c] - 2 * coef @ self.xty[c] + coef @ self.xtx[c] @ coef
            r2 = 1.0 - residual / (var * n) if var > 0 else 0.0
            bands.append(
                BandFit(
                    coef[1:], float(coef[0]), float(mean), float(max(np.sqrt(var), MIN_STD)),
                    float(np.clip(r2, 0.0, 1.0)), int(n),
                )
            )  # fmt: skip
        n = max(self.g_n, 1)
        g_mean = self.g_sum / n
        g_std = np.sqrt(np.maximum(self.g_sq / n - g_mean**2, 0.0))
        return InjectionFit(tuple(bands), g_mean, np.maximum(g_std, MIN_STD))


def coarse_validity(valid: np.ndarray, ratio: int) -> np.ndarray:
    """Fine validity ``(H, W)`` to the coarse grid: a coarse pixel is valid when all its
    ``ratio x ratio`` fine pixels are (trailing rows and columns dropped)."""
    h, w = valid.shape[0] // ratio, valid.shape[1] // ratio
    return valid[: h * ratio, : w * ratio].reshape(h, ratio, w, ratio).all(axis=(1, 3))


def fit_injection(
    coarse: np.ndarray,
    guides: np.ndarray,
    ratio: int,
    valid: np.ndarray | None = None,
    mtf: float = DEFAULT_MTF,
) -> InjectionFit:
    """The regression of every coarse band ``(C, h, w)`` on the guides ``(K, h r, w r)``
    degraded to the coarse grid, over ``valid`` coarse pixels (``(C, h, w)``; all if None)."""
    acc = FitAccumulator(coarse.shape[0], guides.shape[0])
    if valid is None:
        valid = np.ones(coarse.shape, dtype=bool)
    acc.add(coarse, degrade(guides, ratio, mtf), valid)
    return acc.solve()


def model_guide_layout(model, bands: int, guides: int) -> bool:
    """Whether ``model`` also takes the raw guides (``2 + K`` planes per band) or only the
    synthetic guide and its low-pass (2 per band). Raises when it fits neither."""
    per_band = model.channels == 1
    if not per_band and model.channels != bands:
        raise GeosrError(
            f"model {model.card.name!r} sharpens {model.channels} bands at once; "
            f"got {bands} coarse bands"
        )
    synthetic = 2 * model.channels
    if model.guide_channels == synthetic:
        return False
    if model.guide_channels == synthetic + guides:
        return True
    raise GeosrError(
        f"model {model.card.name!r} takes {model.guide_channels} guide planes: "
        f"{synthetic} (synthetic guide and low-pass) or {synthetic} + the {guides} guide "
        f"band(s) given would fit"
    )


def model_input(
    model,
    c_up: np.ndarray,
    synthetic: np.ndarray,
    synthetic_low: np.ndarray,
    guides: np.ndarray,
    fit: InjectionFit,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CNN input ``(N, planes, H, W)`` (one item per band for a 1-band model) and the
    per-band ``mean`` and ``std`` ``(C, 1, 1)`` that z-score it (see the module docstring)."""
    bands = c_up.shape[0]
    raw = model_guide_layout(model, bands, guides.shape[0])
    mean = np.array([b.mean for b in fit.bands], dtype=np.float32)[:, None, None]
    std = np.array([b.std for b in fit.bands], dtype=np.float32)[:, None, None]
    z = [(a - mean) / std for a in (c_up, synthetic, synthetic_low)]
    guides_z = (guides - fit.guide_mean[:, None, None]) / fit.guide_std[:, None, None]
    guides_z = guides_z.astype(np.float32)
    if model.channels == 1:  # one item per band
        items = [np.stack([z[0][c], z[1][c], z[2][c]]) for c in range(bands)]
        if raw:
            items = [np.concatenate([item, guides_z]) for item in items]
        x = np.stack(items)
    else:
        planes = [z[0]] + [np.stack([z[1][c], z[2][c]]) for c in range(bands)]
        if raw:
            planes.append(guides_z)
        x = np.concatenate(planes)[None]
    return np.ascontiguousarray(x, dtype=np.float32), mean, std


def run_guided_model(
    model,
    c_up: np.ndarray,
    synthetic: np.ndarray,
    synthetic_low: np.ndarray,
    guides: np.ndarray,
    fit: InjectionFit,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The CNN output ``(C, H, W)`` in normalized units (``model_input``, run, undone)."""
    x, mean, std = model_input(model, c_up, synthetic, synthetic_low, guides, fit)
    with torch.no_grad():  # channels-last: about 1.6x faster convolutions on CPU
        tensor = torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last)
        out = model(tensor).float().cpu().contiguous().numpy()
    out = out[:, 0] if model.channels == 1 else out[0]
    return out * std + mean


def guided_planes(
    coarse: np.ndarray, guides: np.ndarray, ratio: int, fit: InjectionFit, mtf: float = DEFAULT_MTF
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(up(coarse), synthetic, synthetic_low)``, each ``(C, h r, w r)``."""
    c_up = upsample(coarse, ratio)
    g_low = upsample(degrade(guides, ratio, mtf), ratio)
    weights = np.stack([b.weights for b in fit.bands]).astype(np.float32)  # (C, K)
    intercept = np.array([b.intercept for b in fit.bands], dtype=np.float32)[:, None, None]
    synthetic = np.tensordot(weights, guides, axes=1) + intercept
    synthetic_low = np.tensordot(weights, g_low, axes=1) + intercept
    return c_up, synthetic.astype(np.float32), synthetic_low.astype(np.float32)


def sharpen_block(
    coarse: np.ndarray,
    guides: np.ndarray,
    ratio: int,
    method: str,
    fit: InjectionFit | None = None,
    model=None,
    mtf: float = DEFAULT_MTF,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Sharpens coarse ``(C, h, w)`` with guides ``(K, h r, w r)`` (normalized, no invalid
    pixels); returns ``(C, h r, w r)`` float32. ``fit`` (``fit_injection``, usually from
    the whole scene) is needed by ``detail-injection`` and ``cnn``, ``model`` by ``cnn``."""
    if method not in METHODS:
        raise GeosrError(f"--method {method!r}: choose from {', '.join(METHODS)}")
    if guides.shape[1:] != (coarse.shape[1] * ratio, coarse.shape[2] * ratio):
        raise GeosrError(
            f"guide block {guides.shape[1:]} is not {ratio} x coarse block {coarse.shape[1:]}"
        )
    if method == "bicubic":
        return upsample(coarse, ratio)
    if fit is None:
        raise GeosrError(f"method {method!r} needs the regression fit of the scene")
    c_up, synthetic, synthetic_low = guided_planes(coarse, guides, ratio, fit, mtf)
    if method == "detail-injection":
        return (c_up + synthetic - synthetic_low).astype(np.float32)
    if model is None:
        raise GeosrError("method 'cnn' needs a guided model")
    return run_guided_model(model, c_up, synthetic, synthetic_low, guides, fit, device)


def sharpen_arrays(
    coarse: np.ndarray,
    guides: np.ndarray,
    ratio: int,
    method: str,
    model=None,
    mtf: float = DEFAULT_MTF,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """In-memory sharpening of a whole scene: fit on it, then ``sharpen_block``."""
    fit = None if method == "bicubic" else fit_injection(coarse, guides, ratio, valid, mtf)
    return sharpen_block(coarse, guides, ratio, method, fit, model, mtf)


def wald_inputs(
    coarse: np.ndarray, guides: np.ndarray, ratio: int, mtf: float = DEFAULT_MTF
) -> tuple[np.ndarray, np.ndarray]:
    """Wald's reduced-resolution protocol: both coarse ``(C, h, w)`` and guides ``(K, H,
    W)`` degraded by ``ratio`` (cropped to multiples of it). Sharpening the pair by the
    guides' own ratio should give back ``coarse`` (cropped)."""
    h, w = coarse.shape[1] // ratio * ratio, coarse.shape[2] // ratio * ratio
    g_ratio = guides.shape[1] // coarse.shape[1]
    gh, gw = h * g_ratio, w * g_ratio
    return degrade(coarse[:, :h, :w], ratio, mtf), degrade(guides[:, :gh, :gw], ratio, mtf)


def check_method(method: str) -> str:
    """``method`` if known, else a one-line error listing them."""
    if method not in METHODS:
        raise GeosrError(f"--method {method!r}: choose from {', '.join(METHODS)}")
    return method


def guide_halo(ratio: int, model_radius: int = 0) -> int:
    """Coarse pixels of context each side of a window for ``sharpen_block`` to give, in
    its core, what a whole-scene run gives: detail injection's reach plus the model's."""
    return INJECTION_RADIUS + -(-model_radius // ratio)
