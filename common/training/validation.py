"""Validation during training, through the same inference functions ``enhance`` uses.

A 2D model validated on volumes (``data.planes``) runs through
``common.inference.upscale_planes``, exactly as SMORE-style inference applies it; every
other model through ``common.inference.upscale``. The PSNR written on a card is therefore
what the inference API gives on the same held-out item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..inference import upscale, upscale_planes
from ..metrics import psnr, shave, ssim
from ..models.architectures import SRModule
from .data import Pair


def quantize_8bit(x: np.ndarray) -> np.ndarray:
    """Rounds to 8-bit levels, as the natural-image protocol saves outputs as uint8."""
    return np.clip(np.round(x * 255.0), 0, 255) / 255.0


def predict_pair(
    model: SRModule, lr: np.ndarray, *, scale, device: torch.device, tile: int = 0
) -> np.ndarray:
    """The inference API's output for one validation input.

    ``lr`` is ``(C, *spatial)``; for a 2D model on a volume ``(C, X, Y, Z)`` the last axis
    indexes planes (``plane_pairs``' layout) and the planes go through ``upscale_planes``
    (which wants them on the first spatial axis).
    """
    if model.dims == 2 and lr.ndim == 4:  # data.planes: the 2D model on every plane
        planes_first = np.ascontiguousarray(np.moveaxis(lr, -1, 1))
        pred = upscale_planes(model, planes_first, tile=tile or None, device=device)
        return np.moveaxis(pred, 1, -1)
    return upscale(model, lr, scale=scale, device=device, tile=tile or None)


def evaluate_pairs(
    model: SRModule,
    pairs: Sequence[Pair],
    *,
    scale,
    shave_border: int,
    quantize: bool,
    device: torch.device,
    tile: int = 0,
) -> dict[str, float]:
    """Mean PSNR/SSIM of ``model`` on ``pairs`` (data range 1, borders shaved).

    Args:
        model: the network (or an interpolation baseline rescaled to ``scale``).
        pairs: validation pairs; 4D ones with a 2D model are validated plane by plane.
        scale: factor per spatial axis of the model.
        shave_border: pixels removed from every spatial border before scoring.
        quantize: round predictions to 8-bit levels first (the natural-image protocol).
        device: compute device.
        tile: inference window side (0: the inference default).
    """
    psnrs, ssims = [], []
    for pair in pairs:
        pred = predict_pair(model, pair.lr, scale=scale, device=device, tile=tile)
        if quantize:
            pred = quantize_8bit(pred)
        dims = pred.ndim - 1
        p, r = (
            shave(pred, shave_border, spatial_dims=dims),
            shave(pair.hr, shave_border, spatial_dims=dims),
        )
        psnrs.append(psnr(p, r, data_range=1.0))
        ssims.append(ssim(p, r, data_range=1.0, channel_axis=0))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}
