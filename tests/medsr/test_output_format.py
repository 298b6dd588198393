"""``--format nifti|dicom`` and the output rule: the command alone decides, so a rerun with
``--overwrite`` gives the first run's result (never a NIfTI inside a DICOM output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from srkit.medsr.io import read_volume

from tests.data.dicom import write_series
from tests.data.nifti import oblique_affine, phantom, write_nifti
from tests.medsr.test_cli import assert_one_line_error, run


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def inputs(tmp_path):
    """A NIfTI scan and a DICOM series folder under ``tmp_path/in``, and an empty ``out/``."""
    scan = write_nifti(
        tmp_path / "in" / "scan.nii.gz", phantom((10, 8, 4), 1), oblique_affine((1, 1, 2.5))
    )
    folder = write_series(tmp_path / "in" / "mr", n=4, rows=8, cols=6, clutter=False)["folder"]
    (tmp_path / "out").mkdir()
    return {"nifti": scan, "dicom": folder, "out": tmp_path / "out"}


DICOM_FILES = [f"IM{k:05d}.dcm" for k in range(1, 9)]  # 4 slices, x2 along z


@pytest.mark.parametrize(
    "source, output, options, expected, kind",
    [
        # a .nii/.nii.gz path is NIfTI, whatever the input
        ("nifti", "out/x.nii.gz", [], ["x.json", "x.nii.gz"], "nifti"),
        ("dicom", "out/x.nii", [], ["x.json", "x.nii"], "nifti"),
        # a folder -o: NIfTI input -> <stem>_sr.nii.gz inside it; DICOM input -> the series
        ("nifti", "out", [], ["scan_sr.json", "scan_sr.nii.gz"], "nifti"),
        ("dicom", "out/series", [], ["series", "series.json"], "dicom"),
        # --format decides
        ("nifti", "out/series", ["--format", "dicom"], ["series", "series.json"], "dicom"),
        ("dicom", "out", ["--format", "nifti"], ["mr_sr.json", "mr_sr.nii.gz"], "nifti"),
        ("nifti", "out/y.nii.gz", ["--format", "nifti"], ["y.json", "y.nii.gz"], "nifti"),
    ],
)
def test_a_rerun_gives_the_first_runs_result(inputs, source, output, options, expected, kind):
    root = inputs["out"].parent
    args = ["enhance", inputs[source], "-o", root / output, "--model", "nearest", *options]
    first = run(*args, "--scale", "1,1,2")
    assert first.exit_code == 0, first.output
    after_first = tree(inputs["out"])
    listed = expected if kind == "nifti" else [*expected, *[f"series/{f}" for f in DICOM_FILES]]
    assert after_first == sorted(listed)
    again = run(*args, "--scale", "1,1,2", "--overwrite")
    assert again.exit_code == 0, again.output
    assert tree(inputs["out"]) == after_first
    written = inputs["out"] / next(e for e in expected if not e.endswith(".json"))
    assert read_volume(written).format == kind
    sidecar = inputs["out"] / next(e for e in expected if e.endswith(".json"))
    assert json.loads(sidecar.read_text())["output"] == str(written)


def test_no_output_option_with_format(inputs):
    assert run("enhance", inputs["dicom"], "--format", "nifti", "--model", "nearest").exit_code == 0
    assert (inputs["dicom"].parent / "mr_sr.nii.gz").is_file()
    result = run("enhance", inputs["nifti"], "--format", "dicom", "--model", "nearest")
    assert result.exit_code == 0, result.output
    assert read_volume(inputs["nifti"].parent / "scan_sr").format == "dicom"


def test_nifti_into_a_missing_folder_is_refused_the_same_every_time(inputs):
    missing = inputs["out"] / "new"
    for _ in range(2):
        result = run("enhance", inputs["nifti"], "-o", missing, "--overwrite")
        assert_one_line_error(result, "no such folder: NIfTI output goes into an existing folder")
        assert tree(inputs["out"]) == []


def test_nifti_never_goes_into_a_previous_dicom_output(inputs):
    series = inputs["out"] / "series"
    assert (
        run(
            "enhance", inputs["nifti"], "-o", series, "--format", "dicom", "--model", "nearest"
        ).exit_code
        == 0
    )
    before = tree(inputs["out"])
    result = run("enhance", inputs["nifti"], "-o", series, "--overwrite")
    assert_one_line_error(result, "is a previous medsr DICOM output; pass --format dicom")
    assert tree(inputs["out"]) == before


def test_format_dicom_with_a_nifti_name_is_refused(inputs):
    result = run("enhance", inputs["nifti"], "-o", inputs["out"] / "x.nii.gz", "--format", "dicom")
    assert_one_line_error(result, "--format dicom writes a folder; give a folder name")
    assert tree(inputs["out"]) == []


def test_format_dicom_on_a_batch_is_refused(inputs):
    result = run("enhance", inputs["nifti"].parent, "-o", inputs["out"], "--format", "dicom")
    assert_one_line_error(result, "a batch writes NIfTI files; --format dicom needs one input")
    assert tree(inputs["out"]) == []
