"""Seam-free tiled inference."""

from __future__ import annotations

from .planes import Planewise, upscale_planes
from .tiling import TilingError, choose_device, predict_whole, upscale

__all__ = [
    "Planewise",
    "TilingError",
    "choose_device",
    "predict_whole",
    "upscale",
    "upscale_planes",
]
