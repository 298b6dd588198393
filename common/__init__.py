"""Shared core of the super-resolution toolkit: models, tiled inference, training, metrics.

Public API::

    from srkit.common import list_models, load_model, upscale
"""

from __future__ import annotations

from ._version import __version__
from .inference import upscale
from .models import ModelCard, list_models, load_model

__all__ = ["ModelCard", "__version__", "list_models", "load_model", "upscale"]
