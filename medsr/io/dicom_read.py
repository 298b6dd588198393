"""Reading one DICOM series (pydicom) into a RAS :class:`~medsr.io.volume.Volume`.

DICOM voxel ``i`` runs along the row direction (columns, ``ImageOrientationPatient[:3]``),
``j`` along the column direction (rows, ``[3:]``) and ``k`` along the slice normal; the LPS
affine of the DICOM standard is turned into RAS by negating its first two rows, the
convention of nibabel and dcm2niix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from srkit.common.resources import check_memory

from ..errors import input_error
from .volume import LPS_TO_RAS, DicomMeta, Volume, short_message, warn_into

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


def is_dicom_file(path: Path) -> bool:
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


def _numbers(file: Path, ds, tag: str, count: int) -> np.ndarray:
    """The ``count`` finite numbers of a multi-valued tag, or a MedsrError naming it."""
    if tag not in ds or ds.get(tag) in (None, ""):
        raise input_error(file, f"no {tag}: cannot place the slice in space")
    raw = ds.get(tag)
    values = (
        list(raw)
        if isinstance(raw, (list, tuple))
        or hasattr(raw, "__iter__")
        and not isinstance(raw, (str, bytes))
        else [raw]
    )
    try:
        numbers = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        text = "\\".join(str(v) for v in values)
        raise input_error(file, f"{tag} '{text}' is not {count} numbers") from None
    if numbers.shape != (count,) or not np.isfinite(numbers).all():
        raise input_error(file, f"{tag} {str(raw)!r} is not {count} finite numbers")
    return numbers


def _orientation(file: Path, ds) -> np.ndarray:
    """ImageOrientationPatient as two unit vectors (row, column), checked."""
    iop = _numbers(file, ds, "ImageOrientationPatient", 6)
    rows, cols = iop[:3], iop[3:]
    norms = np.linalg.norm(rows), np.linalg.norm(cols)
    if min(norms) < 0.5 or abs(float(rows @ cols)) > 0.05 * norms[0] * norms[1]:
        raise input_error(
            file,
            f"ImageOrientationPatient {np.round(iop, 6).tolist()} is not two perpendicular"
            " unit vectors",
        )
    return np.concatenate([rows / norms[0], cols / norms[1]])


def _pixel_spacing(file: Path, ds) -> tuple[float, float]:
    """(row spacing, column spacing) in mm from PixelSpacing, checked."""
    row, col = _numbers(file, ds, "PixelSpacing", 2)
    if row <= 0 or col <= 0:
        raise input_error(file, f"PixelSpacing {[row, col]} must be > 0 mm")
    return float(row), float(col)


def _rescale(file: Path, ds) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept), 1 and 0 when absent; non-finite is refused."""
    values = []
    for tag, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        raw = ds.get(tag)
        if raw in (None, ""):
            values.append(default)
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise input_error(file, f"{tag} {str(raw)!r} is not a number") from None
        if not np.isfinite(value):
            raise input_error(file, f"{tag} {str(raw)!r} is not a finite number")
        values.append(value)
    if values[0] == 0:
        raise input_error(file, "RescaleSlope is 0: every voxel would have the same value")
    return values[0], values[1]


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
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise input_error(folder, "empty folder (no files)")
    groups, multiframe, unreadable = _scan(files)
    chosen = _choose(folder, groups, multiframe, unreadable, series, member)
    found: list[str] = []
    if unreadable:
        found.append(f"skipped {len(unreadable)} unreadable file(s): {', '.join(unreadable[:3])}")
    items, lps, size0 = _geometry(groups[chosen], unreadable, found)
    check_memory(folder, (*size0, len(items)), "reading the series", copies=2)
    slices, datasets, stored_dtype = _read_pixels(items)
    first = items[0][1]
    modality = {"CT": "ct", "MR": "mri"}.get(str(first.get("Modality", "")).upper())
    volume = Volume(
        data=np.ascontiguousarray(np.stack(slices, axis=-1)),
        affine=LPS_TO_RAS @ lps,
        modality=modality,
        source=folder,
        format="dicom",
        stored_dtype=stored_dtype,
        slope=_rescale(items[0][0], datasets[0])[0],
        inter=_rescale(items[0][0], datasets[0])[1],
        meta=DicomMeta(tuple(datasets), chosen, tuple(f for f, _ in items)),
    )
    for message in found:
        warn_into(volume.warnings, folder, message)
    return volume


def _scan(files: list[Path]) -> tuple[dict[str, list], dict[str, tuple[Path, str]], list[str]]:
    """Headers of every file: image slices grouped by series, multi-frame objects by
    series, and the unreadable files' ``"name (why)"``. Other DICOM objects are skipped."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    groups: dict[str, list] = {}
    multiframe: dict[str, tuple[Path, str]] = {}
    unreadable: list[str] = []
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except InvalidDicomError as exc:
            if _has_dicom_magic(file):  # a DICOM file that is truncated or corrupt
                unreadable.append(f"{file.name} ({short_message(exc)})")
            continue
        except Exception as exc:
            unreadable.append(f"{file.name} ({short_message(exc)})")
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
                absent = [
                    tag
                    for tag in ("Rows", "ImagePositionPatient", "ImageOrientationPatient")
                    if tag not in ds
                ]
                why = (
                    "incomplete image header; truncated?"
                    if len(absent) == 3
                    else f"no {' or '.join(absent)}: cannot place the slice in space"
                )
                unreadable.append(f"{file.name} ({why})")
            continue  # not an image slice (structured report, presentation state, ...)
        groups.setdefault(_series_uid(ds), []).append((file, ds))
    return groups, multiframe, unreadable


def _choose(folder, groups, multiframe, unreadable, series, member) -> str:
    """The SeriesInstanceUID to read: the one holding ``member``, or ``series``, or the
    only one; an enhanced/multi-frame choice is refused."""
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
    return chosen


def _geometry(items: list, unreadable: list[str], found: list[str]):
    """Checks and sorts the slices; returns them, the LPS affine and ``(Rows, Columns)``."""
    first = items[0][1]
    iop0 = _orientation(items[0][0], first)
    size0 = (int(first.Rows), int(first.Columns))
    for file, ds in items:
        iop = _orientation(file, ds)
        if np.abs(iop - iop0).max() > 1e-4:
            raise input_error(file, "slices of the series have different orientations (localizer?)")
        if (int(ds.Rows), int(ds.Columns)) != size0:
            raise input_error(file, f"slice size {ds.Rows}x{ds.Columns} differs from {size0}")
    if len(items) < 2:
        detail = f" (unreadable: {', '.join(unreadable[:3])})" if unreadable else ""
        raise input_error(
            items[0][0], f"a single DICOM slice is a 2D image; medsr needs a 3D series{detail}"
        )
    normal = np.cross(iop0[:3], iop0[3:])
    positions = np.array([_numbers(f, ds, "ImagePositionPatient", 3) for f, ds in items])
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
    row_spacing, col_spacing = _pixel_spacing(items[0][0], first)
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

    return items, lps, size0


def _read_pixels(items: list):
    """Each slice's pixels in physical units (``(i, j)``), its header without pixels, and
    the stored dtype."""
    import pydicom

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
            raise input_error(
                file, f"cannot decode pixel data{syntax}: {short_message(exc)}"
            ) from None
        if pixels.ndim != 2:
            raise input_error(file, f"pixel data of shape {pixels.shape} is not a grayscale slice")
        slope, inter = _rescale(file, ds)
        slices.append((pixels.astype(np.float64) * slope + inter).T.astype(np.float32))
        stored_dtype = str(pixels.dtype)
        del ds.PixelData
        datasets.append(ds)
    return slices, datasets, stored_dtype
