"""The georeferencing contract of ``geosr``: where the output pixels lie on the map.

An upscaled raster covers exactly the same footprint as its input, with ``s`` times more
pixels per axis. Its affine transform is ``src.transform @ Affine.scale(1 / s)`` (affine >= 3
spells composition ``@``; ``*`` is deprecated there): the scale is applied in *pixel*
space, before the source transform, so rotated and sheared grids keep their origin and
their far corner. (``Affine.scale(1 / s) @ src.transform``
would scale the map coordinates and move the origin; ``Affine(a / s, b, c, d, e / s, f)``
leaves the rotation terms unscaled and puts a rotated grid's far corner kilometres off.)

Rasters located by ground control points (GCPs) or rational polynomial coefficients
(RPCs) have no affine grid to scale: they are refused with a message that says how to
orthorectify them first. A raster without a CRS is refused unless the caller allows it,
in which case the output gets the scaled transform and no CRS, with a warning. A raster
with a CRS but no geotransform (GDAL reports the identity) is not located on the map
either: refused the same way; allowed, the output keeps the CRS and has no geotransform
(a scaled identity would put it at a made-up place in a real CRS).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from affine import Affine

from .errors import GeosrError


class GeoreferenceError(GeosrError):
    """A raster whose georeferencing the contract cannot keep; the message says why."""


def output_transform(transform: Affine, scale: int | float) -> Affine:
    """The transform of a raster upscaled ``scale`` times (downscaled for ``scale < 1``).

    ``transform @ Affine.scale(1 / scale)``: exact for rotated and sheared grids; the
    origin (upper-left corner of pixel (0, 0)) is unchanged.
    """
    if not scale > 0:
        raise GeosrError(f"scale must be > 0, got {scale}")
    return transform @ Affine.scale(1.0 / scale)


def output_shape(height: int, width: int, scale: int) -> tuple[int, int]:
    """``(height * scale, width * scale)``: the output raster size in pixels."""
    return height * scale, width * scale


def corners(transform: Affine, height: int, width: int) -> list[tuple[float, float]]:
    """Map coordinates of the four outer pixel corners (UL, UR, LR, LL)."""
    return [
        transform @ (0, 0),
        transform @ (width, 0),
        transform @ (width, height),
        transform @ (0, height),
    ]


@dataclass(frozen=True)
class Georeference:
    """How a raster is located: ``kind`` is ``"affine"``, ``"none"`` (no CRS, allowed) or
    ``"no_transform"`` (a CRS without a geotransform, allowed; ``transform`` is ``None``)."""

    kind: str
    crs: object
    transform: Affine | None


def check_georeference(src, name: str, *, allow_no_crs: bool = False) -> Georeference:
    """Checks that ``src`` (an open rasterio dataset) has a CRS and an affine grid.

    Args:
        src: open rasterio dataset.
        name: the file name used in messages.
        allow_no_crs: proceed without a CRS (warning) instead of raising.

    Raises:
        GeoreferenceError: GCP- or RPC-located raster, or no CRS or no geotransform when
            not allowed.
    """
    gcps, gcp_crs = src.gcps
    if gcps:
        raise GeoreferenceError(
            f"{name}: located by {len(gcps)} ground control points, not an affine grid; "
            "orthorectify it first (e.g. gdalwarp -t_srs EPSG:XXXX in.tif out.tif)"
        )
    if src.rpcs is not None:
        raise GeoreferenceError(
            f"{name}: located by rational polynomial coefficients (RPCs), not an affine grid; "
            "orthorectify it first (e.g. gdalwarp -rpc -t_srs EPSG:XXXX in.tif out.tif)"
        )
    if src.crs is None:
        message = (
            f"{name}: has no coordinate reference system (CRS); "
            "pass --allow-no-crs to upscale it in pixel space (the output will have no CRS)"
        )
        if not allow_no_crs:
            raise GeoreferenceError(message)
        warnings.warn(
            f"{name}: no CRS; the output keeps the scaled pixel grid and has no CRS",
            stacklevel=2,
        )
        return Georeference("none", None, src.transform)
    if src.transform.is_identity:
        message = (
            f"{name}: has a CRS but no geotransform (its pixels are not located on the map); "
            "pass --allow-no-crs to upscale it in pixel space (the output will have no "
            "geotransform)"
        )
        if not allow_no_crs:
            raise GeoreferenceError(message)
        warnings.warn(
            f"{name}: no geotransform; the output keeps the CRS and has no geotransform",
            stacklevel=2,
        )
        return Georeference("no_transform", src.crs, None)
    return Georeference("affine", src.crs, src.transform)
