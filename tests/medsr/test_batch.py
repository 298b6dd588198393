"""``medsr enhance DIR`` resume rules in process (no cluster): what makes an output current."""

from __future__ import annotations

import json
import shutil

import numpy as np
from click.testing import CliRunner
from srkit.common.batch import REPORT_NAME, read_report, sha256_file
from srkit.medsr.cli import main

from tests.data.nifti import oblique_affine, phantom, write_nifti


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_changed_input_is_not_current_and_only_it_is_redone(tmp_path, nifti_files):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(nifti_files["aniso"], folder / "a.nii.gz")
    shutil.copy(nifti_files["iso"], folder / "b.nii.gz")
    out = tmp_path / "out"
    assert run("enhance", folder, "-o", out, "--model", "bspline").exit_code == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    data = phantom((16, 16, 8), seed=9)  # new content under the same name
    write_nifti(folder / "a.nii.gz", data, oblique_affine((0.9, 0.9, 3.0)), dtype=np.float32)
    result = run("enhance", folder, "-o", out, "--model", "bspline", "--report")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {out / 'a.nii.gz'}: output already exists")
    rows = {r["input"]: r for r in read_report(out / REPORT_NAME)}
    assert rows[str(folder / "a.nii.gz")]["status"] == "failed"
    assert rows[str(folder / "b.nii.gz")]["status"] == "skipped"
    assert (out / "b.nii.gz").stat().st_mtime_ns == stamps["b.nii.gz"]
    redo = run("enhance", folder, "-o", out, "--model", "bspline", "--overwrite", "--no-report")
    assert redo.exit_code == 0, redo.output
    record = json.loads((out / "a.json").read_text())["batch"]
    assert record["input_sha256"] == sha256_file(folder / "a.nii.gz")
    assert record["options"]["model"] == "bspline"


def test_a_single_file_with_workers_runs_here_and_says_so(tmp_path, nifti_files):
    out = tmp_path / "one.nii.gz"
    result = run("enhance", nifti_files["aniso"], "-o", out, "--model", "bspline", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "apply to batches; one file runs here" in result.stderr
    assert out.exists() and "batch" not in json.loads((tmp_path / "one.json").read_text())
