"""The image-level API: ``geosr.enhance_array`` and ``geosr.enhance_dataset`` run the
code ``geosr enhance`` runs (same plan, scaling, masks, model, clip and tiling)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from srkit.geosr.cli import main
from srkit.geosr.errors import GeosrError

from srkit import geosr
from tests.data.geotiff import UTM, field, rotated_transform
from tests.geosr.helpers import assert_seam_free


def write_float_nodata(path):
    """2-band float32 on a rotated grid, nodata -9999 in a corner block."""
    data = field(np.random.default_rng(11), 2, 37, 45).astype(np.float32)
    data[:, :9, :13] = -9999.0
    profile = dict(
        driver="GTiff", width=45, height=37, count=2, dtype="float32", crs=UTM,
        transform=rotated_transform(20.0, 12.0), nodata=-9999.0,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.mark.parametrize("stem", ["rgb_uint8", "rich_uint16", "float_nodata"])
def test_enhance_array_equals_the_cli_on_the_same_file(rasters, tmp_path, stem):
    src_path = (
        write_float_nodata(tmp_path / "float_nodata.tif")
        if stem == "float_nodata"
        else rasters[stem]
    )
    out_path = tmp_path / "cli.tif"
    # the CLI in one window, the API in many (16-pixel blocks): equal within the tiling
    # tolerance
    result = CliRunner().invoke(
        main, ["enhance", str(src_path), "-o", str(out_path), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(src_path) as src, rasterio.open(out_path) as cli:
        array, profile = geosr.enhance_array(
            src.read(), src.profile, scales=src.scales, offsets=src.offsets, tile=60, block=16
        )
        expected = cli.read()
        assert profile["transform"] == src.transform @ Affine.scale(1 / 2)  # exact
        assert profile["transform"] == cli.transform
        assert (profile["width"], profile["height"]) == (src.width * 2, src.height * 2)
        assert profile["crs"] == src.crs and profile["dtype"] == src.dtypes[0]
        assert profile["nodata"] == src.nodata
        assert array.dtype == np.dtype(src.dtypes[0])
        span = 1.0 if stem == "float_nodata" else np.ptp(expected[expected != src.nodata])
        assert_seam_free(array, expected, span=span)
        np.testing.assert_array_equal(array == src.nodata, expected == src.nodata)
        assert np.count_nonzero(array == src.nodata) > 0  # the nodata region is kept
        for key in ("SR_MODEL", "SR_NORMALIZATION", "SR_CLIP", "SR_SCALE"):
            assert profile.tags[key] == cli.tags()[key], key


def test_enhance_dataset_equals_enhance_array_and_options(rasters):
    with rasterio.open(rasters["rgb_uint8"]) as src:
        from_dataset, profile = geosr.enhance_dataset(src, model="bicubic", scale=3)
        from_array, _ = geosr.enhance_array(src.read(), src.profile, model="bicubic", scale=3)
        np.testing.assert_array_equal(from_dataset, from_array)
        assert from_dataset.shape == (3, src.height * 3, src.width * 3)
        assert profile["transform"] == src.transform @ Affine.scale(1 / 3)
        single, single_profile = geosr.enhance_array(
            src.read(1), src.transform, crs=src.crs, nodata=0, model="bicubic", scale=3
        )
        np.testing.assert_array_equal(single, from_array[0])  # (H, W) in, (H, W) out
        assert single_profile["count"] == 1 and single_profile["nodata"] == 0
        as_float, float_profile = geosr.enhance_array(
            src.read(), src.profile, model="bicubic", dtype="float32", clip="none"
        )
        assert as_float.dtype == np.float32 and float_profile["dtype"] == "float32"


def test_enhance_array_dtypes_and_bad_input():
    transform = Affine.translation(600000.0, 4500000.0) @ Affine.scale(10.0, -10.0)
    half = np.linspace(0, 1, 16 * 16, dtype=np.float16).reshape(16, 16)
    out, profile = geosr.enhance_array(half, transform, crs=UTM, model="nearest")
    assert out.dtype == np.float16 and profile["dtype"] == "float16"
    np.testing.assert_array_equal(out, np.repeat(np.repeat(half, 2, 0), 2, 1))
    with pytest.raises(GeosrError, match="unknown option 'scal'; did you mean 'scale'"):
        geosr.enhance_array(half, transform, crs=UTM, scal=2)
    with pytest.raises(GeosrError, match=r"expected \(bands, H, W\) or \(H, W\)"):
        geosr.enhance_array(np.zeros((1, 2, 8, 8)), transform, crs=UTM)
    with pytest.raises(GeosrError, match="not numeric"):
        geosr.enhance_array(np.zeros((8, 8), dtype=bool), transform, crs=UTM)
    with pytest.raises(GeosrError, match="no affine 'transform'"):
        geosr.enhance_array(half, {"crs": UTM})
    with pytest.raises(GeosrError, match="cog=True writes a file"):
        geosr.enhance_array(half, transform, crs=UTM, cog=True)
    with pytest.warns(UserWarning, match="no CRS"):  # a bare transform: pixel space
        out, profile = geosr.enhance_array(half, transform, model="nearest")
    assert profile["crs"] is None and profile["transform"] == transform @ Affine.scale(0.5)


def test_api_domain_guard_and_clip():
    transform = Affine.translation(600000.0, 4500000.0) @ Affine.scale(10.0, -10.0)
    step = np.zeros((3, 32, 32), dtype=np.float32)
    step[:, :, 16:] = 1.0
    with pytest.raises(GeosrError, match="card domain 'ct'.*--force"):
        geosr.enhance_array(step, transform, crs=UTM, model="ct_inplane_x2")
    with pytest.raises(GeosrError, match="card domain 'mri'.*--force"):
        geosr.enhance_array(step, transform, crs=UTM, model="mri_smore_x2")
    with pytest.raises(GeosrError, match=r"upsamples one axis only \(factors \(2, 1\)"):
        geosr.enhance_array(step, transform, crs=UTM, model="mri_smore_x2", force=True)
    with pytest.warns(UserWarning, match="card domain 'mri'.*running it anyway"):
        out, profile = geosr.enhance_array(
            step, transform, crs=UTM, model="mri_inplane_x2", force=True
        )
    assert out.shape == (3, 64, 64) and profile.tags["SR_MODEL"] == "mri_inplane_x2"
    raw, _ = geosr.enhance_array(step, transform, crs=UTM, model="bicubic", clip="none")
    assert raw.min() < -0.06 and raw.max() > 1.06  # bicubic rings past the 5 % margin
    clipped, profile = geosr.enhance_array(step, transform, crs=UTM, model="bicubic")
    assert clipped.min() == pytest.approx(-0.05) and clipped.max() == pytest.approx(1.05)
    assert profile.tags["SR_CLIP"].startswith("b1: auto [-0.05, 1.05]")
    fixed, profile = geosr.enhance_array(step, transform, crs=UTM, model="bicubic", clip="0,1")
    assert fixed.min() == 0.0 and fixed.max() == 1.0
    assert profile.tags["SR_CLIP"].startswith("b1: fixed [0, 1]")


def test_enhance_array_without_the_scale_tags_normalizes_by_dtype(rasters):
    """A profile has no GDAL scale/offset: without ``scales``/``offsets`` the uint16
    convention (/10000) applies, which the provenance says."""
    with rasterio.open(rasters["rich_uint16"]) as src:
        _, profile = geosr.enhance_array(src.read(), src.profile, model="bicubic")
        assert profile.tags["SR_NORMALIZATION"].startswith("b1: /10000 (uint16")
        _, profile = geosr.enhance_array(
            src.read(), src.profile, scales=src.scales, offsets=src.offsets, model="bicubic"
        )
        assert profile.tags["SR_NORMALIZATION"].startswith("b1: scale/offset tags (0.0001, 0)")
