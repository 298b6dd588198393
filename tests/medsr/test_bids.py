"""BIDS derivatives of ``medsr enhance``: names, paths, the description, and non-BIDS inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from srkit.common import __version__
from srkit.medsr import files as medsr_files
from srkit.medsr.bids import BidsName, bids_output, parse_name
from srkit.medsr.cli import main
from srkit.medsr.errors import MedsrError

from tests.data.nifti import oblique_affine, phantom, write_nifti

T1W = "sub-01/ses-1/anat/sub-01_ses-1_acq-fast_run-2_T1w.nii.gz"
T1W_SR = "derivatives/srkit/sub-01/ses-1/anat/sub-01_ses-1_acq-fast_run-2_desc-sr_T1w.nii.gz"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_scan(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_nifti(path, phantom((10, 8, 4), 2), oblique_affine((1.0, 1.0, 2.0)))


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A BIDS dataset with one T1w scan (sessions, acq and run entities)."""
    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "Demo", "BIDSVersion": "1.9.0", "DatasetDOI": "doi:10.0/demo"})
    )
    write_scan(root / T1W)
    return root


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sub-01_T1w.nii.gz", "sub-01_desc-sr_T1w.nii.gz"),
        ("sub-01_ses-1_acq-fast_run-2_T1w.nii", "sub-01_ses-1_acq-fast_run-2_desc-sr_T1w.nii"),
        ("sub-01_task-rest_echo-2_part-mag_bold.nii.gz", "sub-01_task-rest_echo-2_part-mag_desc-sr_bold.nii.gz"),
        ("sub-01_space-MNI_res-2_desc-preproc_T1w.nii.gz", "sub-01_space-MNI_res-2_desc-sr_T1w.nii.gz"),
    ],
)  # fmt: skip
def test_desc_sr_is_placed_by_the_entity_order(name, expected):
    assert str(parse_name(name).with_entity("desc", "sr")) == expected


def test_entities_before_a_later_one_go_in_front_of_it():
    name = parse_name("sub-01_run-1_echo-2_T1w.nii.gz")
    assert str(name.with_entity("acq", "x")) == "sub-01_acq-x_run-1_echo-2_T1w.nii.gz"
    assert name == BidsName((("sub", "01"), ("run", "1"), ("echo", "2")), "T1w", ".nii.gz")


@pytest.mark.parametrize(
    "name",
    [
        "scan.nii.gz",
        "T1w.nii.gz",
        "sub-01_T1w.mgz",
        "ses-1_sub-01_T1w.nii.gz",
        "sub-01_run-1_run-2_T1w.nii.gz",
        "sub-01_acq_T1w.nii.gz",
        "sub-01_acq-a-b_T1w.nii.gz",
        "sub-01.nii.gz",
    ],
)
def test_not_bids_names(name):
    assert parse_name(name) is None


def test_bids_input_becomes_a_derivative(dataset, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/medsr", "enhance", T1W, "--model", "bspline"])
    result = run("enhance", dataset / T1W, "--model", "bspline")
    assert result.exit_code == 0, result.output
    assert all_files(dataset / "derivatives") == [
        "srkit",
        "srkit/dataset_description.json",
        "srkit/sub-01",
        "srkit/sub-01/ses-1",
        "srkit/sub-01/ses-1/anat",
        "srkit/sub-01/ses-1/anat/sub-01_ses-1_acq-fast_run-2_desc-sr_T1w.json",
        "srkit/sub-01/ses-1/anat/sub-01_ses-1_acq-fast_run-2_desc-sr_T1w.nii.gz",
    ]
    assert result.output.startswith(f"{dataset / T1W_SR}: ")
    description = json.loads((dataset / "derivatives/srkit/dataset_description.json").read_text())
    assert description == {
        "Name": "srkit super-resolution of Demo",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "srkit",
                "Version": __version__,
                "Description": f"medsr enhance (desc-sr); first written by: medsr enhance {T1W}"
                " --model bspline",
            }
        ],
        "DatasetLinks": {"raw": "../../"},
        "SourceDatasets": [{"URL": "bids:raw:", "DOI": "doi:10.0/demo"}],
    }
    sidecar = json.loads((dataset / T1W_SR.replace(".nii.gz", ".json")).read_text())
    assert sidecar["Sources"] == [f"bids:raw:{T1W}"]
    assert sidecar["output"] == str(dataset / T1W_SR)


def test_a_second_input_keeps_the_description(dataset, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["medsr", "enhance", "first"])
    assert run("enhance", dataset / T1W, "--model", "bspline").exit_code == 0
    description = dataset / "derivatives/srkit/dataset_description.json"
    first = description.read_bytes()
    other = write_scan(dataset / "sub-02/anat/sub-02_T2w.nii")
    monkeypatch.setattr(sys, "argv", ["medsr", "enhance", "second"])
    result = run("enhance", other, "--model", "bspline")
    assert result.exit_code == 0, result.output
    assert description.read_bytes() == first
    assert (dataset / "derivatives/srkit/sub-02/anat/sub-02_desc-sr_T2w.nii").is_file()
    assert (dataset / "derivatives/srkit/sub-02/anat/sub-02_desc-sr_T2w.json").is_file()


def test_an_existing_derivative_needs_overwrite(dataset):
    assert run("enhance", dataset / T1W, "--model", "bspline").exit_code == 0
    first = (dataset / T1W_SR).read_bytes()
    result = run("enhance", dataset / T1W, "--model", "bspline")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: {dataset / T1W_SR}: output already exists; pass --overwrite or choose another path"
    ]
    assert (dataset / T1W_SR).read_bytes() == first
    result = run("enhance", dataset / T1W, "--model", "nearest", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (dataset / T1W_SR).read_bytes() != first


def test_output_option_and_no_bids_win(dataset, tmp_path):
    out = tmp_path / "mine.nii.gz"
    assert run("enhance", dataset / T1W, "-o", out, "--model", "bspline").exit_code == 0
    assert out.is_file() and (tmp_path / "mine.json").is_file()
    result = run("enhance", dataset / T1W, "--no-bids", "--model", "bspline")
    assert result.exit_code == 0, result.output
    beside = dataset / "sub-01/ses-1/anat/sub-01_ses-1_acq-fast_run-2_T1w_sr.nii.gz"
    assert beside.is_file()
    assert not (dataset / "derivatives").exists()


@pytest.mark.parametrize(
    ("layout", "description"),
    [
        ("sub-01/anat/sub-01_T1w.nii.gz", False),  # no dataset_description.json
        ("anat/scan.nii.gz", True),  # not a BIDS name
        ("sub-02/anat/sub-01_T1w.nii.gz", True),  # subject folder and name disagree
        ("sub-01/sub-01_T1w.nii.gz", True),  # no datatype folder
    ],
)
def test_non_bids_inputs_are_unaffected(tmp_path, layout, description):
    root = tmp_path / "data"
    root.mkdir()
    if description:
        (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    scan = write_scan(root / layout)
    result = run("enhance", scan, "--model", "bspline")
    assert result.exit_code == 0, result.output
    assert scan.with_name(scan.name.replace(".nii.gz", "_sr.nii.gz")).is_file()
    assert not (root / "derivatives").exists()
    assert bids_output(scan, None) is None


@pytest.mark.parametrize(
    ("layout", "description", "problem"),
    [
        ("sub-01/anat/sub-01_T1w.nii.gz", False, "no dataset_description.json in any folder above it"),
        ("anat/scan.nii.gz", True, "not a BIDS NIfTI name (sub-<label>[_<key>-<value>...]_<suffix>.nii[.gz])"),
        ("sub-02/anat/sub-01_T1w.nii.gz", True, "not at sub-01/<datatype>/ of the BIDS dataset"),
    ],
)  # fmt: skip
def test_bids_flag_on_a_non_bids_input_is_one_line_error(tmp_path, layout, description, problem):
    root = tmp_path / "data"
    root.mkdir()
    if description:
        (root / "dataset_description.json").write_text("{}")
    scan = write_scan(root / layout)
    before = all_files(tmp_path)
    result = run("enhance", scan, "--bids", "--model", "bspline")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {scan}: --bids: {problem}"), lines
    assert "Traceback" not in result.output
    assert all_files(tmp_path) == before


def test_existing_description_that_is_not_a_derivative_is_refused(dataset):
    folder = dataset / "derivatives/srkit"
    folder.mkdir(parents=True)
    (folder / "dataset_description.json").write_text('{"Name": "raw", "DatasetType": "raw"}')
    result = run("enhance", dataset / T1W, "--model", "bspline")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: {folder / 'dataset_description.json'}: exists and is not a derivative dataset"
        " description (DatasetType is not 'derivative'); move it or pass -o"
    ]
    assert all_files(folder) == ["dataset_description.json"]


def test_failed_write_leaves_no_derivative_folders(dataset, monkeypatch):
    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(medsr_files, "save_nifti", broken_save)
    with pytest.raises(OSError, match="disk full"):
        medsr_files.enhance_file(dataset / T1W, model="bspline")
    assert not (dataset / "derivatives").exists()
    assert all_files(dataset) == [
        "dataset_description.json",
        "sub-01",
        "sub-01/ses-1",
        "sub-01/ses-1/anat",
        "sub-01/ses-1/anat/sub-01_ses-1_acq-fast_run-2_T1w.nii.gz",
    ]


def test_bids_flag_with_a_batch_is_refused(dataset, tmp_path):
    with pytest.raises(MedsrError, match="^--bids applies to one input file"):
        medsr_files.enhance_batch(str(dataset / "sub-01/ses-1/anat"), tmp_path / "o", bids=True)


def test_derivative_values_survive(dataset):
    """The derivative holds the enhanced volume, not a copy of the input."""
    import nibabel as nib

    assert run("enhance", dataset / T1W, "--model", "bspline").exit_code == 0
    out = nib.load(dataset / T1W_SR)
    assert out.shape == (10, 8, 8)
    assert np.isfinite(np.asarray(out.dataobj)).all()
