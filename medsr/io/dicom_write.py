"""Writing a derived DICOM series (pydicom) from a :class:`~medsr.io.volume.Volume`."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np

from common.io import atomic_output

from ..errors import input_error
from ..geometry import voxel_sizes
from .dicom_read import STORAGE_CLASSES
from .volume import LPS_TO_RAS, Volume, stored_values


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
    sources = template.dicom_headers or _new_series_headers(volume)
    derived = bool(template.dicom_headers)
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
    raw_all, clipped = stored_values(volume.data, dtype, slope, inter, limits)
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
