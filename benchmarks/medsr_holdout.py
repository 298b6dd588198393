"""Held-out medical benchmark: simulate low-res twins, enhance, compare with cubic B-spline.

For each held-out high-resolution volume: crop the scaled axes to a multiple of the
factor, simulate the low-res twin with ``medsr simulate``'s model (``--profile``; thick
slices along ``--axis``, or with ``--in-plane`` the same profile along the two other
axes), run ``medsr enhance``'s pipeline (``--model``; default: what ``medsr enhance`` picks
for the plan), and score PSNR/SSIM inside the foreground (Otsu mask of the reference, as
``medsr evaluate``) against cubic B-spline upsampling of the same low-res input. Prints a
Markdown table.

None of the default volumes was used for training. MRI (``--modality mri``): ``MR_Gd``
(subject D) is the shipped MRI models' validation volume (model selection); ``chris_t1``
(subject C, CC BY-NC, evaluation only, never trained on) and the studyforrest DICOM T1
are fully held out. CT (``--modality ct``, in HU): the last 30 % of the TotalSegmentator
chest CT's z slices is the CT models' validation region (they train on the first 70 %);
the TotalSegmentator example DICOM CT series is fully held out.

Run::

    .venv/bin/python -m benchmarks.medsr_holdout --factor 4 --axis 2
    .venv/bin/python -m benchmarks.medsr_holdout --factor 4 --update-card common/weights/mri_smore_x4.json
    .venv/bin/python -m benchmarks.medsr_holdout --factor 2 --in-plane
    .venv/bin/python -m benchmarks.medsr_holdout --modality ct --factor 2 --axis 2
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from srkit.common.degradation import mod_crop
from srkit.common.training.data import region_slices
from srkit.medsr.enhance import enhance_volume, plan_enhance
from srkit.medsr.evaluate import evaluate_volumes
from srkit.medsr.io import Volume, read_volume
from srkit.medsr.simulate import simulate_volume

from benchmarks.cards import write_holdout
from benchmarks.harness import (
    SHARED_DATA,
    markdown_header,
    markdown_row,
    median_time,
    require_shared,
)

# name -> (path under the data root, kept fraction of the voxel z axis or None = whole)
HELD_OUT = {
    "mri": {
        "MR_Gd (val)": ("mri_nifti/MR_Gd.nii.gz", None),
        "chris_t1 (test)": ("mri_nifti/chris_t1.nii.gz", None),
        "studyforrest DICOM T1 (test)": ("dicom_mr_t1_studyforrest", None),
    },
    "ct": {
        "TotalSegmentator chest CT, last 30 % of z (val)": (
            "ct_nifti/totalseg_aorta_ct_cropped.nii.gz",
            (0.7, 1.0),
        ),
        "TotalSegmentator DICOM CT (test)": ("dicom_ct_totalsegmentator", None),
    },
}
# (column title, key in run_case's row, format spec) after the volume, profile and model
COLUMNS = [
    ("B-spline PSNR", "bspline_psnr", ".2f"),
    ("model PSNR", "model_psnr", ".2f"),
    ("gain (dB)", "gain_db", "+.2f"),
    ("B-spline SSIM", "bspline_ssim", ".4f"),
    ("model SSIM", "model_ssim", ".4f"),
    ("enhance s", "seconds", ".1f"),
]


def crop_to_factor(volume: Volume, axes, factor: int, z_range=None) -> Volume:
    """Keeps ``z_range`` of the voxel z axis (rounded as ``data.val_region`` is), then drops
    trailing voxels so every scaled axis is a multiple of ``factor``."""
    if z_range is not None:
        volume = volume.crop(region_slices([[0, 1], [0, 1], z_range], volume.shape))
    scale = [factor if a in axes else 1 for a in range(3)]
    return replace(volume, data=np.ascontiguousarray(mod_crop(volume.data, scale, spatial_dims=3)))


def run_case(
    path: Path, *, axes, factor: int, profile: str, model: str | None, z_range=None
) -> dict:
    hr = crop_to_factor(read_volume(path), axes, factor, z_range)
    lr = simulate_volume(hr, axis=axes, factor=factor, profile=profile)
    plan = plan_enhance(
        lr.shape, lr.affine, scale=tuple(factor if a in axes else 1 for a in range(3))
    )
    timing = median_time(lambda: enhance_volume(lr, plan, model=model), repeat=1)
    result, seconds = timing.result, timing.seconds
    slice_axis = axes[0] if len(axes) == 1 else next(a for a in range(3) if a not in axes)
    scores = evaluate_volumes(result.volume, hr, lr=lr, axis=slice_axis)
    return {
        "model": result.provenance["model"]["name"],
        "method": result.provenance["method"],
        "shape": list(hr.shape),
        "bspline_psnr": scores["baseline"]["psnr"],
        "model_psnr": scores["model"]["psnr"],
        "gain_db": scores["gain_db"],
        "bspline_ssim": scores["baseline"]["ssim"],
        "model_ssim": scores["model"]["ssim"],
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--axis", type=int, default=2, help="voxel axis made thick (0, 1, 2)")
    parser.add_argument(
        "--in-plane",
        action="store_true",
        help="lower the resolution of the two axes other than --axis instead (in-plane SR)",
    )
    parser.add_argument("--modality", choices=list(HELD_OUT), default="mri")
    parser.add_argument("--profile", nargs="+", default=["gaussian", "box"])
    parser.add_argument("--model", default=None, help="default: what medsr enhance picks")
    parser.add_argument("--volumes", nargs="+", default=None, help="names from the table")
    parser.add_argument("--update-card", type=Path, default=None)
    args = parser.parse_args(argv)
    cases = HELD_OUT[args.modality]
    names = args.volumes or list(cases)
    unknown = [v for v in names if v not in cases]
    if unknown:
        sys.exit(f"error: unknown volume(s) {unknown}; choose from {list(cases)}")
    require_shared(*dict.fromkeys(cases[v][0] for v in names), root=args.data)
    axes = [a for a in range(3) if a != args.axis] if args.in_plane else [args.axis]
    what = (
        f"in-plane along voxel axes {axes[0]} and {axes[1]}"
        if args.in_plane
        else f"through-plane along voxel axis {args.axis}"
    )

    print(f"{args.modality.upper()} x{args.factor} {what}: PSNR/SSIM in the foreground\n")
    print(markdown_header(["volume", "profile", "model", *(title for title, _, _ in COLUMNS)]))
    rows = []
    for name in names:
        path, z_range = cases[name]
        for profile in args.profile:
            row = run_case(
                args.data / path,
                axes=axes,
                factor=args.factor,
                profile=profile,
                model=args.model,
                z_range=z_range,
            )
            rows.append({"volume": name, "profile": profile, **row})
            cells = [format(row[key], spec) for _, key, spec in COLUMNS]
            print(markdown_row([name, profile, row["model"], *cells]), flush=True)
    if args.update_card:
        write_holdout(
            args.update_card,
            rows,
            (
                f"medsr simulate x{args.factor} {what} "
                "(trailing slices cropped), medsr enhance, PSNR/SSIM inside the Otsu "
                "foreground of the reference, data range = foreground range; baseline "
                "cubic B-spline of the same low-res input (benchmarks/medsr_holdout.py)"
            ),
        )


if __name__ == "__main__":
    main()
