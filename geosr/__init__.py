"""geosr: super-resolution of GeoTIFF rasters with georeferencing, nodata and metadata kept."""

from __future__ import annotations

from common import __version__

__all__ = ["__version__"]
