"""``geosr enhance`` as the ecosystem expects it: --clip, the domain guard, overviews kept,
AREA_OR_POINT kept, no library warnings, provenance tags, one CLI grammar (issue 17)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import monai
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from scipy.ndimage import gaussian_filter
from srkit.common import __version__
from srkit.common.models.registry import _shipped_path

from tests.data.geotiff import ORIGIN, UTM
from tests.geosr.test_cli import assert_one_line_error, invoke

REPO = Path(__file__).resolve().parents[2]
NORTH_UP = Affine.translation(*ORIGIN) @ Affine.scale(10.0, -10.0)


def write(path: Path, data: np.ndarray, **profile) -> Path:
    count, height, width = data.shape
    base = dict(driver="GTiff", width=width, height=height, count=count, dtype=data.dtype)
    base.update(crs=UTM, transform=NORTH_UP)
    base.update(profile)
    with rasterio.open(path, "w", **base) as dst:
        dst.write(data)
    return path


def step_raster(path: Path, dtype: str = "float32", nodata: float | None = None) -> Path:
    """A sharp 0 -> 1 step (bicubic rings 7 % past it), a nodata block if ``nodata``."""
    data = np.zeros((1, 32, 32), dtype=np.float64)
    data[:, :, 16:] = 1.0
    if dtype != "float32":
        data = data * 200 + 20  # uint8: 20 -> 220
    data = data.astype(dtype)
    if nodata is not None:
        data[:, :6, :6] = nodata
    return write(path, data, nodata=nodata)


# ----------------------------------------------------------------------------- --clip


def test_clip_auto_bounds_the_overshoot_none_keeps_it(tmp_path):
    src = step_raster(tmp_path / "step.tif", nodata=-1.0)
    common = ["--model", "bicubic", "--no-progress"]
    assert (
        invoke("enhance", src, "-o", tmp_path / "none.tif", "--clip", "none", *common).exit_code
        == 0
    )
    assert invoke("enhance", src, "-o", tmp_path / "auto.tif", *common).exit_code == 0
    with rasterio.open(tmp_path / "none.tif") as raw, rasterio.open(tmp_path / "auto.tif") as out:
        valid = raw.read_masks(1) > 0
        kept, clipped = raw.read(1)[valid], out.read(1)[valid]
        assert kept.min() == pytest.approx(-0.0703125) and kept.max() == pytest.approx(1.0703125)
        # auto: the input's valid range [0, 1] widened by 5 % of its span
        assert clipped.min() == pytest.approx(-0.05) and clipped.max() == pytest.approx(1.05)
        np.testing.assert_array_equal(out.read(1)[~valid], -1.0)  # nodata stays nodata
        assert raw.tags()["SR_CLIP"] == "none"
        assert out.tags()["SR_CLIP"] == "b1: auto [-0.05, 1.05]"


def test_clip_fixed_is_in_physical_units(rasters, tmp_path):
    """rich_uint16: band 1 scale 1e-4, band 2 scale 1e-4 offset -0.01 (reflectance)."""
    out = tmp_path / "out.tif"
    result = invoke(
        "enhance", rasters["rich_uint16"], "-o", out, "--clip", "0.3,0.5", "--no-progress"
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(rasters["rich_uint16"]) as src, rasterio.open(out) as dst:
        data, valid = dst.read(), dst.read_masks() > 0
        assert data[0][valid[0]].min() == 3000 and data[0][valid[0]].max() == 5000
        assert data[1][valid[1]].min() == 3100 and data[1][valid[1]].max() == 5100
        np.testing.assert_array_equal(data[~valid], 0)
        assert (src.read(1) == 0).any()
        assert dst.tags()["SR_CLIP"].startswith("b1: fixed [0.3, 0.5]; b2: fixed [0.3, 0.5]")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("1,2,3", "expected auto, none or LO,HI"), ("5,1", "LO must be finite and below HI"),
     ("abc", "expected auto, none or LO,HI"), ("0,inf", "LO must be finite")],
)  # fmt: skip
def test_clip_parse_errors_are_one_line(rasters, tmp_path, value, fragment):
    out = tmp_path / "out.tif"
    result = invoke("enhance", rasters["rgb_uint8"], "-o", out, "--clip", value)
    assert_one_line_error(result, f"--clip {value!r}", fragment)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- domain


@pytest.mark.parametrize("model", ["ct_inplane_x2", "mri_smore_x2"])
def test_domain_guard_refuses_medical_models_unless_forced(rasters, tmp_path, model):
    out = tmp_path / "out.tif"
    result = invoke("enhance", rasters["rgb_uint8"], "-o", out, "--model", model)
    assert_one_line_error(result, "rgb_uint8.tif", f"model {model!r}", "card domain", "--force")
    assert list(tmp_path.iterdir()) == []


def test_domain_guard_force_warns_and_runs(rasters, tmp_path):
    out = tmp_path / "out.tif"
    args = ["--model", "ct_inplane_x2", "--force", "--no-progress"]
    result = invoke("enhance", rasters["rgb_uint8"], "-o", out, *args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "card domain 'ct'" in warnings[0]
    assert "running it anyway" in warnings[0]
    with rasterio.open(out) as dst:
        assert dst.tags()["SR_MODEL"] == "ct_inplane_x2"
    # interpolators are domain-free: no warning
    result = invoke("enhance", rasters["rgb_uint8"], "-o", tmp_path / "b.tif", "--model", "bspline")
    assert result.exit_code == 0 and "warning" not in result.stderr


# ----------------------------------------------------------------------------- overviews


def raster_with_overviews(path: Path, tag: str | None = None) -> Path:
    data = gaussian_filter(np.random.default_rng(3).random((2, 64, 48)), (0, 2, 2))
    write(path, data.astype(np.float32))
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4], Resampling.average)
        if tag:
            dst.update_tags(OVR_RESAMPLING_ALG=tag)
    return path


def test_overviews_are_rebuilt_on_the_output(tmp_path):
    src = raster_with_overviews(tmp_path / "ovr.tif")
    out = tmp_path / "out.tif"
    result = invoke("enhance", src, "-o", out, "--model", "bicubic", "--no-progress")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        # the input's [2, 4] extended to reach its coarsest level: 4 * 2 = 8
        assert [dst.overviews(b) for b in (1, 2)] == [[2, 4, 8], [2, 4, 8]]
        assert dst.tags()["SR_OVERVIEWS"] == "2,4,8 average"
        full = dst.read(1).astype(np.float64)
        level = dst.read(1, out_shape=(dst.height // 2, dst.width // 2))  # the overview
        block_mean = full.reshape(dst.height // 2, 2, dst.width // 2, 2).mean(axis=(1, 3))
        np.testing.assert_allclose(level, block_mean, rtol=0, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "ovr.tif"]


def test_overviews_follow_the_input_resampling_tag_and_none_without_overviews(rasters, tmp_path):
    src = raster_with_overviews(tmp_path / "ovr.tif", tag="NEAREST")
    out = tmp_path / "out.tif"
    assert invoke("enhance", src, "-o", out, "--model", "bicubic", "--no-progress").exit_code == 0
    with rasterio.open(out) as dst:
        assert dst.tags()["SR_OVERVIEWS"] == "2,4,8 nearest"
        full = dst.read(1)
        np.testing.assert_array_equal(
            dst.read(1, out_shape=(dst.height // 4, dst.width // 4)), full[::4, ::4]
        )
    plain = tmp_path / "plain.tif"
    assert invoke("enhance", rasters["int16"], "-o", plain, "--no-progress").exit_code == 0
    with rasterio.open(plain) as dst:
        assert dst.overviews(1) == [] and "SR_OVERVIEWS" not in dst.tags()


def test_categorical_overviews_are_nearest(tmp_path):
    classes = np.random.default_rng(5).integers(0, 4, (1, 32, 32), dtype=np.uint8) * 10
    src = write(tmp_path / "classes.tif", classes)
    with rasterio.open(src, "r+") as dst:
        dst.write_colormap(1, {0: (0, 0, 0), 10: (255, 0, 0), 20: (0, 255, 0), 30: (0, 0, 255)})
        dst.build_overviews([2], Resampling.average)
    out = tmp_path / "out.tif"
    result = invoke("enhance", src, "-o", out, "--categorical", "--no-progress")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        assert dst.overviews(1) == [2, 4] and dst.tags()["SR_OVERVIEWS"] == "2,4 nearest"
        level = dst.read(1, out_shape=(16, 16))  # factor 4: classes only, never an average
        assert set(np.unique(level)) <= {0, 10, 20, 30}
        np.testing.assert_array_equal(level, classes[0, ::2, ::2])


# ----------------------------------------------------------------------------- AREA_OR_POINT


@pytest.mark.parametrize("convention", ["Area", "Point"])
def test_area_or_point_is_kept_with_the_right_tiepoint(tmp_path, convention):
    src = write(tmp_path / "in.tif", np.arange(32 * 40, dtype=np.uint8).reshape(1, 32, 40))
    with rasterio.open(src, "r+") as dst:
        dst.update_tags(AREA_OR_POINT=convention)
    out = tmp_path / "out.tif"
    assert invoke("enhance", src, "-o", out, "--model", "bicubic", "--no-progress").exit_code == 0
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert o.tags()["AREA_OR_POINT"] == convention
        assert o.transform == s.transform @ Affine.scale(0.5)  # edges kept, corner-based
    # the stored tiepoint: a pixel centre for Point (half an *output* pixel in), a corner
    # for Area
    with rasterio.Env(GTIFF_POINT_GEO_IGNORE=True), rasterio.open(out) as stored:
        shift = 0.5 if convention == "Point" else 0.0
        assert stored.transform == NORTH_UP @ Affine.scale(0.5) @ Affine.translation(shift, shift)


# ----------------------------------------------------------------------------- warnings


def test_dst_crs_prints_no_python_warning(rasters, tmp_path):
    out = tmp_path / "out.tif"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="default")
    result = subprocess.run(
        [sys.executable, "-m", "srkit.geosr.cli", "enhance", str(rasters["rgb_uint8"]), "-o",
         str(out), "--dst-crs", "EPSG:4326", "--model", "bicubic", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for text in ("Warning", "matmul", "warnings.warn", ".py:"):
        assert text not in result.stderr, result.stderr
    with rasterio.open(out) as dst:
        assert dst.crs.to_epsg() == 4326


def test_nodata_shadowing_an_alpha_band_is_one_warning_line(tmp_path):
    data = np.random.default_rng(0).integers(20, 220, (4, 32, 40), dtype=np.uint8)
    src = write(tmp_path / "rgba.tif", data, nodata=0)
    with rasterio.open(src, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    result = invoke("enhance", src, "-o", tmp_path / "o.tif", "--model", "bicubic", "--no-progress")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert warnings == [
        "warning: rgba.tif: band(s) [4] are labelled alpha, but the nodata value 0 decides "
        "validity (GDAL's rule); they are enhanced as data"
    ]
    assert "shadowing" not in result.stderr


# ----------------------------------------------------------------------------- provenance


@pytest.mark.parametrize("model", ["rs_edsr_x2", "bicubic"])
def test_provenance_tags(rasters, tmp_path, monkeypatch, model):
    src = rasters["rgb_uint8"]
    out = tmp_path / "out.tif"
    args = ["enhance", str(src), "-o", str(out), "--model", model, "--device", "cpu",
            "--no-progress"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/geosr", *args])
    before = datetime.now(timezone.utc).replace(microsecond=0)
    assert invoke(*args).exit_code == 0
    after = datetime.now(timezone.utc)
    with rasterio.open(out) as dst:
        tags = dst.tags()
    assert tags["SR_COMMAND"] == shlex.join(["geosr", *args])
    stamp = datetime.fromisoformat(tags["SR_TIMESTAMP"])
    assert stamp.utcoffset() == timedelta(0) and before <= stamp <= after
    assert tags["SR_INPUT"] == str(Path(src).resolve())
    assert tags["SR_VERSIONS"] == (
        f"srkit {__version__}; torch {torch.__version__}; monai {monai.__version__}; "
        f"rasterio {rasterio.__version__}; gdal {rasterio.__gdal_version__}"
    )
    assert tags["SR_DEVICE"] == "cpu"
    if model == "bicubic":
        assert tags["SR_WEIGHTS_SHA256"] == "none (interpolation)"
    else:
        digest = hashlib.sha256(_shipped_path(model).read_bytes()).hexdigest()
        assert tags["SR_WEIGHTS_SHA256"] == digest


# ----------------------------------------------------------------------------- grammar


def test_enhance_options_of_the_shared_grammar(rasters, tmp_path):
    help_text = invoke("enhance", "--help").stdout
    for option in ("--overwrite", "--progress / --no-progress", "[float32|keep]", "--tile",
                   "--batch-size", "--device", "--clip", "--force"):  # fmt: skip
        assert option in help_text, option
    src = rasters["rgb_uint8"]
    keep, default = tmp_path / "keep.tif", tmp_path / "default.tif"
    base = ["--model", "bicubic", "--progress"]
    assert invoke("enhance", src, "-o", keep, "--dtype", "keep", *base).exit_code == 0
    assert invoke("enhance", src, "-o", default, *base).exit_code == 0
    f32 = tmp_path / "f32.tif"
    assert invoke("enhance", src, "-o", f32, "--dtype", "float32", *base).exit_code == 0
    with rasterio.open(keep) as k, rasterio.open(default) as d, rasterio.open(f32) as f:
        assert k.dtypes[0] == d.dtypes[0] == "uint8" and f.dtypes[0] == "float32"
        np.testing.assert_array_equal(k.read(), d.read())
    # an existing output needs --overwrite
    assert_one_line_error(invoke("enhance", src, "-o", keep, *base), "exists", "--overwrite")
    assert invoke("enhance", src, "-o", keep, "--overwrite", *base).exit_code == 0


def test_info_and_models_json(rasters):
    result = invoke("info", rasters["rich_uint16"], "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["width"], info["height"], info["count"]) == (61, 45, 3)
    assert info["crs"] == "EPSG:32618" and info["nodata"] == 0.0 and info["rotated"] is True
    assert info["plan"]["output"] == "rich_uint16_sr_x2.tif"
    assert (info["plan"]["width"], info["plan"]["height"]) == (122, 90)
    assert info["plan"]["bands"][1]["normalization"] == "scale/offset tags (0.0001, -0.01)"
    refused = json.loads(invoke("info", rasters["gcps"], "--json").stdout)
    assert "ground control points" in refused["refused"][0]
    listing = json.loads(invoke("models", "--json").stdout)
    by_name = {m["name"]: m for m in listing["models"] + listing["baselines"]}
    assert by_name["rs_edsr_x2"]["domain"] == "rs" and by_name["rs_edsr_x2"]["axis_scale"] == [2, 2]
    assert by_name["bicubic"]["architecture"] == "bicubic"
    assert {m["domain"] for m in listing["models"]} <= {"rs", "natural"}
    from srkit.common.models import list_models

    expected = {c.name for c in list_models() if c.domain in ("rs", "natural")}
    assert {m["name"] for m in listing["models"]} == expected and "rs_guided" in expected
