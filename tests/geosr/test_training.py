from __future__ import annotations

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from srkit.common.training.config import load_config
from srkit.common.training.loop import run_training
from srkit.geosr.cli import main
from srkit.geosr.training import geotiff_readers, largest_valid_rectangle, read_geotiff

from tests.data.geotiff import make_uint8_rgb


def test_largest_valid_rectangle():
    valid = np.ones((6, 8), dtype=bool)
    valid[0, :] = False
    valid[:, 6] = False
    valid[4, 2] = False
    rows, cols = largest_valid_rectangle(valid)
    assert (rows, cols) == (slice(1, 4), slice(0, 6))  # 3 x 6 = 18 beats 5 x 2 and 2 x 6 ...
    assert largest_valid_rectangle(np.zeros((3, 3), bool))[0] == slice(0, 0)


def test_reader_crops_to_valid_area_and_normalizes(rasters):
    arr = read_geotiff(rasters["rgb_uint8"])  # collar: 5 left columns, 3 bottom rows
    with rasterio.open(rasters["rgb_uint8"]) as src:
        raw = src.read()
    assert arr.dtype == np.float32 and arr.shape == (3, 47, 65)
    np.testing.assert_array_equal(arr, raw[:, :47, 5:] / np.float32(255))
    alpha = read_geotiff(rasters["alpha"])
    assert alpha.shape[0] == 3  # the alpha band is a mask, not data
    assert (alpha > 0).any()


def test_reader_refuses_all_invalid_raster(rasters, tmp_path):
    path = tmp_path / "all_invalid.tif"
    with rasterio.open(rasters["int16"]) as src:
        profile = src.profile
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, profile["height"], profile["width"]), -9999, dtype=np.int16))
    with pytest.raises(ValueError, match="no valid pixel"):
        read_geotiff(path)


def test_geosr_train_runs_with_geotiff_reader(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train").mkdir()
    (data / "val").mkdir()
    make_uint8_rgb(data / "train", seed=1, size=(40, 48))
    make_uint8_rgb(data / "val", seed=2, size=(32, 40))
    config = tmp_path / "rs.yaml"
    config.write_text(
        f"""name: rs_tiny
domain: rs
output_dir: {tmp_path / "run"}
model: {{architecture: espcn, dims: 2, channels: 3, scale: 2, hparams: {{widths: [8, 4]}}}}
data: {{root: {data}, train: [train/*.tif], val: [val/*.tif], reader: geotiff, patch_size: 16,
        degradation: {{kind: gaussian_mtf}}}}
train: {{epochs: 1, iters_per_epoch: 2, batch_size: 2}}
"""
    )
    result = run_training(load_config(config), readers=geotiff_readers(), progress=False)
    assert result.weights.exists() and result.weights.suffix == ".safetensors"
    assert np.isfinite(result.metrics["psnr"])
    # the same recipe through the CLI: `geosr train` registers the geotiff reader
    cli = CliRunner().invoke(main, ["train", str(config), "--output-dir", str(tmp_path / "run2")])
    assert cli.exit_code == 0, cli.output
    assert (tmp_path / "run2" / "rs_tiny.safetensors").exists()
