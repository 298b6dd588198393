"""Seam-free tiled inference."""

from __future__ import annotations

from .tiling import TilingError, choose_device, predict_whole, upscale

__all__ = ["TilingError", "choose_device", "predict_whole", "upscale"]
