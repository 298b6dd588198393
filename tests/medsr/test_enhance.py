"""Planning, model choice, SMORE-style 2D application, units, NaNs and file output."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest
from srkit.common.models import make_baseline
from srkit.common.models import select as select_module
from srkit.common.models.architectures import Interpolator
from srkit.medsr.enhance import (
    default_model,
    enhance_volume,
    parse_scale,
    plan_enhance,
    super_resolve,
)
from srkit.medsr.errors import MedsrError
from srkit.medsr.files import enhance_file
from srkit.medsr.geometry import fov_corners, upsampled_affine
from srkit.medsr.io import Volume, read_volume

from tests.data.nifti import oblique_affine, phantom


def test_plan_default_anisotropic_and_isotropic():
    plan = plan_enhance((16, 16, 8), oblique_affine((0.9, 0.9, 3.0)))
    assert plan.axis_scale == (1, 1, 3) and plan.out_shape == (16, 16, 24)
    assert plan.thick_axis == 2
    plan = plan_enhance((10, 12, 14), oblique_affine((1.0, 1.0, 1.0)))
    assert plan.axis_scale == (2, 2, 1) and plan.out_shape == (20, 24, 14)
    plan = plan_enhance((10, 12, 14), oblique_affine((4.0, 1.0, 1.0)))
    assert plan.axis_scale == (4, 1, 1)
    plan = plan_enhance((10, 12, 14), oblique_affine((4.0, 1.0, 1.0)), axis=1, scale=(2,))
    assert plan.axis_scale == (2, 1, 2)  # in-plane around the given slice axis


def test_plan_scale_and_target_spacing():
    affine = oblique_affine((0.9, 0.9, 3.0))
    assert plan_enhance((4, 4, 4), affine, scale=(3,)).axis_scale == (3, 3, 1)
    assert plan_enhance((4, 4, 4), affine, scale=(1, 2, 3)).axis_scale == (1, 2, 3)
    plan = plan_enhance((16, 16, 8), affine, target_spacing=1.2)
    # z: 3 / 1.2 = 2.5 -> SR x2 (nearest integer, half to even), then 16 -> 20 slices
    assert plan.axis_scale == (1, 1, 2) and plan.out_shape == (16, 16, 20)
    with pytest.raises(ValueError, match="not finer than the voxel size"):
        plan_enhance((16, 16, 8), affine, target_spacing=5.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [("0", "integers >= 1"), ("-2", "integers >= 1"), ("abc", "'abc' is not a number"),
     ("1.5", "integers >= 1"), ("2,2", "1 or 3"), ("1", "does nothing"), ("nan", "integers")],
)  # fmt: skip
def test_parse_scale_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_scale(text)


def test_parse_scale_accepts():
    assert parse_scale("3") == (3,) and parse_scale("1, 1,4") == (1, 1, 4)


def test_default_model_falls_back_and_picks_shipped(monkeypatch):
    choice = default_model("mri", (1, 1, 4))
    assert choice.spec == "mri_smore_x4" and "2D through-plane model (SMORE)" in choice.reason
    for axis_scale in ((4, 1, 1), (1, 4, 1)):  # any thick axis
        assert default_model("mri", axis_scale).spec == "mri_smore_x4"
    assert default_model("mri", (1, 2, 1)).spec == "mri_smore_x2"
    assert default_model("mri", (1, 1, 3)).spec == "mri_smore_x3"
    choice = default_model("mri", (2, 2, 1))
    assert choice.spec == "mri_inplane_x2" and "2D in-plane model" in choice.reason
    assert default_model("ct", (1, 1, 2)).spec == "ct_smore_x2"
    assert default_model("ct", (1, 2, 2)).spec == "ct_inplane_x2"
    choice = default_model("mri", (1, 1, 5))
    assert choice.spec == "bspline" and "no shipped mri model for x1x1x5" in choice.reason
    assert default_model("ct", (1, 1, 3)).spec == "ct_smore_x3"
    assert default_model("ct", (4, 1, 1)).spec == "ct_smore_x4"
    assert default_model("ct", (1, 1, 5)).spec == "bspline"
    assert default_model("mri", (3, 3, 1)).spec == "bspline"
    card = make_baseline("lanczos", dims=3, scale=2).card.replace(
        name="mri_x4_z", domain="mri", axis_scale=(1, 1, 4), dims=3
    )
    monkeypatch.setattr(
        select_module, "list_models", lambda domain=None: [c for c in [card] if c.domain == domain]
    )
    assert default_model("mri", (1, 1, 4)).spec == "mri_x4_z"
    assert default_model("ct", (1, 1, 4)).spec == "bspline"
    assert default_model("mri", (1, 1, 2)).spec == "bspline"


class Fixed2D(Interpolator):
    """A 2D 'trained' model stand-in: fixed scale, so it takes the slice-wise path."""

    flexible_scale = False


def test_smore_with_a_2d_model_equals_3d_interpolation_along_the_thick_axis():
    rng = np.random.default_rng(1)
    x = rng.random((6, 5, 4)).astype(np.float32)
    model = Fixed2D("bspline", dims=2, scale=(3, 1))  # scaled axis first in each plane
    out, method = super_resolve(x, (1, 3, 1), model)
    ref, ref_method = super_resolve(x, (1, 3, 1), "bspline")
    assert (method, ref_method) == ("2d-smore", "3d")
    assert out.shape == (6, 15, 4)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    inplane, method = super_resolve(x, (2, 1, 2), Fixed2D("bspline", dims=2, scale=(2, 2)))
    assert method == "2d-inplane"
    np.testing.assert_allclose(inplane, super_resolve(x, (2, 1, 2), "bspline")[0], atol=1e-5)


def _volume(shape=(16, 16, 8), spacing=(0.9, 0.9, 3.0)) -> Volume:
    return Volume(data=phantom(shape, 3), affine=oblique_affine(spacing), source=None)


def test_enhance_volume_geometry_units_and_mean():
    vol = _volume()
    plan = plan_enhance(vol.shape, vol.affine)
    result = enhance_volume(vol, plan, model="bspline", clip="none")  # raw B-spline
    out = result.volume
    assert out.shape == (16, 16, 24)
    np.testing.assert_allclose(out.affine, upsampled_affine(vol.affine, (1, 1, 3)), atol=1e-12)
    np.testing.assert_allclose(
        fov_corners(out.affine, out.shape), fov_corners(vol.affine, vol.shape), atol=1e-9
    )
    fg_in = vol.data[vol.data > 0].mean()
    fg_out = out.data[np.repeat(vol.data > 0, 3, axis=2)].mean()
    assert abs(fg_out / fg_in - 1) < 0.03
    # the baseline through the normalization equals B-spline on the raw values
    from srkit.common import upscale

    np.testing.assert_allclose(
        out.data, upscale("bspline", vol.data[None], scale=(1, 1, 3))[0], atol=2e-3
    )
    prov = result.provenance
    assert prov["model"]["spec"] == "bspline" and prov["method"] == "3d"
    assert prov["spacing_before"] == [0.9, 0.9, 3.0]
    assert prov["spacing_after"] == [0.9, 0.9, 1.0]


def test_enhance_target_spacing_non_integer_remainder():
    vol = _volume()
    plan = plan_enhance(vol.shape, vol.affine, target_spacing=1.2)
    out = enhance_volume(vol, plan, model="bspline").volume
    assert out.shape == (16, 16, 20)
    np.testing.assert_allclose(out.spacing, [0.9, 0.9, 1.2], atol=1e-12)
    np.testing.assert_allclose(
        fov_corners(out.affine, out.shape), fov_corners(vol.affine, vol.shape), atol=1e-9
    )
    assert enhance_volume(vol, plan, model="bspline").provenance["method"] == "3d+bspline-remainder"


def test_nan_restored_without_spreading_and_ct_negative_values():
    vol = _volume()
    vol.data = vol.data - 1024.0  # HU-like, negative background
    plan = plan_enhance(vol.shape, vol.affine)
    clean = enhance_volume(vol, plan, modality="ct", model="bspline").volume
    assert clean.data.min() < -1024  # below the window: passed through, not clipped
    vol.data[2:4, 5:7, 3] = np.nan
    expected = np.zeros(clean.shape, bool)
    expected[2:4, 5:7, 9:12] = True  # slice 3 -> slices 9, 10, 11 (x3)
    # the default (shipped ct_smore_x3, SMORE on 2D planes) keeps exactly the same holes
    default = enhance_volume(vol, plan, modality="ct")
    assert default.provenance["model"]["name"] == "ct_smore_x3"
    np.testing.assert_array_equal(np.isnan(default.volume.data), expected)
    out = enhance_volume(vol, plan, modality="ct", model="bspline").volume
    np.testing.assert_array_equal(np.isnan(out.data), expected)
    # only z is resampled: columns without NaN are exactly the NaN-free result
    other = np.ones(out.shape, bool)
    other[2:4, 5:7, :] = False
    np.testing.assert_array_equal(out.data[other], clean.data[other])
    # within the holed columns the hole is filled from its neighbours, not from a constant
    diff = np.abs(out.data - clean.data)[2:4, 5:7]
    assert np.nanmax(diff[..., :6]) < 0.5 * np.ptp(vol.data[np.isfinite(vol.data)])


def test_enhance_file_nifti_sidecar_and_refusals(nifti_files, tmp_path):
    out = tmp_path / "a_sr.nii.gz"
    result = enhance_file(nifti_files["aniso"], out, model="bspline")
    image = nib.load(out)
    assert image.shape == (16, 16, 24) and image.get_data_dtype() == np.float32
    np.testing.assert_allclose(image.get_sform(), result.volume.affine, atol=1e-5)
    np.testing.assert_allclose(image.get_qform(), result.volume.affine, atol=1e-5)
    side = json.loads((tmp_path / "a_sr.json").read_text())
    digest = hashlib.sha256(nifti_files["aniso"].read_bytes()).hexdigest()
    assert side["input_sha256"] == digest
    assert side["scale"] == [1, 1, 3] and side["model"]["spec"] == "bspline"
    assert side["spacing_after"] == [0.9, 0.9, 1.0]
    with pytest.raises(MedsrError, match="output already exists; pass --overwrite"):
        enhance_file(nifti_files["aniso"], out)
    enhance_file(nifti_files["aniso"], out, overwrite=True, scale=(2,))
    assert nib.load(out).shape == (32, 32, 8)
    with pytest.raises(MedsrError, match="output is the input"):
        enhance_file(nifti_files["aniso"], nifti_files["aniso"], overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_sr.json", "a_sr.nii.gz"]


def test_enhance_dicom_default_output_and_keep_dtype(mr_series, tmp_path):
    import shutil

    folder = tmp_path / "series"
    shutil.copytree(mr_series["folder"], folder)
    result = enhance_file(folder, scale=(1, 1, 2))
    out = tmp_path / "series_sr"
    assert result.provenance["output"] == str(out) and (tmp_path / "series_sr.json").is_file()
    back = read_volume(out)
    assert back.shape == (10, 12, 12)
    np.testing.assert_allclose(back.affine, result.volume.affine, atol=1e-5)
    assert np.abs(back.data - result.volume.data).max() <= 1.0 + 1e-4  # slope 2: half a step
    with pytest.raises(MedsrError, match="series_sr: output already exists; pass --overwrite"):
        enhance_file(folder)
    enhance_file(folder, overwrite=True, scale=(2,))  # replaced only once complete
    assert read_volume(out).shape == (20, 24, 6)
    import pydicom

    first = pydicom.dcmread(out / "IM00001.dcm")
    row_sp, col_sp = mr_series["pixel_spacing"]
    expected = mr_series["positions"][0] - 0.25 * (
        col_sp * mr_series["row_cos"] + row_sp * mr_series["col_cos"]
    )  # -(s-1)/(2s) = -1/4 old pixel along rows and columns
    np.testing.assert_allclose([float(v) for v in first.ImagePositionPatient], expected, atol=1e-6)
    np.testing.assert_allclose([float(v) for v in first.PixelSpacing], [0.4, 0.35], atol=1e-9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series", "series_sr", "series_sr.json"]
    keep = enhance_file(folder, tmp_path / "k.nii.gz", dtype="keep", scale=(1, 1, 2))
    image = nib.load(tmp_path / "k.nii.gz")
    assert image.get_data_dtype() == np.int16
    assert np.abs(image.get_fdata() - keep.volume.data).max() <= 1.0 + 1e-4


def test_ibp_reproduces_the_low_res_data_and_keeps_the_mean():
    from srkit.common import upscale
    from srkit.common.degradation import thick_slice

    rng = np.random.default_rng(2)
    from scipy.ndimage import gaussian_filter

    hr = gaussian_filter(rng.random((12, 10, 32)), (1, 1, 1.5)).astype(np.float32)
    low = thick_slice(hr, 4, 2).astype(np.float32)
    ibp, method = super_resolve(low, (1, 1, 4), "ibp")
    cubic = upscale("bspline", low[None], scale=(1, 1, 4))[0]
    assert method == "ibp" and ibp.shape == hr.shape
    residual_ibp = np.abs(thick_slice(ibp, 4, 2) - low).max()
    residual_cubic = np.abs(thick_slice(cubic, 4, 2) - low).max()
    assert residual_ibp < 0.2 * residual_cubic
    assert abs(ibp.mean() / low.mean() - 1) < 0.01
    assert np.sqrt(np.mean((ibp - hr) ** 2)) < np.sqrt(np.mean((cubic - hr) ** 2))


def test_output_inside_a_dicom_input_is_refused(mr_series, tmp_path):
    import shutil

    folder = tmp_path / "series"
    shutil.copytree(mr_series["folder"], folder)
    with pytest.raises(MedsrError, match="output is in the input DICOM folder"):
        enhance_file(folder, folder / "sr.nii.gz")
    with pytest.raises(MedsrError, match="output is in the input DICOM folder"):
        enhance_file(folder / "s000", folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in mr_series["folder"].iterdir()
    )
