"""Peak memory of ``geosr enhance`` against raster size: it must not grow with the raster.

For each size N, a child process writes an N x N 3-band uint8 GeoTIFF strip by strip
(never holding the whole array), and a *fresh* child process runs ``enhance_raster`` at
``--scale`` and reports its peak resident set size (``resource.getrusage``, ``ru_maxrss``;
VmHWM from /proc/self/status where available, which is the same number). The table
compares it with what a whole-array float32 output alone would need (``3 * (N*s)^2 * 4``
bytes). The issue's check is N = 9000, x2, under 1.5 GB::

    .venv/bin/python -m benchmarks.geosr_memory                      # 1000 3000 9000
    .venv/bin/python -m benchmarks.geosr_memory --sizes 1000 2000 3000 --limit-mb 1500

Exits with status 1 when a size exceeds ``--limit-mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import REPO_ROOT, markdown_header, markdown_row

WRITE = """
import sys, numpy as np, rasterio
from affine import Affine
n, path = int(sys.argv[1]), sys.argv[2]
profile = dict(driver="GTiff", width=n, height=n, count=3, dtype="uint8", nodata=0,
               crs="EPSG:32618", transform=Affine.translation(6e5, 4.5e6) @ Affine.scale(10, -10),
               tiled=True, blockxsize=256, blockysize=256, compress="DEFLATE")
rng = np.random.default_rng(0)
with rasterio.open(path, "w", **profile) as dst:
    for row in range(0, n, 256):
        h = min(256, n - row)
        yy, xx = np.mgrid[row:row + h, :n]
        base = (128 + 60 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.int16)
        data = np.clip(base[None] + rng.integers(-20, 21, (3, h, n)), 1, 255).astype(np.uint8)
        data[:, :, : n // 10] = 0  # a nodata collar
        dst.write(data, window=((row, row + h), (0, n)))
"""

RUN = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from srkit.geosr.enhance import EnhanceOptions, enhance_raster
src, out, scale = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
result = enhance_raster(src, out, EnhanceOptions(scale=scale))
seconds = time.perf_counter() - start
hwm = None
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
except OSError:
    pass
peak = hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import torch
from srkit.common.inference import backends
print(json.dumps({"peak_mb": peak, "seconds": seconds, "windows": result.windows,
                  "model": result.model, "threads": torch.get_num_threads(),
                  "backend": backends.current_backend()}))
"""


def measure(size: int, scale: int, folder: Path, threads: int | None = None) -> dict:
    """Writes an N x N raster, enhances it in a fresh process (on ``threads`` intra-op
    threads, default the toolkit's: every core); returns its numbers."""
    src, out = folder / f"in_{size}.tif", folder / f"out_{size}.tif"
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    subprocess.run([sys.executable, "-c", WRITE, str(size), str(src)], check=True, env=env)
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(src), str(out), str(scale)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    numbers = json.loads(proc.stdout.strip().splitlines()[-1])
    numbers.update(size=size, in_mb=src.stat().st_size / 2**20, out_mb=out.stat().st_size / 2**20)
    src.unlink()
    out.unlink()
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 9000])
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--limit-mb", type=float, default=1500.0)
    parser.add_argument(
        "--tmp", default=None, help="Folder for the rasters (default: system temp)."
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="Intra-op threads of the enhance process (default: the toolkit's, every core).",
    )
    args = parser.parse_args(argv)
    header = [
        "size (px)",
        "input file (MB)",
        "output file (MB)",
        "whole float32 output (MB)",
        "peak RSS (MB)",
        "time (s)",
        "output Mpix/s",
        "windows",
    ]
    failed = False
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for i, size in enumerate(args.sizes):
            r = measure(size, args.scale, Path(tmp), args.threads)
            if i == 0:
                print(
                    f"geosr enhance --scale {args.scale}, 3-band uint8, default model "
                    f"{r['model']}, backend {r['backend']}, {r['threads']} torch thread(s), "
                    f"{os.cpu_count()} cores"
                )
                print()
                print(markdown_header(header))
            whole = 3 * (size * args.scale) ** 2 * 4 / 2**20
            mpix = (size * args.scale) ** 2 / 1e6 / r["seconds"]
            cells = [f"{size} x {size}", f"{r['in_mb']:.1f}", f"{r['out_mb']:.1f}", f"{whole:,.0f}"]
            cells += [f"{r['peak_mb']:.0f}", f"{r['seconds']:.1f}", f"{mpix:.2f}", r["windows"]]
            print(markdown_row(cells), flush=True)
            failed |= r["peak_mb"] > args.limit_mb
    if failed:
        print(f"\nFAIL: a peak exceeded {args.limit_mb:.0f} MB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
