"""Throughput of ``geosr enhance`` in megapixels of output per second.

Writes a synthetic 3-band uint8 GeoTIFF (``--size`` pixels square, nodata collar), then
times ``enhance_raster`` end to end (read, normalize, fill, model, write DEFLATE tiles) with
the default model (``geosr.models.default_model``: bicubic until a remote-sensing model is
shipped) and any ``--model`` given, on each ``--device``. Prints a Markdown table; Mpix/s
counts output pixels (all bands together) per second, median of ``--repeats`` runs::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/geosr_throughput.py
    .venv/bin/python benchmarks/geosr_throughput.py --size 4096 --device cpu cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.geosr_memory import WRITE  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--device", nargs="+", default=["cpu"])
    parser.add_argument("--model", nargs="*", default=[], help="Extra models besides the default.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torch

    from geosr.enhance import EnhanceOptions, enhance_raster
    from geosr.models import default_model

    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print()
    print("| device | model | scale | input | output Mpix | seconds (median) | Mpix/s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.tif"
        subprocess.run([sys.executable, "-c", WRITE, str(args.size), str(src)], check=True)
        for device in args.device:
            if device.startswith("cuda") and not torch.cuda.is_available():
                print(f"| {device} | - | - | - | - | not available | - |")
                continue
            for scale in args.scales:
                for model in [default_model(scale, 3).spec, *args.model]:
                    times = []
                    for _ in range(args.repeats):
                        out = Path(tmp) / "out.tif"
                        start = time.perf_counter()
                        enhance_raster(
                            src, out, EnhanceOptions(scale=scale, model=model, device=device)
                        )
                        if device.startswith("cuda"):
                            torch.cuda.synchronize()
                        times.append(time.perf_counter() - start)
                        out.unlink()
                    seconds = statistics.median(times)
                    mpix = (args.size * scale) ** 2 / 1e6
                    print(
                        f"| {device} | {model} | x{scale} | {args.size}² x 3 uint8 | {mpix:.1f} | "
                        f"{seconds:.2f} | {mpix / seconds:.1f} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
