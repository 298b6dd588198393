"""Draws docs/figures/medsr_orthoslices.png: thick-slice input, cubic B-spline, model, truth.

Simulates thick slices (x``--factor``, ``--profile``) along ``--axis`` of a brain MRI with
``medsr simulate``'s model (with ``--in-plane``: the same profile along the two other
axes, a lower in-plane resolution), enhances them with ``medsr enhance``'s pipeline (``--model``;
default: what ``medsr enhance`` picks) and shows the three orthogonal slices through the
centre, titled with ``medsr evaluate``'s PSNR/SSIM inside the foreground.

The default input is ``anatomical.nii``, a real 2 mm brain MRI that ships inside nibabel
(MIT licence), so the committed figure is not derived from ../shared/data; at 2 mm, x4
means 8 mm slices. Pass ``--input`` to look at another volume (do not commit figures of
third-party data). ``--ct-phantom`` uses a generated head CT phantom in HU instead
(scikit-image's Shepp-Logan slice made 3D, ``tests/data/nifti.py``)::

    python -m benchmarks.medsr_figure
    python -m benchmarks.medsr_figure --ct-phantom --in-plane --factor 2 --out docs/figures/ct_inplane.png
    python -m benchmarks.medsr_figure --input ../shared/data/mri_nifti/MR_Gd.nii.gz --axis 2 \\
        --out /tmp/mr_gd.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from srkit.medsr.enhance import enhance_volume, plan_enhance
from srkit.medsr.evaluate import baseline_from_lr, evaluate_volumes
from srkit.medsr.io import read_volume
from srkit.medsr.simulate import simulate_volume

from benchmarks.harness import REPO_ROOT
from benchmarks.medsr_holdout import crop_to_factor

AXIS_NAMES = "xyz"


def bundled_brain() -> Path:
    """nibabel's ``tests/data/anatomical.nii`` (33 x 41 x 25 voxels of 2 mm, LAS)."""
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"


def main(argv: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=None, help="default: nibabel's brain")
    parser.add_argument("--axis", type=int, default=1, help="voxel axis made thick")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--profile", default="gaussian", choices=["gaussian", "box"])
    parser.add_argument("--model", default=None)
    parser.add_argument("--in-plane", action="store_true", help="scale the axes other than --axis")
    parser.add_argument("--ct-phantom", action="store_true", help="a generated CT phantom (HU)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs/figures/medsr_orthoslices.png"
    )
    args = parser.parse_args(argv)
    if args.ct_phantom:
        from tests.data.nifti import ct_phantom, write_nifti

        source = Path(tempfile.mkdtemp()) / "generated_ct_phantom.nii.gz"
        write_nifti(source, ct_phantom(), np.diag([1.0, 1.0, 1.0, 1.0]), dtype=np.int16)
    else:
        source = args.input or bundled_brain()
    hr = read_volume(source)
    scaled = [a for a in range(3) if a != args.axis] if args.in_plane else [args.axis]
    hr = crop_to_factor(hr, scaled, args.factor)
    lr = simulate_volume(hr, axis=scaled, factor=args.factor, profile=args.profile)
    scale = tuple(args.factor if a in scaled else 1 for a in range(3))
    result = enhance_volume(lr, plan_enhance(lr.shape, lr.affine, scale=scale), model=args.model)
    scores = evaluate_volumes(result.volume, hr, lr=lr, axis=args.axis)
    cubic = baseline_from_lr(lr, hr)
    thick = lr.data
    for a in scaled:
        thick = np.repeat(thick, args.factor, axis=a)
    base, model = scores["baseline"], scores["model"]
    name = result.provenance["model"]["name"]
    panels = [
        (
            f"input (x{args.factor} {'in-plane pixels' if args.in_plane else 'thicker slices'})",
            thick,
        ),
        (f"cubic B-spline\n{base['psnr']:.2f} dB / {base['ssim']:.3f}", cubic),
        (f"{name}\n{model['psnr']:.2f} dB / {model['ssim']:.3f}", result.volume.data),
        ("reference", hr.data),
    ]
    foreground = hr.data[np.isfinite(hr.data)]
    vmin, vmax = np.percentile(foreground, [1, 99.5])
    if result.provenance.get("modality") == "ct":
        vmin, vmax = -160.0, 240.0  # soft-tissue window (W 400, L 40 HU)
    centre = [s // 2 for s in hr.shape]
    spacing = list(hr.spacing)
    fig, axes = plt.subplots(3, 4, figsize=(12, 9.5))
    for col, (title, vol) in enumerate(panels):
        for row, normal in enumerate((2, 1, 0)):  # axial, coronal, sagittal planes
            view = np.take(vol, centre[normal], axis=normal).T
            shown = [a for a in range(3) if a != normal]
            ax = axes[row, col]
            ax.imshow(
                view,
                cmap="gray",
                origin="lower",
                vmin=vmin,
                vmax=vmax,
                interpolation="nearest",
                aspect=spacing[shown[1]] / spacing[shown[0]],
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=10)
    for row, label in enumerate(("axial", "coronal", "sagittal")):
        axes[row, 0].set_ylabel(label)
    what = (
        f"x{args.factor} in-plane ({args.profile} point-spread function, "
        f"{'x'.join(f'{spacing[a] * args.factor:g}' for a in scaled)} mm pixels)"
        if args.in_plane
        else f"x{args.factor} through-plane along {AXIS_NAMES[args.axis]}"
        f" ({args.profile} slice profile, {spacing[args.axis] * args.factor:g} mm slices)"
    )
    fig.suptitle(f"{source.name}: {what}; PSNR/SSIM inside the foreground (medsr evaluate)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"{args.out}: B-spline {base['psnr']:.2f} dB, {name} {model['psnr']:.2f} dB")


if __name__ == "__main__":
    main()
