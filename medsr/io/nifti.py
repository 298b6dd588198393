"""NIfTI-1/2 and MGZ volumes through nibabel: reading with checked geometry, writing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from srkit.common.io import atomic_output
from srkit.common.resources import check_memory

from ..errors import input_error
from ..geometry import fov_corners, voxel_sizes
from .volume import NiftiMeta, Volume, short_message, stored_values, warn_into

QFORM_TOLERANCE_MM = 0.01


def _max_corner_mm(a: np.ndarray, b: np.ndarray, shape: Sequence[int]) -> float:
    return float(np.abs(fov_corners(a, shape) - fov_corners(b, shape)).max())


def read_nifti(path: str | os.PathLike, *, trust: str | None = None) -> Volume:
    """Reads a NIfTI-1/2 or MGZ volume with scaling applied and checked geometry.

    The sform and qform (when both are set) must agree within 0.01 mm at every
    field-of-view corner, otherwise ``trust="sform"|"qform"`` must choose. Without that
    check, nibabel's rule applies (sform if set, else qform, else voxel sizes only).
    Trailing singleton axes are dropped; 4D data with several volumes and 2D images are
    refused.
    """
    import nibabel as nib

    path = Path(path)
    if trust not in (None, "sform", "qform"):
        raise input_error(path, f"trust must be 'sform' or 'qform', got {trust!r}")
    try:
        image = nib.load(str(path))
    except FileNotFoundError:
        raise input_error(path, "no such file") from None
    except Exception as exc:
        raise input_error(path, f"not a readable NIfTI/MGZ file ({short_message(exc)})") from None
    return nifti_volume(image, path, trust=trust)


def nifti_volume(image, path: str | os.PathLike, *, trust: str | None = None) -> Volume:
    """The :class:`Volume` of a nibabel image (loaded, or made in memory), with the checks
    of :func:`read_nifti`; ``path`` is the name errors and warnings give (and the source).
    """
    import nibabel as nib

    path = Path(path)
    if trust not in (None, "sform", "qform"):
        raise input_error(path, f"trust must be 'sform' or 'qform', got {trust!r}")
    shape = tuple(int(n) for n in image.shape)
    if 0 in shape:
        raise input_error(path, f"a dimension has size 0 (shape {shape}); the image is empty")
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise input_error(
            path,
            f"{len(shape)}D image with {int(np.prod(shape[3:]))} volumes (shape {shape}) is not"
            " supported; split it into 3D volumes first (e.g. fslsplit or"
            " nibabel.four_to_three)",
        )
    if len(shape) < 3 or min(shape) == 1:
        raise input_error(path, f"2D image (shape {shape}); medsr needs a 3D volume")
    _check_voxel_type(path, image.get_data_dtype())
    affine = np.asarray(image.affine, dtype=np.float64)
    found: list[str] = []
    if isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        sform, scode = image.get_sform(coded=True)
        try:
            qform, qcode = image.get_qform(coded=True)
        except ValueError as exc:  # nibabel: the quaternion is not a rotation
            raise input_error(
                path, f"the qform is not a rotation (quatern_b/c/d invalid: {short_message(exc)})"
            ) from None
        if sform is not None and qform is not None:
            gap = _max_corner_mm(sform, qform, shape)
            if not gap <= QFORM_TOLERANCE_MM and trust is None:  # NaN counts as apart
                raise input_error(
                    path,
                    f"sform and qform disagree by {gap:.3g} mm at a field-of-view corner;"
                    " pass --trust sform|qform",
                )
        if trust == "sform":
            if sform is None:
                raise input_error(path, "--trust sform: the file has no sform (sform_code 0)")
            affine = np.asarray(sform, dtype=np.float64)
        elif trust == "qform":
            if qform is None:
                raise input_error(path, "--trust qform: the file has no qform (qform_code 0)")
            affine = np.asarray(qform, dtype=np.float64)
        if sform is None and qform is None:
            found.append("no sform or qform set: using voxel sizes only (orientation unknown)")
    check_affine(path, affine)
    _check_not_truncated(path, image, shape)
    check_memory(path, shape, "reading")
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # counted and reported below
            data = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as exc:
        raise input_error(path, f"cannot read the voxel data ({short_message(exc)})") from None
    invalid = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if invalid:
        found.append(
            f"{invalid} voxel(s) are NaN, infinite or beyond the float32 range; they are"
            " treated as missing (NaN in the output)"
        )
    slope = getattr(image.dataobj, "slope", 1.0)
    inter = getattr(image.dataobj, "inter", 0.0)
    volume = Volume(
        data=np.ascontiguousarray(data, dtype=np.float32),
        affine=affine,
        source=path,
        format="nifti",
        stored_dtype=str(image.get_data_dtype()),
        slope=float(slope) if np.isfinite(slope) else 1.0,
        inter=float(inter) if np.isfinite(inter) else 0.0,
        meta=NiftiMeta(image.header.copy()),
    )
    for message in found:
        warn_into(volume.warnings, path, message)
    return volume


def _check_not_truncated(path: Path, image, shape: Sequence[int]) -> None:
    """An uncompressed single-file NIfTI must hold the voxel bytes its header declares.

    Checked from the file size before anything is allocated, so a 352-byte file declaring
    1500^3 voxels fails at once instead of after zero-filling 13.5 GB. Compressed files
    (their size says nothing exact) and MGZ are left to the reader.
    """
    header = getattr(image, "header", None)
    offset = getattr(image.dataobj, "offset", None)
    if header is None or offset is None or path.suffix.lower() != ".nii":
        return
    needed = int(np.prod(shape, dtype=np.int64)) * np.dtype(image.get_data_dtype()).itemsize
    held = path.stat().st_size - int(offset)
    if held < needed:
        raise input_error(
            path,
            f"cannot read the voxel data (Expected {needed} bytes, got {max(held, 0)} bytes"
            f" after the {int(offset)}-byte header: the file is truncated)",
        )


def _check_voxel_type(path: Path, dtype: np.dtype) -> None:
    """Refuses voxel types that are not one real number per voxel (RGB, complex)."""
    dtype = np.dtype(dtype)
    if dtype.fields is not None or dtype.kind == "V":
        names = ",".join(dtype.names or ()) or str(dtype)
        raise input_error(
            path, f"voxels are {names} records (an RGB image?); medsr needs one value per voxel"
        )
    if dtype.kind == "c":
        raise input_error(path, f"complex-valued voxels ({dtype}) are not supported")
    if dtype.kind not in "biuf":
        raise input_error(path, f"voxel type {dtype} is not supported")


def check_affine(path: str | os.PathLike, affine: np.ndarray) -> None:
    """Refuses an affine that cannot place voxels in space: non-finite or singular."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise input_error(path, "the affine (sform/qform) has NaN or infinite entries")
    linear = affine[:3, :3]
    norms = np.linalg.norm(linear, axis=0)
    if (norms == 0).any():
        raise input_error(path, "the affine has a zero voxel axis (a zero column); singular")
    unit = linear / norms
    if abs(np.linalg.det(unit)) < 1e-6:
        raise input_error(
            path, "the affine is singular (two voxel axes point the same way); cannot place voxels"
        )


def _is_sheared(affine: np.ndarray) -> bool:
    columns = affine[:3, :3] / voxel_sizes(affine)
    return bool(np.abs(columns.T @ columns - np.eye(3)).max() > 1e-6)


def nifti_image(volume: Volume, *, keep_dtype: bool = False):
    """A nibabel image of ``volume`` with sform and qform both set to its affine.

    Float32 by default. ``keep_dtype``: the input's stored dtype; integer types are
    rounded and clipped, and the input's scl_slope/inter are kept so units stay right.
    """
    import nibabel as nib

    dtype = np.dtype(volume.stored_dtype) if keep_dtype else np.dtype(np.float32)
    if np.issubdtype(dtype, np.integer):
        raw, _ = stored_values(volume.data, dtype, volume.slope, volume.inter)
        image = nib.Nifti1Image(raw, volume.affine)
        scaled = (volume.slope, volume.inter) != (1.0, 0.0)
    else:
        image = nib.Nifti1Image(volume.data.astype(dtype), volume.affine)
        scaled = False
    codes = (1, 1)
    source_header = volume.meta.header if isinstance(volume.meta, NiftiMeta) else None
    if isinstance(source_header, nib.Nifti1Header):
        scode, qcode = int(source_header["sform_code"]), int(source_header["qform_code"])
        codes = (scode or qcode or 1, qcode or scode or 1)
        image.header.set_xyzt_units(*source_header.get_xyzt_units())
    else:
        image.header.set_xyzt_units("mm")
    image.set_sform(volume.affine, code=codes[0])
    if _is_sheared(volume.affine):  # a qform cannot hold shear (e.g. CT gantry tilt)
        image.set_qform(None, code=0)
    else:
        image.set_qform(volume.affine, code=codes[1])
    image.header.set_data_dtype(dtype)
    if scaled:
        image.header.set_slope_inter(volume.slope, volume.inter)
    return image, scaled


def save_nifti(volume: Volume, path: str | os.PathLike, *, keep_dtype: bool = False) -> None:
    """Writes ``volume`` as NIfTI at exactly ``path`` (not atomic; see :func:`write_nifti`)."""
    import nibabel as nib

    image, _ = nifti_image(volume, keep_dtype=keep_dtype)
    nib.save(image, os.fspath(path))


def write_nifti(
    volume: Volume, path: str | os.PathLike, *, keep_dtype: bool = False, overwrite: bool = True
) -> Path:
    """Writes ``volume`` to ``path`` atomically (:func:`common.io.atomic_output`)."""
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temporary:
        save_nifti(volume, temporary, keep_dtype=keep_dtype)
    return path
