"""Generates a tiny seeded DICOM series with pydicom (oblique, shuffled, with clutter).

The folder holds ``n`` single-frame MR or CT slices whose file names and InstanceNumbers
are shuffled relative to their positions, plus a ``README.txt`` and a ``DICOMDIR``-like
non-image DICOM file, so readers must sort by position and skip what is not a slice.
Run ``python -m tests.data.dicom OUT_DIR`` to write one by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .nifti import phantom, rotation


def series_geometry(
    n: int = 6,
    pixel_spacing: tuple[float, float] = (0.8, 0.7),
    step: float = 2.5,
    angles_deg: tuple[float, float, float] = (12.0, -5.0, 20.0),
    origin: tuple[float, float, float] = (-30.0, -42.5, 17.25),
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Row cosine, column cosine and per-slice ImagePositionPatient (LPS mm)."""
    rot = rotation(angles_deg)
    row_cos, col_cos = rot[:, 0], rot[:, 1]
    normal = np.cross(row_cos, col_cos)
    positions = [np.asarray(origin) + k * step * normal for k in range(n)]
    return row_cos, col_cos, positions


def write_series(
    out_dir: Path,
    *,
    modality: str = "MR",
    n: int = 6,
    rows: int = 12,
    cols: int = 10,
    pixel_spacing: tuple[float, float] = (0.8, 0.7),
    step: float = 2.5,
    slice_thickness: float | None = None,
    seed: int = 0,
    series_uid: str | None = None,
    description: str = "synthetic T1",
    skip: tuple[int, ...] = (),
    clutter: bool = True,
) -> dict:
    """Writes the series; returns the ground truth (physical values, geometry, UIDs).

    MR: int16 stored, RescaleSlope 2, RescaleIntercept -100. CT: uint16 stored (12 bits),
    slope 1, intercept -1024 (HU). ``skip`` leaves slice indices out (to make a gap).
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    row_cos, col_cos, positions = series_geometry(n, pixel_spacing, step)
    values = phantom((n, rows, cols), seed)  # (slice, row, col)
    if modality == "CT":
        slope, inter, dtype, bits, signed = 1.0, -1024.0, np.uint16, 12, 0
        values = np.where(values > 0, values - 200, -1024)
    else:
        slope, inter, dtype, bits, signed = 2.0, -100.0, np.int16, 16, 1
    stored = np.round((values - inter) / slope).astype(dtype)
    physical = stored.astype(np.float64) * slope + inter
    study, series = generate_uid(), series_uid or generate_uid()
    frame = generate_uid()
    sop_class = "1.2.840.10008.5.1.4.1.1.4" if modality == "MR" else "1.2.840.10008.5.1.4.1.1.2"
    kept = [k for k in range(n) if k not in skip]
    order = rng.permutation(len(kept))
    sop_uids = {}
    for rank, idx in enumerate(order):
        k = kept[idx]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uids[k] = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(out_dir / f"s{rank:03d}"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uids[k]
        ds.Modality = modality
        ds.PatientName, ds.PatientID = "Test^Phantom", "P0001"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.SeriesNumber, ds.SeriesDescription = 7, description
        ds.InstanceNumber = int(rank + 1)  # deliberately unrelated to the position
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_cos, *col_cos)]
        ds.PixelSpacing = [f"{v}" for v in pixel_spacing]
        ds.SliceThickness = f"{slice_thickness if slice_thickness is not None else step}"
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
        ds.PixelRepresentation = signed
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{inter:g}"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        ds.save_as(out_dir / f"s{rank:03d}", enforce_file_format=True)
    if clutter:
        (out_dir / "README.txt").write_text("Synthetic test series; not a DICOM file.\n")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(out_dir / "DICOMDIR"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.FileSetID = "TEST"
        ds.DirectoryRecordSequence = pydicom.Sequence([])
        ds.save_as(out_dir / "DICOMDIR", enforce_file_format=True)
    return {
        "folder": out_dir,
        "physical": physical,  # (slice, row, col), sorted by position
        "positions": np.array(positions),
        "row_cos": row_cos,
        "col_cos": col_cos,
        "pixel_spacing": pixel_spacing,
        "step": step,
        "study": study,
        "series": series,
        "frame": frame,
        "sop_uids": sop_uids,
        "slope": slope,
        "inter": inter,
    }


if __name__ == "__main__":
    print(write_series(Path(sys.argv[1]))["folder"])
