"""``--clip auto|none|LO,HI``: outputs bounded in physical units, NIfTI and DICOM alike."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from srkit.common.clipping import AUTO_MARGIN
from srkit.medsr.io import read_volume

from tests.data.dicom import write_series
from tests.data.nifti import oblique_affine, write_nifti
from tests.medsr.test_cli import assert_one_line_error, run


@pytest.fixture
def step_file(tmp_path):
    """A float32 'MRI' whose z profile is a step 10 -> 1010: cubic B-spline overshoots it."""
    data = np.zeros((8, 8, 8), np.float32) + np.array([0, 0, 0, 0, 1000, 1000, 1000, 1000]) + 10
    return write_nifti(tmp_path / "step.nii.gz", data, oblique_affine((1, 1, 3)), dtype=np.float32)


def _enhance(source, out, *options):
    result = run("enhance", source, "-o", out, "--model", "bspline", "--modality", "mri", *options)
    assert result.exit_code == 0, result.output
    return np.asarray(nib.load(out).dataobj), json.loads(
        out.with_name(out.name[:-7] + ".json").read_text()
    )


def test_auto_bounds_the_bspline_overshoot_and_none_keeps_it(step_file, tmp_path):
    raw, prov_none = _enhance(step_file, tmp_path / "none.nii.gz", "--clip", "none")
    assert raw.min() < -90 and raw.max() > 1110  # B-spline rings ~9.7 % of the step
    assert prov_none["clip"]["bounds"] is None and prov_none["clip"]["rule"] == "none"
    clipped, prov = _enhance(step_file, tmp_path / "auto.nii.gz")  # auto is the default
    low, high = 10 - AUTO_MARGIN * 1000, 1010 + AUTO_MARGIN * 1000  # -40, 1060
    assert (clipped.min(), clipped.max()) == (low, high)
    np.testing.assert_array_equal(clipped, np.clip(raw, low, high))
    assert prov["clip"]["rule"] == "auto"
    assert prov["clip"]["bounds"] == [low, high]
    assert prov["clip"]["input_range"] == [10.0, 1010.0]
    assert prov["clip"]["clipped_fraction"] == pytest.approx(np.mean((raw < low) | (raw > high)))


def test_fixed_bounds_are_physical_values(step_file, tmp_path):
    raw, _ = _enhance(step_file, tmp_path / "none.nii.gz", "--clip", "none")
    fixed, prov = _enhance(step_file, tmp_path / "fixed.nii.gz", "--clip", "0,1000")
    np.testing.assert_array_equal(fixed, np.clip(raw, 0, 1000))
    assert prov["clip"]["rule"] == "0,1000" and prov["clip"]["bounds"] == [0.0, 1000.0]


def test_nifti_and_dicom_of_one_run_agree(tmp_path):
    """12-bit CT (-1024..3071 HU representable): auto cuts to what DICOM can store too."""
    series = write_series(tmp_path / "ct", modality="CT", n=6, rows=12, cols=10)
    folder = series["folder"]
    nifti = tmp_path / "ct.nii.gz"
    dicom = tmp_path / "ct_sr"
    for clip in ("auto", "none"):
        for out in (nifti, dicom):
            result = run(
                "enhance", folder, "-o", out, "--model", "bspline", "--clip", clip, "--overwrite"
            )
            assert result.exit_code == 0, result.output
        from_nifti, from_dicom = read_volume(nifti).data, read_volume(dicom).data
        if clip == "auto":  # DICOM stores rounded HU (slope 1): the same values to 0.5 HU
            assert from_nifti.min() == -1024.0
            assert np.abs(from_nifti - from_dicom).max() <= 0.5
            prov = json.loads((tmp_path / "ct.json").read_text())
            assert prov["clip"]["bounds"][0] == -1024.0
            assert prov["clip"]["representable_range"] == [-1024.0, 3071.0]
        else:  # without clipping the B-spline undershoot below air is in NIfTI only
            assert from_nifti.min() < -1030 and from_dicom.min() == -1024.0


@pytest.mark.parametrize(
    "spec, message",
    [
        ("5,1", "--clip '5,1': LO must be finite and below HI"),
        ("abc", "--clip 'abc': expected auto, none or LO,HI"),
        ("1,2,3", "--clip '1,2,3': expected auto, none or LO,HI"),
        ("nan,4", "--clip 'nan,4': LO must be finite"),
    ],
)
def test_bad_clip_is_one_line_error_and_writes_nothing(step_file, tmp_path, spec, message):
    out = tmp_path / "out.nii.gz"
    result = run("enhance", step_file, "-o", out, "--clip", spec)
    assert_one_line_error(result, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.nii.gz"]


def test_bad_clip_fails_a_batch_before_any_file(tmp_path):
    scans = tmp_path / "scans"
    for name in ("a", "b"):
        write_nifti(scans / f"{name}.nii.gz", np.ones((6, 6, 4)), oblique_affine())
    result = run("enhance", scans, "-o", tmp_path / "out", "--clip", "9,1")
    assert_one_line_error(result, "--clip '9,1': LO must be finite and below HI")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scans"]
