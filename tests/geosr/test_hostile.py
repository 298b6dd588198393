"""Hostile inputs and outputs for ``geosr enhance``: each is refused cleanly or handled exactly.

A refusal is: exit code 2, stderr exactly one ``error:`` line naming the file, no
traceback, nothing on stdout, no output and no temporary (``.*.partial*``) left in the
output folder, and the input bytes unchanged. Hostile rasters are generated here with
rasterio (tests/data/geotiff.py writes the well-formed ones).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from srkit.geosr.cli import main
from srkit.geosr.enhance import EnhanceOptions, enhance_raster

from srkit import geosr
from tests.geosr.helpers import assert_contract, assert_seam_free, upsampled

UTM = "EPSG:32618"
GRID = Affine.translation(600000.0, 4500000.0) @ Affine.scale(10.0, -10.0)
REPO = Path(__file__).resolve().parents[2]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write(path: Path, data: np.ndarray, **profile) -> Path:
    """A GTiff of ``data`` ``(bands, h, w)``; UTM grid unless the profile says otherwise."""
    base = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype,
        "crs": UTM,
        "transform": GRID,
    }
    base.update(profile)
    base = {k: v for k, v in base.items() if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **base) as dst:
            dst.write(data)
    return path


def smooth(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth float64 data in [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width] / max(height, width)
    phase = rng.random((count, 1, 1)) * 6
    return 0.5 + 0.4 * np.sin(3 * xx + 2 * yy + phase) * np.cos(2 * yy - xx)


def partials(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir() if p.name.startswith(".") and ".partial" in p.name
    )


def assert_refused(result, folder: Path, names: str, inputs: dict[Path, bytes], *fragments):
    """The refusal contract (module docstring); ``names`` must appear in the error line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and names in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert partials(folder) == []
    for path, data in inputs.items():
        assert path.read_bytes() == data
    return lines[0]


@pytest.fixture()
def rgb(rasters, tmp_path):
    """A copy of the 70x50 RGB fixture in ``tmp_path/in`` and an empty ``tmp_path/out``."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    path = tmp_path / "in" / "a.tif"
    shutil.copy(rasters["rgb_uint8"], path)
    return path


# 1. existing outputs, atomic writes, batches ---------------------------------------------


def test_existing_output_refused_before_any_work_without_overwrite(rgb, tmp_path, monkeypatch):
    out = tmp_path / "out" / "existing.tif"
    out.write_bytes(b"previous result")
    inputs = {rgb: rgb.read_bytes(), out: out.read_bytes()}

    def no_open(*args, **kwargs):
        raise AssertionError("the input was opened before the output was checked")

    monkeypatch.setattr(geosr.enhance, "open_raster", no_open)
    result = invoke("enhance", rgb, "-o", out, "--no-progress")
    assert_refused(result, out.parent, "existing.tif", inputs, "exists", "--overwrite")
    monkeypatch.undo()
    result = invoke("enhance", rgb, "-o", out, "--no-progress", "--overwrite")
    assert result.exit_code == 0, result.output
    assert_contract(rgb, out, 2, model="rs_edsr_x2")
    assert sorted(p.name for p in out.parent.iterdir()) == ["existing.tif"]


def test_output_appearing_during_the_run_is_not_clobbered(rgb, tmp_path, monkeypatch):
    out = tmp_path / "out" / "o.tif"
    written = []
    real_write = geosr.enhance.write_sr

    def racing_write(src, name, plan, choice, georef, path, options):
        written.append(Path(path).name)
        out.write_bytes(b"another run")  # a concurrent run finished first
        return real_write(src, name, plan, choice, georef, path, options)

    monkeypatch.setattr(geosr.enhance, "write_sr", racing_write)
    result = invoke("enhance", rgb, "-o", out, "--no-progress")
    assert_refused(result, out.parent, "o.tif", {rgb: rgb.read_bytes()}, "appeared")
    assert out.read_bytes() == b"another run"
    # the temporary is common.io's: hidden, beside the target, .partial before the suffix
    assert len(written) == 1 and written[0].startswith(".o.tif.")
    assert written[0].endswith(".partial.tif")


def test_sigterm_leaves_no_output_and_no_temporary(tmp_path):
    src = write(tmp_path / "big.tif", (smooth(3, 768, 768) * 255).astype(np.uint8))
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "o.tif"
    command = [sys.executable, "-m", "srkit.geosr.cli", "enhance", src, "-o", out, "--no-progress"]
    command += ["--cog", "--window", "64", "--device", "cpu"]
    process = subprocess.Popen(
        [str(c) for c in command], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not partials(folder) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert partials(folder), "no temporary appeared (the run ended too fast?)"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr.decode()
    assert "terminated by signal SIGTERM" in stderr.decode()
    assert list(folder.iterdir()) == []


def test_batch_goes_on_past_bad_files_and_reports_each(rasters, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(rasters["rgb_uint8"], folder / "a.tif")
    (folder / "b.tif").write_bytes(np.random.default_rng(0).bytes(4000))  # not a raster
    shutil.copy(rasters["int16"], folder / "c.tif")
    write(folder / "d.tif", np.ones((1, 8, 8), dtype=np.complex64))
    result = invoke("enhance", folder, "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2, result.output
    errors = result.stderr.strip().splitlines()
    errors = [line for line in errors if line.startswith("error: ")]
    assert len(errors) == 2, result.stderr
    assert "b.tif" in errors[0] and "not a readable raster" in errors[0]
    assert "d.tif" in errors[1] and "complex-valued" in errors[1]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_sr_x2.tif",
        "c_sr_x2.tif",
    ]
    assert result.stdout.count("wrote ") == 2


def test_batch_of_only_bad_files_leaves_no_output_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for stem in ("x", "y"):
        (folder / f"{stem}.tif").write_bytes(b"II*\x00garbage")
    result = invoke("enhance", folder, "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "x.tif" in errors[0] and "y.tif" in errors[1]
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_batch_refuses_existing_outputs_one_by_one(rasters, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(rasters["rgb_uint8"], folder / "a.tif")
    shutil.copy(rasters["int16"], folder / "c.tif")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_sr_x2.tif").write_bytes(b"kept")
    result = invoke("enhance", folder, "-o", out, "--no-progress")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "a_sr_x2.tif" in errors[0] and "exists" in errors[0]
    assert (out / "a_sr_x2.tif").read_bytes() == b"kept"
    assert (out / "c_sr_x2.tif").exists()


# 2. palette and attribute-table (class) rasters -----------------------------------------

COLORMAP = {0: (0, 0, 0, 255), 1: (200, 30, 30, 255), 2: (30, 200, 30, 255), 3: (0, 0, 250, 255)}


def classes(height: int = 24, width: int = 20) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return ((xx // 5 + yy // 6) % 4).astype(np.uint8)[None]


def test_palette_raster_refused_without_categorical(tmp_path):
    src = write(tmp_path / "landcover.tif", classes())
    with rasterio.open(src, "r+") as dst:
        dst.write_colormap(1, COLORMAP)
    result = invoke("enhance", src, "-o", tmp_path / "o.tif", "--no-progress")
    assert_refused(
        result,
        tmp_path,
        "landcover.tif",
        {src: src.read_bytes()},
        "landcover.tif: band 1 has a colour table (palette indices); "
        "geosr does not interpolate class or index rasters",
        "--categorical",
    )
    assert not (tmp_path / "o.tif").exists()


def test_categorical_upsamples_by_nearest_and_keeps_the_colour_table(tmp_path):
    src = write(tmp_path / "landcover.tif", classes())
    with rasterio.open(src, "r+") as dst:
        dst.write_colormap(1, COLORMAP)
    out = tmp_path / "o.tif"
    result = invoke("enhance", src, "-o", out, "--categorical", "--scale", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read(), upsampled(classes(), 3))
        assert dst.colorinterp == (rasterio.enums.ColorInterp.palette,)
        assert {k: dst.colormap(1)[k] for k in COLORMAP} == COLORMAP
        assert dst.tags()["SR_MODEL"] == "nearest"
    result = invoke("enhance", src, "-o", tmp_path / "p.tif", "--categorical", "--model", "bicubic")
    assert_refused(result, tmp_path, "--categorical", {}, "--model bicubic")


RAT_XML = """<PAMDataset>
  <PAMRasterBand band="1">
    <GDALRasterAttributeTable tableType="thematic">
      <FieldDefn index="0"><Name>Value</Name><Type>0</Type><Usage>5</Usage></FieldDefn>
      <FieldDefn index="1"><Name>Class</Name><Type>2</Type><Usage>2</Usage></FieldDefn>
      <Row index="0"><F>1</F><F>water</F></Row>
      <Row index="1"><F>2</F><F>forest</F></Row>
    </GDALRasterAttributeTable>
  </PAMRasterBand>
</PAMDataset>
"""


def test_attribute_table_marks_a_band_categorical(tmp_path):
    src = write(tmp_path / "zones.tif", classes())
    (tmp_path / "zones.tif.aux.xml").write_text(RAT_XML)
    result = invoke("enhance", src, "-o", tmp_path / "o.tif", "--no-progress")
    assert_refused(
        result,
        tmp_path,
        "zones.tif",
        {src: src.read_bytes()},
        "band 1 has a raster attribute table",
        "does not interpolate class or index rasters",
    )
    out = tmp_path / "o.tif"
    assert invoke("enhance", src, "-o", out, "--categorical").exit_code == 0
    with rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read(), upsampled(classes(), 2))


# 3. complex bands -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["complex64", "complex_int16"])
def test_complex_bands_refused(tmp_path, dtype):
    values = (smooth(1, 16, 16) * 100).astype(np.float32)
    data = (values + 1j * values).astype(np.complex64)
    src = write(tmp_path / "slc.tif", data, dtype=dtype)
    result = invoke("enhance", src, "-o", tmp_path / "o.tif", "--no-progress")
    assert_refused(
        result,
        tmp_path,
        "slc.tif",
        {src: src.read_bytes()},
        "slc.tif: complex-valued bands are not supported",
    )
    assert not (tmp_path / "o.tif").exists()


# 4. +-Inf counts as invalid --------------------------------------------------------------


@pytest.mark.parametrize("nodata", [None, -9999.0])
def test_one_inf_pixel_masks_exactly_its_footprint(tmp_path, nodata):
    data = smooth(1, 20, 24).astype(np.float32)
    data[0, 7, 9] = np.inf
    data[0, 15, 3] = -np.inf
    src = write(tmp_path / "inf.tif", data, nodata=nodata)
    out = tmp_path / "o.tif"
    result = invoke("enhance", src, "-o", out, "--model", "bicubic", "--no-progress")
    assert result.exit_code == 0, result.output
    expected_invalid = upsampled(~np.isfinite(data[0]), 2)
    assert expected_invalid.sum() == 8
    with rasterio.open(out) as dst:
        got = dst.read(1)
        invalid = ~np.isfinite(got) if nodata is None else got == nodata
        np.testing.assert_array_equal(invalid, expected_invalid)
        if nodata is not None:
            assert np.isfinite(got).all()  # invalid pixels hold nodata, not Inf
        assert np.isfinite(got[~expected_invalid]).all()
        assert (got[~expected_invalid] > 0).all() and (got[~expected_invalid] < 1.2).all()


# 5. a CRS without a geotransform ---------------------------------------------------------


def test_crs_without_geotransform_refused_then_written_without_one(tmp_path):
    data = (smooth(1, 12, 14) * 200).astype(np.uint8)
    src = write(tmp_path / "nogt.tif", data, transform=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with rasterio.open(src) as check:
            assert check.crs is not None and check.transform.is_identity
    assert any("no geotransform" in str(w.message) for w in caught)
    out = tmp_path / "o.tif"
    result = invoke("enhance", src, "-o", out, "--no-progress")
    assert_refused(result, tmp_path, "nogt.tif", {src: src.read_bytes()}, "no geotransform")
    result = invoke("enhance", src, "-o", out, "--allow-no-crs", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "no geotransform" in result.stderr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with rasterio.open(out) as dst:
            assert dst.crs == rasterio.crs.CRS.from_string(UTM)
            assert dst.transform.is_identity  # not Affine.scale(0.5): none written
            assert (dst.width, dst.height) == (28, 24)
    assert any("no geotransform" in str(w.message) for w in caught)


# 6. output size and disk space -----------------------------------------------------------


def test_huge_declared_raster_refused_at_once(tmp_path):
    src = tmp_path / "sparse.tif"
    profile = dict(driver="GTiff", width=100_000, height=100_000, count=1, dtype="uint8")
    profile.update(crs=UTM, transform=GRID, tiled=True, blockxsize=512, blockysize=512)
    with rasterio.open(src, "w", sparse_ok=True, **profile):
        pass  # no block written: a few MB on disk
    start = time.monotonic()
    result = invoke("enhance", src, "-o", tmp_path / "o.tif", "--no-progress")
    assert_refused(
        result,
        tmp_path,
        "sparse.tif",
        {},
        "sparse.tif: output would be 200000x200000x1 uint8 (40.0 GB",
        "raise the limit with --max-output-pixels or SRKIT_MAX_OUTPUT_PIXELS",
    )
    assert time.monotonic() - start < 30
    assert not (tmp_path / "o.tif").exists()


def test_scale_1000_refused_and_the_limit_is_settable(tmp_path, monkeypatch):
    src = write(tmp_path / "chip.tif", (smooth(1, 128, 128) * 200).astype(np.uint8))
    out = tmp_path / "o.tif"
    result = invoke("enhance", src, "-o", out, "--scale", "1000", "--no-progress")
    assert_refused(
        result, tmp_path, "chip.tif", {src: src.read_bytes()}, "128000x128000x1 uint8 (16.4 GB"
    )
    # the limit from the option, then from the environment
    result = invoke("enhance", src, "-o", out, "--max-output-pixels", "65535", "--no-progress")
    assert_refused(result, tmp_path, "chip.tif", {}, "256x256x1", "limit of 65535 pixels")
    monkeypatch.setenv("SRKIT_MAX_OUTPUT_PIXELS", "1000")
    result = invoke("enhance", src, "-o", out, "--no-progress")
    assert_refused(result, tmp_path, "chip.tif", {}, "limit of 1000 pixels")
    result = invoke("enhance", src, "-o", out, "--max-output-pixels", "65536", "--no-progress")
    assert result.exit_code == 0, result.output  # the option wins over the environment


def test_output_larger_than_the_free_disk_space_refused(tmp_path, monkeypatch):
    src = write(tmp_path / "chip.tif", (smooth(1, 64, 64) * 200).astype(np.uint8))
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        geosr.plan.shutil, "disk_usage", lambda path: usage._replace(free=1000)
    )  # the output needs 128*128/4 = 4096 bytes
    result = invoke("enhance", src, "-o", tmp_path / "o.tif", "--no-progress")
    assert_refused(result, tmp_path, "chip.tif", {src: src.read_bytes()}, "1.0 kB free", "o.tif")
    assert not (tmp_path / "o.tif").exists()


# 7. --batch-size batches windows through the model ---------------------------------------


def test_batch_size_batches_windows_and_keeps_the_result(tmp_path):
    src = write(tmp_path / "rgb.tif", (smooth(3, 50, 70) * 250).astype(np.uint8))
    results, runs = {}, {}
    for batch in (1, 4):
        options = EnhanceOptions(dtype="float32", window=32, block=16, batch_size=batch)
        runs[batch] = enhance_raster(src, tmp_path / f"b{batch}.tif", options)
        with rasterio.open(runs[batch].output) as dst:
            results[batch] = dst.read()
    # 140x100 output in 32-pixel windows: 5 x 4 = 20 windows; 4 per forward pass -> 5
    assert (runs[1].windows, runs[1].forward_passes) == (20, 20)
    assert (runs[4].windows, runs[4].forward_passes) == (20, 5)
    assert runs[4].model == "rs_edsr_x2"
    assert_seam_free(results[4], results[1], span=255.0)  # 1e-4 in normalized units
    whole = enhance_raster(
        src, tmp_path / "whole.tif", EnhanceOptions(dtype="float32", window=100_000, block=16)
    )
    assert whole.windows == 1
    with rasterio.open(whole.output) as dst:
        assert_seam_free(results[4], dst.read(), span=255.0)
    out = tmp_path / "cli.tif"
    result = invoke("enhance", src, "-o", out, "--batch-size", "4", "--dtype", "float32")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        assert_seam_free(dst.read(), results[1], span=255.0)


# 8. messages: truncated, GCPs, tiny and wide rasters, bad devices -------------------------


def test_truncated_raster_names_the_file(rasters, tmp_path):
    data = rasters["all_nodata_tile"].read_bytes()
    src = tmp_path / "cut.tif"
    src.write_bytes(data[: len(data) // 2])
    result = invoke("enhance", src, "-o", tmp_path / "o.tif", "--no-progress")
    line = assert_refused(
        result, tmp_path, "cut.tif", {src: src.read_bytes()}, "truncated or corrupt"
    )
    assert "See previous exception" not in line
    assert not (tmp_path / "o.tif").exists()


def test_gcp_only_raster_refused(rasters, tmp_path):
    src = tmp_path / "gcps.tif"
    shutil.copy(rasters["gcps"], src)
    result = invoke("enhance", src, "-o", tmp_path / "o.tif", "--no-progress")
    assert_refused(
        result,
        tmp_path,
        "gcps.tif",
        {src: src.read_bytes()},
        "located by 4 ground control points",
        "orthorectify it first",
    )
    assert not (tmp_path / "o.tif").exists()


def test_one_pixel_raster(tmp_path):
    src = write(tmp_path / "dot.tif", np.full((3, 1, 1), 120, dtype=np.uint8))
    for model, name in (("bicubic", "b.tif"), (None, "d.tif")):
        args = ["--model", model] if model else []
        result = invoke("enhance", src, "-o", tmp_path / name, "--no-progress", *args)
        assert result.exit_code == 0, result.output
        assert_contract(src, tmp_path / name, 2, model=model or "rs_edsr_x2")
    with rasterio.open(tmp_path / "b.tif") as dst:
        np.testing.assert_array_equal(dst.read(), np.full((3, 2, 2), 120))  # a constant stays


def test_hundred_band_raster(tmp_path):
    data = (smooth(100, 12, 10) * 250).astype(np.uint8)
    src = write(tmp_path / "hyper.tif", data)
    out = tmp_path / "o.tif"
    result = invoke("enhance", src, "-o", out, "--dtype", "float32", "--no-progress")
    assert result.exit_code == 0, result.output
    # the shipped 1-channel model, applied to each of the 100 bands
    assert_contract(src, out, 2, model="rs_edsr_x2", dtype="float32")
    one = tmp_path / "b57.tif"
    result = invoke("enhance", src, "-o", one, "--bands", "57", "--dtype", "float32")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as a, rasterio.open(one) as b:
        assert a.count == 100
        assert_seam_free(a.read([57]), b.read(), span=255.0)  # bands are independent


@pytest.mark.parametrize("device", ["foo", "cuda:x", "tpu"])
def test_bad_device_is_one_line(rgb, tmp_path, device):
    result = invoke("enhance", rgb, "-o", tmp_path / "out" / "o.tif", "--device", device)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --device {device}: not a torch device (use cpu, cuda, cuda:N or mps)"
    ]
    assert list((tmp_path / "out").iterdir()) == []


def test_unavailable_cuda_is_one_line(rgb, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("enhance", rgb, "-o", tmp_path / "out" / "o.tif", "--device", "cuda")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --device cuda: CUDA is not available on this machine"
    ]


def test_env_limit_must_be_a_number(rgb, tmp_path, monkeypatch):
    monkeypatch.setenv("SRKIT_MAX_OUTPUT_PIXELS", "lots")
    result = invoke("enhance", rgb, "-o", tmp_path / "out" / "o.tif", "--no-progress")
    assert result.exit_code == 2
    assert "SRKIT_MAX_OUTPUT_PIXELS='lots': not a number" in result.stderr
    assert os.listdir(tmp_path / "out") == []


def test_info_reports_a_refusal_instead_of_failing(tmp_path):
    src = write(tmp_path / "landcover.tif", classes())
    with rasterio.open(src, "r+") as dst:
        dst.write_colormap(1, COLORMAP)
    result = invoke("info", src)
    assert result.exit_code == 0, result.output
    assert "enhance refuses it: landcover.tif: band 1 has a colour table" in result.stdout


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("empty", "empty file"),
        ("garbage", "not a readable raster"),
        ("fifo", "not a regular file"),
        ("missing_folder", "does not exist"),
        ("same", "output is the input"),
        ("same_via_symlink", "output is the input"),
    ],
)
def test_bad_files_and_paths_are_one_clean_error(rgb, tmp_path, case, fragment):
    folder = rgb.parent
    source, out = rgb, tmp_path / "out" / "o.tif"
    if case == "empty":
        source = folder / "empty.tif"
        source.write_bytes(b"")
    elif case == "garbage":
        source = folder / "junk.tif"
        source.write_bytes(b"II*\x00 not really a tiff")
    elif case == "fifo":
        source = folder / "pipe.tif"
        os.mkfifo(source)
    elif case == "missing_folder":
        out = tmp_path / "nowhere" / "o.tif"
    elif case == "same":
        out = rgb
    else:
        out = folder / "link.tif"
        out.symlink_to(rgb)
    inputs = {p: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.is_symlink()}
    before = sorted(p.name for p in folder.iterdir())
    result = invoke(
        "enhance", source, "-o", out, "--scale", "2", "--model", "bicubic", "--overwrite"
    )
    name = out.name if case in ("missing_folder", "same_via_symlink") else source.name
    assert_refused(result, folder, name, inputs, fragment)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert list((tmp_path / "out").iterdir()) == []
