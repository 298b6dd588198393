from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import torch
from affine import Affine
from srkit.common import upscale
from srkit.common.models import ModelCard, build_model, save_model
from srkit.geosr.enhance import EnhanceOptions, enhance_raster
from srkit.geosr.georef import GeoreferenceError
from srkit.geosr.normalize import band_scaling

from tests.geosr.helpers import assert_contract, assert_mask_kept, assert_seam_free, upsampled

GENERATED = [
    "rich_uint16",
    "rgb_uint8",
    "nan_float32",
    "int16",
    "alpha",
    "mask_band",
    "all_nodata_tile",
]


def run(src, out, **kw):
    return enhance_raster(src, out, EnhanceOptions(**kw))


@pytest.fixture(scope="module")
def tiny_srcnn(tmp_path_factory):
    """A small random 1-channel SRCNN x2 saved as weights with a card (input range [0, 1])."""
    torch.manual_seed(0)
    model = build_model("srcnn", dims=2, channels=1, scale=2, kernels=[3, 1, 3], widths=[8, 4])
    card = ModelCard(
        name="tiny_rs_x2",
        domain="rs",
        scale=2,
        channels=1,
        dims=2,
        architecture="srcnn",
        hparams=model.hparams,
        axis_scale=(2, 2),
    )
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny_rs_x2.safetensors", card)


@pytest.mark.parametrize("name", GENERATED)
@pytest.mark.parametrize("scale", [2, 3])
def test_contract_and_masks_on_generated(rasters, tmp_path, name, scale):
    out = tmp_path / "out.tif"
    result = run(rasters[name], out, scale=scale)
    expected = {2: "rs_edsr_x2", 3: "bicubic"}[scale]  # the shipped x2 model, else bicubic
    assert result.model == expected
    if scale == 3:
        assert "no shipped remote-sensing model" in result.model_reason
    assert_contract(rasters[name], out, scale, model=expected)
    assert_mask_kept(rasters[name], out, scale)
    with rasterio.open(out) as dst:
        assert dst.profile["tiled"] and dst.compression.value == "DEFLATE"
        assert dst.block_shapes[0][0] % 16 == 0 and dst.block_shapes[0][0] % scale == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]  # no temp files left


@pytest.mark.parametrize(
    "name", ["rich_uint16", "nan_float32", "int16", "alpha", "mask_band", "all_nodata_tile"]
)
def test_seam_free_across_window_and_tile_sizes(rasters, tmp_path, name):
    """Equal to whole-raster processing (one window, one tile) within the tiling tolerance."""
    references = {}
    # --window sets the core; --tile is the read window, halo (2 r) included: with
    # bicubic (2 r = 4) tiles 24 and 13 give cores of 16 and 8 (whole 8-pixel blocks)
    for window, tile, model in [
        (16, None, None),
        (48, None, None),
        (1024, 24, "bicubic"),
        (1024, 13, "bicubic"),
    ]:
        if model not in references:
            whole = tmp_path / f"whole_{model}.tif"
            run(rasters[name], whole, scale=2, window=100_000, block=16, model=model)
            with rasterio.open(whole) as w:
                references[model] = (w.read(), w.read_masks())
        reference, reference_masks = references[model]
        span = (
            float(np.nanmax(reference) - np.nanmin(reference)) if reference.dtype.kind == "f" else 1
        )
        out = tmp_path / f"w{window}_t{tile}.tif"
        result = run(rasters[name], out, scale=2, window=window, tile=tile, block=16, model=model)
        assert result.windows > 1
        with rasterio.open(out) as o:
            assert_seam_free(o.read(), reference, span=span)
            np.testing.assert_array_equal(o.read_masks(), reference_masks)


def test_whole_raster_equals_independent_bicubic(rasters, tmp_path):
    """No nodata: the file equals bicubic of the normalized raster, rounded and clipped."""
    src_path = rasters["mask_band"]
    out = tmp_path / "o.tif"
    run(src_path, out, scale=2, window=32, block=16, tile=20, model="bicubic")
    with rasterio.open(src_path) as src, rasterio.open(out) as dst:
        raw = src.read()
        valid = upsampled(src.read_masks(1) > 0, 2)
        expected = np.clip(
            np.rint(upscale("bicubic", raw.astype(np.float32) / 255.0, scale=2) * 255), 0, 255
        )
        got = dst.read()
        far = valid.copy()  # pixels more than the receptive radius away from the masked hole
        far[2 * 3 : 2 * 14, 2 * 18 : 2 * 35] = False
        np.testing.assert_array_equal(got[:, far], expected[:, far])
        np.testing.assert_array_equal(dst.read_masks(1) > 0, valid)


def test_nearest_model_places_every_pixel_exactly(rasters, tmp_path):
    out = tmp_path / "n.tif"
    run(rasters["rich_uint16"], out, scale=3, model="nearest", window=48, block=48)
    with rasterio.open(rasters["rich_uint16"]) as src, rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read(), upsampled(src.read(), 3))


def test_all_nodata_windows_skip_the_model(rasters, tmp_path):
    out = tmp_path / "o.tif"
    result = run(rasters["all_nodata_tile"], out, scale=2, window=32, block=16)
    # left 96 input columns are nodata: output columns 0..191 -> 6 of 13 window columns
    assert result.windows == 13 * 10 and result.skipped_windows == 6 * 10
    with rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read(1)[:, :192], 255)
        assert (dst.read(1)[:, 192:] != 255).all()


def test_nodata_does_not_leak_into_valid_pixels(rasters, tmp_path):
    """The uint8 collar is 0; without the fill bicubic would darken the valid edge."""
    out = tmp_path / "o.tif"
    run(rasters["rgb_uint8"], out, scale=2)
    with rasterio.open(rasters["rgb_uint8"]) as src, rasterio.open(out) as dst:
        edge_in = src.read()[:, 3:-4, 5].astype(int)  # first valid column
        edge_out = dst.read()[:, 6:-8, 10:12].astype(int)  # its two output columns
        assert edge_out.min() >= edge_in.min() - 20  # no dark fringe from the 0 collar
        assert (dst.read()[:, :, 10:][:, :-6] != 0).all()  # valid pixels never equal nodata


def test_dtype_float32_option(rasters, tmp_path):
    out = tmp_path / "f.tif"
    run(rasters["int16"], out, scale=2, dtype="float32", model="nearest")
    assert_contract(rasters["int16"], out, 2, model="nearest", dtype="float32")
    with rasterio.open(rasters["int16"]) as src, rasterio.open(out) as dst:
        np.testing.assert_allclose(
            dst.read(), upsampled(src.read(), 2).astype(np.float32), atol=1e-3
        )
        assert dst.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"


def test_band_selection(rasters, tmp_path):
    out = tmp_path / "b.tif"
    run(rasters["rich_uint16"], out, scale=2, bands="3,1")
    assert_contract(rasters["rich_uint16"], out, 2, bands=[3, 1], model="rs_edsr_x2")
    with pytest.raises(ValueError, match="the raster has bands 1..3"):
        run(rasters["rich_uint16"], tmp_path / "c.tif", bands="4")


def test_alpha_band_is_upsampled_not_modelled(rasters, tmp_path):
    out = tmp_path / "a.tif"
    run(rasters["alpha"], out, scale=2)
    with rasterio.open(rasters["alpha"]) as src, rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read(4), upsampled(src.read(4), 2))


def test_cog_output(rasters, tmp_path):
    out = tmp_path / "c.tif"
    run(rasters["all_nodata_tile"], out, scale=4, cog=True)
    assert_contract(rasters["all_nodata_tile"], out, 4, model="rs_edsr_x4")  # the x4 default
    with rasterio.open(out) as dst:
        assert dst.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert dst.overviews(1) == [2]
        assert dst.block_shapes[0] == (512, 512)


def test_dst_crs_reprojects(rasters, tmp_path):
    out = tmp_path / "w.tif"
    run(rasters["rgb_uint8"], out, scale=2, dst_crs="EPSG:4326")
    with rasterio.open(rasters["rgb_uint8"]) as src, rasterio.open(out) as dst:
        assert dst.crs.to_epsg() == 4326
        from rasterio.warp import transform_bounds

        expected = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        np.testing.assert_allclose(dst.bounds, expected, atol=2 * abs(dst.transform.a))
        assert dst.nodata == 0 and dst.tags()["SR_MODEL"] == "rs_edsr_x2"
        assert dst.colorinterp == src.colorinterp
    with pytest.raises(ValueError, match="not a CRS"):
        run(rasters["rgb_uint8"], tmp_path / "x.tif", dst_crs="EPSG:bogus")
    assert not (tmp_path / "x.tif").exists()


def test_dst_crs_masks_the_warp_corners_of_integer_rasters_without_nodata(rasters, tmp_path):
    """No nodata value: zero stays valid data, and the empty warp corners go to a mask band."""
    out = tmp_path / "w.tif"
    run(rasters["mask_band"], out, scale=2, dst_crs="EPSG:4326")
    sr = tmp_path / "sr.tif"
    run(rasters["mask_band"], sr, scale=2)
    with rasterio.open(out) as dst, rasterio.open(sr) as ref:
        assert dst.crs.to_epsg() == 4326 and dst.nodata is None and dst.count == 2
        assert all(flags == [rasterio.enums.MaskFlags.per_dataset] for flags in dst.mask_flag_enums)
        mask = dst.dataset_mask() > 0
        # every valid output pixel maps back inside the source footprint, onto a valid pixel
        rows, cols = np.nonzero(mask)
        xs, ys = rasterio.transform.xy(dst.transform, rows, cols)
        from rasterio.warp import transform as warp_points

        ux, uy = warp_points(dst.crs, ref.crs, xs, ys)
        r, c = rasterio.transform.rowcol(ref.transform, ux, uy)
        r, c = np.asarray(r), np.asarray(c)
        inside = (r >= 0) & (r < ref.height) & (c >= 0) & (c < ref.width)
        assert inside.all()
        ref_mask = ref.dataset_mask() > 0
        assert ref_mask[r, c].mean() > 0.97  # bilinear edges may reach one pixel across
        # the footprint is smaller than the bounding box of the warped grid: corners masked
        assert not mask[0, 0] and not mask[-1, -1] and 0.5 < mask.mean() < 0.99
        # the source's own mask (a hole) is carried through the warp
        hole = ~ref_mask
        hr, hc = np.nonzero(hole)
        hx, hy = rasterio.transform.xy(ref.transform, hr, hc)
        wx, wy = warp_points(ref.crs, dst.crs, hx, hy)
        wr, wc = rasterio.transform.rowcol(dst.transform, wx, wy)
        centre = (np.asarray(wr), np.asarray(wc))
        assert (~mask[centre]).mean() > 0.9


def test_one_channel_model_applied_per_band(rasters, tmp_path, tiny_srcnn):
    out = tmp_path / "m.tif"
    result = run(
        rasters["rich_uint16"],
        out,
        scale=2,
        model=str(tiny_srcnn),
        dtype="float32",
        window=32,
        block=16,
    )
    assert_contract(rasters["rich_uint16"], out, 2, model=str(tiny_srcnn), dtype="float32")
    whole = tmp_path / "whole.tif"
    run(
        rasters["rich_uint16"],
        whole,
        scale=2,
        model=str(tiny_srcnn),
        dtype="float32",
        window=10_000,
        tile=10_000,
    )
    with rasterio.open(out) as a, rasterio.open(whole) as b:
        np.testing.assert_allclose(a.read(), b.read(), rtol=0, atol=1e-6 * 10000)
    assert result.warnings == []  # scale/offset tags bring the data into [0, 1]


def test_range_warning_for_trained_model(rasters, tmp_path, tiny_srcnn):
    with pytest.warns(UserWarning, match=r"far outside the \[0, 1\]"):
        run(rasters["int16"], tmp_path / "o.tif", scale=2, model=str(tiny_srcnn), normalize="none")


def test_trained_model_refuses_other_scale(rasters, tmp_path, tiny_srcnn):
    with pytest.raises(ValueError, match="trained for x2, not x3"):
        run(rasters["int16"], tmp_path / "o.tif", scale=3, model=str(tiny_srcnn))


def test_normalization_is_exactly_inverted(rasters, tmp_path):
    """nearest x2 + normalization + inverse returns the raw values bit for bit (uint16 tags)."""
    out = tmp_path / "o.tif"
    run(rasters["rich_uint16"], out, scale=2, model="nearest")
    with rasterio.open(rasters["rich_uint16"]) as src, rasterio.open(out) as dst:
        sc = band_scaling("uint16", src.scales[0], src.offsets[0])
        assert sc.source.startswith("scale/offset tags")
        assert "b1: scale/offset tags" in dst.tags()["SR_NORMALIZATION"]
        np.testing.assert_array_equal(dst.read(), upsampled(src.read(), 2))


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 3), (1, 7), (5, 1)])
def test_rasters_smaller_than_a_tile_and_odd_shapes(tmp_path, height, width):
    src = tmp_path / "tiny.tif"
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=2,
        dtype="uint16",
        crs="EPSG:32618",
        transform=Affine.translation(5e5, 4e6) @ Affine.scale(10, -10),
    )
    data = np.arange(2 * height * width, dtype=np.uint16).reshape(2, height, width) * 300 + 5
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(data)
    out = tmp_path / "o.tif"
    run(src, out, scale=3, model="nearest")
    assert_contract(src, out, 3, model="nearest")
    with rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read(), upsampled(data, 3))


def test_vrt_input(rasters, tmp_path):
    vrt = tmp_path / "in.vrt"
    rasterio.shutil.copy(rasters["rgb_uint8"], vrt, driver="VRT")
    out_vrt, out_tif = tmp_path / "a.tif", tmp_path / "b.tif"
    run(vrt, out_vrt, scale=2)
    run(rasters["rgb_uint8"], out_tif, scale=2)
    with rasterio.open(out_vrt) as a, rasterio.open(out_tif) as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.transform == b.transform and a.crs == b.crs


def test_rpc_raster_refused(rasters, tmp_path):
    from rasterio.rpc import RPC

    src = tmp_path / "rpc.tif"
    rpc = RPC(
        height_off=0,
        height_scale=500,
        lat_off=40,
        lat_scale=0.1,
        line_den_coeff=[1] + [0] * 19,
        line_num_coeff=[0, 0, -1] + [0] * 17,
        line_off=10,
        line_scale=10,
        long_off=-105,
        long_scale=0.1,
        samp_den_coeff=[1] + [0] * 19,
        samp_num_coeff=[0, 1] + [0] * 18,
        samp_off=10,
        samp_scale=10,
    )
    with rasterio.open(
        src, "w", driver="GTiff", width=20, height=20, count=1, dtype="uint8", rpcs=rpc
    ) as dst:
        dst.write(np.ones((1, 20, 20), dtype=np.uint8))
    with pytest.raises(GeoreferenceError, match="rational polynomial coefficients"):
        run(src, tmp_path / "o.tif", scale=2)
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("name", ["mask_band", "alpha", "nan_float32", "rich_uint16"])
def test_cog_keeps_contract_and_masks(rasters, tmp_path, name):
    out = tmp_path / "c.tif"
    run(rasters[name], out, scale=2, cog=True)
    assert_contract(rasters[name], out, 2, model="rs_edsr_x2")
    assert_mask_kept(rasters[name], out, 2)
    with rasterio.open(out) as dst:
        assert dst.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_demo_raster_round_trip_shows_the_shipped_model_gain(tmp_path):
    """What `make demo` prints for geosr: simulate -> enhance (defaults) -> evaluate."""
    from srkit.geosr.evaluate import evaluate_rasters
    from srkit.geosr.simulate import simulate_raster

    from tests.data.geotiff import make_demo_raster

    hr = make_demo_raster(tmp_path / "synthetic.tif")
    lr = simulate_raster(hr, tmp_path / "lr.tif", 2)
    result = run(lr, tmp_path / "sr.tif", scale=2)
    assert result.model == "rs_edsr_x2"
    report = evaluate_rasters(tmp_path / "sr.tif", hr, lr)
    assert report["gain_db"] > 1.0, report["gain_db"]
