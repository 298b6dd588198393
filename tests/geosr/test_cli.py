"""The geosr commands end to end, and bad input: one ``error:`` line, exit 2, no output file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from srkit.geosr.cli import main

from tests.geosr.helpers import assert_contract


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_enhance_default_name_model_message_and_keep_crs(rasters, tmp_path):
    src = tmp_path / "chip.tif"
    shutil.copy(rasters["rich_uint16"], src)
    result = invoke("enhance", src, "--keep-crs", "--scale", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    out = tmp_path / "chip_sr_x3.tif"
    assert f"wrote {out}" in result.stdout
    assert "model bicubic (no shipped remote-sensing model for x3" in result.stderr
    assert_contract(src, out, 3)
    with rasterio.open(out) as dst:
        assert "no shipped remote-sensing model" in dst.tags()["SR_MODEL_NOTE"]


def test_batch_folder_and_glob(rasters, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for stem in ("rgb_uint8", "int16"):
        shutil.copy(rasters[stem], folder / f"{stem}.tif")
    result = invoke("enhance", folder, "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "int16_sr_x2.tif",
        "rgb_uint8_sr_x2.tif",
    ]
    result = invoke(
        "enhance", f"{folder}/rgb*.tif", "-o", tmp_path / "out2", "--scale", "4", "--no-progress"
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["rgb_uint8_sr_x4.tif"]


@pytest.mark.parametrize("scale", ["0", "-2", "1.5", "two", "nan"])
def test_bad_scale(rasters, tmp_path, scale):
    out = tmp_path / "o.tif"
    result = invoke("enhance", rasters["rgb_uint8"], "-o", out, "--scale", scale)
    assert_one_line_error(result, "--scale")
    assert not out.exists()


def test_missing_garbage_and_truncated_inputs(rasters, tmp_path):
    out = tmp_path / "o.tif"
    assert_one_line_error(
        invoke("enhance", tmp_path / "nope.tif", "-o", out), "nope.tif", "no such file"
    )
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    assert_one_line_error(
        invoke("enhance", garbage, "-o", out), "garbage.tif", "not a readable raster"
    )
    truncated = tmp_path / "truncated.tif"
    data = rasters["all_nodata_tile"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    result = invoke("enhance", truncated, "-o", out, "--no-progress")
    assert_one_line_error(result)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "garbage.tif",
        "truncated.tif",
    ]  # no temp left


def test_no_crs_refused_then_allowed(rasters, tmp_path):
    out = tmp_path / "o.tif"
    assert_one_line_error(
        invoke("enhance", rasters["no_crs"], "-o", out),
        "no coordinate reference system",
        "--allow-no-crs",
    )
    assert not out.exists()
    result = invoke("enhance", rasters["no_crs"], "-o", out, "--allow-no-crs", "--no-progress")
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "no CRS" in result.stderr
    with rasterio.open(rasters["no_crs"]) as src, rasterio.open(out) as dst:
        assert dst.crs is None and dst.transform == src.transform @ src.transform.scale(0.5)


def test_gcps_refused(rasters, tmp_path):
    assert_one_line_error(
        invoke("enhance", rasters["gcps"], "-o", tmp_path / "o.tif"), "ground control points"
    )


def test_output_equal_to_input_never_overwritten(rasters, tmp_path):
    src = tmp_path / "in.tif"
    shutil.copy(rasters["rgb_uint8"], src)
    before = src.read_bytes()
    assert_one_line_error(invoke("enhance", src, "-o", src), "output is the input")
    assert_one_line_error(
        invoke("enhance", src, "-o", tmp_path / "." / "in.tif"), "output is the input"
    )
    assert src.read_bytes() == before


def test_unwritable_output(rasters, tmp_path):
    assert_one_line_error(
        invoke("enhance", rasters["rgb_uint8"], "-o", tmp_path / "missing" / "o.tif"),
        "does not exist",
    )
    assert_one_line_error(
        invoke("enhance", rasters["rgb_uint8"], "-o", "/proc/geosr_o.tif"), "geosr_o.tif"
    )
    assert not (tmp_path / "missing").exists()


def test_verbose_shows_traceback(rasters, tmp_path):
    result = invoke(
        "--verbose", "enhance", rasters["rgb_uint8"], "-o", tmp_path / "o.tif", "--scale", "0"
    )
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_keep_crs_and_dst_crs_conflict(rasters, tmp_path):
    assert_one_line_error(
        invoke(
            "enhance",
            rasters["rgb_uint8"],
            "-o",
            tmp_path / "o.tif",
            "--keep-crs",
            "--dst-crs",
            "EPSG:4326",
        ),
        "contradict",
    )


def test_info_reports_plan(rasters):
    result = invoke("info", rasters["rich_uint16"], "--scale", "2")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "crs:         EPSG:32618" in text
    assert "61 x 45 pixels, 3 band(s), uint16" in text
    assert "(rotated/sheared)" in text and "nodata:      0.0" in text
    assert "output:      rich_uint16_sr_x2.tif, 122 x 90, uint16" in text
    assert "scale/offset tags (0.0001, -0.01)" in text
    assert_one_line_error(invoke("info", "/nonexistent.tif"), "no such file")


def test_simulate_then_enhance_lands_on_the_original_grid(rasters, tmp_path):
    hr = rasters["rgb_uint8"]  # 70 x 50, multiples of 2
    lr = tmp_path / "lr.tif"
    for kernel in ("bicubic", "gaussian"):
        result = invoke("simulate", hr, "-o", lr, "--factor", "2", "--kernel", kernel)
        assert result.exit_code == 0, result.output
        result = invoke(
            "enhance", lr, "-o", tmp_path / "sr.tif", "--scale", "2", "--no-progress", "--overwrite"
        )
        assert result.exit_code == 0, result.output
        with (
            rasterio.open(hr) as h,
            rasterio.open(lr) as low,
            rasterio.open(tmp_path / "sr.tif") as sr,
        ):
            assert low.transform == h.transform @ h.transform.scale(2)
            assert (low.width, low.height) == (35, 25) and low.nodata == 0
            assert sr.transform == h.transform and sr.bounds == h.bounds and sr.shape == h.shape
            assert sr.crs == h.crs
            # LR invalid where any covered HR pixel is invalid
            hr_valid = (h.read_masks(1) > 0).reshape(25, 2, 35, 2).all(axis=(1, 3))
            np.testing.assert_array_equal(low.read_masks(1) > 0, hr_valid)


def test_evaluate_json_csv_and_gain(rasters, tmp_path):
    hr = rasters["rgb_uint8"]
    lr = tmp_path / "lr.tif"
    sr = tmp_path / "sr.tif"
    assert invoke("simulate", hr, "-o", lr).exit_code == 0
    assert invoke("enhance", lr, "-o", sr, "--no-progress").exit_code == 0
    bicubic = tmp_path / "bicubic.tif"
    assert invoke("enhance", lr, "-o", bicubic, "--model", "bicubic").exit_code == 0
    same = json.loads(invoke("evaluate", bicubic, hr, "--lr", lr, "--json").stdout)
    # bicubic of the same LR IS the baseline: ~0 dB (output rounding only)
    assert same["gain_db"] == pytest.approx(0.0, abs=0.05)
    result = invoke("evaluate", sr, hr, "--lr", lr, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["data_range"] == 1.0 and report["scale"] == 2
    assert [b["band"] for b in report["model"]["bands"]] == [1, 2, 3]
    assert report["gain_db"] > 0.5  # the shipped rs_edsr_x2 (default at x2)
    assert 20 < report["model"]["psnr"] < 60 and report["model"]["sam_deg"] > 0
    csv_text = invoke("evaluate", sr, hr, "--csv").stdout.splitlines()
    assert csv_text[0] == "method,band,psnr,ssim,sam_deg,ergas,data_range"
    assert len(csv_text) == 1 + 4
    same = json.loads(invoke("evaluate", hr, hr, "--json", "--scale", "2").stdout)
    assert same["model"]["psnr"] == float("inf") and same["model"]["ssim"] == pytest.approx(1.0)
    assert_one_line_error(invoke("evaluate", lr, hr), "must share the grid")


def test_evaluate_refuses_lr_off_the_reference_grid(rasters, tmp_path):
    hr = rasters["rgb_uint8"]
    lr, shifted = tmp_path / "lr.tif", tmp_path / "shifted.tif"
    assert invoke("simulate", hr, "-o", lr).exit_code == 0
    with rasterio.open(lr) as src:
        profile = src.profile
        profile["transform"] = src.transform @ src.transform.translation(1, 0)
        with rasterio.open(shifted, "w", **profile) as dst:
            dst.write(src.read())
    assert_one_line_error(invoke("evaluate", hr, hr, "--lr", shifted), "does not land on")


def test_batch_never_overwrites_an_input_or_merges_outputs(rasters, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(rasters["rgb_uint8"], folder / "a.tif")
    shutil.copy(rasters["rgb_uint8"], folder / "a_sr_x2.tif")  # would be a's output
    before = (folder / "a_sr_x2.tif").read_bytes()
    assert_one_line_error(invoke("enhance", folder, "--no-progress"), "is also an input")
    assert (folder / "a_sr_x2.tif").read_bytes() == before
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(rasters["int16"], other / "a.tif")
    result = invoke("enhance", folder / "a.tif", other / "a.tif", "-o", tmp_path / "out")
    assert_one_line_error(result, "would both be written to")
    assert not (tmp_path / "out").exists()  # refused before the folder was created
