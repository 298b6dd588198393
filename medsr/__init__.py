"""medsr: super-resolution of MRI and CT volumes (NIfTI, DICOM) with geometry and units kept.

``medsr.enhance_image(img, **options)`` runs ``medsr enhance`` on a nibabel or SimpleITK
image in memory (:mod:`medsr.image`); it is imported on first use, so ``import medsr``
(and the command line) stays light.
"""

from __future__ import annotations

from typing import Any

from srkit.common import __version__

__all__ = ["__version__", "enhance_image"]


def __getattr__(name: str) -> Any:
    if name == "enhance_image":
        from .image import enhance_image

        return enhance_image
    raise AttributeError(f"module 'medsr' has no attribute {name!r}")
