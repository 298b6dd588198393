"""The in-memory volume every reader returns and every writer takes.

A :class:`Volume` is float32 data indexed ``(i, j, k)`` in physical units (scl_slope/inter
or RescaleSlope/Intercept applied, CT in HU), a 4x4 affine from voxel centres to RAS
millimetres, and typed format metadata (:class:`NiftiMeta` or :class:`DicomMeta`) that a
writer needs to make a faithful output.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import voxel_sizes

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class NiftiMeta:
    """A NIfTI/MGZ input's header (units, intent, description are carried to outputs)."""

    header: Any


@dataclass(frozen=True)
class DicomMeta:
    """A DICOM input: one header per slice (pixels dropped) sorted along the slice normal,
    the SeriesInstanceUID and the slice files in the same order."""

    datasets: tuple
    series_uid: str
    files: tuple[Path, ...]


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
        meta: what the reader kept to write a faithful output: :class:`NiftiMeta` or
            :class:`DicomMeta` (None for a volume made in memory).
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
    meta: NiftiMeta | DicomMeta | None = None
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
        if isinstance(self.meta, DicomMeta):
            return tuple(self.meta.files)
        return (self.source,) if self.source is not None else ()

    @property
    def dicom_headers(self) -> list:
        """The source slices' DICOM headers (sorted along the normal); empty for NIfTI."""
        return list(self.meta.datasets) if isinstance(self.meta, DicomMeta) else []

    @property
    def representable_range(self) -> tuple[float, float] | None:
        """The physical values the input's own stored type can hold (a DICOM series: its
        first slice's BitsStored and RescaleSlope/Intercept, as its derived series is
        written; a NIfTI: the integer dtype with scl_slope/inter); ``None`` for floats."""
        headers = self.dicom_headers
        if headers:
            first = headers[0]
            bits = int(first.get("BitsStored", 16))
            signed = int(first.get("PixelRepresentation", 0)) == 1
            low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
            slope = float(first.get("RescaleSlope", 1) or 1)
            inter = float(first.get("RescaleIntercept", 0) or 0)
        else:
            dtype = np.dtype(self.stored_dtype)
            if not np.issubdtype(dtype, np.integer):
                return None
            low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
            slope, inter = self.slope, self.inter
        ends = sorted((float(low) * slope + inter, float(high) * slope + inter))
        return ends[0], ends[1]

    def crop(self, index: Sequence[slice]) -> Volume:
        """This volume cut to ``index`` (one unit-step slice per axis), with its affine
        moved to the new first voxel: every kept voxel stays where it was in the world.

        The format metadata is dropped for DICOM (the per-slice headers no longer match).
        """
        if len(index) != 3 or any(sl.step not in (None, 1) for sl in index):
            raise ValueError(f"crop needs 3 unit-step slices, got {index!r}")
        start = [sl.indices(n)[0] for sl, n in zip(index, self.shape)]
        affine = self.affine.copy()
        affine[:3, 3] += self.affine[:3, :3] @ start
        data = np.ascontiguousarray(self.data[tuple(index)])
        meta = self.meta if isinstance(self.meta, NiftiMeta) else None
        return replace(self, data=data, affine=affine, meta=meta)


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


def warn_into(volume_warnings: list[str], path: Path, message: str) -> None:
    volume_warnings.append(message)
    warnings.warn(f"{path}: {message}", stacklevel=3)


def short_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def stored_values(
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
