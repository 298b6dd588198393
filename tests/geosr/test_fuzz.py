"""Fuzzing ``geosr enhance`` over GeoTIFF profiles: a valid output or a clean error.

Each example writes one tiny GeoTIFF whose profile is drawn by hypothesis (size, band
count, dtype, nodata, CRS, transform, tiling, block size, compression, photometric, a
colour table) and whose float pixels may hold NaN/Inf, then runs
``geosr enhance IN -o OUT.tif --model bicubic --scale 2`` (with or without
``--allow-no-crs``). The property: either exit 0 with a readable output of twice the size,
the same band count and dtype, or exit 2 with exactly one ``error:`` line naming the file
and nothing left behind. Exit 1 (a bug) never.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from click.testing import CliRunner
from hypothesis import HealthCheck, event, example, given, note, reject, settings
from hypothesis import strategies as st
from srkit.geosr.cli import main

NAN, INF = float("nan"), float("inf")
DTYPES = ["uint8", "uint16", "int16", "float32", "float64", "complex64"]
FLOAT_VALUES = [NAN, INF, -INF, 0.0, -0.0, 1e-38, 3e38, -3e38]
TRANSFORMS = {
    "north_up": Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 4500000.0),
    "rotated": Affine.translation(600000.0, 4500000.0) @ Affine.rotation(30) @ Affine.scale(5, -5),
    "identity": None,  # no geotransform: GDAL reports the identity
}


def mostly(
    usual: st.SearchStrategy, unusual: st.SearchStrategy, percent: int = 25
) -> st.SearchStrategy:
    """``unusual`` about ``percent`` % of the time, so that most rasters get deep into the
    pipeline (with every field hostile at once, almost every file is refused early)."""
    return st.sampled_from([False] * (100 - percent) + [True] * percent).flatmap(
        lambda odd: unusual if odd else usual
    )


@st.composite
def geotiff_cases(draw) -> dict:
    """The profile and pixel data of one GeoTIFF."""
    dtype = draw(mostly(st.sampled_from(DTYPES[:5]), st.just("complex64"), percent=10))
    floating = dtype.startswith("float")
    count = draw(st.integers(1, 5))
    nodata = draw(
        st.sampled_from([None, 0, 7] + ([NAN, -9999.0] if floating else []))
        if dtype != "complex64"
        else st.just(None)
    )
    tiled = draw(st.booleans())
    photometric = draw(
        mostly(
            st.sampled_from([None, "minisblack"]),
            st.sampled_from(["rgb", "palette", "miniswhite"] if count >= 3 else ["miniswhite"]),
        )
    )
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    where = st.tuples(
        st.integers(0, count - 1), st.integers(0, height - 1), st.integers(0, width - 1)
    )
    return {
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "crs": draw(mostly(st.just("EPSG:32618"), st.none(), percent=15)),
        "transform": draw(
            mostly(st.sampled_from(["north_up", "rotated"]), st.just("identity"), percent=15)
        ),
        "tiled": tiled,
        "blockxsize": draw(st.sampled_from([16, 32])) if tiled else None,
        "blockysize": draw(st.sampled_from([16, 32] if tiled else [1, 3, 16])),
        "compress": draw(st.sampled_from([None, "deflate", "lzw"])),
        "photometric": photometric,
        "colormap": dtype == "uint8" and draw(mostly(st.just(False), st.just(True), percent=15)),
        "allow_no_crs": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
        # (value, (band, row, column)): hypothesis favours the corners, where kernels overshoot
        "specials": draw(st.lists(st.tuples(st.sampled_from(FLOAT_VALUES), where), max_size=4))
        if floating
        else [],
    }


def pixels(case: dict) -> np.ndarray:
    """Seeded ``(count, height, width)`` pixels of the case's dtype, special values put in."""
    rng = np.random.default_rng(case["seed"])
    shape = (case["count"], case["height"], case["width"])
    dtype = np.dtype(case["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    data = (rng.random(shape) * 1000).astype(dtype)
    if dtype.kind == "c":
        data += 1j
    for value, index in case["specials"]:
        data[index] = value
    return data


def write_case(case: dict, path: Path) -> Path:
    """Writes the case with rasterio; a profile GDAL itself refuses is rejected."""
    profile = {
        "driver": "GTiff",
        "width": case["width"],
        "height": case["height"],
        "count": case["count"],
        "dtype": case["dtype"],
        "nodata": case["nodata"],
        "crs": case["crs"],
        "tiled": case["tiled"],
        "blockysize": case["blockysize"],
    }
    if TRANSFORMS[case["transform"]] is not None:
        profile["transform"] = TRANSFORMS[case["transform"]]
    if case["tiled"]:
        profile["blockxsize"] = case["blockxsize"]
    if case["compress"]:
        profile["compress"] = case["compress"]
    if case["photometric"]:
        profile["photometric"] = case["photometric"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(pixels(case))
                if case["colormap"]:
                    dst.write_colormap(1, {i: (i, 255 - i, 0, 255) for i in range(256)})
    except (rasterio.errors.RasterioError, ValueError, TypeError) as exc:
        note(f"GDAL refused the profile: {exc}")
        reject()
    for aux in path.parent.glob("*.aux.xml"):
        aux.unlink()  # keep only the TIFF itself: the listing below then means the output
    return path


PLAIN = {  # a valid 2x1 float32 north-up raster: the examples below change one field
    "width": 1,
    "height": 2,
    "count": 1,
    "dtype": "float32",
    "nodata": None,
    "crs": "EPSG:32618",
    "transform": "north_up",
    "tiled": True,
    "blockxsize": 16,
    "blockysize": 16,
    "compress": None,
    "photometric": None,
    "colormap": False,
    "allow_no_crs": False,
    "seed": 0,
    "specials": [],
}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=geotiff_cases())
@example(case={**PLAIN, "specials": [(3e38, (0, 0, 0))]})  # a finite value near float32 max
def test_enhance_gives_a_valid_output_or_one_clean_error(case):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = write_case(case, folder / "scene.tif")
        note(f"profile: {case}")
        out = folder / "out.tif"
        args = ["enhance", str(src), "-o", str(out), "--model", "bicubic", "--scale", "2"]
        args += ["--no-progress"] + (["--allow-no-crs"] if case["allow_no_crs"] else [])
        result = CliRunner().invoke(main, args)
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output, result.output
        left = sorted(p.name for p in folder.iterdir())
        event(f"exit {result.exit_code}")
        if result.exit_code == 2:
            lines = result.stderr.strip().splitlines()
            errors = [line for line in lines if line.startswith("error: ")]
            assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
            others = [line for line in lines[:-1] if not line.startswith("warning: ")]
            assert not others, result.stderr  # only warnings may come before the error
            assert src.name in errors[0], errors[0]
            event("error: " + errors[0].split(": ", 2)[-1][:40])
            assert left == [src.name], f"left behind {left}"
            return
        assert left == sorted([src.name, out.name]), left
        with (
            warnings.catch_warnings(),
            rasterio.open(src) as before,
            rasterio.open(out) as after,
        ):
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            assert (after.width, after.height) == (2 * before.width, 2 * before.height)
            assert after.count == before.count
            assert set(after.dtypes) == {case["dtype"]}
            assert after.crs == before.crs
            if case["transform"] != "identity":
                assert after.transform == before.transform @ Affine.scale(0.5)
            data = after.read()
        assert data.shape == (case["count"], 2 * case["height"], 2 * case["width"])
        if data.dtype.kind == "f":
            assert not np.isinf(data).any(), "infinite pixels in the output"
