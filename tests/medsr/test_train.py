"""``medsr train`` with the nifti/dicom readers, and the example recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from srkit.common.training.config import load_config
from srkit.medsr.cli import main
from srkit.medsr.intensity import mri_normalization
from srkit.medsr.io import read_volume
from srkit.medsr.training import read_normalized, train_readers

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_readers_normalize_like_enhance(nifti_files, mr_series):
    assert set(train_readers()) == {"nifti", "dicom"}
    array = read_normalized(nifti_files["iso"])
    vol = read_volume(nifti_files["iso"])
    assert array.shape == (1, 16, 16, 16) and array.dtype == np.float32
    np.testing.assert_allclose(array[0], mri_normalization(vol.data).forward(vol.data))
    assert read_normalized(mr_series["folder"]).shape == (1, 10, 12, 6)


def test_example_recipe_loads():
    cfg = load_config(CONFIGS / "mri_edsr3d_x4_z.yaml")
    assert cfg.data.reader == "nifti" and cfg.model.scale == [1, 1, 4]
    assert not any("chris_t1" in entry for entry in cfg.data.train + cfg.data.val)


def test_train_runs_on_generated_nifti(nifti_files, tmp_path):
    folder = nifti_files["iso"].parent
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"""name: tiny_mri
domain: mri
output_dir: {tmp_path / "run"}
model: {{architecture: espcn, dims: 3, channels: 1, scale: [1, 1, 2], hparams: {{}}}}
data:
  root: {folder}
  train: [iso.nii.gz, ct.nii.gz]
  val: [scaled.nii.gz]
  reader: nifti
  patch_size: [8, 8, 8]
  degradation: {{kind: thick_slice, profile: box, quantize: false}}
train: {{epochs: 1, iters_per_epoch: 2, batch_size: 2, amp: false}}
validation: {{baseline: bspline}}
"""
    )
    result = CliRunner().invoke(main, ["train", str(recipe), "--device", "cpu"])
    assert result.exit_code == 0, result.output + result.stderr
    assert (tmp_path / "run" / "tiny_mri.safetensors").is_file()
