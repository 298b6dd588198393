"""srkit.geosr.xarray: ``da.sr.enhance`` equals ``geosr enhance``, in memory and on dask chunks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("xarray", reason="xarray is absent: pip install 'srkit[xarray]'")
rioxarray = pytest.importorskip(
    "rioxarray", reason="rioxarray is absent: pip install 'srkit[xarray]'"
)
pytest.importorskip("dask.array", reason="dask[array] is absent: pip install 'srkit[xarray]'")

import rasterio  # noqa: E402
import srkit.geosr.xarray  # noqa: E402, F401  (registers da.sr)
from affine import Affine  # noqa: E402
from srkit.geosr.enhance import EnhanceOptions, enhance_raster  # noqa: E402
from srkit.geosr.errors import GeosrError  # noqa: E402

from tests.data.geotiff import UTM, field, make_int16, make_nan_float32  # noqa: E402

# rioxarray's own calls (open_rasterio, rio.transform) use affine's deprecated ``*``
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def span(values: np.ndarray) -> float:
    return float(np.nanmax(values) - np.nanmin(values))


@pytest.fixture(scope="module")
def uint16_raster(tmp_path_factory) -> Path:
    """3-band uint16, 80x96, north-up 10 m UTM grid with a fractional origin, nodata 0 in
    a corner, a band-level scale tag pair and dataset tags."""
    rng = np.random.default_rng(7)
    data = np.round(field(rng, 3, 80, 96) * 9000 + 500).astype(np.uint16)
    data[:, :9, :13] = 0
    path = tmp_path_factory.mktemp("xr") / "scene.tif"
    profile = dict(driver="GTiff", width=96, height=80, count=3, dtype="uint16", crs=UTM)
    transform = Affine.translation(600000.25, 4500000.75) @ Affine.scale(10.0, -10.0)
    with rasterio.open(path, "w", transform=transform, nodata=0, **profile) as dst:
        dst.write(data)
        dst.update_tags(SENSOR="synthetic")
    return path


def geosr_output(path: Path, tmp_path: Path, **options) -> Path:
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / f"{path.stem}_geosr.tif"
    enhance_raster(path, out, EnhanceOptions(scale=2, device="cpu", **options))
    return out


def test_in_memory_equals_geosr_enhance(uint16_raster, tmp_path):
    da = rioxarray.open_rasterio(uint16_raster)
    sr = da.sr.enhance(scale=2, device="cpu")
    out = geosr_output(uint16_raster, tmp_path)
    with rasterio.open(out) as written:
        assert sr.rio.transform() == written.transform  # exact
        assert sr.rio.transform() == da.rio.transform() @ Affine.scale(0.5)
        assert sr.rio.crs == written.crs
        assert sr.rio.nodata == written.nodata == 0
        assert sr.dtype == np.uint16
        values = written.read()
    reread = rioxarray.open_rasterio(out)
    assert np.array_equal(sr.x.values, reread.x.values)  # pixel centres of the finer grid
    assert np.array_equal(sr.y.values, reread.y.values)
    assert sr.x.values[0] == 600000.25 + 2.5 and sr.y.values[0] == 4500000.75 - 2.5
    assert sr.attrs["SENSOR"] == "synthetic" and sr.attrs["_FillValue"] == 0
    assert list(sr.band.values) == [1, 2, 3]
    # integer outputs: rounding may flip 1 DN where the float results differ by ~1e-6
    assert np.abs(sr.values.astype(np.int64) - values.astype(np.int64)).max() <= 1
    assert np.array_equal(sr.values == 0, values == 0)  # nodata where geosr has nodata
    as_float = da.sr.enhance(scale=2, device="cpu", dtype="float32")
    with rasterio.open(geosr_output(uint16_raster, tmp_path / "f", dtype="float32")) as written:
        expected = written.read()
    assert np.abs(as_float.values - expected).max() <= 1e-4 * span(expected)


@pytest.mark.parametrize(("model", "chunk"), [(None, 24), ("bicubic", 10)])
def test_dask_chunks_equal_in_memory(uint16_raster, model, chunk):
    """Chunks far smaller than the image (EDSR: depth 2 r = 22 > 10 is enlarged)."""
    eager = rioxarray.open_rasterio(uint16_raster).sr.enhance(
        2, model, device="cpu", dtype="float32"
    )
    lazy_in = rioxarray.open_rasterio(uint16_raster, chunks={"x": chunk, "y": chunk})
    lazy = lazy_in.sr.enhance(2, model, device="cpu", dtype="float32")
    assert type(lazy.data).__module__.startswith("dask")
    assert lazy.data.numblocks[1] >= 3 and lazy.data.numblocks[2] >= 3
    assert lazy.rio.transform() == eager.rio.transform()
    computed = lazy.compute()
    assert np.abs(computed.values - eager.values).max() <= 1e-4 * span(eager.values)
    assert np.array_equal(computed.x.values, eager.x.values)


def test_rotated_grid_with_nan_holes(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = make_nan_float32(tmp_path)
        da = rioxarray.open_rasterio(path, chunks={"x": 12, "y": 12})
        sr = da.sr.enhance(scale=2, model="bicubic", device="cpu").compute()
        out = geosr_output(path, tmp_path, model="bicubic")
        reread = rioxarray.open_rasterio(out)
    with rasterio.open(out) as written:
        assert sr.rio.transform() == written.transform  # rotated: kept exactly
    assert np.array_equal(sr.xc.values, reread.xc.values)
    assert np.array_equal(sr.yc.values, reread.yc.values)
    assert np.array_equal(np.isnan(sr.values), np.isnan(reread.values))
    assert np.nanmax(np.abs(sr.values - reread.values)) <= 1e-4 * span(reread.values)


def test_masked_two_dimensional_array_keeps_its_encoding(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = make_int16(tmp_path)
        da = rioxarray.open_rasterio(path, masked=True).squeeze("band", drop=True)
        sr = da.sr.enhance(scale=2, model="bicubic", device="cpu")
        out = geosr_output(path, tmp_path, model="bicubic")
    assert sr.dims == ("y", "x") and sr.shape == (74, 58)
    assert sr.rio.encoded_nodata == -9999 and sr.encoding["dtype"] == "int16"
    with rasterio.open(out) as written:
        expected = written.read(1, masked=True).astype(np.float64).filled(np.nan)
        assert sr.rio.transform() == written.transform
    assert np.array_equal(np.isnan(sr.values), np.isnan(expected))
    # geosr writes int16 (rounded); the masked array stays float
    assert np.nanmax(np.abs(sr.values - expected)) <= 0.5 + 1e-3


def test_refusals(uint16_raster):
    da = rioxarray.open_rasterio(uint16_raster)
    with pytest.raises(GeosrError, match="must be a whole number"):
        da.sr.enhance(scale=2.5)
    with pytest.raises(GeosrError, match=r"expected \(band, y, x\) or \(y, x\)"):
        da.expand_dims(time=2).sr.enhance()
    with pytest.raises(GeosrError, match="trained for x2, not x4"):
        da.sr.enhance(scale=4, model="rs_edsr_x2")


def test_stats_normalization_equals_geosr_enhance(uint16_raster, tmp_path):
    """``normalize="stats"``: the 0.1-99.9 % range of the valid pixels, as geosr reads it."""
    da = rioxarray.open_rasterio(uint16_raster, chunks={"x": 32, "y": 32})
    sr = da.sr.enhance(scale=2, normalize="stats", dtype="float32", device="cpu").compute()
    out = geosr_output(uint16_raster, tmp_path, normalize="stats", dtype="float32")
    with rasterio.open(out) as written:
        expected = written.read()
    assert np.abs(sr.values - expected).max() <= 1e-4 * span(expected)
    auto = da.sr.enhance(scale=2, dtype="float32", device="cpu").compute()
    assert np.abs(auto.values - expected).max() > 1e-2 * span(expected)  # it mattered


def test_array_built_in_memory_warns_outside_the_models_range():
    """A DataArray made in a notebook (no file, no encoding): float values in the
    thousands pass through to a model trained on [0, 1], which geosr warns about."""
    import xarray as xr

    values = np.linspace(0, 5000, 40 * 50, dtype=np.float32).reshape(40, 50)
    da = xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 95.0 - 2 * np.arange(40.0), "x": 1.0 + 2 * np.arange(50.0)},
    )
    da = da.rio.write_crs("EPSG:32618").rio.write_transform(Affine(2, 0, 0, 0, -2, 96))
    with pytest.warns(UserWarning, match=r"band 1: normalized values span .* far outside"):
        sr = da.sr.enhance(scale=2, model="rs_edsr_x2", device="cpu")
    assert sr.dims == ("y", "x") and sr.shape == (80, 100)
    assert sr.rio.transform() == Affine(1, 0, 0, 0, -1, 96)
    assert sr.x.values[:2].tolist() == [0.5, 1.5] and sr.y.values[0] == 95.5
    assert sr.rio.crs == "EPSG:32618" and sr.rio.nodata is None
