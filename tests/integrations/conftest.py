"""Fixtures of the integration tests: a generated anisotropic NIfTI and its medsr output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.data.nifti import oblique_affine, phantom, write_nifti


@pytest.fixture(scope="session")
def aniso_nifti(tmp_path_factory) -> Path:
    """16x16x8 float32, 0.9x0.9x3 mm, oblique: medsr plans x3 along z (a SMORE model)."""
    path = tmp_path_factory.mktemp("integ") / "aniso.nii.gz"
    return write_nifti(
        path, phantom((16, 16, 8), seed=3), oblique_affine((0.9, 0.9, 3.0)), dtype=np.float32
    )


@pytest.fixture(scope="session")
def medsr_output(aniso_nifti, tmp_path_factory):
    """What ``medsr enhance`` gives for ``aniso_nifti`` (the result and the written file)."""
    from srkit.medsr.files import enhance_file

    out = tmp_path_factory.mktemp("integ_out") / "aniso_sr.nii.gz"
    return enhance_file(aniso_nifti, out, device="cpu"), out
