"""Shared assertions for the geosr tests: the 12-point georeferencing contract and masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from srkit.common import __version__
from srkit.geosr.georef import corners

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared(relative: str) -> Path:
    """A file in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real raster {path} is absent (needs ../shared/data)")
    return path


def assert_contract(
    src_path: Path,
    out_path: Path,
    scale: int,
    model: str = "bicubic",
    dtype: str | None = None,
    bands: list[int] | None = None,
) -> None:
    """Asserts the 12 points of the georeferencing contract, exactly."""
    with rasterio.open(src_path) as src, rasterio.open(out_path) as out:
        bands = bands or list(range(1, src.count + 1))
        idx = [b - 1 for b in bands]
        assert out.crs == src.crs  # 1
        assert out.transform == src.transform @ Affine.scale(1 / scale)  # 2
        np.testing.assert_allclose(  # 3: the four outer corners, rotated grids included
            corners(out.transform, out.height, out.width),
            corners(src.transform, src.height, src.width),
            rtol=0,
            atol=1e-6 * max(abs(src.transform.a), abs(src.transform.e)),
        )
        assert out.bounds == pytest.approx(src.bounds, rel=1e-12)
        assert (out.width, out.height) == (src.width * scale, src.height * scale)  # 4
        assert out.count == len(bands)  # 5
        assert set(out.dtypes) == {dtype or src.dtypes[idx[0]]}  # 6
        if src.nodata is None or np.isnan(src.nodata):  # 7
            assert out.nodata is None or np.isnan(out.nodata)
        else:
            assert out.nodata == src.nodata
        assert out.descriptions == tuple(src.descriptions[i] for i in idx)  # 8
        assert out.colorinterp == tuple(src.colorinterp[i] for i in idx)  # 9
        tags = out.tags()  # 10
        for key, value in src.tags().items():
            assert tags[key] == value, key
        for i, b in enumerate(bands, start=1):
            assert out.tags(i) == src.tags(b)
        assert out.scales == tuple(src.scales[i] for i in idx)  # 11
        assert out.offsets == tuple(src.offsets[i] for i in idx)
        assert out.units == tuple(src.units[i] for i in idx)
        assert tags["SR_MODEL"] == model  # 12
        assert tags["SR_SCALE"] == str(scale)
        assert tags["SR_VERSION"] == __version__


def upsampled(mask: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes."""
    return np.repeat(np.repeat(mask, scale, axis=-2), scale, axis=-1)


def assert_mask_kept(
    src_path: Path, out_path: Path, scale: int, bands: list[int] | None = None
) -> None:
    """Output pixels are invalid exactly where the nearest-upsampled input mask is."""
    with rasterio.open(src_path) as src, rasterio.open(out_path) as out:
        bands = bands or list(range(1, src.count + 1))
        src_data = src.read(bands)
        src_valid = src.read_masks(bands) > 0
        out_data = out.read()
        out_valid = out.read_masks() > 0
        if np.issubdtype(src_data.dtype, np.floating):
            src_valid &= ~np.isnan(src_data)
            out_valid &= ~np.isnan(out_data)
        np.testing.assert_array_equal(out_valid, upsampled(src_valid, scale))


def assert_seam_free(got: np.ndarray, reference: np.ndarray, span: float = 1.0) -> None:
    """Windowed vs whole-raster output within the tiling contract, not bit-exactness.

    The contract (README): tiled equals untiled within 1e-4 in float on data in [0, 1].
    Float rasters: ``|got - reference| <= 1e-4 * span`` (``span`` = the data's range), NaN
    at the same pixels. Integer rasters: rounding can flip a value at a rounding boundary,
    so at most 1 DN on at most 0.01 % of the pixels (oneDNN kernels differ by CPU model,
    blocking and thread count).
    """
    assert got.shape == reference.shape and got.dtype == reference.dtype
    if np.issubdtype(got.dtype, np.floating):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(reference))
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-4 * span, equal_nan=True)
        return
    diff = np.abs(got.astype(np.int64) - reference.astype(np.int64))
    assert diff.max(initial=0) <= 1, f"windowed output differs by {diff.max()} DN"
    differing = int(np.count_nonzero(diff))
    assert differing <= 1e-4 * diff.size, f"{differing} of {diff.size} values differ by 1 DN"
