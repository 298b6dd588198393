"""Throughput of ``geosr enhance`` in megapixels of output per second.

Writes a synthetic 3-band uint8 GeoTIFF (``--size`` pixels square, nodata collar), then
times ``enhance_raster`` end to end (read, normalize, fill, model, write DEFLATE tiles) with
the default model (``geosr.models.default_model``) and any ``--model`` given, on each
``--device`` and ``--backend`` (torch, onnx, openvino: ``geosr enhance --backend``). Prints a
Markdown table; Mpix/s counts output pixels (all bands together) per second, median of
``--repeats`` runs.

A second table splits one more run of each case into its stages, timed inside that run
(the functions ``enhance_raster`` calls are wrapped with timers; nothing else changes):

- read: ``DatasetReader.read`` and the validity masks (GDAL decode of the input windows);
- normalize: the per-band scaling, the nodata fill before the model and the inverse
  scaling, rounding and clipping to the output dtype after it;
- model: the forward passes (``upscale`` on each batch of windows);
- write: ``DatasetWriter.write``/``write_mask`` (the DEFLATE encode of full blocks);
- other: the rest (planning, file close with its last blocks, the atomic rename).

::

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.geosr_throughput
    .venv/bin/python -m benchmarks.geosr_throughput --size 4096 --device cpu cuda
    .venv/bin/python -m benchmarks.geosr_throughput --scales 2 --backend torch onnx openvino
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
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
    parser.add_argument("--backend", nargs="+", default=["torch"], help="torch onnx openvino")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch
    from srkit.common.inference.backends import using_backend
    from srkit.geosr.enhance import EnhanceOptions, enhance_raster
    from srkit.geosr.models import default_model

    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print()
    print(
        markdown_header(
            ["device", "backend", "model", "scale", "input", "output Mpix", "seconds (median)"]
            + ["Mpix/s"]
        )
    )
    splits = []
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.tif", Path(tmp) / "out.tif"
        subprocess.run([sys.executable, "-c", WRITE, str(args.size), str(src)], check=True)
        for device in args.device:
            if device.startswith("cuda") and not torch.cuda.is_available():
                print(markdown_row([device, "-", "-", "-", "-", "-", "not available", "-"]))
                continue
            for scale in args.scales:
                for model in [default_model(scale, 3).spec, *args.model]:
                    for backend in args.backend if device == "cpu" else ["torch"]:
                        options = EnhanceOptions(scale=scale, model=model, device=device)

                        def run(options=options, device=device, backend=backend) -> None:
                            with using_backend(backend):
                                enhance_raster(src, out, options)
                            if device.startswith("cuda"):
                                torch.cuda.synchronize()

                        timing = median_time(run, repeat=args.repeats, cleanup=out.unlink)
                        seconds = timing.seconds
                        mpix = (args.size * scale) ** 2 / 1e6
                        cells = [device, backend, model, f"x{scale}"]
                        cells += [f"{args.size}² x 3 uint8", f"{mpix:.1f}"]
                        cells += [f"{seconds:.2f}", f"{mpix / seconds:.1f}"]
                        print(markdown_row(cells), flush=True)
                        with stage_timers() as stages:
                            start = time.perf_counter()
                            run()
                            total = time.perf_counter() - start
                        out.unlink()
                        splits.append((f"{device} {backend} {model} x{scale}", total, stages))
    print()
    print(markdown_header(["case (one more run)", "seconds", *STAGES]))
    for name, total, stages in splits:
        parts = [*(stages[s] for s in STAGES[:-1])]
        parts.append(total - sum(parts))
        cells = [f"{t:.2f} ({100 * t / total:.0f} %)" for t in parts]
        print(markdown_row([name, f"{total:.2f}", *cells]))
    return 0


STAGES = ("read", "normalize", "model", "write", "other")


@contextlib.contextmanager
def stage_timers() -> Iterator[dict[str, float]]:
    """Wraps the functions of each stage (see the module docstring) with timers that add
    up their wall time; yields ``{stage: seconds}``. Nested stage calls count once."""
    import rasterio.io
    from srkit.geosr import stream
    from srkit.geosr.normalize import BandScaling

    seconds: dict[str, float] = defaultdict(float)
    active: list[str] = []

    def timed(stage, function):
        def wrapper(*args, **kwargs):
            if active:  # inside another stage already: counted there
                return function(*args, **kwargs)
            active.append(stage)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[stage] += time.perf_counter() - start
                active.pop()

        return wrapper

    patches = [
        (rasterio.io.DatasetReader, "read", "read"),
        (stream, "read_valid", "read"),
        (BandScaling, "forward", "normalize"),
        (BandScaling, "inverse", "normalize"),
        (stream, "fill_invalid", "normalize"),
        (stream, "to_output_dtype", "normalize"),
        (stream, "_run_model", "model"),
        (rasterio.io.DatasetWriter, "write", "write"),
        (rasterio.io.DatasetWriter, "write_mask", "write"),
    ]
    originals = [(owner, name, owner.__dict__.get(name)) for owner, name, _ in patches]
    try:
        for owner, name, stage in patches:
            setattr(owner, name, timed(stage, getattr(owner, name)))
        yield seconds
    finally:
        for owner, name, original in originals:
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


if __name__ == "__main__":
    sys.exit(main())
