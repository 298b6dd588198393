"""srkit: deep-learning super-resolution of medical (MRI, CT) and remote-sensing images.

The documented import::

    import srkit

    srkit.list_models()                      # the shipped models' cards
    model = srkit.load_model("rs_edsr_x2")   # a shipped name, or a .safetensors path
    hr = srkit.upscale(model, lr)            # exact tiled inference (numpy or torch)
    srkit.medsr.enhance_image(nifti_image)   # the medical front end
    srkit.geosr.enhance_array(array, profile)  # the remote-sensing front end

The toolkit is installed as this one top-level package: the core is ``srkit.common``, the
front ends ``srkit.medsr`` and ``srkit.geosr`` (the repository keeps them in ``common/``,
``medsr/`` and ``geosr/``; ``pyproject.toml`` maps them under ``srkit``). No top-level
``common`` is installed, so a ``common.py`` in the user's folder, or the unrelated PyPI
package ``common``, cannot shadow or overwrite the toolkit (docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from srkit.common import ModelCard, __version__, list_models, load_model, upscale

if TYPE_CHECKING:
    from srkit import common, geosr, medsr

__all__ = [
    "ModelCard",
    "__version__",
    "common",
    "geosr",
    "list_models",
    "load_model",
    "medsr",
    "upscale",
]

_SUBPACKAGES = ("common", "medsr", "geosr")


def __getattr__(name: str):
    """``srkit.medsr`` and ``srkit.geosr`` are imported on first use (rasterio, pydicom and
    nibabel load only for the front end that needs them)."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"srkit.{name}")
    raise AttributeError(f"module 'srkit' has no attribute {name!r}")
