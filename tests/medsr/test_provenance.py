"""The provenance sidecar: each field's value, recomputed independently."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import monai
import torch
from srkit.common.models.registry import SHIPPED, WEIGHTS_DIR

from tests.data.dicom import write_series
from tests.data.nifti import oblique_affine, phantom, write_nifti
from tests.medsr.test_cli import run

REPO = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_sidecar_fields(tmp_path):
    write_nifti(tmp_path / "scan.nii.gz", phantom((10, 8, 4), 2), oblique_affine((1, 1, 2.5)))
    args = ["enhance", "scan.nii.gz", "-o", "sr.nii.gz", "--model", "bspline", "--device", "cpu"]
    before = datetime.now(timezone.utc).replace(microsecond=0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "srkit.medsr.cli", *args], cwd=tmp_path, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    after = datetime.now(timezone.utc)
    prov = json.loads((tmp_path / "sr.json").read_text())
    assert prov["command_line"] == ["medsr", *args]
    stamp = datetime.fromisoformat(prov["timestamp"])
    assert stamp.utcoffset().total_seconds() == 0 and before <= stamp <= after
    assert prov["output_sha256"] == sha256(tmp_path / "sr.nii.gz")
    assert prov["input_path"] == str(tmp_path / "scan.nii.gz")  # absolute, given relative
    assert prov["input"] == "scan.nii.gz"
    assert prov["torch_version"] == torch.__version__
    assert prov["monai_version"] == monai.__version__
    assert prov["device"] == "cpu"
    assert prov["model"]["weights_sha256"] is None  # an interpolator has no weights


def test_dicom_output_hash_is_over_the_sorted_files_hashes(tmp_path):
    folder = write_series(tmp_path / "mr", n=4, rows=8, cols=6, clutter=False)["folder"]
    result = run("enhance", folder, "-o", tmp_path / "sr", "--model", "nearest", "--scale", "1,1,2")
    assert result.exit_code == 0, result.output
    prov = json.loads((tmp_path / "sr.json").read_text())
    digest = hashlib.sha256()
    for file in sorted((tmp_path / "sr").iterdir()):
        digest.update(file.name.encode() + b"\0" + sha256(file).encode())
    assert prov["output_sha256"] == digest.hexdigest()
    assert "sorted by relative path" in prov["output_sha256_rule"]
    assert prov["input_path"] == str(folder)


def test_weights_hash_of_a_shipped_model_and_of_a_weights_file(tmp_path):
    scan = write_nifti(
        tmp_path / "scan.nii.gz", phantom((10, 8, 4), 2), oblique_affine((1, 1, 2.0))
    )
    shipped = WEIGHTS_DIR / SHIPPED["mri_smore_x2"]
    result = run("enhance", scan, "-o", tmp_path / "a.nii.gz", "--model", "mri_smore_x2")
    assert result.exit_code == 0, result.output
    prov = json.loads((tmp_path / "a.json").read_text())
    assert prov["model"]["weights_sha256"] == sha256(shipped)
    copy = tmp_path / "mine.safetensors"
    copy.write_bytes(shipped.read_bytes())
    result = run("enhance", scan, "-o", tmp_path / "b.nii.gz", "--model", copy)
    assert result.exit_code == 0, result.output
    prov = json.loads((tmp_path / "b.json").read_text())
    assert prov["model"]["weights_sha256"] == sha256(shipped)
