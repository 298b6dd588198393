"""Readers and writers on generated fixtures: scaling, geometry, DICOM tags, round trips."""

from __future__ import annotations

import shutil
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pydicom.data
import pytest
from srkit.medsr.errors import MedsrError
from srkit.medsr.geometry import upsampled_affine
from srkit.medsr.io import Volume, read_volume, write_dicom_series, write_nifti

from tests.data.dicom import write_series
from tests.data.nifti import oblique_affine, phantom
from tests.data.nifti import write_nifti as write_fixture


def test_nifti_values_affine_and_scaling(nifti_files):
    vol = read_volume(nifti_files["iso"])
    np.testing.assert_array_equal(vol.data, np.round(phantom((16, 16, 16), 0)))
    np.testing.assert_allclose(vol.affine, oblique_affine(), atol=1e-6)
    assert vol.data.dtype == np.float32 and vol.stored_dtype == "int16"
    scaled = read_volume(nifti_files["scaled"])
    raw = np.asarray(nib.load(nifti_files["scaled"]).dataobj.get_unscaled())
    assert (scaled.slope, scaled.inter) == (2.0, -10.0)
    np.testing.assert_array_equal(scaled.data, raw * 2.0 - 10.0)


def test_sform_qform_disagreement_needs_trust(nifti_files):
    path = nifti_files["mismatch"]
    with pytest.raises(MedsrError) as info:
        read_volume(path)
    assert str(info.value) == (
        f"{path}: sform and qform disagree by 2 mm at a field-of-view corner;"
        " pass --trust sform|qform"
    )
    sform = read_volume(path, trust="sform").affine
    qform = read_volume(path, trust="qform").affine
    np.testing.assert_allclose(qform[:3, 3] - sform[:3, 3], [0, 2, 0], atol=1e-5)


def test_4d_and_2d_refused(nifti_files):
    with pytest.raises(MedsrError, match=r"four_d.nii.gz: 4D image with 3 volumes"):
        read_volume(nifti_files["four_d"])
    with pytest.raises(MedsrError, match=r"flat.nii.gz: 2D image \(shape \(16, 16, 1\)\)"):
        read_volume(nifti_files["flat"])


def test_nifti_round_trip_sets_sform_and_qform(nifti_files, tmp_path):
    vol = read_volume(nifti_files["scaled"])
    out = write_nifti(vol, tmp_path / "f.nii.gz")
    image = nib.load(out)
    assert image.get_data_dtype() == np.float32
    sform, scode = image.get_sform(coded=True)
    qform, qcode = image.get_qform(coded=True)
    assert scode == 1 and qcode == 1
    np.testing.assert_allclose(sform, vol.affine, atol=1e-6)
    np.testing.assert_allclose(qform, vol.affine, atol=1e-5)
    np.testing.assert_array_equal(image.get_fdata(dtype=np.float32), vol.data)
    # keep dtype: same stored type and scaling, values rounded to the stored grid
    original = vol.data.copy()
    vol.data = vol.data + 0.4
    kept = nib.load(write_nifti(vol, tmp_path / "k.nii.gz", keep_dtype=True))
    assert kept.get_data_dtype() == np.uint8
    assert (kept.dataobj.slope, kept.dataobj.inter) == (2.0, -10.0)
    np.testing.assert_array_equal(kept.get_fdata(), original)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_dicom_reader_matches_tags(mr_series):
    vol = read_volume(mr_series["folder"])
    assert vol.format == "dicom" and vol.modality == "mri"
    n = len(mr_series["positions"])
    assert vol.shape == (10, 12, n)  # (columns, rows, slices)
    # sorted by position, although InstanceNumbers and file names are shuffled
    np.testing.assert_array_equal(vol.data, mr_series["physical"].transpose(2, 1, 0))
    row_sp, col_sp = mr_series["pixel_spacing"]
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    for i, j, k in [(0, 0, 0), (9, 0, 0), (0, 11, 0), (3, 7, n - 1), (9, 11, 2)]:
        # DICOM PS3.3 C.7.6.2.1.1: P = S_k + i * col_spacing * row_cos + j * row_spacing * col_cos
        lps = (
            mr_series["positions"][k]
            + i * col_sp * mr_series["row_cos"]
            + j * row_sp * mr_series["col_cos"]
        )
        np.testing.assert_allclose((vol.affine @ [i, j, k, 1])[:3], lps_to_ras @ lps, atol=1e-5)
    np.testing.assert_allclose(vol.spacing, [col_sp, row_sp, mr_series["step"]], atol=1e-6)


def test_dicom_single_file_reads_its_series(mr_series):
    member = next(p for p in mr_series["folder"].iterdir() if p.name.startswith("s"))
    assert read_volume(member).shape == read_volume(mr_series["folder"]).shape


def test_dicom_several_series_listed_and_selectable(tmp_path):
    first = write_series(tmp_path / "two", series_uid="1.2.3.4", description="first", n=4)
    second = write_series(
        tmp_path / "tmp2", series_uid="1.2.3.5", description="second", n=3, clutter=False
    )
    for p in second["folder"].iterdir():
        shutil.move(p, first["folder"] / f"b_{p.name}")
    with pytest.raises(MedsrError) as info:
        read_volume(first["folder"])
    message = str(info.value)
    assert message.startswith(f"{first['folder']}: 2 DICOM series found; choose one with --series")
    assert "1.2.3.4 #7 'first' (4 slices)" in message
    assert "1.2.3.5 #7 'second' (3 slices)" in message
    assert read_volume(first["folder"], series="1.2.3.5").shape[2] == 3


def test_dicom_gap_and_thickness_warnings(tmp_path):
    gap = write_series(tmp_path / "gap", n=6, skip=(3,), slice_thickness=3.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vol = read_volume(gap["folder"])
    text = " ".join(str(w.message) for w in caught)
    assert "uneven slice spacing: steps from 2.5 to 5 mm" in text
    assert "SliceThickness 3.5 mm differs from the slice spacing 2.5 mm" in text
    assert len(vol.warnings) == 2


def test_dicom_errors(tmp_path, mr_series):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MedsrError, match="empty folder"):
        read_volume(empty)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("hello")
    with pytest.raises(MedsrError, match="no DICOM image slices found"):
        read_volume(tmp_path / "junk")
    # enhanced multi-frame
    multi = tmp_path / "multi"
    multi.mkdir()
    ds = pydicom.dcmread(next(mr_series["folder"].glob("s000")))
    ds.NumberOfFrames = 4
    ds.save_as(multi / "mf.dcm")
    with pytest.raises(MedsrError, match="enhanced/multi-frame DICOM .* is not supported"):
        read_volume(multi)
    # a multi-frame object of another series beside a 3D series does not block it
    mixed = tmp_path / "mixed"
    shutil.copytree(mr_series["folder"], mixed)
    ds.SeriesInstanceUID = "1.2.999"
    ds.save_as(mixed / "mf.dcm")
    # and pydicom's badVR.dcm (NumberOfFrames "1A") is skipped as unreadable, not a crash
    shutil.copy(pydicom.data.get_testdata_file("badVR.dcm"), mixed / "broken.dcm")
    expected = read_volume(mr_series["folder"]).data
    np.testing.assert_array_equal(read_volume(mixed / "s000").data, expected)
    np.testing.assert_array_equal(read_volume(mixed, series=mr_series["series"]).data, expected)
    with pytest.raises(MedsrError, match="mf.dcm: enhanced/multi-frame DICOM"):
        read_volume(mixed / "mf.dcm")
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(mr_series["folder"] / "s000", single / "one.dcm")
    with pytest.raises(MedsrError, match="a single DICOM slice is a 2D image"):
        read_volume(single)
    # a truncated slice is reported, not silently taken for a non-DICOM file
    (single / "two.dcm").write_bytes((mr_series["folder"] / "s001").read_bytes()[:400])
    with pytest.raises(MedsrError, match=r"unreadable: two.dcm \(incomplete image header"):
        read_volume(single)
    # pixel data cut short: the file and the problem are named
    cut = tmp_path / "cut"
    shutil.copytree(mr_series["folder"], cut)
    data = (cut / "s002").read_bytes()
    (cut / "s002").write_bytes(data[:-100])
    with pytest.raises(MedsrError, match=r"s002: cannot decode pixel data"):
        read_volume(cut)


def test_dicom_writer_tags_and_round_trip(mr_series, tmp_path):
    source = read_volume(mr_series["folder"])
    factor = (1, 1, 2)
    affine = upsampled_affine(source.affine, factor)
    data = np.repeat(source.data, 2, axis=2)
    up = Volume(data=data, affine=affine, modality="mri")
    out = write_dicom_series(up, tmp_path / "sr", template=source)
    files = sorted(out.iterdir())
    assert len(files) == 2 * source.shape[2]
    back = read_volume(out)
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(back.data, data)  # values on the stored grid survive exactly
    src0 = pydicom.dcmread(next(mr_series["folder"].glob("s000")))
    uids = set()
    for k, file in enumerate(files):
        ds = pydicom.dcmread(file)
        assert ds.StudyInstanceUID == mr_series["study"]
        assert ds.FrameOfReferenceUID == mr_series["frame"]
        assert ds.PatientID == src0.PatientID
        assert ds.SeriesInstanceUID != mr_series["series"]
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]  # value 3 kept
        assert ds.SeriesDescription == "synthetic T1 SR"
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in mr_series["sop_uids"].values()
        assert (ds.Rows, ds.Columns) == (12, 10)
        assert float(ds.SliceThickness) == pytest.approx(1.25, abs=1e-6)
        assert float(ds.SpacingBetweenSlices) == pytest.approx(1.25, abs=1e-6)
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.8, 0.7], atol=1e-9)
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine @ [0, 0, k, 1]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], lps[:3], atol=1e-6)
        assert (ds.BitsStored, ds.PixelRepresentation) == (16, 1)
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (2.0, -100.0)
        uids.add(ds.SOPInstanceUID)
    assert len(uids) == len(files)
    # the first new slice sits -(s-1)/(2s) = -1/4 old slice step below the first old one
    first = np.array([float(v) for v in pydicom.dcmread(files[0]).ImagePositionPatient])
    normal = np.cross(mr_series["row_cos"], mr_series["col_cos"])
    np.testing.assert_allclose(first, mr_series["positions"][0] - 0.25 * 2.5 * normal, atol=1e-6)


def test_dicom_output_refuses_existing(mr_series, tmp_path):
    source = read_volume(mr_series["folder"])
    (tmp_path / "exists").mkdir()
    with pytest.raises(MedsrError, match="already exists"):
        write_dicom_series(source, tmp_path / "exists", template=source)


def test_nifti_to_new_dicom_series(nifti_files, tmp_path):
    vol = read_volume(nifti_files["aniso"])  # float32 values, oblique
    vol.modality = "mri"
    out = write_dicom_series(vol, tmp_path / "new", template=vol)
    back = read_volume(out)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    ds = pydicom.dcmread(sorted(out.iterdir())[0])
    slope = float(ds.RescaleSlope)
    assert slope == pytest.approx(vol.data.max() / 32000, rel=1e-6)
    assert np.abs(back.data - vol.data).max() <= slope / 2 + 1e-6
    assert ds.Modality == "MR" and ds.PatientName == "ANONYMOUS"
    assert "SourceImageSequence" not in ds
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "OTHER"]


def test_oblique_nifti_keeps_orientation(tmp_path):
    affine = oblique_affine((0.5, 0.75, 2.0), angles_deg=(30, 20, 10))
    path = write_fixture(tmp_path / "o.nii", phantom((6, 5, 4)), affine, dtype=np.float32)
    np.testing.assert_allclose(read_volume(path).affine, affine, atol=1e-6)


def test_sheared_affine_writes_sform_only(tmp_path):
    affine = oblique_affine((1.0, 1.0, 2.0))
    affine[:3, 2] += affine[:3, 0] * 0.2  # gantry-tilt-like shear of the slice axis
    vol = Volume(data=phantom((6, 5, 4)), affine=affine)
    image = nib.load(write_nifti(vol, tmp_path / "s.nii.gz"))
    assert image.get_qform(coded=True)[1] == 0
    np.testing.assert_allclose(read_volume(tmp_path / "s.nii.gz").affine, affine, atol=1e-5)


def test_a_truncated_nifti_is_refused_from_its_size_before_any_allocation(tmp_path, monkeypatch):
    """A header declaring more voxel bytes than the file holds fails before the memory
    check and the read (which would zero-fill the declared size first)."""
    import srkit.medsr.io.nifti as nifti_module

    def no_allocation(*args, **kwargs):
        raise AssertionError("reached the allocation path")

    monkeypatch.setattr(nifti_module, "check_memory", no_allocation)
    path = tmp_path / "cut.nii"
    nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)).to_filename(path)
    whole = path.read_bytes()
    path.write_bytes(whole[:-100])  # 100 bytes of the 2048 voxel bytes missing
    with pytest.raises(MedsrError, match=r"Expected 2048 bytes, got 1948 bytes .*truncated"):
        read_volume(path)
