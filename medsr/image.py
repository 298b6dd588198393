"""``medsr enhance`` on an image in memory: :func:`enhance_image` for nibabel and SimpleITK.

The same steps as the command on a file (:func:`medsr.files.enhance_file`), without the
files: the image becomes a :class:`~medsr.io.Volume` (its affine in RAS millimetres),
:func:`medsr.enhance.plan_volume` plans, :func:`medsr.enhance.enhance_planned` runs
(normalization, model, clipping, NaNs, edges-kept geometry), and the result goes back into
the caller's image type with its provenance record attached.

SimpleITK images hold LPS geometry (origin, spacing, a direction matrix whose columns are
the voxel axes); nibabel and :class:`Volume` hold a RAS affine. Voxel index ``(i, j, k)``
of the nibabel array is SimpleITK index ``(i, j, k)`` as well (``GetArrayFromImage`` gives
``[k, j, i]``), so the affine is ``diag(-1, -1, 1, 1) @ [direction * spacing | origin]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .enhance import check_options, enhance_planned, plan_volume
from .errors import MedsrError
from .geometry import parse_axis, voxel_sizes
from .io import LPS_TO_RAS, Volume, check_affine, nifti_image, nifti_volume
from .io.volume import stored_values
from .plan import parse_scale

PROVENANCE_KEY = "medsr_provenance"
"""Where the provenance record goes: ``img.extra[PROVENANCE_KEY]`` (a dict) for nibabel,
the metadata entry ``PROVENANCE_KEY`` (JSON text) for SimpleITK."""

# DICOM Modality (0008,0060), as SimpleITK's DICOM reader keeps it, to medsr's modality
_SITK_MODALITY = {"CT": "ct", "MR": "mri"}


def _is_sitk_image(img: Any) -> bool:
    return type(img).__module__.startswith("SimpleITK") and type(img).__name__ == "Image"


def _is_nibabel_image(img: Any) -> bool:
    try:
        import nibabel as nib
    except ImportError:  # pragma: no cover - nibabel is a dependency
        return False
    return isinstance(img, nib.Nifti1Image)  # Nifti2Image derives from it


def sitk_affine(img: Any) -> np.ndarray:
    """The RAS voxel-to-world affine of a 3D SimpleITK image (LPS origin/spacing/direction)."""
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(img.GetSpacing(), dtype=np.float64)
    lps[:3, 3] = img.GetOrigin()
    return LPS_TO_RAS @ lps


def sitk_volume(img: Any, name: str) -> Volume:
    """A :class:`Volume` of a 3D scalar SimpleITK image (``name`` in errors)."""
    import SimpleITK as sitk

    if img.GetDimension() != 3:
        raise MedsrError(f"{name}: {img.GetDimension()}D image; medsr needs a 3D volume")
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise MedsrError(
            f"{name}: {img.GetNumberOfComponentsPerPixel()} components per voxel"
            f" ({img.GetPixelIDTypeAsString()}); medsr needs one value per voxel"
        )
    array = sitk.GetArrayViewFromImage(img)
    if array.dtype.kind not in "biuf":
        raise MedsrError(f"{name}: voxel type {img.GetPixelIDTypeAsString()} is not supported")
    affine = sitk_affine(img)
    check_affine(name, affine)
    modality = None
    if img.HasMetaDataKey("0008|0060"):
        modality = _SITK_MODALITY.get(img.GetMetaData("0008|0060").strip().upper())
    data = np.ascontiguousarray(np.transpose(array, (2, 1, 0)), dtype=np.float32)
    return Volume(data=data, affine=affine, modality=modality, stored_dtype=str(array.dtype))


def sitk_image(volume: Volume, *, keep_dtype: bool = False, template: Any = None) -> Any:
    """A SimpleITK image of ``volume``: LPS origin, spacing and direction from its affine.

    ``keep_dtype``: the ``template``'s pixel type (integers rounded and clipped), else
    float32.
    """
    import SimpleITK as sitk

    lps = LPS_TO_RAS @ volume.affine  # the flip is its own inverse
    spacing = voxel_sizes(volume.affine)
    data = volume.data
    if keep_dtype and template is not None:
        dtype = sitk.GetArrayViewFromImage(template).dtype
        if np.issubdtype(dtype, np.integer):
            data, _ = stored_values(data, dtype, 1.0, 0.0)
        else:
            data = data.astype(dtype)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    image.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])
    return image


def _image_volume(img: Any, trust: str | None) -> tuple[Volume, str, str]:
    """The volume of ``img``, its kind (``"nibabel"``/``"sitk"``) and the name errors give."""
    if _is_nibabel_image(img):
        filename = img.get_filename()
        name = filename or "<nibabel image>"
        volume = nifti_volume(img, name, trust=trust)
        return replace(volume, source=Path(filename) if filename else None), "nibabel", name
    if _is_sitk_image(img):
        name = "<SimpleITK image>"
        if trust is not None:
            raise MedsrError(f"{name}: trust applies to nibabel images (sform/qform) only")
        return sitk_volume(img, name), "sitk", name
    raise MedsrError(
        "enhance_image takes a nibabel Nifti1Image/Nifti2Image or a SimpleITK Image,"
        f" got {type(img).__module__}.{type(img).__qualname__}"
    )


def enhance_image(
    img: Any,
    *,
    scale: str | int | Sequence[int] | None = None,
    axis: str | int | None = None,
    target_spacing: float | None = None,
    model: str | None = None,
    modality: str = "auto",
    clip: str | None = "auto",
    force: bool = False,
    dtype: str = "float32",
    trust: str | None = None,
    device: str | None = None,
    tile: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> Any:
    """Super-resolves a 3D image in memory exactly as ``medsr enhance`` does a file.

    Args:
        img: a ``nibabel.Nifti1Image``/``Nifti2Image`` or a ``SimpleITK.Image`` (3D,
            one value per voxel). NaN voxels stay NaN in the output.
        scale, axis, target_spacing: the plan, as ``--scale`` (``2``, ``"1,1,4"`` or
            ``(1, 1, 4)``), ``--axis`` (``"x"``/``"y"``/``"z"`` or 0-2) and
            ``--target-spacing`` (mm); default: the thick axis, else in-plane x2.
        model: a shipped model, a weights path, an interpolator (``bspline``...) or
            ``ibp``; default: the shipped model for the modality and plan.
        modality: ``"auto"`` (a SimpleITK DICOM image's Modality tag, else the value
            range), ``"mri"`` or ``"ct"``.
        clip: ``"auto"`` (default), ``"none"`` or ``"LO,HI"`` in physical units.
        force: run a model trained on another domain (warns instead of refusing).
        dtype: ``"float32"`` (default) or ``"keep"`` (the input's stored type, rounded
            and clipped).
        trust: nibabel only: ``"sform"`` or ``"qform"`` when the two disagree.
        device, tile, batch_size, progress: as the command's options.

    Returns:
        The same type as ``img``: the enhanced image with the edges-kept geometry, in the
        input's units, its provenance record in ``out.extra["medsr_provenance"]``
        (nibabel) or the metadata ``"medsr_provenance"`` (SimpleITK, JSON text).

    Raises:
        MedsrError (an ``SRKitError``): a bad option, image or model, in one line.
    """
    if dtype not in ("float32", "keep"):
        raise MedsrError(f"--dtype must be float32 or keep, got {dtype!r}")
    check_options(modality=modality, clip=clip, device=device)
    volume, kind, name = _image_volume(img, trust)
    try:
        scale = parse_scale(scale) if scale is not None else None
        axis = parse_axis(axis) if axis is not None else None
    except ValueError as exc:
        raise MedsrError(f"{name}: {exc}") from None
    plan = plan_volume(volume, name, scale=scale, axis=axis, target_spacing=target_spacing)
    result = enhance_planned(
        volume,
        plan,
        name,
        model=model,
        modality=modality,
        clip=clip,
        force=force,
        device=device,
        tile=tile,
        batch_size=batch_size,
        progress=progress,
    )
    prov = result.provenance
    prov.update(command_line=None, output=None, output_sha256=None)
    if kind == "sitk":
        out = sitk_image(result.volume, keep_dtype=dtype == "keep", template=img)
        out.SetMetaData(PROVENANCE_KEY, json.dumps(prov))
        return out
    import nibabel as nib

    out, _ = nifti_image(result.volume, keep_dtype=dtype == "keep")
    if isinstance(img, nib.Nifti2Image):
        out = nib.Nifti2Image.from_image(out)
    out.extra[PROVENANCE_KEY] = prov
    return out
