"""Output safety of ``medsr enhance``: nothing the user has is deleted or replaced.

Each case checks the exit code, the one ``error:`` line, that every file that was there is
still there byte for byte, and that no output or temporary was left.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from srkit.common.errors import OutputExistsError
from srkit.medsr import files as files_module
from srkit.medsr.files import enhance_file
from srkit.medsr.io import read_volume

from tests.data.nifti import oblique_affine, write_nifti
from tests.medsr.test_cli import assert_one_line_error, run


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative name -> bytes); symlinks as their target text."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = b"->" + os.readlink(path).encode()
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = b"<dir>"
    return out


@pytest.fixture
def study(tmp_path, mr_series):
    """``study/series1`` (a DICOM series), ``study/notes.txt`` and ``study/other/``."""
    root = tmp_path / "study"
    root.mkdir()
    shutil.copytree(mr_series["folder"], root / "series1")
    (root / "notes.txt").write_text("keep me")
    (root / "other").mkdir()
    (root / "other" / "a.txt").write_text("keep me too")
    return root


def test_output_that_contains_the_dicom_input_is_refused(study, tmp_path):
    before = snapshot(tmp_path)
    result = run("enhance", study / "series1", "-o", study, "--overwrite", "--scale", "1,1,2")
    assert_one_line_error(result, "output contains the input")
    assert snapshot(tmp_path) == before
    link = tmp_path / "link"
    link.symlink_to(study, target_is_directory=True)
    before = snapshot(tmp_path)
    result = run("enhance", study / "series1", "-o", link, "--overwrite", "--scale", "1,1,2")
    assert_one_line_error(result, "output contains the input")
    assert snapshot(tmp_path) == before
    result = run("enhance", study / "series1", "-o", tmp_path, "--overwrite", "--scale", "1,1,2")
    assert_one_line_error(result, "output contains the input")
    assert snapshot(tmp_path) == before


def test_an_existing_folder_is_replaced_only_when_it_is_a_previous_output(study, tmp_path):
    before = snapshot(tmp_path)
    result = run(
        "enhance", study / "series1", "-o", study / "other", "--overwrite", "--scale", "1,1,2"
    )
    assert_one_line_error(result, "is not a previous medsr DICOM output")
    assert snapshot(tmp_path) == before
    out = tmp_path / "sr"
    assert run("enhance", study / "series1", "-o", out, "--scale", "1,1,2").exit_code == 0
    assert len(list(out.glob("IM*.dcm"))) == 12
    (out / "mine.txt").write_text("user file")  # no longer exactly a medsr output
    before = snapshot(tmp_path)
    result = run("enhance", study / "series1", "-o", out, "--overwrite", "--scale", "1,1,2")
    assert_one_line_error(result, "is not a previous medsr DICOM output")
    assert snapshot(tmp_path) == before
    (out / "mine.txt").unlink()
    result = run("enhance", study / "series1", "-o", out, "--overwrite", "--scale", "2")
    assert result.exit_code == 0, result.output
    assert read_volume(out).shape == (20, 24, 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr", "sr.json", "study"]
    plain = tmp_path / "plainfile"
    plain.write_text("x")
    result = run("enhance", study / "series1", "-o", plain, "--overwrite", "--scale", "2")
    assert_one_line_error(result, "exists and is not a folder")
    assert plain.read_text() == "x"


def test_hard_link_to_the_input_is_refused(nifti_files, tmp_path):
    source = tmp_path / "scan.nii.gz"
    shutil.copy(nifti_files["aniso"], source)
    os.link(source, tmp_path / "linked.nii.gz")
    before = snapshot(tmp_path)
    result = run("enhance", source, "-o", tmp_path / "linked.nii.gz", "--overwrite")
    assert_one_line_error(result, "output is the input")
    assert snapshot(tmp_path) == before


def test_the_sidecar_never_replaces_the_inputs_own_sidecar(nifti_files, tmp_path):
    source = tmp_path / "sub-01_T1w.nii.gz"
    shutil.copy(nifti_files["aniso"], source)
    (tmp_path / "sub-01_T1w.json").write_text('{"RepetitionTime": 2.3}')
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        result = run("enhance", source, "-o", tmp_path / "sub-01_T1w.nii", *extra)
        assert_one_line_error(result, "sub-01_T1w.json: is the input's own sidecar")
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("output", ["other.nii.gz", "out_dcm"])
def test_an_existing_sidecar_is_refused_without_overwrite(study, nifti_files, tmp_path, output):
    source = study / "series1" if output == "out_dcm" else nifti_files["aniso"]
    side = tmp_path / (output.removesuffix(".nii.gz") + ".json")
    side.write_text('{"mine": true}')
    before = snapshot(tmp_path)
    result = run("enhance", source, "-o", tmp_path / output, "--scale", "1,1,2")
    assert_one_line_error(result, f"{side.name}: the output's sidecar already exists")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["out.png", "out.tif", "out.dcm.gz"])
def test_an_unknown_output_extension_is_refused(nifti_files, tmp_path, name):
    result = run("enhance", nifti_files["aniso"], "-o", tmp_path / name)
    assert_one_line_error(result, "unknown output extension")
    assert ".nii or .nii.gz" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failure_half_way_leaves_neither_output_nor_sidecar(nifti_files, tmp_path, monkeypatch):
    def broken(volume, path, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("disk went away")

    monkeypatch.setattr(files_module, "save_nifti", broken)
    with pytest.raises(RuntimeError, match="disk went away"):
        enhance_file(nifti_files["aniso"], tmp_path / "o.nii.gz", model="bspline")
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_appears_during_the_run_is_not_clobbered(nifti_files, tmp_path, monkeypatch):
    out = tmp_path / "o.nii.gz"
    real = files_module.save_nifti

    def racing(volume, path, **kwargs):
        real(volume, path, **kwargs)
        out.write_bytes(b"the other run's output")

    monkeypatch.setattr(files_module, "save_nifti", racing)
    with pytest.raises(OutputExistsError, match="appeared while this run was writing it"):
        enhance_file(nifti_files["aniso"], out, model="bspline")
    assert out.read_bytes() == b"the other run's output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.nii.gz"]


def test_nan_voxels_are_stored_as_pixel_padding_in_dicom(tmp_path):
    data = np.full((12, 10, 4), 300.0, np.float32)
    data[:, :, 0] = np.linspace(0, 600, 120).reshape(12, 10)
    data[2:5, 3:6, 1] = np.nan
    source = write_nifti(tmp_path / "nan.nii.gz", data, oblique_affine(), dtype=np.float32)
    out = tmp_path / "dcm"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = enhance_file(source, out, scale=(1, 1, 2), model="nearest", output_format="dicom")
    nan_out = int(np.isnan(result.volume.data).sum())
    assert nan_out == 18  # 9 voxels, doubled along z
    messages = [str(w.message) for w in caught]
    assert any(f"{nan_out} voxel(s) have no value (NaN)" in m for m in messages), messages
    slices = sorted(out.glob("IM*.dcm"))
    assert {int(pydicom.dcmread(p).PixelPaddingValue) for p in slices} == {-32768}
    stored = np.stack([pydicom.dcmread(p).pixel_array.T for p in slices], axis=-1)
    assert int((stored == -32768).sum()) == nan_out
    assert stored[np.isfinite(result.volume.data)].min() > -32768
    assert json.loads((tmp_path / "dcm.json").read_text())["nan_voxels"] == 9


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of every file and folder below ``root`` (relative name -> mode)."""
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_output_follows_the_umask(mr_series, nifti_files, tmp_path, umask):
    """NIfTI, DICOM folder and slices, sidecars, BIDS folders and description: the modes a
    plain ``open(..., "w")`` / ``mkdir`` gives under the umask (0644/0755 under 022)."""
    bids = tmp_path / "ds"
    (bids / "sub-01/anat").mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "d", "BIDSVersion": "1.9.0"}')
    shutil.copy(nifti_files["aniso"], bids / "sub-01/anat/sub-01_T1w.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(umask)
    try:
        for args in (
            [nifti_files["aniso"], "-o", out / "a.nii.gz"],
            [nifti_files["aniso"], "-o", out / "a_dicom", "--format", "dicom"],
            [mr_series["folder"], "-o", out / "mr_sr", "--scale", "1,1,2"],
            [bids / "sub-01/anat/sub-01_T1w.nii.gz"],
        ):
            result = run("enhance", *args, "--model", "bspline")
            assert result.exit_code == 0, result.output
    finally:
        os.umask(old)
    file_mode, folder_mode = 0o666 & ~umask, 0o777 & ~umask
    expected = {"a.nii.gz": file_mode, "a.json": file_mode, "a_dicom": folder_mode}
    expected |= {"a_dicom.json": file_mode, "mr_sr": folder_mode, "mr_sr.json": file_mode}
    expected |= {f"a_dicom/IM{k:05d}.dcm": file_mode for k in range(1, 25)}  # 8 slices x3
    expected |= {f"mr_sr/IM{k:05d}.dcm": file_mode for k in range(1, 13)}
    assert _modes(out) == expected
    derivatives = bids / "derivatives"
    assert _modes(derivatives) == {
        "srkit": folder_mode,
        "srkit/dataset_description.json": file_mode,
        "srkit/sub-01": folder_mode,
        "srkit/sub-01/anat": folder_mode,
        "srkit/sub-01/anat/sub-01_desc-sr_T1w.json": file_mode,
        "srkit/sub-01/anat/sub-01_desc-sr_T1w.nii.gz": file_mode,
    }
    assert derivatives.stat().st_mode & 0o777 == folder_mode
