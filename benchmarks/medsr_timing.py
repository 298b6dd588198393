"""Times ``medsr enhance`` on a 256x256x180 volume: x2 in-plane and x4 through-plane.

Prints a Markdown table (seconds, wall clock) for the default model (the shipped MRI model
when there is one, else the cubic B-spline fallback) or ``--model``. A second table times
the clinical case end to end from a file: a 256x256x45 NIfTI at 1x1x4 mm to 256x256x180
(``medsr.files.enhance_file``), with the share of each stage (read, normalize, model,
write), each stage timed on its own in the same run. Run on an idle machine:

    python -m benchmarks.medsr_timing [--model NAME] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from srkit.medsr.enhance import enhance_volume, plan_enhance
from srkit.medsr.io import Volume

from benchmarks.harness import markdown_header, markdown_row, median_time


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
    clinical(args)


def clinical(args) -> None:
    """End to end from a NIfTI file, then each stage alone (same data, same run)."""
    import tempfile
    from pathlib import Path

    from srkit.medsr.files import enhance_file
    from srkit.medsr.intensity import detect_modality, normalization_for
    from srkit.medsr.io import read_volume, write_nifti
    from srkit.medsr.methods import default_model, super_resolve

    volume = synthetic_volume((256, 256, 45), spacing=(1.0, 1.0, 4.0))
    with tempfile.TemporaryDirectory() as tmp:
        src = write_nifti(volume, Path(tmp) / "clinical.nii.gz")
        total = median_time(
            lambda: enhance_file(
                src,
                Path(tmp) / "sr.nii.gz",
                model=args.model,
                device=args.device,
                overwrite=True,
            ),
            repeat=1,
        )
        read = median_time(lambda: read_volume(src), repeat=1)
        loaded = read.result
        kind = detect_modality(loaded.data, loaded.modality)

        def normalize():
            return normalization_for(loaded.data, kind).forward(loaded.data)

        norm = median_time(normalize, repeat=1)
        model = args.model or default_model(kind, (1, 1, 4)).spec
        sr = median_time(
            lambda: super_resolve(norm.result, (1, 1, 4), model, device=args.device), repeat=1
        )
        out = total.result.volume
        write = median_time(lambda: write_nifti(out, Path(tmp) / "w.nii.gz"), repeat=1)
    print()
    print(markdown_header(["clinical 256x256x45 @ 1x1x4 mm -> 256x256x180", "seconds", "share"]))
    print(markdown_row(["end to end (enhance_file)", f"{total.seconds:.1f}", "100 %"]))
    for name, timing in [("read", read), ("normalize", norm), ("model", sr), ("write", write)]:
        print(
            markdown_row(
                [name, f"{timing.seconds:.2f}", f"{100 * timing.seconds / total.seconds:.0f} %"]
            )
        )


if __name__ == "__main__":
    main()
