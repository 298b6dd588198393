"""Times ``medsr enhance`` on a 256x256x180 volume: x2 in-plane and x4 through-plane.

Prints a Markdown table (seconds, wall clock) for the default model (the shipped MRI model
when there is one, else the cubic B-spline fallback) or ``--model``. Run on an idle machine:

    python -m benchmarks.medsr_timing [--model NAME] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.harness import markdown_header, markdown_row, median_time
from medsr.enhance import enhance_volume, plan_enhance
from medsr.io import Volume


def synthetic_volume(shape=(256, 256, 180), spacing=(1.0, 1.0, 1.0), seed=0) -> Volume:
    """A smooth random 'head' (float32, MRI-like units) with a diagonal affine."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    inside = sum(g**2 for g in grid) < 0.8
    texture = gaussian_filter(rng.random(shape, dtype=np.float32), 2.0)
    data = np.where(inside, 200 + 2000 * (texture - texture.min()), 0).astype(np.float32)
    return Volume(data=data, affine=np.diag([*spacing, 1.0]), modality="mri")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--shape", default="256,256,180", help="X,Y,Z (smaller for a smoke run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = tuple(int(n) for n in args.shape.split(","))
    x, y, z = shape
    cases = {
        f"x2 in-plane ({x}x{y}x{z} -> {2 * x}x{2 * y}x{z})": ((1.0, 1.0, 1.0), (2,)),
        f"x4 through-plane ({x}x{y}x{z} -> {x}x{y}x{4 * z})": ((1.0, 1.0, 4.0), (1, 1, 4)),
    }
    print(
        markdown_header(
            ["case", "model", "method", f"seconds ({args.threads} threads, {args.device})"]
        )
    )
    for name, (spacing, scale) in cases.items():
        volume = synthetic_volume(shape, spacing=spacing)
        plan = plan_enhance(volume.shape, volume.affine, scale=scale)
        timing = median_time(
            lambda volume=volume, plan=plan: enhance_volume(
                volume, plan, model=args.model, device=args.device, tile=args.tile
            ),
            repeat=1,
        )
        prov = timing.result.provenance
        print(markdown_row([name, prov["model"]["name"], prov["method"], f"{timing.seconds:.1f}"]))


if __name__ == "__main__":
    main()
