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
        "Every shipped model's card as `common.list_models()` returns it: architecture, size, "
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
        "generated inputs. No GPU was lent to the sessions that trained these models, so "
        "there are no GPU rows.",
        [f"{PY} -m benchmarks.model_speed"],
    ),
    "medsr_timing": (
        "medsr enhance timing (256x256x180 volume, this CPU)",
        "End-to-end `enhance_volume` time for x2 in-plane and x4 through-plane.",
        [f"{PY} -m benchmarks.medsr_timing"],
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
        "Mpix/s of output (all bands) for the default model and baselines.",
        [f"{PY} -m benchmarks.geosr_throughput"],
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


def run_section(name: str) -> str:
    title, what, commands = SECTIONS[name]
    parts = [f"<!-- section:{name} -->", f"## {title}", "", what, ""]
    for command in commands:
        print(f"$ {command}", file=sys.stderr, flush=True)
        done = subprocess.run(
            command, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"error: {command!r} failed with exit code {done.returncode}")
        parts += [
            f"```\n$ {command}\n```",
            f"_{datetime.date.today().isoformat()}, {machine()}_",
            "",
            done.stdout.strip(),
            "",
        ]
    parts.append(f"<!-- end:{name} -->")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=list(SECTIONS))
    args = parser.parse_args(argv)
    old = DOC.read_text() if DOC.exists() else HEADER
    blocks = {
        m.group(1): m.group(0)
        for m in re.finditer(r"<!-- section:(\w+) -->.*?<!-- end:\1 -->", old, re.S)
    }
    for name in args.sections:
        blocks[name] = run_section(name)
    body = [HEADER] + [blocks[name] for name in SECTIONS if name in blocks]
    DOC.write_text("\n\n".join(body).rstrip() + "\n")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
