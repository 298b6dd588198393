"""geosr on Dask: a batch of rasters (resume, a corrupt file) and one raster split into row
bands (equal to the single-machine output, exact geometry). One LocalCluster of 2 worker
processes on 127.0.0.1 serves the module and is closed by it.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from srkit.common.batch import REPORT_NAME, read_report, sha256_file
from srkit.geosr.batch import BATCH_TAG
from srkit.geosr.cli import main
from srkit.geosr.distributed import enhance_raster_distributed
from srkit.geosr.enhance import EnhanceOptions, enhance_raster
from srkit.geosr.stream import plan_stream, row_bands

from tests.geosr.helpers import assert_contract, assert_seam_free


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with (
        warnings.catch_warnings(),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
    ):
        warnings.simplefilter("ignore")
        yield cluster.scheduler_address


def assert_same_raster(got_path, reference_path) -> None:
    """Same geometry and metadata exactly; pixels within the tiling tolerance."""
    with rasterio.open(got_path) as got, rasterio.open(reference_path) as ref:
        assert got.profile == ref.profile  # size, dtype, CRS, transform, nodata, blocks
        assert got.transform == ref.transform and got.crs == ref.crs
        got_tags, ref_tags = got.tags(), ref.tags()
        assert got_tags.pop("SR_TIMESTAMP") and ref_tags.pop("SR_TIMESTAMP")  # when each ran
        assert got_tags == ref_tags
        assert [got.tags(i) for i in got.indexes] == [ref.tags(i) for i in ref.indexes]
        assert got.descriptions == ref.descriptions and got.colorinterp == ref.colorinterp
        np.testing.assert_array_equal(got.dataset_mask(), ref.dataset_mask())
        data, expected = got.read(), ref.read()
        span = float(np.nanmax(expected) - np.nanmin(expected)) if data.dtype.kind == "f" else 1
        assert_seam_free(data, expected, span=span)


@pytest.mark.parametrize("stem", ["rich_uint16", "mask_band", "nan_float32"])
def test_one_raster_in_row_bands_equals_the_single_machine_output(
    rasters, scheduler, tmp_path, stem
):
    src = rasters[stem]
    options = EnhanceOptions(window=32, block=16)
    with rasterio.open(src) as dataset:
        reads = plan_stream((dataset.height, dataset.width), 2, 16, 1, options)  # cores only
    assert len(row_bands(reads)) >= 2  # really split
    single = enhance_raster(src, tmp_path / "single.tif", options)
    split = enhance_raster_distributed(src, tmp_path / "split.tif", options, scheduler=scheduler)
    assert split.windows == single.windows and split.skipped_windows == single.skipped_windows
    assert_same_raster(split.output, single.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single.tif", "split.tif"]  # no tiles


def test_row_bands_clip_to_the_whole_raster_range(scheduler, tmp_path):
    """Row bands get the parent's --clip auto bounds (measured once, on the whole input)
    and clip exactly as the single-machine run: the top rows only hold 0.2..0.6, yet are
    clipped to the whole range's [0.16, 1.04]."""
    from tests.geosr.test_ecosystem import write

    data = np.full((1, 64, 32), 0.2, dtype=np.float32)
    data[:, :, 16:] = 0.6
    data[:, 48:, 16:] = 1.0
    src = write(tmp_path / "step.tif", data)
    options = EnhanceOptions(model="bicubic", window=32, block=16)
    single = enhance_raster(src, tmp_path / "single.tif", options)
    split = enhance_raster_distributed(src, tmp_path / "split.tif", options, scheduler=scheduler)
    assert_same_raster(split.output, single.output)
    with rasterio.open(split.output) as out:
        top = out.read(1)[:32]
        assert top.min() < 0.2 - 0.02 and top.max() > 0.6 + 0.02  # rings kept in the top rows
        assert out.read(1).min() == pytest.approx(0.16)  # the whole range's 5 %: 0.2 - 0.04
        assert out.tags()["SR_CLIP"] == "b1: auto [0.16, 1.04]"


def test_cli_sends_one_raster_to_the_scheduler(rasters, scheduler, tmp_path):
    src = tmp_path / "chip.tif"
    shutil.copy(rasters["rich_uint16"], src)
    result = invoke("enhance", src, "-o", tmp_path / "split.tif", "--scheduler", scheduler)
    assert result.exit_code == 0, result.output
    assert invoke("enhance", src, "-o", tmp_path / "single.tif").exit_code == 0
    assert_contract(src, tmp_path / "split.tif", 2, model="rs_edsr_x2")
    assert_same_raster(tmp_path / "split.tif", tmp_path / "single.tif")


def test_batch_on_the_scheduler_finishes_good_files_and_resumes(rasters, scheduler, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(rasters["rgb_uint8"], folder / "a.tif")
    (folder / "b.tif").write_bytes(np.random.default_rng(0).bytes(4000))  # not a raster
    shutil.copy(rasters["int16"], folder / "c.tif")
    out = tmp_path / "out"
    result = invoke("enhance", folder, "-o", out, "--scheduler", scheduler, "--no-progress")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "b.tif" in errors[0] and "not a readable raster" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["a_sr_x2.tif", REPORT_NAME, "c_sr_x2.tif"]
    rows = {r["input"]: r for r in read_report(out / REPORT_NAME)}
    assert [rows[str(folder / n)]["status"] for n in ("a.tif", "b.tif", "c.tif")] == [
        "ok",
        "failed",
        "ok",
    ]
    assert rows[str(folder / "b.tif")]["error"] == errors[0].removeprefix("error: ")
    reference = tmp_path / "ref"
    assert invoke("enhance", folder / "a.tif", "-o", reference, "--no-progress").exit_code == 0
    assert_contract(folder / "a.tif", out / "a_sr_x2.tif", 2, model="rs_edsr_x2")
    with rasterio.open(out / "a_sr_x2.tif") as got, rasterio.open(reference) as ref:
        assert_seam_free(got.read(), ref.read())
        record = json.loads(got.tags()[BATCH_TAG])
    assert record["input_sha256"] == sha256_file(folder / "a.tif")
    stamps = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*.tif")}
    (folder / "b.tif").unlink()  # fixed by the user: the rerun redoes only what is missing
    again = invoke("enhance", folder, "-o", out, "--scheduler", scheduler, "--no-progress")
    assert again.exit_code == 0, again.output
    assert again.stdout.count("up to date ") == 2
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*.tif")} == stamps


def test_in_process_batch_resumes_and_overwrite_redoes(rasters, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(rasters["rgb_uint8"], folder / "a.tif")
    out = tmp_path / "out"
    assert invoke("enhance", folder, "-o", out, "--no-progress").exit_code == 0
    stamp = (out / "a_sr_x2.tif").stat().st_mtime_ns
    again = invoke("enhance", folder, "-o", out, "--no-progress")
    assert again.exit_code == 0 and "up to date" in again.stdout
    assert (out / "a_sr_x2.tif").stat().st_mtime_ns == stamp
    other = invoke("enhance", folder, "-o", out, "--no-progress", "--model", "bicubic")
    assert other.exit_code == 2 and "exists" in other.stderr  # not current, not replaced
    redo = invoke("enhance", folder, "-o", out, "--no-progress", "--overwrite")
    assert redo.exit_code == 0 and "wrote " in redo.stdout
    assert (out / "a_sr_x2.tif").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in out.iterdir()) == ["a_sr_x2.tif"]  # no report in process
