"""Hostile inputs to ``medsr enhance``: each is one clean error, and nothing changes.

Every case is generated here (nothing from ../shared/data) and asserts: exit code 2, one
``error:`` line on stderr that names the file, no traceback, no output or temporary left
in the work folder, and the input unchanged byte for byte.
"""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom import config as dicom_config

from tests.data.dicom import write_series
from tests.data.nifti import oblique_affine, phantom
from tests.medsr.test_cli import run
from tests.medsr.test_outputs import snapshot


def _nifti(path: Path, data, affine=None, *, sform=None) -> Path:
    if sform is None:
        image = nib.Nifti1Image(data, oblique_affine() if affine is None else affine)
    else:  # written as given: no affine on the image, so nibabel keeps the header's
        image = nib.Nifti1Image(data, None)
        image.header.set_sform(sform, 1)
        image.header["qform_code"] = 0
    image.to_filename(path)
    return path


def _good(path: Path) -> Path:
    return _nifti(path, phantom((12, 12, 8), 0).astype(np.float32))


def _singular() -> np.ndarray:
    a = oblique_affine()
    a[1, :3] = a[0, :3]
    return a


def _zero_row() -> np.ndarray:
    a = oblique_affine()
    a[1, :] = 0
    return a


def _nan_sform() -> np.ndarray:
    a = oblique_affine()
    a[0, 0] = np.nan
    return a


def _huge_header(path: Path) -> Path:
    header = nib.Nifti1Header()
    header.set_data_shape((1500, 1500, 1500))
    header.set_data_dtype(np.float32)
    path.write_bytes(header.binaryblock + b"\0" * 4)  # 352 bytes declaring 13.5 GB
    return path


def _rgb(path: Path) -> Path:
    data = np.zeros((8, 8, 8), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.Nifti1Image(data, oblique_affine()).to_filename(path)
    return path


def _truncated_gzip(path: Path, work: Path) -> Path:
    blob = gzip.compress(_good(work / "full.nii").read_bytes())
    (work / "full.nii").unlink()
    path.write_bytes(blob[: len(blob) // 2])
    return path


NIFTI_CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "empty": (lambda p, w: (p.write_bytes(b""), p)[1], "empty file"),
    "garbage": (lambda p, w: (p.write_bytes(b"\x1f\x8bnot gzip"), p)[1], "not a readable NIfTI"),
    "truncated_gzip": (_truncated_gzip, "cannot read the voxel data"),
    "zero_size": (lambda p, w: _nifti(p, np.zeros((0, 10, 10), np.float32)), "size 0"),
    "five_d": (
        lambda p, w: _nifti(p, np.zeros((8, 8, 8, 2, 2), np.float32)),
        "5D image with 4 volumes",
    ),
    "rgb": (lambda p, w: _rgb(p), "R,G,B records"),
    "complex": (
        lambda p, w: _nifti(p, np.ones((8, 8, 8), np.complex64)),
        "complex-valued voxels",
    ),
    "singular_sform": (
        lambda p, w: _nifti(p, np.ones((8, 8, 8), np.float32), sform=_singular()),
        "the affine is singular",
    ),
    "zero_row_sform": (
        lambda p, w: _nifti(p, np.ones((8, 8, 8), np.float32), sform=_zero_row()),
        "the affine is singular",
    ),
    "nan_sform": (
        lambda p, w: _nifti(p, np.ones((8, 8, 8), np.float32), sform=_nan_sform()),
        "NaN or infinite entries",
    ),
    "huge_header": (lambda p, w: _huge_header(p.with_suffix("")), "Expected 13500000000 bytes"),
}


@pytest.mark.parametrize("case", sorted(NIFTI_CASES))
def test_hostile_nifti(tmp_path, case):
    make, expected = NIFTI_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    source = make(work / f"{case}.nii.gz", work)
    _assert_clean_failure(tmp_path, ["enhance", source], source.name, expected)


def _dicom_variant(work: Path, edit: Callable[[pydicom.Dataset], None]) -> Path:
    folder = work / "series"
    write_series(folder, clutter=False)
    with dicom_config.disable_value_validation():
        for path in sorted(folder.iterdir()):
            ds = pydicom.dcmread(path)
            edit(ds)
            ds.save_as(path)
    return folder


def _set_text(tag: int, text: str) -> Callable[[pydicom.Dataset], None]:
    def edit(ds):
        ds.add(pydicom.DataElement(tag, "LO", text))

    return edit


DICOM_CASES: dict[str, tuple[Callable[[pydicom.Dataset], None], str]] = {
    "no_position": (lambda ds: delattr(ds, "ImagePositionPatient"), "no ImagePositionPatient"),
    "no_spacing": (lambda ds: delattr(ds, "PixelSpacing"), "no PixelSpacing"),
    "one_spacing": (_set_text(0x00280030, "0.5"), "PixelSpacing '0.5' is not 2"),
    "text_orientation": (
        _set_text(0x00200037, "a\\b\\c\\d\\e\\f"),
        "ImageOrientationPatient 'a\\b\\c\\d\\e\\f' is not 6 numbers",
    ),
    "zero_orientation": (
        _set_text(0x00200037, "0\\0\\0\\0\\0\\0"),
        "is not two perpendicular unit vectors",
    ),
    "nan_slope": (_set_text(0x00281053, "NaN"), "RescaleSlope 'NaN' is not a finite number"),
}


@pytest.mark.parametrize("case", sorted(DICOM_CASES))
def test_hostile_dicom(tmp_path, case):
    edit, expected = DICOM_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    folder = _dicom_variant(work, edit)
    _assert_clean_failure(
        tmp_path, ["enhance", folder, "-o", tmp_path / "out.nii.gz"], "series", expected
    )


def test_two_series_without_series_option(tmp_path):
    work = tmp_path / "work"
    write_series(work / "study", series_uid="1.2.3.4", clutter=False)
    write_series(work / "study" / "b", series_uid="1.2.3.5", seed=1, clutter=False)
    _assert_clean_failure(
        tmp_path,
        ["enhance", work / "study", "-o", tmp_path / "o.nii.gz"],
        "study",
        "2 DICOM series found; choose one with --series",
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--device", "foo"], "--device foo: not a torch device (use cpu, cuda, cuda:N or mps)"),
        (["--scale", "1000"], "the output needs"),
        (["--target-spacing", "0.001"], "the output needs"),
        (["-o", "{tmp}/missing/out.nii.gz"], "the output's folder does not exist"),
        (["-o", "{tmp}/out.png"], "unknown output extension '.png'"),
        (["-o", "{tmp}/link.nii.gz"], "output is the input"),
    ],
)
def test_hostile_options(tmp_path, monkeypatch, extra, expected):
    monkeypatch.setenv("SRKIT_MEMORY_LIMIT", "2G")  # the same limit on every machine
    work = tmp_path / "work"
    work.mkdir()
    source = _good(work / "scan.nii.gz")
    (tmp_path / "link.nii.gz").symlink_to(source)
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    # the message names what it is about: the option, the output, or the input
    name = "--device foo" if "--device" in extra else "scan.nii.gz"
    if "-o" in extra:
        name = Path(extra[extra.index("-o") + 1]).name
    _assert_clean_failure(tmp_path, ["enhance", source, *extra], name, expected)


def test_a_fifo_is_refused(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    fifo = work / "pipe.nii.gz"
    os.mkfifo(fifo)
    _assert_clean_failure(tmp_path, ["enhance", fifo], "pipe.nii.gz", "not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write in a read-only folder")
def test_an_unwritable_output_folder_is_found_before_any_work(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    source = _good(work / "scan.nii.gz")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        _assert_clean_failure(
            tmp_path, ["enhance", source, "-o", locked / "o.nii.gz"], "o.nii.gz", "not writable"
        )
    finally:
        locked.chmod(stat.S_IRWXU)


def _assert_clean_failure(root: Path, args: list, name: str, expected: str) -> None:
    before = snapshot(root)
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and name in lines[0], lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert snapshot(root) == before
    leftovers = [p for p in root.rglob("*") if ".partial" in p.name or p.name.endswith(".json")]
    assert leftovers == []
