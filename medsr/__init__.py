"""medsr: super-resolution of MRI and CT volumes (NIfTI, DICOM) with geometry and units kept."""

from __future__ import annotations

from common import __version__

__all__ = ["__version__"]
