"""CPU timing of exact tiled inference against the untiled whole-image run.

Times ``upscale()`` at each tile size and ``predict_whole()`` (no tiling) on the same random
image, for a default SRCNN x3 (1 channel) and an EDSR (width 32, depth 4, x2), and prints a
Markdown table: median seconds, the ratio tiled/untiled (against the untiled run measured
in the same invocation) and the largest absolute difference from the untiled output.

Run from the repository root::

    .venv/bin/python -m benchmarks.tiling_cpu
    .venv/bin/python -m benchmarks.tiling_cpu --size 512 --tile 128 256 --repeats 1

The networks are freshly initialized (timing does not depend on training); torch keeps its
default number of threads.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from srkit.common.inference import predict_whole, upscale
from srkit.common.models import build_model

from benchmarks.harness import markdown_header, markdown_row, median_time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--tile", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per forward pass")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    models = {
        "srcnn x3": build_model("srcnn", dims=2, channels=1, scale=3),
        "edsr x2 (w32, d4)": build_model("edsr", dims=2, channels=1, scale=2, width=32, depth=4),
    }
    image = np.random.default_rng(args.seed).random((1, args.size, args.size), dtype=np.float32)
    size = f"{args.size}x{args.size}"

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} repeat(s)")
    print()
    header = ["model", "image", "tile", "seconds (median)", "tiled/untiled", "max abs diff"]
    print(markdown_header(header, align="lllrrr"))
    for name, model in models.items():
        model.eval()
        whole = median_time(lambda m=model: predict_whole(m, image), repeat=args.repeats)
        print(markdown_row([name, size, "untiled", f"{whole.seconds:.3f}", "1.00", 0]), flush=True)
        for tile in args.tile:
            tiled = median_time(
                lambda m=model, t=tile: upscale(
                    m, image, tile=t, device="cpu", batch_size=args.batch_size
                ),
                repeat=args.repeats,
            )
            diff = float(np.abs(tiled.result - whole.result).max())
            ratio = tiled.seconds / whole.seconds
            cells = [name, size, tile, f"{tiled.seconds:.3f}", f"{ratio:.2f}", f"{diff:.1e}"]
            print(markdown_row(cells), flush=True)


if __name__ == "__main__":
    main()
