"""The domain guard: a model trained on another domain needs --force (and then warns)."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
from srkit.common import load_model
from srkit.medsr.errors import MedsrError
from srkit.medsr.methods import check_domain

from srkit import medsr
from tests.medsr.test_cli import assert_one_line_error, run


@pytest.mark.parametrize(
    "fixture, model, domain, modality",
    [
        ("ct", "natural_edsr_x2", "natural", "ct"),
        ("ct", "rs_edsr_x2", "rs", "ct"),
        ("iso", "ct_inplane_x2", "ct", "mri"),
    ],
)
def test_a_foreign_model_is_refused_naming_both(
    nifti_files, tmp_path, fixture, model, domain, modality
):
    out = tmp_path / "out.nii.gz"
    result = run("enhance", nifti_files[fixture], "-o", out, "--model", model, "--scale", "2")
    assert_one_line_error(
        result,
        f"model {model} is for domain '{domain}', but the input's modality is '{modality}';"
        " pass --force",
    )
    assert list(tmp_path.iterdir()) == []


def test_force_runs_it_with_a_warning_and_records_it(nifti_files, tmp_path):
    out = tmp_path / "out.nii.gz"
    result = run(
        "enhance",
        nifti_files["ct"],
        "-o",
        out,
        "--model",
        "natural_edsr_x2",
        "--scale",
        "2",
        "--force",
    )
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "running it anyway (--force)" in result.stderr
    prov = json.loads((tmp_path / "out.json").read_text())
    assert prov["model"]["domain"] == "natural"
    assert "model natural_edsr_x2 is for domain 'natural'" in prov["model"]["domain_forced"]
    assert nib.load(out).shape == (32, 32, 16)


def test_the_api_refuses_and_forces_alike():
    img = nib.Nifti1Image(
        np.where(np.arange(512).reshape(8, 8, 8) % 7, 40, -1000).astype(np.float32), np.eye(4)
    )
    with pytest.raises(MedsrError, match="model rs_edsr_x2 is for domain 'rs'"):
        medsr.enhance_image(img, model="rs_edsr_x2", scale=2, modality="ct")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = medsr.enhance_image(img, model="rs_edsr_x2", scale=2, modality="ct", force=True)
    assert out.shape == (16, 16, 8)
    assert any("running it anyway" in str(w.message) for w in caught)


@pytest.mark.parametrize("spec", ["bicubic", "bspline", "lanczos", "nearest", "ibp"])
@pytest.mark.parametrize("modality", ["mri", "ct"])
def test_interpolators_and_medsr_methods_are_domain_free(spec, modality):
    model = spec if spec == "ibp" else load_model(spec)
    assert check_domain(model, modality, "scan.nii.gz") is None


def test_matching_domains_pass():
    assert check_domain(load_model("ct_smore_x2"), "ct", "scan") is None
    with pytest.raises(MedsrError, match="scan: model ct_smore_x2 is for domain 'ct'"):
        check_domain(load_model("ct_smore_x2"), "mri", "scan")
