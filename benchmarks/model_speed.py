"""Speed and peak memory of every shipped model beside its interpolation baseline.

Each measurement runs in a fresh Python process (so peak RSS is that model's alone,
including Python, torch and the model), on generated inputs:

- 2D models (``natural``, ``rs``): one 512 x 512 single-channel low-res image through
  ``common.upscale`` (default tiling); reported as Mpix/s of output.
- medical models (``mri``, ``ct``): ``medsr.enhance.super_resolve`` (what ``medsr
  enhance`` runs after normalization; SMORE on both plane orientations for through-plane
  models) on a normalized volume whose output is 144 x 144 x 144 voxels; reported as
  volumes/s and Mvox/s of output.

Each model runs on every installed inference backend (``--backend`` of the CLIs: torch,
onnx = ONNX Runtime, openvino; see ``common.inference.backends``), each in its own process,
with the same threads. Each row is the median of ``--repeats`` timed runs after one warm-up
(the warm-up also exports and compiles the graph for onnx/openvino). The baseline rows
(bicubic for 2D, cubic B-spline for volumes; torch) are measured in the same run, and every
model's time is also given as a ratio to its baseline. GFLOP/call counts every FLOP one call
runs (``torch.utils.flop_counter`` on the torch path, halos included; the exported graph
runs the same convolutions); "% of fp32 matmul" divides the achieved rate by a 2048^2 fp32
matmul timed in the same process (same threads; the mean of one timing just before the
model's runs and one just after). Guided sharpening models (scale 1) are left out. Run
on an idle machine::

    .venv/bin/python -m benchmarks.model_speed [--threads N] [--device cpu|cuda] [--repeats 3]
        [--backends torch onnx openvino] [--models rs_edsr_x2 ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks.harness import (
    REPO_ROOT,
    fp32_matmul_rate,
    markdown_header,
    markdown_row,
    median_time,
)

IMAGE_SIDE = 512
VOLUME_SIDE = 144


def _measure(
    spec: str, kind: str, scale: list[int], threads: int, device: str, repeats: int, backend: str
):
    """Runs in the child process: times ``spec`` and prints a JSON line."""
    import resource

    import numpy as np
    import torch
    from scipy.ndimage import gaussian_filter
    from srkit.common import load_model, upscale
    from srkit.common.inference.backends import using_backend
    from srkit.medsr.enhance import super_resolve

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    if kind == "image":
        lr = gaussian_filter(rng.random((IMAGE_SIDE, IMAGE_SIDE)), 1.5).astype(np.float32)[None]
        model = load_model(spec).at_scale(scale[0], dims=2)

        def run(backend=backend):
            return upscale(model, lr, scale=scale[0], device=device, backend=backend)

    else:
        shape = tuple(VOLUME_SIDE // s for s in scale)
        lr = gaussian_filter(rng.random(shape), 1.5).astype(np.float32)

        def run(backend=backend):
            with using_backend(backend):
                return super_resolve(lr, scale, spec, device=device)[0]

    matmul_before = fp32_matmul_rate(device)
    timing = median_time(run, repeat=repeats, warmup=1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # every FLOP one call runs, halos included
        run("torch")
    row = {"seconds": timing.seconds, "out": int(timing.result.size), "peak_mb": peak_mb}
    row["flops"] = int(counter.get_total_flops())
    # the mean of the rates just before and just after: a busy machine moves both
    row["matmul_flops_per_s"] = (matmul_before + fp32_matmul_rate(device)) / 2
    print(json.dumps(row))


def _child(spec: str, kind: str, scale: list[int], args, backend: str = "torch") -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.model_speed",
        "--child",
        json.dumps([spec, kind, scale]),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--repeats",
        str(args.repeats),
        "--backends",
        backend,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"error: measuring {spec} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cases() -> list[tuple[str, str, str, list[int]]]:
    """(model, baseline, kind, scale) for every shipped model."""
    from srkit.common import list_models

    rows = []
    for card in list_models():
        if card.hparams.get("guide_channels"):  # guided sharpening (scale 1), not upscale
            continue
        scale = list(card.axis_scale) or [card.scale] * card.dims
        if card.domain in ("mri", "ct"):
            factor = max(scale)
            if sorted(scale) == [1, factor]:  # through-plane: the thick axis is z
                rows.append((card.name, "bspline", "volume", [1, 1, factor]))
            else:  # in-plane
                rows.append((card.name, "bspline", "volume", [*scale, 1]))
        else:
            rows.append((card.name, "bicubic", "image", [card.scale]))
    return rows


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--backends", nargs="+", default=None, help="Default: every installed backend."
    )
    parser.add_argument("--models", nargs="+", default=None, help="Default: every shipped model.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec, kind, scale = json.loads(args.child)
        _measure(spec, kind, scale, args.threads, args.device, args.repeats, args.backends[0])
        return
    from srkit.common.inference.backends import installed_backends

    chosen = args.backends or installed_backends()
    print(
        f"{args.device}, {args.threads} threads, median of {args.repeats}; peak RSS of a fresh "
        f"process (Python + torch + model + data). 2D: {IMAGE_SIDE}x{IMAGE_SIDE} low-res input; "
        f"volumes: {VOLUME_SIDE}^3 output. Backends: {', '.join(chosen)}.\n"
    )
    header = ["model", "backend", "domain input", "scale", "seconds", "throughput"]
    header += ["x baseline time"]
    header += ["GFLOP/call", "GFLOP/s", "% of fp32 matmul"]
    print(markdown_header([*header, "peak RSS (MB)"]))
    baselines: dict[tuple, dict] = {}
    for name, baseline, kind, scale in cases():
        if args.models and name not in args.models:
            continue
        key = (baseline, kind, tuple(scale))
        if key not in baselines:
            baselines[key] = _child(baseline, kind, scale, args)
            _print_row(f"{baseline} (baseline)", "torch", kind, scale, baselines[key], None)
        for backend in chosen:
            row = _child(name, kind, scale, args, backend)
            _print_row(name, backend, kind, scale, row, baselines[key])


def _print_row(
    name: str, backend: str, kind: str, scale: list[int], row: dict, base: dict | None
) -> None:
    seconds = row["seconds"]
    if kind == "image":
        throughput = f"{row['out'] / seconds / 1e6:.2f} Mpix/s"
        what = f"2D {IMAGE_SIDE}^2"
    else:
        throughput = f"{1 / seconds:.3f} vol/s ({row['out'] / seconds / 1e6:.2f} Mvox/s)"
        what = "volume " + "x".join(str(VOLUME_SIDE // s) for s in scale)
    ratio = f"{seconds / base['seconds']:.1f}" if base else "1.0"
    cells = [name, backend, what, f"x{'x'.join(map(str, scale))}", f"{seconds:.2f}", throughput]
    cells.append(ratio)
    rate = row["flops"] / seconds
    cells += [f"{row['flops'] / 1e9:.1f}", f"{rate / 1e9:.1f}"]
    cells.append(f"{100 * rate / row['matmul_flops_per_s']:.0f} %")
    print(markdown_row([*cells, f"{row['peak_mb']:.0f}"]), flush=True)


if __name__ == "__main__":
    main()
