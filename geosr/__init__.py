"""geosr: super-resolution of GeoTIFF rasters with georeferencing, nodata and metadata kept.

``enhance_array`` and ``enhance_dataset`` are the image-level API: the code
``geosr enhance`` runs, in memory (see ``geosr.enhance``).
"""

from __future__ import annotations

from srkit.common import __version__

__all__ = ["__version__", "enhance_array", "enhance_dataset"]


def __getattr__(name: str):
    """``enhance_array`` and ``enhance_dataset`` on first use (``import geosr`` stays
    light for the CLI's ``--help``)."""
    if name in ("enhance_array", "enhance_dataset"):
        from . import enhance

        return getattr(enhance, name)
    raise AttributeError(f"module 'geosr' has no attribute {name!r}")
