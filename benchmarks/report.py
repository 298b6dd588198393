"""Writes docs/benchmarks.md by running the benchmark scripts and pasting what they print.

Each section records the exact command, the machine and the date, then the script's
output verbatim. Sections can be regenerated one at a time (the others are kept)::

    .venv/bin/python -m benchmarks.report                 # every section
    .venv/bin/python -m benchmarks.report natural medsr   # only these

Scripts that need ../shared/data fail loudly when it is absent; nothing here is typed in
by hand.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import REPO_ROOT

DOC = REPO_ROOT / "docs" / "benchmarks.md"
PY = ".venv/bin/python"

# name -> (title, what it shows, commands)
SECTIONS: dict[str, tuple[str, str, list[str]]] = {
    "models": (
        "Shipped models",
        "Every shipped model's card as `srkit.list_models()` returns it: architecture, size, "
        "receptive field, expected input range, validation gain (model selection) and "
        "held-out gains against the interpolation baseline, and the recipe that trains it.",
        [f"{PY} -m benchmarks.model_cards"],
    ),
    "natural": (
        "Natural images: Set5 / Set14 / B100, x2, x3 and x4",
        "Y-PSNR/SSIM with the standard protocol (MATLAB bicubic LR rounded to 8 bit, BT.601 "
        "Y, shave = scale), beside published numbers. Split: the shipped natural models were "
        "trained on T91 only; Set5 was their validation set (model selection), Set14 and B100 "
        "are fully held out.",
        [
            f"{PY} -m benchmarks.natural_sr --model natural_edsr_x2",
            f"{PY} -m benchmarks.natural_sr --model natural_srcnn_x3",
            f"{PY} -m benchmarks.natural_sr --model natural_edsr_x4",
        ],
    ),
    "medsr": (
        "MRI through-plane x2 / x3 / x4 and in-plane x2 (held-out volumes)",
        "Thick slices (2, 3 and 4 mm) simulated from ~1 mm brain MRI with `medsr simulate` "
        "(Gaussian and box slice profiles), or for in-plane x2 the same profile along both "
        "in-plane axes (`--axis x,y`), enhanced by the default `medsr enhance` pipeline (the "
        "shipped `mri_smore_x2/x3/x4`, SMORE-style on both plane orientations that contain the "
        "thick axis, and `mri_inplane_x2` on every slice) and, as a no-weights reference at x4, "
        "`--model ibp`; PSNR/SSIM inside the foreground "
        "against cubic B-spline of the same input. Split by subject: MR_Gd (subject D) is "
        "the validation volume (model selection); chris_t1 (subject C, CC BY-NC, never "
        "trained on) and the studyforrest DICOM T1 are fully held out.",
        [
            f"{PY} -m benchmarks.medsr_holdout --factor 2 --axis 2",
            f"{PY} -m benchmarks.medsr_holdout --factor 3 --axis 2",
            f"{PY} -m benchmarks.medsr_holdout --factor 4 --axis 2",
            f"{PY} -m benchmarks.medsr_holdout --factor 4 --axis 2 --model ibp",
            f"{PY} -m benchmarks.medsr_holdout --factor 2 --axis 2 --in-plane",
        ],
    ),
    "ct_holdout": (
        "CT through-plane x2 / x3 / x4 and in-plane x2, in HU (held-out data)",
        "The same protocol on CT in HU (data range = the reference's foreground HU range): "
        "the shipped `ct_smore_x2/x3/x4` and `ct_inplane_x2` trained on the first 70 % of the "
        "z slices of the TotalSegmentator chest CT; its last 30 % is their validation region "
        "(model selection) and the TotalSegmentator example DICOM CT series (0.98 mm pixels, "
        "2 mm slices) is fully held out. At x3 and x4 the thick slices are simulated along "
        "voxel axis 0 (x), because the DICOM series has only 20 slices along z.",
        [
            f"{PY} -m benchmarks.medsr_holdout --modality ct --factor 2 --axis 2",
            f"{PY} -m benchmarks.medsr_holdout --modality ct --factor 3 --axis 0",
            f"{PY} -m benchmarks.medsr_holdout --modality ct --factor 4 --axis 0",
            f"{PY} -m benchmarks.medsr_holdout --modality ct --factor 2 --axis 2 --in-plane",
        ],
    ),
    "geosr_holdout": (
        "Remote sensing x2 and x4 (held-out rows), and a real cross-resolution check",
        "`geosr simulate` (bicubic and Gaussian-MTF kernels) on the bottom 30 % of each "
        "raster's rows, which no shipped model trained on (NAIP 2020 is also a date never "
        "trained on), enhanced by the default `geosr enhance`, scored by `geosr evaluate` "
        "beside bicubic. The cross-check enhances real 30 m Landsat 8 red to 15 m and compares "
        "it with the real 15 m pan band.",
        [
            f"{PY} -m benchmarks.geosr_holdout --cross",
            f"{PY} -m benchmarks.geosr_holdout --scale 4",
        ],
    ),
    "model_speed": (
        "Speed and peak memory of every shipped model (this CPU)",
        "Each shipped model beside its interpolation baseline, in a fresh process each, on "
        "generated inputs, per installed backend, with its share of the fp32 matmul rate "
        "measured in the same run. Before the speed work (as the speed issue measured it on "
        "this machine) the default torch path reached 32 % (`rs_edsr_x2`), 42 % "
        "(`mri_smore_x4`) and 24 % (`natural_srcnn_x3`) of a 174 GFLOP/s matmul rate. The "
        "reference is torch's own 2048^2 fp32 matmul (about 140-170 GFLOP/s on these two "
        "Zen 5 cores, whose fp32 FMA peak is above 300 GFLOP/s); oneDNN's channels-last "
        "convolutions on cache-sized tiles beat it, so rows above 100 % mean faster than "
        "that matmul, not above the hardware. GPU rows: not measured (no GPU was lent to "
        "these sessions).",
        [f"{PY} -m benchmarks.model_speed"],
    ),
    "medsr_timing": (
        "medsr enhance timing (256x256x180 volume, this CPU)",
        "End-to-end `enhance_volume` time (read, normalize, SR, write) for a clinical "
        "thick-slice volume, x2 in-plane and x4 through-plane. Before the speed work the "
        "clinical case took 99 s, x2 in-plane 41.9 s and x4 through-plane 205.3 s on this "
        "machine.",
        [f"{PY} -m benchmarks.medsr_timing"],
    ),
    "smore_orientations": (
        "What each SMORE plane orientation adds (MRI x4, held-out volumes)",
        "The shipped `mri_smore_x4` on each of the two plane orientations that contain the "
        "thick axis alone, and their average (what `medsr enhance` does), with the model "
        "time of one orientation (from a run that shared the machine with other jobs; "
        "`medsr_timing` has idle timings). Split: the held-out test volumes of the MRI "
        "section.",
        [f"{PY} -m benchmarks.smore_orientations --factor 4"],
    ),
    "medsr_selfsup": (
        "medsr --self-supervised against B-spline, the shipped default and ECLARE",
        "Thick slices simulated from held-out volumes (never seen by the shipped MRI "
        "models), x4 through-plane with a box profile; self-supervised adaptation at each "
        "budget (profile estimation, pairs and training included), and ECLARE (GPL-3.0, in "
        "its own virtualenv made by the script) with its patch count cut to the same CPU "
        "budget. PSNR/SSIM inside the foreground; FWHM true against estimated.",
        [f"{PY} -m benchmarks.medsr_selfsup --eclare"],
    ),
    "geosr_guided": (
        "geosr sharpen: guided multi-resolution SR (Wald's protocol, held-out areas)",
        "Bicubic, detail injection, the shipped guided CNN `rs_guided` and the same CNN "
        "fine-tuned on each held-out scene (`--self-supervised`), on the right 30 % of "
        "every raster's columns, which `rs_guided` never trained on; QNR at full resolution "
        "on the real Landsat 8 pan; speed against `geosr enhance`. Figure (two held-out x3 "
        "scenes, central crops): ![guided sharpening crops](figures/geosr_sharpen.png)",
        [
            f"{PY} -m benchmarks.geosr_guided --self-supervised 20 --qnr --speed "
            "--figure docs/figures/geosr_sharpen.png"
        ],
    ),
    "tiling": (
        "Exact tiled inference vs untiled (CPU)",
        "Median seconds of `upscale` with tiles against one whole-image pass, same run.",
        [f"{PY} -m benchmarks.tiling_cpu"],
    ),
    "geosr_memory": (
        "geosr enhance peak memory against raster size",
        "Peak RSS of a fresh process running `enhance_raster` at x2 on generated 3-band "
        "uint8 rasters; the limit is 1.5 GB.",
        [f"{PY} -m benchmarks.geosr_memory --sizes 1000 3000 9000 --limit-mb 1500"],
    ),
    "geosr_throughput": (
        "geosr enhance throughput (this CPU)",
        "Mpix/s of output (all bands) for the default model and baselines, per backend. "
        "Before the speed work the default model ran at 0.3 Mpix/s here.",
        [f"{PY} -m benchmarks.geosr_throughput --backend torch onnx openvino"],
    ),
}

HEADER = """# Benchmarks

Generated by `python -m benchmarks.report`, which runs each script below and pastes its output
verbatim. Timings are from the machine named in each section; ratios are against a
baseline measured in the same run.
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def run_section(name: str, pasted: str | None = None) -> str:
    """The section's markdown: each command's stdout, run now, or ``pasted`` (the saved
    stdout of the section's one command, run on this machine today)."""
    title, what, commands = SECTIONS[name]
    if pasted is not None and len(commands) != 1:
        raise SystemExit(
            f"error: --stdout needs a section with one command; {name} has {len(commands)}"
        )
    parts = [f"<!-- section:{name} -->", f"## {title}", "", what, ""]
    for command in commands:
        if pasted is not None:
            stdout = pasted
        else:
            print(f"$ {command}", file=sys.stderr, flush=True)
            done = subprocess.run(
                command, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                sys.stderr.write(done.stdout + done.stderr)
                raise SystemExit(f"error: {command!r} failed with exit code {done.returncode}")
            stdout = done.stdout
        parts += [
            f"```\n$ {command}\n```",
            f"_{datetime.date.today().isoformat()}, {machine()}_",
            "",
            stdout.strip(),
            "",
        ]
    parts.append(f"<!-- end:{name} -->")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=list(SECTIONS))
    parser.add_argument(
        "--stdout",
        type=Path,
        default=None,
        help="Paste this file (the saved stdout of the one section's command, run today with "
        "exactly that command) instead of running it again.",
    )
    args = parser.parse_args(argv)
    if args.stdout is not None and len(args.sections) != 1:
        parser.error("--stdout needs exactly one section")
    old = DOC.read_text() if DOC.exists() else HEADER
    blocks = {
        m.group(1): m.group(0)
        for m in re.finditer(r"<!-- section:(\w+) -->.*?<!-- end:\1 -->", old, re.S)
    }
    pasted = args.stdout.read_text() if args.stdout is not None else None
    for name in args.sections:
        blocks[name] = run_section(name, pasted)
    # sections this script does not generate (written by hand around a script's output)
    # keep their place after the generated ones
    extra = [block for name, block in blocks.items() if name not in SECTIONS]
    body = [HEADER] + [blocks[name] for name in SECTIONS if name in blocks] + extra
    DOC.write_text("\n\n".join(body).rstrip() + "\n")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
