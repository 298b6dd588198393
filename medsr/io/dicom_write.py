"""Writing a derived DICOM series (pydicom) from a :class:`~medsr.io.volume.Volume`.

The series is plain single-frame CT/MR Image Storage, written with pydicom. highdicom
was considered: it builds SEG, SR, parametric maps, secondary capture and legacy
converted enhanced multi-frame objects, but has no builder for derived single-frame
CT/MR images, the objects every PACS and viewer shows as an ordinary series beside
the source; so it would add a dependency without doing the part we need.

What makes the derived series conform (PS3.3; checked with dciodvfy in the tests):

- ImageType ``DERIVED\\SECONDARY`` keeps value 3, which the CT and MR Image modules
  require (the source's, else ``AXIAL`` for CT and ``OTHER`` for MR);
- DerivationDescription and a DerivationCodeSequence (DCM 113085 "Spatial resampling",
  CID 7203 Image Derivation: super-resolution resamples onto a finer grid);
- SourceImageSequence (purpose DCM 121322, CID 7202) to the nearest source instance,
  left out where the source instance has no SOPInstanceUID;
- General Equipment describes srkit (see :func:`_set_equipment`);
- a missing or empty StudyInstanceUID/FrameOfReferenceUID (Type 1) is generated, with a
  warning, never copied empty; Type 2 attributes missing from the source are present
  and empty (unknown);
- every UID medsr generates starts with ``uid_root`` (:func:`check_uid_root`).
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from pathlib import Path

import numpy as np
from srkit.common._version import __version__
from srkit.common.io import atomic_output

from ..errors import MedsrError, input_error
from ..geometry import voxel_sizes
from .dicom_read import STORAGE_CLASSES
from .volume import LPS_TO_RAS, Volume, stored_values

PYDICOM_UID_ROOT = "1.2.826.0.1.3680043.8.498."
UID_SUFFIX_DIGITS = 20  # random digits after the root: collisions stay negligible
MAX_UID_ROOT = 64 - UID_SUFFIX_DIGITS  # a UID is at most 64 characters (PS3.5 9.1)
# (code value, coding scheme, meaning) from PS3.16
SPATIAL_RESAMPLING = ("113085", "DCM", "Spatial resampling")  # CID 7203 Image Derivation
SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")
ACQUISITION_EQUIPMENT = ("109101", "DCM", "Acquisition Equipment")  # CID 7005
IMAGE_TYPE_VALUE3 = {"CT": "AXIAL", "MR": "OTHER"}
# Type 2 attributes: present, empty when unknown (Patient, General Study, Frame of
# Reference, General Equipment, General Series' PatientPosition (2C for CT/MR), CT Image,
# MR Image). Type 1 MR attributes a NIfTI cannot tell (ScanningSequence,
# SequenceVariant) are left out rather than invented.
TYPE2_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "SeriesNumber",
    "PositionReferenceIndicator",
    "Manufacturer",
    "InstanceNumber",
)
TYPE2_BY_MODALITY = {
    "CT": ("PatientPosition", "KVP", "AcquisitionNumber"),
    "MR": (
        "PatientPosition",
        "ScanOptions",
        "MRAcquisitionType",
        "EchoTime",
        "RepetitionTime",
        "EchoTrainLength",
    ),
}
# The acquisition device's identity: moved from the top level (which now describes srkit)
# into the ContributingEquipmentSequence item of the source's equipment.
SOURCE_EQUIPMENT = (
    "Manufacturer",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "InstitutionalDepartmentName",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
)
DEVICE_ONLY = ("StationName", "DeviceSerialNumber", "DeviceUID", "GantryID", "UDISequence")


def check_uid_root(root: str | None) -> str:
    """The UID root every generated UID starts with, ending in a dot.

    ``None`` gives pydicom's root (``1.2.826.0.1.3680043.8.498.``). A root is digits and
    dots (PS3.5 9.1: no empty component, no leading zero in a component), at most
    :data:`MAX_UID_ROOT` characters with its final dot, so that a UID with its
    :data:`UID_SUFFIX_DIGITS` random digits fits DICOM's 64. Raises MedsrError.
    """
    if root is None:
        return PYDICOM_UID_ROOT
    text = root if root.endswith(".") else root + "."
    components = text[:-1].split(".")
    if not re.fullmatch(r"[0-9.]+", text) or any(
        not c or (len(c) > 1 and c[0] == "0") for c in components
    ):
        raise MedsrError(
            f"--uid-root {root!r}: not a UID root (digits separated by single dots, no"
            " leading zeros, e.g. 1.2.826.0.1.3680043.10.1234)"
        )
    if len(text) > MAX_UID_ROOT:
        raise MedsrError(
            f"--uid-root {root!r}: {len(text)} characters with its final dot; at most"
            f" {MAX_UID_ROOT}, so that a UID with {UID_SUFFIX_DIGITS} unique digits fits"
            " DICOM's 64"
        )
    return text


def _code_item(code: tuple[str, str, str]):
    import pydicom

    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _nonempty(ds, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def _shared_uid_or_new(sources: list, keyword: str, uid_root: str, shown: Path) -> str:
    """The sources' Type 1 UID ``keyword``, or a new one (with a warning) when every
    source lacks it or has it empty: an empty value is never copied."""
    from pydicom.uid import generate_uid

    for src in sources:
        value = _nonempty(src, keyword)
        if value:
            return value
    value = str(generate_uid(prefix=uid_root))
    warnings.warn(
        f"{shown}: the source has no {keyword} (anonymised?); the derived series gets a new"
        f" one ({value})",
        stacklevel=3,
    )
    return value


def _image_type(src, modality: str) -> list[str]:
    """``DERIVED\\SECONDARY`` plus value 3 (the CT and MR Image modules require one):
    the source's, else AXIAL (CT) / OTHER (MR). Vendor values 4 and up are dropped."""
    raw = src.get("ImageType")
    values = [str(v) for v in raw] if raw is not None and not isinstance(raw, str) else []
    if isinstance(raw, str) and raw:
        values = raw.split("\\")
    third = values[2].strip() if len(values) > 2 else ""
    third = third or IMAGE_TYPE_VALUE3.get(modality, "")
    return ["DERIVED", "SECONDARY", third] if third else ["DERIVED", "SECONDARY"]


def _set_equipment(ds, src) -> None:
    """General Equipment describes srkit; the source's device goes to
    ContributingEquipmentSequence.

    PS3.3 C.7.5.1 defines Manufacturer, ManufacturerModelName and SoftwareVersions as
    those "of the equipment that produced the Composite Instances": for a derived series
    that is srkit, not the scanner. Keeping the scanner's name there would claim the
    scanner made these pixels. The scanner is not lost: its identity is an item of the
    SOP Common module's ContributingEquipmentSequence with purpose "Acquisition
    Equipment" (DCM 109101), after any items the source already had.
    """
    import pydicom
    from pydicom.sequence import Sequence as DicomSequence

    manufacturer = _nonempty(src, "Manufacturer")
    if manufacturer:  # Manufacturer is Type 1 in the item: no item without it
        item = pydicom.Dataset()
        item.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(ACQUISITION_EQUIPMENT)])
        for keyword in SOURCE_EQUIPMENT:
            if _nonempty(src, keyword):
                item[keyword] = copy.deepcopy(src[keyword])
        previous = list(src.get("ContributingEquipmentSequence", None) or [])
        ds.ContributingEquipmentSequence = DicomSequence([*copy.deepcopy(previous), item])
    for keyword in DEVICE_ONLY:
        if keyword in ds:
            delattr(ds, keyword)
    ds.Manufacturer = "srkit"
    ds.ManufacturerModelName = "srkit medsr"
    ds.SoftwareVersions = __version__


def _fill_type2(ds, modality: str) -> None:
    """Adds the Type 2 attributes the dataset lacks, empty (unknown)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    for keyword in (*TYPE2_ATTRIBUTES, *TYPE2_BY_MODALITY.get(modality, ())):
        if keyword not in ds:
            tag = tag_for_keyword(keyword)
            ds.add_new(tag, dictionary_VR(tag), None)


def _source_reference(src, sop_class: str):
    """A SourceImageSequence item for ``src``, or None when it has no SOPInstanceUID."""
    import pydicom
    from pydicom.sequence import Sequence as DicomSequence

    instance = _nonempty(src, "SOPInstanceUID")
    if not instance:
        return None
    ref = pydicom.Dataset()
    ref.ReferencedSOPClassUID = _nonempty(src, "SOPClassUID") or sop_class
    ref.ReferencedSOPInstanceUID = instance
    ref.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(SOURCE_FOR_PROCESSING)])
    return ref


def _set_references(ds, source_ref) -> None:
    """SourceImageSequence: ``source_ref`` alone (none when None). ReferencedImageSequence
    keeps the source's own items (a localizer stays related: same frame of reference)
    that name an instance; items with an empty ReferencedSOPInstanceUID are dropped."""
    from pydicom.sequence import Sequence as DicomSequence

    if "SourceImageSequence" in ds:
        del ds.SourceImageSequence
    if source_ref is not None:
        ds.SourceImageSequence = DicomSequence([source_ref])
    related = [
        item
        for item in (ds.get("ReferencedImageSequence", None) or [])
        if _nonempty(item, "ReferencedSOPInstanceUID")
    ]
    if "ReferencedImageSequence" in ds:
        del ds.ReferencedImageSequence
    if related:
        ds.ReferencedImageSequence = DicomSequence(related)


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
    uid_root: str | None = None,
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
            uid_root=uid_root,
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
    uid_root: str | None = None,
) -> None:
    """Writes ``volume`` as a derived DICOM series of ``template`` (a DICOM-read Volume).

    A non-DICOM ``template`` (e.g. a NIfTI input) gives a new series in a new study
    (patient ``ANONYMOUS``, int16 with a RescaleSlope keeping the units, unknown Type 2
    attributes empty). Otherwise each output slice copies the header of the nearest
    source slice and gets a new SOPInstanceUID; the series gets a new SeriesInstanceUID,
    the same Study, Patient and FrameOfReference (generated, with a warning, when the
    source has none), ImageType ``DERIVED\\SECONDARY\\<value 3>``, ``SeriesDescription +
    description_suffix``, DerivationDescription and DerivationCodeSequence, srkit as
    its General Equipment, and a SourceImageSequence to the nearest source slice (the
    conformance rules are in the module docstring).
    ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness,
    SpacingBetweenSlices, Rows and Columns follow ``volume.affine``. Pixels are stored
    uncompressed (explicit VR little endian) in the source's bit depth with its
    RescaleSlope/Intercept (values rounded and clipped to BitsStored). Voxels without a
    value (NaN) are stored as the series' PixelPaddingValue (the lowest stored value,
    which no valid voxel then takes), with a warning. The slices are written into the
    existing, empty ``folder`` (not atomic); ``name`` is the path warnings name.
    ``uid_root``: the root of every generated UID (:func:`check_uid_root`; default
    pydicom's).
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    shown = Path(name) if name is not None else folder
    uid_root = check_uid_root(uid_root)
    sources = template.dicom_headers or _new_series_headers(volume, uid_root)
    derived = bool(template.dicom_headers)
    lps = np.linalg.inv(LPS_TO_RAS) @ volume.affine
    spacing = voxel_sizes(volume.affine)
    rows_cos, cols_cos = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    normal = np.cross(rows_cos, cols_cos)
    src_lps = np.linalg.inv(LPS_TO_RAS) @ template.affine
    src_along = (
        np.array([src_lps[:3, 3] + k * src_lps[:3, 2] for k in range(template.shape[2])]) @ normal
    )
    series_uid = generate_uid(prefix=uid_root)
    study_uid = _shared_uid_or_new(sources, "StudyInstanceUID", uid_root, shown)
    frame_uid = _shared_uid_or_new(sources, "FrameOfReferenceUID", uid_root, shown)
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
        sop_uid = generate_uid(prefix=uid_root)
        modality = _nonempty(src, "Modality")
        sop_class = _nonempty(src, "SOPClassUID") or STORAGE_CLASSES.get(
            modality, "1.2.840.10008.5.1.4.1.1.7"
        )
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        if series_number not in (None, ""):
            ds.SeriesNumber = int(series_number) + 1000
        ds.SeriesDescription = (str(src.get("SeriesDescription", "")) + description_suffix)[:64]
        ds.ImageType = _image_type(src, modality)
        ds.DerivationDescription = derivation[:1024]
        ds.DerivationCodeSequence = DicomSequence([_code_item(SPATIAL_RESAMPLING)])
        _set_equipment(ds, src)
        _set_references(ds, _source_reference(src, sop_class) if derived else None)
        _fill_type2(ds, modality)
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


def _new_series_headers(volume: Volume, uid_root: str) -> list:
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
    ds.SOPInstanceUID = generate_uid(prefix=uid_root)
    ds.PatientName, ds.PatientID = "ANONYMOUS", "medsr"
    ds.StudyInstanceUID = generate_uid(prefix=uid_root)
    ds.FrameOfReferenceUID = generate_uid(prefix=uid_root)
    ds.StudyID, ds.SeriesNumber = "1", 1
    ds.SeriesDescription = Path(str(volume.source or "volume")).name.split(".")[0][:60]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ct_fits = ct and finite.size and finite.min() >= -32768 and finite.max() <= 32767
    ds.RescaleSlope = "1" if ct_fits or peak == 0 else _ds_value(peak / 32000)
    ds.RescaleIntercept = "0"
    return [ds]
