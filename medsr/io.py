"""Reading and writing volumes: NIfTI/MGZ (nibabel) and DICOM series (pydicom).

Every reader returns a :class:`Volume`: float32 data indexed ``(i, j, k)`` in physical
units (scl_slope/inter or RescaleSlope/Intercept applied, CT in HU), a 4x4 affine from
voxel centres to RAS millimetres, and what is needed to write a faithful output.
DICOM voxel ``i`` runs along the row direction (columns, ``ImageOrientationPatient[:3]``),
``j`` along the column direction (rows, ``[3:]``) and ``k`` along the slice normal; the LPS
affine of the DICOM standard is turned into RAS by negating its first two rows, the
convention of nibabel and dcm2niix.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.io import atomic_output

from .errors import MedsrError, input_error
from .geometry import fov_corners, voxel_sizes

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
QFORM_TOLERANCE_MM = 0.01
SPACING_TOLERANCE = 0.01  # relative deviation of one slice step from the median step
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
ENHANCED_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
}
STORAGE_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}


@dataclass
class Volume:
    """A 3D scalar volume with its geometry and provenance.

    Attributes:
        data: float32 ``(X, Y, Z)`` in physical units (NaN where undefined).
        affine: 4x4 float64, voxel-centre indices to RAS mm.
        modality: ``"mri"``, ``"ct"`` or ``None`` (unknown; see ``intensity.detect_modality``).
        source: the file or folder read.
        format: ``"nifti"`` or ``"dicom"``.
        stored_dtype: numpy dtype name of the stored values (before scaling).
        slope, inter: the stored-to-physical scaling (``value = stored * slope + inter``).
        header: format-specific metadata: ``{"nifti": header}`` or
            ``{"datasets": [...], "series_uid": ...}`` (DICOM headers, one per slice, sorted).
        warnings: problems noticed while reading that did not stop it.
    """

    data: np.ndarray
    affine: np.ndarray
    modality: str | None = None
    source: Path | None = None
    format: str = "nifti"
    stored_dtype: str = "float32"
    slope: float = 1.0
    inter: float = 0.0
    header: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm per voxel axis."""
        return voxel_sizes(self.affine)

    @property
    def shape(self) -> tuple[int, ...]:
        """The voxel grid shape ``(X, Y, Z)``."""
        return tuple(self.data.shape)

    @property
    def source_files(self) -> tuple[Path, ...]:
        """Every file the volume was read from (the DICOM slice files, or the one NIfTI)."""
        files = self.header.get("files")
        if files:
            return tuple(Path(f) for f in files)
        return (self.source,) if self.source is not None else ()


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True when the name ends in .nii, .nii.gz, .mgz or .mgh."""
    name = str(path).lower()
    return name.endswith(NIFTI_SUFFIXES)


def sha256_of(path: str | os.PathLike, files: Sequence[Path] | None = None) -> str:
    """SHA-256 of a file, or of several files (relative names and contents, sorted).

    ``files`` (e.g. the slices of a DICOM series) default to every file below a folder.
    """
    path = Path(path)
    if files is None:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    root = path if path.is_dir() else path.parent
    digest = hashlib.sha256()
    for file in sorted(files):
        if len(files) > 1 or path.is_dir():
            digest.update(str(Path(file).relative_to(root)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _warn(volume_warnings: list[str], path: Path, message: str) -> None:
    volume_warnings.append(message)
    warnings.warn(f"{path}: {message}", stacklevel=3)


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
    if path.stat().st_size == 0:
        raise input_error(path, "empty file")
    if is_nifti_path(path):
        return read_nifti(path, trust=trust)
    if _is_dicom_file(path):
        return read_dicom_series(path.parent, series=series, member=path)
    raise input_error(path, "not a NIfTI/MGZ file (.nii, .nii.gz, .mgz) or a DICOM file/folder")


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
        raise input_error(path, f"not a readable NIfTI/MGZ file ({_short(exc)})") from None
    shape = tuple(int(n) for n in image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise input_error(
            path,
            f"4D image with {int(np.prod(shape[3:]))} volumes (shape {shape}) is not supported;"
            " split it into 3D volumes first (e.g. fslsplit or nibabel.four_to_three)",
        )
    if len(shape) < 3 or min(shape) == 1:
        raise input_error(path, f"2D image (shape {shape}); medsr needs a 3D volume")
    affine = np.asarray(image.affine, dtype=np.float64)
    found: list[str] = []
    if isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        sform, scode = image.get_sform(coded=True)
        qform, qcode = image.get_qform(coded=True)
        if sform is not None and qform is not None:
            gap = _max_corner_mm(sform, qform, shape)
            if gap > QFORM_TOLERANCE_MM and trust is None:
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
    try:
        data = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as exc:
        raise input_error(path, f"cannot read the voxel data ({_short(exc)})") from None
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
        header={"nifti": image.header.copy()},
    )
    for message in found:
        _warn(volume.warnings, path, message)
    return volume


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- DICOM reading


def _is_dicom_file(path: Path) -> bool:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return True
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False


def _has_dicom_magic(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _slice_normal(ds) -> np.ndarray:
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
    return np.cross(iop[:3], iop[3:])


def _series_uid(ds) -> str:
    return str(ds.get("SeriesInstanceUID", "") or "")


def _list_series(groups: dict[str, list]) -> str:
    parts = []
    for uid, items in groups.items():
        ds = items[0][1]
        parts.append(
            f"{uid or '(no UID)'} #{ds.get('SeriesNumber', '?')}"
            f" '{ds.get('SeriesDescription', '')}' ({len(items)} slices)"
        )
    return "; ".join(parts)


def _pick_series(folder: Path, groups: dict[str, list], series: str | None) -> str:
    if series is None:
        if len(groups) == 1:
            return next(iter(groups))
        raise input_error(
            folder,
            f"{len(groups)} DICOM series found; choose one with --series: {_list_series(groups)}",
        )
    matches = [uid for uid in groups if uid == series]
    matches = matches or [uid for uid in groups if uid.startswith(series)]
    matches = matches or [
        uid for uid, items in groups.items() if str(items[0][1].get("SeriesNumber", "")) == series
    ]
    if len(matches) != 1:
        raise input_error(
            folder,
            f"--series {series!r} matches {len(matches)} series; found: {_list_series(groups)}",
        )
    return matches[0]


def read_dicom_series(
    folder: str | os.PathLike, *, series: str | None = None, member: Path | None = None
) -> Volume:
    """Reads one DICOM series from a folder (searched recursively) as a RAS volume.

    Files that are not DICOM (README, DICOMDIR, images without pixel data) are skipped.
    Slices are sorted by their position along the slice normal (the cross product of the
    ImageOrientationPatient rows and columns), not by InstanceNumber. The slice step is
    taken from the positions; a warning is recorded when SliceThickness differs from it
    by more than 1 %, or when steps are uneven (gaps). RescaleSlope/Intercept are applied
    per slice. Compressed transfer syntaxes decode through pydicom's pixel handlers
    (pylibjpeg for JPEG 2000 / JPEG-LS / JPEG).

    Raises:
        MedsrError: no DICOM images, several series without ``series``, enhanced
            multi-frame objects, a single slice (2D), mixed orientations or sizes,
            duplicate positions, or undecodable pixel data.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise input_error(folder, "empty folder (no files)")
    groups: dict[str, list] = {}
    multiframe: dict[str, tuple[Path, str]] = {}
    unreadable: list[str] = []
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except InvalidDicomError as exc:
            if _has_dicom_magic(file):  # a DICOM file that is truncated or corrupt
                unreadable.append(f"{file.name} ({_short(exc)})")
            continue
        except Exception as exc:
            unreadable.append(f"{file.name} ({_short(exc)})")
            continue
        sop_class = str(
            ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "")
        )
        if sop_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
            continue
        try:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            unreadable.append(f"{file.name} (invalid NumberOfFrames)")
            continue
        if sop_class in ENHANCED_CLASSES or frames > 1:
            # an error only if it belongs to the series asked for (checked below)
            kind = ENHANCED_CLASSES.get(sop_class, "NumberOfFrames > 1")
            multiframe.setdefault(_series_uid(ds), (file, kind))
            groups.setdefault(_series_uid(ds), []).append((file, ds))
            continue
        if (
            "Rows" not in ds
            or "ImagePositionPatient" not in ds
            or "ImageOrientationPatient" not in ds
        ):
            media = str(ds.file_meta.get("MediaStorageSOPClassUID", ""))
            if {sop_class, media} & set(STORAGE_CLASSES.values()):
                unreadable.append(f"{file.name} (incomplete image header; truncated?)")
            continue  # not an image slice (structured report, presentation state, ...)
        groups.setdefault(_series_uid(ds), []).append((file, ds))
    if member is not None:
        uid = next((u for u, items in groups.items() if any(f == member for f, _ in items)), None)
        if uid is None:
            raise input_error(member, "not a DICOM image slice")
        chosen = uid
    elif not groups:
        detail = f"; unreadable: {', '.join(unreadable[:3])}" if unreadable else ""
        raise input_error(folder, f"no DICOM image slices found{detail}")
    else:
        chosen = _pick_series(folder, groups, series)
    if chosen in multiframe:
        file, kind = multiframe[chosen]
        raise input_error(
            file,
            f"enhanced/multi-frame DICOM ({kind}) is not supported;"
            " convert it to single-frame slices or NIfTI (e.g. dcm2niix)",
        )
    items = groups[chosen]
    found: list[str] = []
    if unreadable:
        found.append(f"skipped {len(unreadable)} unreadable file(s): {', '.join(unreadable[:3])}")

    first = items[0][1]
    iop0 = np.asarray([float(v) for v in first.ImageOrientationPatient])
    size0 = (int(first.Rows), int(first.Columns))
    for file, ds in items:
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        if np.abs(iop - iop0).max() > 1e-4:
            raise input_error(file, "slices of the series have different orientations (localizer?)")
        if (int(ds.Rows), int(ds.Columns)) != size0:
            raise input_error(file, f"slice size {ds.Rows}x{ds.Columns} differs from {size0}")
    if len(items) < 2:
        detail = f" (unreadable: {', '.join(unreadable[:3])})" if unreadable else ""
        raise input_error(
            items[0][0], f"a single DICOM slice is a 2D image; medsr needs a 3D series{detail}"
        )
    normal = _slice_normal(first)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in items])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    items = [items[i] for i in order]
    positions, along = positions[order], along[order]
    steps = np.diff(along)
    if np.any(steps < 1e-4):
        dup = items[int(np.argmin(steps)) + 1][0]
        raise input_error(
            dup,
            "two slices share one position (multi-echo, multi-phase or repeated series?);"
            " split the series first",
        )
    step = float(np.median(steps))
    if np.abs(steps - step).max() > SPACING_TOLERANCE * step:
        found.append(
            f"uneven slice spacing: steps from {steps.min():.4g} to {steps.max():.4g} mm"
            f" (median {step:.4g} mm); gaps or missing slices? the volume assumes even spacing"
        )
    thickness = first.get("SliceThickness")
    if thickness not in (None, "") and abs(float(thickness) - step) > SPACING_TOLERANCE * step:
        found.append(
            f"SliceThickness {float(thickness):.4g} mm differs from the slice spacing"
            f" {step:.4g} mm (overlapping or gapped slices); geometry uses the spacing"
        )
    rows_cos, cols_cos = iop0[:3], iop0[3:]
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = rows_cos * col_spacing  # i: along a row (column index), step = column spacing
    lps[:3, 1] = cols_cos * row_spacing  # j: down a column (row index), step = row spacing
    lps[:3, 2] = (positions[-1] - positions[0]) / (len(items) - 1)
    lps[:3, 3] = positions[0]
    lateral = positions - positions[0] - np.outer(along - along[0], normal)
    if np.abs(lateral).max() > 0.01:
        found.append(
            "slice positions drift sideways from the slice normal (gantry tilt?);"
            " the affine is sheared accordingly"
        )

    slices = []
    datasets = []
    for file, _ in items:
        try:
            ds = pydicom.dcmread(file)
            pixels = ds.pixel_array
        except Exception as exc:
            syntax = ""
            try:
                syntax = f" (transfer syntax {ds.file_meta.TransferSyntaxUID.name})"
            except Exception:
                pass
            raise input_error(file, f"cannot decode pixel data{syntax}: {_short(exc)}") from None
        if pixels.ndim != 2:
            raise input_error(file, f"pixel data of shape {pixels.shape} is not a grayscale slice")
        slope = float(ds.get("RescaleSlope", 1) or 1)
        inter = float(ds.get("RescaleIntercept", 0) or 0)
        slices.append((pixels.astype(np.float64) * slope + inter).T.astype(np.float32))
        stored_dtype = str(pixels.dtype)
        del ds.PixelData
        datasets.append(ds)
    modality = {"CT": "ct", "MR": "mri"}.get(str(first.get("Modality", "")).upper())
    volume = Volume(
        data=np.ascontiguousarray(np.stack(slices, axis=-1)),
        affine=LPS_TO_RAS @ lps,
        modality=modality,
        source=folder,
        format="dicom",
        stored_dtype=stored_dtype,
        slope=float(first.get("RescaleSlope", 1) or 1),
        inter=float(first.get("RescaleIntercept", 0) or 0),
        header={"datasets": datasets, "series_uid": chosen, "files": [f for f, _ in items]},
    )
    for message in found:
        _warn(volume.warnings, folder, message)
    return volume


# --------------------------------------------------------------------------- writing


def output_format(path: str | os.PathLike) -> str:
    """``"nifti"`` for .nii/.nii.gz/.mgz names, ``"dicom"`` for anything else (a folder)."""
    return "nifti" if is_nifti_path(path) else "dicom"


def _stored_values(
    data: np.ndarray,
    dtype: np.dtype,
    slope: float,
    inter: float,
    limits: tuple[int, int] | None = None,
) -> tuple[np.ndarray, float]:
    """Physical values to stored integers: ``round((v - inter) / slope)`` clipped to
    ``limits`` (default the range of ``dtype``); NaN is stored as the value ``inter``.

    Returns the stored array and the fraction of voxels that had to be clipped.
    """
    raw = np.round((np.nan_to_num(data.astype(np.float64), nan=inter) - inter) / slope)
    info = np.iinfo(dtype)
    lo, hi = limits if limits is not None else (info.min, info.max)
    clipped = float(np.mean((raw < lo) | (raw > hi))) if raw.size else 0.0
    return np.clip(raw, lo, hi).astype(dtype), clipped


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
        raw, _ = _stored_values(volume.data, dtype, volume.slope, volume.inter)
        image = nib.Nifti1Image(raw, volume.affine)
        scaled = (volume.slope, volume.inter) != (1.0, 0.0)
    else:
        image = nib.Nifti1Image(volume.data.astype(dtype), volume.affine)
        scaled = False
    codes = (1, 1)
    source_header = volume.header.get("nifti")
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


def _ds_value(value: float) -> str:
    """A DICOM DS string (at most 16 characters) for a float."""
    text = f"{value:.10g}"
    if len(text) > 16:
        text = f"{value:.8g}"
    if len(text) > 16:
        text = f"{value:.6e}"
    return text


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    template: Volume,
    description_suffix: str = " SR",
    derivation: str = "super-resolution",
) -> Path:
    """Writes a derived DICOM series (see :func:`save_dicom_series`) into a new folder.

    Written to a temporary folder beside ``folder``, then renamed
    (:func:`common.io.atomic_output`); ``folder`` must not exist.
    """
    folder = Path(folder)
    if os.path.lexists(folder):
        raise input_error(folder, "output folder already exists")
    with atomic_output(folder, directory=True) as temporary:
        save_dicom_series(
            volume,
            temporary,
            template=template,
            description_suffix=description_suffix,
            derivation=derivation,
            name=folder,
        )
    return folder


def save_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    template: Volume,
    description_suffix: str = " SR",
    derivation: str = "super-resolution",
    name: str | os.PathLike | None = None,
) -> None:
    """Writes ``volume`` as a derived DICOM series of ``template`` (a DICOM-read Volume).

    A non-DICOM ``template`` (e.g. a NIfTI input) gives a new series in a new study
    (patient ``ANONYMOUS``, int16 with a RescaleSlope keeping the units). Otherwise each
    output slice copies the header of the nearest source slice and gets a new
    SOPInstanceUID; the series gets a new SeriesInstanceUID, the same Study, Patient and
    FrameOfReference, ImageType ``DERIVED\\SECONDARY``, ``SeriesDescription +
    description_suffix``, DerivationDescription and Source/ReferencedImageSequence.
    ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness,
    SpacingBetweenSlices, Rows and Columns follow ``volume.affine``. Pixels are stored
    uncompressed (explicit VR little endian) in the source's bit depth with its
    RescaleSlope/Intercept (values rounded and clipped to BitsStored). Voxels without a
    value (NaN) are stored as the series' PixelPaddingValue (the lowest stored value,
    which no valid voxel then takes), with a warning. The slices are written into the
    existing, empty ``folder`` (not atomic); ``name`` is the path warnings name.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    shown = Path(name) if name is not None else folder
    sources = template.header.get("datasets") or _new_series_headers(volume)
    derived = bool(template.header.get("datasets"))
    lps = np.linalg.inv(LPS_TO_RAS) @ volume.affine
    spacing = voxel_sizes(volume.affine)
    rows_cos, cols_cos = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    normal = np.cross(rows_cos, cols_cos)
    src_lps = np.linalg.inv(LPS_TO_RAS) @ template.affine
    src_along = (
        np.array([src_lps[:3, 3] + k * src_lps[:3, 2] for k in range(template.shape[2])]) @ normal
    )
    series_uid = generate_uid()
    first = sources[0]
    bits_stored = int(first.get("BitsStored", 16))
    signed = int(first.get("PixelRepresentation", 0)) == 1
    bits_alloc = int(first.get("BitsAllocated", 16))
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_alloc // 8}")
    lo = -(2 ** (bits_stored - 1)) if signed else 0
    hi = 2 ** (bits_stored - 1) - 1 if signed else 2**bits_stored - 1
    slope = float(first.get("RescaleSlope", 1) or 1)
    inter = float(first.get("RescaleIntercept", 0) or 0)
    missing = np.isnan(volume.data)
    padding = lo if missing.any() else None
    limits = (lo + 1, hi) if padding is not None else (lo, hi)
    raw_all, clipped = _stored_values(volume.data, dtype, slope, inter, limits)
    if padding is not None:
        raw_all[missing] = padding
        warnings.warn(
            f"{shown}: {int(missing.sum())} voxel(s) have no value (NaN); stored as"
            f" PixelPaddingValue {padding}, not as an intensity",
            stacklevel=2,
        )
    series_number = first.get("SeriesNumber")
    for k in range(volume.shape[2]):
        position = lps[:3, 3] + k * lps[:3, 2]
        nearest = int(np.argmin(np.abs(src_along - position @ normal)))
        src = sources[nearest] if derived else sources[0]
        ds = copy.deepcopy(src)
        sop_uid = generate_uid()
        sop_class = str(src.get("SOPClassUID", "") or "") or STORAGE_CLASSES.get(
            str(src.get("Modality", "")), "1.2.840.10008.5.1.4.1.1.7"
        )
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.SeriesInstanceUID = series_uid
        if series_number not in (None, ""):
            ds.SeriesNumber = int(series_number) + 1000
        ds.SeriesDescription = (str(src.get("SeriesDescription", "")) + description_suffix)[:64]
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.DerivationDescription = derivation[:1024]
        if derived:
            ref = pydicom.Dataset()
            ref.ReferencedSOPClassUID = src.get("SOPClassUID") or sop_class
            ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
            ds.SourceImageSequence = DicomSequence([ref])
            ds.ReferencedImageSequence = DicomSequence([copy.deepcopy(ref)])
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds_value(v) for v in position]
        ds.ImageOrientationPatient = [_ds_value(v) for v in (*rows_cos, *cols_cos)]
        ds.PixelSpacing = [_ds_value(spacing[1]), _ds_value(spacing[0])]
        ds.SliceThickness = _ds_value(spacing[2])
        ds.SpacingBetweenSlices = _ds_value(spacing[2])
        ds.SliceLocation = _ds_value(float(position @ normal))
        ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[0])
        ds.RescaleSlope = _ds_value(slope)
        ds.RescaleIntercept = _ds_value(inter)
        for tag in ("SmallestImagePixelValue", "LargestImagePixelValue", "NumberOfFrames"):
            if tag in ds:
                delattr(ds, tag)
        ds.SamplesPerPixel = 1
        ds.BitsAllocated, ds.BitsStored = bits_alloc, bits_stored
        ds.HighBit, ds.PixelRepresentation = bits_stored - 1, int(signed)
        if padding is not None:
            ds.add_new(0x00280120, "SS" if signed else "US", padding)  # PixelPaddingValue
        ds.PixelData = np.ascontiguousarray(raw_all[:, :, k].T).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds["PixelData"].VR = "OW"
        ds.save_as(folder / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
    if clipped > 0.001:
        warnings.warn(
            f"{shown}: {clipped:.1%} of voxels clipped to the stored range {list(limits)}",
            stacklevel=2,
        )


def _new_series_headers(volume: Volume) -> list:
    """One header for a DICOM series made from a non-DICOM volume (new Study, Patient
    'ANONYMOUS', FrameOfReference). CT: int16 HU (slope 1); otherwise int16 with a slope
    that spans the value range, so the units survive."""
    import pydicom
    from pydicom.uid import generate_uid

    finite = volume.data[np.isfinite(volume.data)]
    peak = float(np.abs(finite).max()) if finite.size else 1.0
    ct = volume.modality == "ct"
    ds = pydicom.Dataset()
    ds.Modality = "CT" if ct else "MR" if volume.modality == "mri" else "OT"
    ds.SOPClassUID = STORAGE_CLASSES.get(ds.Modality, "1.2.840.10008.5.1.4.1.1.7")
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID = "ANONYMOUS", "medsr"
    ds.StudyInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid()
    ds.StudyID, ds.SeriesNumber = "1", 1
    ds.SeriesDescription = Path(str(volume.source or "volume")).name.split(".")[0][:60]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ct_fits = ct and finite.size and finite.min() >= -32768 and finite.max() <= 32767
    ds.RescaleSlope = "1" if ct_fits or peak == 0 else _ds_value(peak / 32000)
    ds.RescaleIntercept = "0"
    return [ds]


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
