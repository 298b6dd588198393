"""``medsr.enhance_image``: the command's result in memory, for nibabel and SimpleITK images."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from srkit.medsr.errors import MedsrError
from srkit.medsr.geometry import fov_corners, upsampled_affine
from srkit.medsr.io import LPS_TO_RAS, read_volume

from srkit import medsr
from tests.data.nifti import ct_phantom, oblique_affine, write_nifti
from tests.medsr.test_cli import run


def _sitk():
    return pytest.importorskip(
        "SimpleITK", reason="SimpleITK not installed (optional extra srkit[sitk])"
    )


@pytest.fixture
def thick_mri(tmp_path):
    """A 16x14x6 float32 'MRI' with 3 mm oblique slices and two NaN voxels, on disk."""
    rng = np.random.default_rng(5)
    data = (200 + 100 * rng.random((16, 14, 6))).astype(np.float32)
    data[3, 4, 2] = data[9, 9, 5] = np.nan
    return write_nifti(
        tmp_path / "thick.nii.gz", data, oblique_affine((0.9, 1.1, 3.0)), dtype=np.float32
    )


def test_nibabel_image_gives_the_cli_output_and_provenance(thick_mri, tmp_path):
    out_file = tmp_path / "cli.nii.gz"
    result = run("enhance", thick_mri, "-o", out_file, "--model", "bspline")
    assert result.exit_code == 0, result.output
    cli = nib.load(out_file)
    api = medsr.enhance_image(nib.load(thick_mri), model="bspline")
    assert isinstance(api, nib.Nifti1Image)
    assert api.shape == cli.shape == (16, 14, 18)
    np.testing.assert_array_equal(api.affine, cli.affine)
    np.testing.assert_array_equal(np.asarray(api.dataobj), np.asarray(cli.dataobj))
    assert api.header.get_sform(coded=True)[1] == cli.header.get_sform(coded=True)[1] == 1
    values = np.asarray(api.dataobj)
    assert int(np.isnan(values).sum()) == 2 * 3  # each NaN voxel covers 3 thin slices
    prov = api.extra["medsr_provenance"]
    side = json.loads((tmp_path / "cli.json").read_text())
    for key in ("plan", "method", "scale", "affine_after", "clip", "normalization", "modality"):
        assert prov[key] == side[key], key
    assert prov["command_line"] is None and prov["output_sha256"] is None
    assert prov["input"] == str(thick_mri)


def test_in_memory_image_keeps_units_and_geometry():
    data = ct_phantom((24, 20, 6))  # HU, air at -1000
    affine = oblique_affine((0.7, 0.7, 2.5))
    api = medsr.enhance_image(
        nib.Nifti1Image(data, affine), scale="1,1,2", model="nearest", modality="ct"
    )
    np.testing.assert_allclose(api.affine, upsampled_affine(affine, (1, 1, 2)), atol=1e-12)
    # HU stay HU (the normalization round trip rounds in float32 only)
    np.testing.assert_allclose(np.asarray(api.dataobj), np.repeat(data, 2, axis=2), atol=1e-3)
    prov = api.extra["medsr_provenance"]
    assert prov["input"] is None and prov["modality"] == "ct"


def test_a_bad_option_or_type_is_one_medsr_error():
    img = nib.Nifti1Image(np.ones((8, 8, 4), np.float32), np.eye(4))
    with pytest.raises(MedsrError, match="--scale: factors must be integers"):
        medsr.enhance_image(img, scale=0)
    with pytest.raises(MedsrError, match="got numpy.ndarray"):
        medsr.enhance_image(np.ones((8, 8, 4)))


def _sitk_image(sitk, data_xyz: np.ndarray, affine_ras: np.ndarray):
    lps = LPS_TO_RAS @ affine_ras
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.transpose(data_xyz, (2, 1, 0)).copy())
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    return image


def _sitk_corners(image) -> np.ndarray:
    """The 8 field-of-view corners of a SimpleITK image in RAS mm, by SimpleITK itself, in
    the order of :func:`medsr.geometry.fov_corners` (voxel corner i, then j, then k)."""
    size = image.GetSize()
    corners = []
    for i in (-0.5, size[0] - 0.5):
        for j in (-0.5, size[1] - 0.5):
            for k in (-0.5, size[2] - 0.5):
                x, y, z = image.TransformContinuousIndexToPhysicalPoint((i, j, k))
                corners.append((-x, -y, z))
    return np.array(corners)


def test_sitk_image_has_the_nibabel_paths_field_of_view(thick_mri):
    sitk = _sitk()
    nifti = nib.load(thick_mri)
    data = np.asarray(nifti.dataobj, dtype=np.float32)
    image = _sitk_image(sitk, data, nifti.affine)
    # the conversion in: SimpleITK's own corners are the nibabel affine's
    np.testing.assert_allclose(
        _sitk_corners(image),
        fov_corners(nifti.affine, data.shape),
        atol=1e-5,
    )
    out = medsr.enhance_image(image, model="bspline")
    assert isinstance(out, sitk.Image)
    reference = medsr.enhance_image(nifti, model="bspline")
    assert out.GetSize() == reference.shape
    np.testing.assert_allclose(
        _sitk_corners(out),
        fov_corners(reference.affine, reference.shape),
        atol=1e-5,
    )
    # voxel (i, j, k) is the same voxel in both outputs
    values = np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0))
    np.testing.assert_array_equal(values, np.asarray(reference.dataobj))
    prov = json.loads(out.GetMetaData("medsr_provenance"))
    assert prov["shape_after"] == [16, 14, 18] and prov["command_line"] is None


def test_sitk_dicom_modality_and_keep_dtype(tmp_path):
    sitk = _sitk()
    data = np.full((10, 8, 4), -1000, np.int16)
    data[3:7, 2:6, :] = 40
    image = _sitk_image(sitk, data, oblique_affine((0.8, 0.8, 2.0)))
    image.SetMetaData("0008|0060", "CT")
    out = medsr.enhance_image(image, scale=(1, 1, 2), model="nearest", dtype="keep")
    assert out.GetPixelIDValue() == sitk.sitkInt16
    assert json.loads(out.GetMetaData("medsr_provenance"))["modality"] == "ct"
    np.testing.assert_array_equal(
        np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0)), np.repeat(data, 2, axis=2)
    )


def test_sitk_image_that_is_not_3d_scalar_is_refused():
    sitk = _sitk()
    with pytest.raises(MedsrError, match="2D image"):
        medsr.enhance_image(sitk.Image(8, 8, sitk.sitkFloat32))
    with pytest.raises(MedsrError, match="3 components per voxel"):
        medsr.enhance_image(sitk.Image([8, 8, 4], sitk.sitkVectorFloat32, 3))


def test_the_cli_reads_what_the_api_returns(thick_mri, tmp_path):
    """The API's image saved by nibabel reads back as the CLI output does."""
    api = medsr.enhance_image(nib.load(thick_mri), model="bspline", clip="none")
    nib.save(api, tmp_path / "api.nii.gz")
    back = read_volume(tmp_path / "api.nii.gz")
    np.testing.assert_allclose(back.spacing, [0.9, 1.1, 1.0], atol=1e-6)


def test_real_nifti_read_by_simpleitk_and_nibabel_gives_one_field_of_view(shared_data):
    """SimpleITK's own NIfTI reader (LPS) and nibabel (RAS) on a real scan: the outputs'
    field-of-view corners agree to 1e-5 mm and the voxels are the same."""
    sitk = _sitk()
    path = shared_data / "mri_nifti" / "T2w.nii.gz"  # 224x224x60, 1x1x2 mm
    reference = medsr.enhance_image(nib.load(path), model="bspline")
    out = medsr.enhance_image(sitk.ReadImage(str(path)), model="bspline")
    assert reference.shape == out.GetSize() == (224, 224, 120)
    np.testing.assert_allclose(
        _sitk_corners(out),
        fov_corners(reference.affine, reference.shape),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0)),
        np.asarray(reference.dataobj),
        atol=1e-3,
    )


def test_nifti2_in_nifti2_out_and_trust_is_nibabel_only():
    data = np.arange(8 * 8 * 4, dtype=np.float32).reshape(8, 8, 4)
    out = medsr.enhance_image(
        nib.Nifti2Image(data, oblique_affine()), scale=(1, 1, 2), model="nearest"
    )
    assert type(out) is nib.Nifti2Image
    np.testing.assert_allclose(np.asarray(out.dataobj), np.repeat(data, 2, axis=2), atol=1e-3)
    sitk = _sitk()
    with pytest.raises(MedsrError, match="trust applies to nibabel images"):
        medsr.enhance_image(sitk.GetImageFromArray(data), trust="sform")
