"""Throughput of ``geosr enhance`` in megapixels of output per second.

Writes a synthetic 3-band uint8 GeoTIFF (``--size`` pixels square, nodata collar), then
times ``enhance_raster`` end to end (read, normalize, fill, model, write DEFLATE tiles) with
the default model (``geosr.models.default_model``: bicubic until a remote-sensing model is
shipped) and any ``--model`` given, on each ``--device``. Prints a Markdown table; Mpix/s
counts output pixels (all bands together) per second, median of ``--repeats`` runs::

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.geosr_throughput
    .venv/bin/python -m benchmarks.geosr_throughput --size 4096 --device cpu cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from benchmarks.geosr_memory import WRITE
from benchmarks.harness import markdown_header, markdown_row, median_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--device", nargs="+", default=["cpu"])
    parser.add_argument("--model", nargs="*", default=[], help="Extra models besides the default.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    from geosr.enhance import EnhanceOptions, enhance_raster
    from geosr.models import default_model

    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print()
    print(
        markdown_header(
            ["device", "model", "scale", "input", "output Mpix", "seconds (median)", "Mpix/s"]
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.tif", Path(tmp) / "out.tif"
        subprocess.run([sys.executable, "-c", WRITE, str(args.size), str(src)], check=True)
        for device in args.device:
            if device.startswith("cuda") and not torch.cuda.is_available():
                print(markdown_row([device, "-", "-", "-", "-", "not available", "-"]))
                continue
            for scale in args.scales:
                for model in [default_model(scale, 3).spec, *args.model]:
                    options = EnhanceOptions(scale=scale, model=model, device=device)

                    def run(options=options, device=device) -> None:
                        enhance_raster(src, out, options)
                        if device.startswith("cuda"):
                            torch.cuda.synchronize()

                    seconds = median_time(run, repeat=args.repeats, cleanup=out.unlink).seconds
                    mpix = (args.size * scale) ** 2 / 1e6
                    cells = [device, model, f"x{scale}", f"{args.size}² x 3 uint8", f"{mpix:.1f}"]
                    cells += [f"{seconds:.2f}", f"{mpix / seconds:.1f}"]
                    print(markdown_row(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
