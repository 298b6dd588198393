"""What each SMORE plane orientation adds: one orientation against both, averaged.

``medsr enhance`` runs a 2D through-plane model on both plane orientations that contain
the thick axis and averages them (SMORE), which doubles the model time. This benchmark
measures, on held-out volumes (the same split as ``benchmarks.medsr_holdout``), the PSNR
and SSIM inside the foreground of each orientation alone and of the average, with the
model time of one orientation, so the cost of the second one is judged on data. Run::

    .venv/bin/python -m benchmarks.smore_orientations --factor 4
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from srkit.common import load_model
from srkit.medsr.enhance import enhance_volume
from srkit.medsr.evaluate import evaluate_volumes
from srkit.medsr.intensity import normalization_for
from srkit.medsr.io import read_volume
from srkit.medsr.methods import _upscale_planes, default_model
from srkit.medsr.plan import plan_enhance
from srkit.medsr.simulate import simulate_volume

from benchmarks.harness import SHARED_DATA, markdown_header, markdown_row, require_shared
from benchmarks.medsr_holdout import HELD_OUT, crop_to_factor

AXIS = {"studyforrest DICOM T1 (test)": 0}  # its z axis has 64 slices only


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--profile", nargs="+", default=["gaussian", "box"])
    args = parser.parse_args(argv)
    names = [n for n in HELD_OUT["mri"] if "(test)" in n]
    require_shared(*(HELD_OUT["mri"][n][0] for n in names), root=args.data)
    print(f"MRI x{args.factor} through-plane, held-out volumes: PSNR (dB) / SSIM\n")
    print(
        markdown_header(
            ["volume", "profile", "orientation A", "orientation B", "average (SMORE)", "A s"]
        )
    )
    for name in names:
        axis = AXIS.get(name, 2)
        hr = crop_to_factor(read_volume(args.data / HELD_OUT["mri"][name][0]), [axis], args.factor)
        for profile in args.profile:
            lr = simulate_volume(hr, axis=axis, factor=args.factor, profile=profile)
            scale = tuple(args.factor if a == axis else 1 for a in range(3))
            plan = plan_enhance(lr.shape, lr.affine, scale=scale)
            model = load_model(default_model("mri", scale).spec)
            norm = normalization_for(lr.data, "mri")
            x = norm.forward(lr.data)
            outs, seconds = [], []
            for along in (a for a in range(3) if a != axis):
                start = time.perf_counter()
                y = _upscale_planes(model, x, along, dict(enumerate(scale)), axis)
                seconds.append(time.perf_counter() - start)
                outs.append(norm.inverse(y))
            outs.append(((outs[0] + outs[1]) / 2).astype(np.float32))
            template = enhance_volume(lr, plan, model="bspline").volume
            cells = []
            for out in outs:
                scores = evaluate_volumes(replace(template, data=out), hr, lr=lr, axis=axis)
                cells.append(f"{scores['model']['psnr']:.2f} / {scores['model']['ssim']:.4f}")
            print(markdown_row([name, profile, *cells, f"{seconds[0]:.1f}"]), flush=True)


if __name__ == "__main__":
    main()
