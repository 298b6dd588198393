from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from srkit.geosr.georef import (
    GeoreferenceError,
    check_georeference,
    corners,
    output_shape,
    output_transform,
)

from tests.data.geotiff import rotated_transform


def test_output_transform_keeps_origin_and_far_corner_of_rotated_sheared_grid():
    src = rotated_transform(pixel=30.0, angle=30.0, shear=10.0)
    out = output_transform(src, 3)
    assert out == src @ Affine.scale(1 / 3)
    h, w = 1000, 800
    oh, ow = output_shape(h, w, 3)
    assert (oh, ow) == (3000, 2400)
    np.testing.assert_allclose(corners(out, oh, ow), corners(src, h, w), rtol=0, atol=1e-6)
    # the two wrong formulas the contract rules out
    reversed_order = Affine.scale(1 / 3) @ src
    assert reversed_order.c != pytest.approx(src.c)  # origin moved
    naive = Affine(src.a / 3, src.b, src.c, src.d, src.e / 3, src.f)
    far = np.subtract(naive @ (ow, oh), src @ (w, h))
    assert np.hypot(*far) > 10_000  # kilometres off


def test_output_transform_pixel_centres_nest():
    src = rotated_transform(pixel=10.0, angle=-20.0)
    out = output_transform(src, 2)
    # output pixel (2i, 2j)'s upper-left corner is input pixel (i, j)'s upper-left corner
    for i, j in [(0, 0), (5, 7), (40, 3)]:
        np.testing.assert_allclose(out @ (2 * j, 2 * i), src @ (j, i), atol=1e-6)


def test_bad_scale_for_transform():
    with pytest.raises(ValueError):
        output_transform(Affine.identity(), 0)


def test_gcps_refused(rasters):
    with (
        rasterio.open(rasters["gcps"]) as src,
        pytest.raises(GeoreferenceError, match="ground control points"),
    ):
        check_georeference(src, "gcps.tif")


def test_no_crs_refused_or_allowed_with_warning(rasters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = rasterio.open(rasters["no_crs"])
    with src:
        with pytest.raises(GeoreferenceError, match="no coordinate reference system"):
            check_georeference(src, "no_crs.tif")
        with pytest.warns(UserWarning, match="no CRS"):
            geo = check_georeference(src, "no_crs.tif", allow_no_crs=True)
        assert geo.kind == "none" and geo.crs is None
