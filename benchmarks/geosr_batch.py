"""Effect of ``geosr enhance --batch-size`` on time, and that the output does not change.

Writes a synthetic 3-band uint8 GeoTIFF (``--size`` pixels square, nodata collar), then
runs ``enhance_raster`` with ``--window`` output pixels per window (so the raster has many
windows) for each ``--batch-size``: windows per forward pass. Prints, per device, the
median seconds, the ratio to batch 1, the forward passes, and the largest difference from
the batch-1 output in DN with the share of pixels that differ (the promise: at most 1 DN on
at most 0.01 % of pixels). The same run's fp32 matmul rate is printed as the baseline the
times can be compared to across machines::

    .venv/bin/python -m benchmarks.geosr_batch
    .venv/bin/python -m benchmarks.geosr_batch --size 2048 --device cpu cuda
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from benchmarks.geosr_memory import WRITE
from benchmarks.harness import fp32_matmul_rate, markdown_header, markdown_row, median_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--window", type=int, default=256, help="output pixels per window side")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--model", default="rs_edsr_x2")
    parser.add_argument("--device", nargs="+", default=["cpu"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import rasterio
    import torch
    from srkit.geosr.enhance import EnhanceOptions, enhance_raster

    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}; model {args.model}, x2, "
        f"{args.size}² x 3 uint8, windows (and blocks) of {args.window}² output pixels"
    )
    print()
    print(
        markdown_header(
            [
                "device",
                "fp32 matmul GFLOP/s",
                "batch",
                "passes",
                "seconds (median)",
                "vs batch 1",
                "max |diff| DN",
                "pixels differing",
            ]
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.tif"
        subprocess.run([sys.executable, "-c", WRITE, str(args.size), str(src)], check=True)
        for device in args.device:
            if device.startswith("cuda") and not torch.cuda.is_available():
                print(markdown_row([device, "-", "-", "-", "not available", "-", "-", "-"]))
                continue
            rate = fp32_matmul_rate(device) / 1e9
            reference, first = None, None
            for batch in args.batch_size:
                out = Path(tmp) / f"out_{device}_{batch}.tif"
                options = EnhanceOptions(
                    scale=2,
                    model=args.model,
                    device=device,
                    batch_size=batch,
                    window=args.window,
                    overwrite=True,
                )
                timing = median_time(
                    lambda o=options, p=out: enhance_raster(src, p, o), repeat=args.repeats
                )
                with rasterio.open(out) as dst:
                    data = dst.read().astype(np.int32)
                if reference is None:
                    reference, first = data, timing.seconds
                diff = np.abs(data - reference)
                cells = [
                    device,
                    f"{rate:.0f}",
                    batch,
                    timing.result.forward_passes,
                    f"{timing.seconds:.2f}",
                    f"{timing.seconds / first:.2f}",
                    int(diff.max()),
                    f"{100 * float((diff > 0).mean()):.4f} %",
                ]
                print(markdown_row(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
