"""Draws docs/figures/medsr_orthoslices.png: thick-slice input, cubic B-spline, model, truth.

Simulates 4 mm Gaussian-profile slices from a 1 mm brain MRI (``stroke_T1.nii.gz``, MIT
licence, from ../shared/data), enhances them with ``--model`` (default: what ``medsr
enhance`` picks) and shows axial, coronal and sagittal slices with the PSNR in the brain.

    python benchmarks/medsr_figure.py [--model NAME] [--out docs/figures/medsr_orthoslices.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import upscale
from common.metrics import psnr
from medsr.enhance import enhance_volume, plan_enhance
from medsr.io import read_volume
from medsr.simulate import simulate_volume

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mri_nifti" / "stroke_T1.nii.gz"


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--input", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/figures/medsr_orthoslices.png")
    args = parser.parse_args()
    hr = read_volume(args.input)
    n = hr.shape[2] - hr.shape[2] % 4
    hr.data = hr.data[:, :, :n]
    lr = simulate_volume(hr, axis=2, factor=4, profile="gaussian")
    result = enhance_volume(lr, plan_enhance(lr.shape, lr.affine, axis=2), model=args.model)
    cubic = upscale("bspline", lr.data[None], scale=(1, 1, 4))[0]
    thick = np.repeat(lr.data, 4, axis=2)
    mask = hr.data > 0
    rng = float(hr.data[mask].max() - hr.data[mask].min())
    panels = [
        ("input (4 mm, nearest)", thick),
        (f"cubic B-spline {psnr(cubic, hr.data, data_range=rng, mask=mask):.2f} dB", cubic),
        (
            f"{result.provenance['model']['name']} "
            f"{psnr(result.volume.data, hr.data, data_range=rng, mask=mask):.2f} dB",
            result.volume.data,
        ),
        ("reference (1 mm)", hr.data),
    ]
    cx, cy, cz = (s // 2 for s in hr.data.shape)
    fig, axes = plt.subplots(3, 4, figsize=(12, 9))
    vmax = np.percentile(hr.data[mask], 99.5)
    for col, (title, vol) in enumerate(panels):
        views = [vol[:, :, cz].T, vol[:, cy, :].T, vol[cx, :, :].T]
        for row, view in enumerate(views):
            ax = axes[row, col]
            ax.imshow(view, cmap="gray", origin="lower", vmin=0, vmax=vmax, aspect="equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=10)
    for row, name in enumerate(("axial", "coronal", "sagittal")):
        axes[row, 0].set_ylabel(name)
    fig.suptitle("x4 through-plane: PSNR inside the brain (stroke_T1, MIT licence)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(args.out)


if __name__ == "__main__":
    main()
