"""srkit.medsr.torchio: the TorchIO transform runs ``medsr enhance`` and keeps the geometry."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

tio = pytest.importorskip("torchio", reason="TorchIO is absent: pip install 'srkit[torchio]'")

from srkit.medsr.errors import MedsrError  # noqa: E402
from srkit.medsr.geometry import upsampled_affine  # noqa: E402
from srkit.medsr.torchio import SuperResolve  # noqa: E402


def span(values: np.ndarray) -> float:
    return float(np.nanmax(values) - np.nanmin(values))


def test_subject_from_nibabel_equals_medsr_enhance(aniso_nifti, medsr_output):
    result, _ = medsr_output
    image = nib.load(aniso_nifti)
    data = torch.from_numpy(np.asarray(image.dataobj, dtype=np.float32)[None])
    subject = tio.Subject(t2=tio.ScalarImage(tensor=data, affine=image.affine))
    out = tio.Compose([SuperResolve(device="cpu")])(subject)["t2"]
    assert out.shape == (1, 16, 16, 24)
    assert np.array_equal(out.affine, result.volume.affine)
    expected = result.volume.data
    assert np.abs(out.data[0].numpy() - expected).max() <= 1e-4 * span(expected)
    assert np.array_equal(subject["t2"].affine, image.affine)  # copy=True: input untouched


def test_image_read_by_torchio(aniso_nifti, medsr_output):
    """TorchIO reads NIfTI with SimpleITK (the qform: ~4e-8 mm from nibabel's sform), so
    the output is the edges-kept affine of *its* input, exactly, and medsr's to 1e-6 mm."""
    result, written = medsr_output
    subject = tio.Subject(t2=tio.ScalarImage(aniso_nifti))
    before = subject["t2"].affine.copy()
    out = SuperResolve(device="cpu")(subject)["t2"]
    assert np.array_equal(out.affine, upsampled_affine(before, (1, 1, 3)))
    np.testing.assert_allclose(out.affine, result.volume.affine, rtol=0, atol=1e-6)
    expected = np.asarray(nib.load(written).dataobj, dtype=np.float32)
    assert np.abs(out.data[0].numpy() - expected).max() <= 1e-4 * span(expected)


def test_label_maps_are_refused_unless_excluded(aniso_nifti):
    image = tio.ScalarImage(aniso_nifti)
    label = tio.LabelMap(tensor=(image.data > 500).to(torch.uint8), affine=image.affine)
    subject = tio.Subject(t2=image, seg=label)
    transform = SuperResolve(model="bspline", scale="1,1,2", device="cpu")
    with pytest.raises(MedsrError, match=r"seg: a LabelMap \(label\).*exclude=\['seg'\]"):
        transform(subject)
    out = SuperResolve(model="bspline", scale="1,1,2", device="cpu", exclude=["seg"])(subject)
    assert out["t2"].shape == (1, 16, 16, 16)
    assert out["seg"].shape == (1, 16, 16, 8)
    assert torch.equal(out["seg"].data, label.data)
    assert np.array_equal(out["seg"].affine, label.affine)


def test_unknown_option_is_refused():
    with pytest.raises(MedsrError, match=r"unknown option 'devise' \(did you mean 'device'\?\)"):
        SuperResolve(devise="cpu")
