"""Held-out medical benchmark: simulate thick slices, enhance, compare with cubic B-spline.

For each held-out high-resolution volume: crop the thick axis to a multiple of the factor,
simulate thick slices with ``medsr simulate``'s model (``--profile``), run ``medsr
enhance``'s pipeline (``--model``; default: what ``medsr enhance`` picks for the plan), and
score PSNR/SSIM inside the foreground (Otsu mask of the reference, as ``medsr evaluate``)
against cubic B-spline upsampling of the same low-res input. Prints a Markdown table.

None of the default volumes was used for training: ``MR_Gd`` (subject D) is the shipped
MRI models' validation volume (model selection); ``chris_t1`` (subject C, CC BY-NC,
evaluation only, never trained on) and the studyforrest DICOM T1 are fully held out.

Run::

    .venv/bin/python benchmarks/medsr_holdout.py --factor 4 --axis 2
    .venv/bin/python benchmarks/medsr_holdout.py --factor 4 --update-card common/weights/mri_smore_x4.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cards import write_holdout  # noqa: E402
from medsr.enhance import enhance_volume, plan_enhance  # noqa: E402
from medsr.evaluate import evaluate_volumes  # noqa: E402
from medsr.io import read_volume  # noqa: E402
from medsr.simulate import simulate_volume  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HELD_OUT = {
    "MR_Gd (val)": "mri_nifti/MR_Gd.nii.gz",
    "chris_t1 (test)": "mri_nifti/chris_t1.nii.gz",
    "studyforrest DICOM T1 (test)": "dicom_mr_t1_studyforrest",
}


def crop_to_factor(volume, axis: int, factor: int):
    """Drops trailing slices so the thick axis is a multiple of ``factor``."""
    n = volume.shape[axis] - volume.shape[axis] % factor
    index = [slice(None)] * 3
    index[axis] = slice(0, n)
    volume.data = np.ascontiguousarray(volume.data[tuple(index)])
    return volume


def run_case(path: Path, *, axis: int, factor: int, profile: str, model: str | None) -> dict:
    hr = crop_to_factor(read_volume(path), axis, factor)
    lr = simulate_volume(hr, axis=axis, factor=factor, profile=profile)
    plan = plan_enhance(
        lr.shape, lr.affine, scale=tuple(factor if a == axis else 1 for a in range(3))
    )
    started = time.perf_counter()
    result = enhance_volume(lr, plan, model=model)
    seconds = time.perf_counter() - started
    scores = evaluate_volumes(result.volume, hr, lr=lr, axis=axis)
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
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--axis", type=int, default=2, help="voxel axis made thick (0, 1, 2)")
    parser.add_argument("--profile", nargs="+", default=["gaussian", "box"])
    parser.add_argument("--model", default=None, help="default: what medsr enhance picks")
    parser.add_argument("--volumes", nargs="+", default=list(HELD_OUT), choices=list(HELD_OUT))
    parser.add_argument("--update-card", type=Path, default=None)
    args = parser.parse_args(argv)
    missing = [HELD_OUT[v] for v in args.volumes if not (args.data / HELD_OUT[v]).exists()]
    if missing:
        sys.exit(f"error: shared data not found: {', '.join(missing)} under {args.data}")

    print(f"x{args.factor} through-plane along axis {args.axis}: PSNR/SSIM in the foreground\n")
    print(
        "| volume | profile | model | B-spline PSNR | model PSNR | gain (dB) "
        "| B-spline SSIM | model SSIM | enhance s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.volumes:
        for profile in args.profile:
            row = run_case(
                args.data / HELD_OUT[name],
                axis=args.axis,
                factor=args.factor,
                profile=profile,
                model=args.model,
            )
            rows.append({"volume": name, "profile": profile, **row})
            print(
                f"| {name} | {profile} | {row['model']} | {row['bspline_psnr']:.2f} "
                f"| {row['model_psnr']:.2f} | {row['gain_db']:+.2f} | {row['bspline_ssim']:.4f} "
                f"| {row['model_ssim']:.4f} | {row['seconds']:.1f} |",
                flush=True,
            )
    if args.update_card:
        write_holdout(
            args.update_card,
            rows,
            (
                f"medsr simulate x{args.factor} along voxel axis {args.axis} "
                "(trailing slices cropped), medsr enhance, PSNR/SSIM inside the Otsu "
                "foreground of the reference, data range = foreground range; baseline "
                "cubic B-spline of the same low-res input (benchmarks/medsr_holdout.py)"
            ),
        )


if __name__ == "__main__":
    main()
