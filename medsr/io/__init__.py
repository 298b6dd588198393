"""Reading and writing volumes: NIfTI/MGZ (nibabel) and DICOM series (pydicom).

- :mod:`.volume`: the :class:`Volume` every reader returns (data in physical units, a RAS
  affine, typed format metadata) and its geometry-keeping :meth:`Volume.crop`;
- :mod:`.nifti`: NIfTI/MGZ reading with checked geometry, and writing;
- :mod:`.dicom_read` / :mod:`.dicom_write`: one DICOM series in, a derived series out.

Writers named ``write_*`` are atomic (:func:`common.io.atomic_output`); ``save_*`` write at
exactly the path given, for callers that manage the temporary themselves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import MedsrError, input_error
from .dicom_read import is_dicom_file, read_dicom_series
from .dicom_write import check_uid_root, save_dicom_series, write_dicom_series
from .nifti import check_affine, nifti_image, nifti_volume, read_nifti, save_nifti, write_nifti
from .volume import (
    LPS_TO_RAS,
    NIFTI_SUFFIXES,
    DicomMeta,
    NiftiMeta,
    Volume,
    is_nifti_path,
    sha256_of,
)

__all__ = [
    "LPS_TO_RAS",
    "NIFTI_SUFFIXES",
    "DicomMeta",
    "NiftiMeta",
    "Volume",
    "check_affine",
    "check_uid_root",
    "is_nifti_path",
    "nifti_image",
    "nifti_volume",
    "output_format",
    "read_dicom_series",
    "read_nifti",
    "read_volume",
    "save_dicom_series",
    "save_nifti",
    "sha256_of",
    "write_dicom_series",
    "write_nifti",
    "write_volume",
]


def read_volume(
    path: str | os.PathLike, *, trust: str | None = None, series: str | None = None
) -> Volume:
    """Reads a NIfTI/MGZ file or a DICOM series (a folder, or one file of the series).

    Args:
        path: ``.nii``/``.nii.gz``/``.mgz`` file, DICOM folder, or a DICOM file (its
            folder's series containing that file is read).
        trust: NIfTI only: ``"sform"`` or ``"qform"`` when the two disagree.
        series: DICOM only: SeriesInstanceUID (or a unique prefix, or SeriesNumber) to
            pick when the folder holds several series.

    Raises:
        MedsrError: ``"<path>: <problem>"`` for anything unreadable or unsupported.
    """
    path = Path(path)
    if not path.exists():
        raise input_error(path, "no such file or folder")
    if path.is_dir():
        return read_dicom_series(path, series=series)
    if not path.is_file():
        raise input_error(path, "not a regular file (a FIFO, socket or device)")
    if path.stat().st_size == 0:
        raise input_error(path, "empty file")
    if is_nifti_path(path):
        return read_nifti(path, trust=trust)
    if is_dicom_file(path):
        return read_dicom_series(path.parent, series=series, member=path)
    raise input_error(path, "not a NIfTI/MGZ file (.nii, .nii.gz, .mgz) or a DICOM file/folder")


def output_format(path: str | os.PathLike) -> str:
    """``"nifti"`` for .nii/.nii.gz/.mgz names, ``"dicom"`` for anything else (a folder)."""
    return "nifti" if is_nifti_path(path) else "dicom"


def write_volume(
    volume: Volume,
    path: str | os.PathLike,
    *,
    template: Volume | None = None,
    keep_dtype: bool = False,
    **dicom_options: Any,
) -> Path:
    """Writes NIfTI (``.nii``/``.nii.gz``) or a derived DICOM series (any other path)."""
    if output_format(path) == "nifti":
        if str(path).lower().endswith((".mgz", ".mgh")):
            raise MedsrError(f"{path}: writing MGZ is not supported; use .nii or .nii.gz")
        return write_nifti(volume, path, keep_dtype=keep_dtype)
    return write_dicom_series(volume, path, template=template or volume, **dicom_options)
