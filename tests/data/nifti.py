"""Generates tiny seeded NIfTI fixtures with oblique affines (no download).

Run ``python -m tests.data.nifti OUT_DIR`` to write them by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter


def rotation(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """A 3x3 rotation from x, y, z angles in degrees (applied x, then y, then z)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def oblique_affine(
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    angles_deg: tuple[float, float, float] = (10.0, -7.0, 25.0),
    origin: tuple[float, float, float] = (-20.5, 13.25, -7.75),
) -> np.ndarray:
    """A 4x4 oblique affine: rotation times voxel sizes, plus an origin (mm)."""
    affine = np.eye(4)
    affine[:3, :3] = rotation(angles_deg) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def phantom(shape: tuple[int, int, int] = (16, 16, 16), seed: int = 0) -> np.ndarray:
    """A smooth 'head' phantom in [0, ~1000]: an ellipsoid with texture on a zero background."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = sum((g / 0.8) ** 2 for g in grid)
    texture = gaussian_filter(rng.random(shape), 1.0)
    texture = (texture - texture.min()) / np.ptp(texture)
    inside = radius < 1
    values = np.where(inside, 300 + 600 * texture + 100 * (radius < 0.4), 0.0)
    return values.astype(np.float32)


def ct_phantom(shape: tuple[int, int, int] = (160, 160, 48), seed: int = 0) -> np.ndarray:
    """A 3D head CT phantom in HU: scikit-image's Shepp-Logan slice, shrunk towards the top
    and bottom like an ellipsoid, mapped to air / soft tissue / bone HU, with mild texture."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    base = shepp_logan_phantom()  # 400 x 400 in [0, 1]
    volume = np.full(shape, 0.0)
    for k, z in enumerate(np.linspace(-1, 1, nz)):
        extent = np.sqrt(max(0.0, 1 - (z / 1.05) ** 2))
        sx, sy = max(1, round(nx * extent)), max(1, round(ny * extent))
        plane = resize(base, (sx, sy), order=1, anti_aliasing=True)
        x0, y0 = (nx - sx) // 2, (ny - sy) // 2
        volume[x0 : x0 + sx, y0 : y0 + sy, k] = plane
    texture = gaussian_filter(rng.standard_normal(shape), 1.5)
    hu = np.interp(volume, [0.0, 0.1, 0.2, 0.3, 0.4, 1.0], [-1000, -60, 25, 40, 60, 1100])
    return (hu + np.where(volume > 0.05, 60 * texture, 0.0)).astype(np.float32)


def write_nifti(
    path: Path,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    dtype: type = np.int16,
    slope: float | None = None,
    inter: float | None = None,
    qform_affine: np.ndarray | None = None,
) -> Path:
    """Writes ``data`` (rounded into ``dtype`` unless float) with sform and qform set."""
    import nibabel as nib

    values = data if np.issubdtype(np.dtype(dtype), np.floating) else np.round(data)
    image = nib.Nifti1Image(values.astype(dtype), affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine if qform_affine is None else qform_affine, code=1)
    if slope is not None:
        image.header.set_slope_inter(slope, inter or 0.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def write_fixtures(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Writes the standard NIfTI fixtures into ``out_dir`` and returns them by name.

    - ``iso``: 16^3, 1 mm, oblique, int16.
    - ``aniso``: 16x16x8, 0.9x0.9x3 mm (thick z), oblique, float32.
    - ``scaled``: uint8 with scl_slope 2 / scl_inter -10.
    - ``ct``: 16^3 int16 HU (-1024 background).
    - ``mismatch``: sform and qform 2 mm apart.
    - ``four_d``: 8^3 x 3 volumes. ``flat``: a 16x16x1 single slice.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    vol = phantom((16, 16, 16), seed)
    files = {
        "iso": write_nifti(out_dir / "iso.nii.gz", vol, oblique_affine()),
        "aniso": write_nifti(
            out_dir / "aniso.nii.gz",
            phantom((16, 16, 8), seed + 1),
            oblique_affine((0.9, 0.9, 3.0)),
            dtype=np.float32,
        ),
        "scaled": write_nifti(
            out_dir / "scaled.nii.gz",
            np.clip(np.round((vol / 4 + 10) / 2), 0, 255),
            oblique_affine(),
            dtype=np.uint8,
            slope=2.0,
            inter=-10.0,
        ),
        "ct": write_nifti(
            out_dir / "ct.nii.gz",
            np.where(vol > 0, vol - 200, -1024),
            oblique_affine((0.8, 0.8, 1.0)),
        ),
    }
    shifted = oblique_affine()
    shifted[:3, 3] += (0.0, 2.0, 0.0)
    files["mismatch"] = write_nifti(
        out_dir / "mismatch.nii.gz", vol, oblique_affine(), qform_affine=shifted
    )
    files["four_d"] = write_nifti(
        out_dir / "four_d.nii.gz", rng.random((8, 8, 8, 3)) * 100, oblique_affine()
    )
    files["flat"] = write_nifti(out_dir / "flat.nii.gz", vol[:, :, :1], oblique_affine())
    return files


if __name__ == "__main__":
    for name, path in write_fixtures(Path(sys.argv[1])).items():
        print(name, path)
