"""Self-supervised through-plane SR against B-spline, the shipped default and ECLARE.

For each held-out volume, factor and slice profile: simulate the thick-slice twin
(``medsr simulate``'s model; ``--gap 0.2`` gives slices of 0.8 x the spacing), then score,
inside the Otsu foreground of the reference (``medsr evaluate``'s PSNR and SSIM):

- ``bspline``: cubic B-spline of the thick slices;
- ``default``: ``medsr enhance``'s shipped model for the factor;
- ``selfsup NNs``: :func:`medsr.self_supervised.adapt` with an NN-second budget, then the
  enhance path (the budget covers profile estimation, pairs and training);
- ``eclare``: ECLARE (pip ``eclare``, GPL-3.0) in its own virtualenv, made by this script
  under ``benchmarks/.venv-eclare`` (never a dependency or an import of srkit). It runs
  its own profile estimation, with its patch count cut to fit the same CPU budget
  (``--eclare-rate`` patches/s, measured on this machine), or at its defaults with
  ``--eclare-defaults``.

Also the estimated against the true FWHM. Held-out volumes (none trained the shipped MRI
models, which saw the stroke T1/T2/FLAIR and seg3D volumes and were selected on MR_Gd):
``chris_t1`` (CC BY-NC, evaluation only), the studyforrest DICOM T1, and the same T1 in a
synthetic contrast the default never saw (tissue classes remapped: grey matter brightest,
CSF mid, white matter dark). The real
thick-slice scan ``mri_nifti/T2w.nii.gz`` (2 mm, no reference) gets the data-consistency
check: the output re-degraded with the estimated profile against the input (PSNR), and a
figure of orthogonal slices (``--figure``). Failure modes: ``--slices N`` keeps N thick
slices (a short scan); ``--motion MM`` moves each thick slice in its plane by a random
shift (normal, MM mm per axis) that the still reference does not have.

Results go to ``--out`` (JSON) as each case finishes; a rerun skips the cases already
there, so a long run resumes. Run::

    .venv/bin/python -m benchmarks.medsr_selfsup                        # x4 box, all budgets
    .venv/bin/python -m benchmarks.medsr_selfsup --factors 2 3 4 --profiles gaussian box \\
        --gaps 0 0.2 --budgets 120
    .venv/bin/python -m benchmarks.medsr_selfsup --eclare                # adds ECLARE
    .venv/bin/python -m benchmarks.medsr_selfsup --slices 10 --budgets 120   # failure modes:
    .venv/bin/python -m benchmarks.medsr_selfsup --motion 1.0 --budgets 120  # few slices, motion
    .venv/bin/python -m benchmarks.medsr_selfsup --real --figure benchmarks/out/medsr_selfsup_t2w.png
    .venv/bin/python -m benchmarks.medsr_selfsup --budgets 300 --adapt-option loss=mse  # a knob
    .venv/bin/python -m benchmarks.medsr_selfsup --anisotropy mri_nifti/stroke_T1.nii.gz  # own blur

``--adapt-option KEY=VALUE`` passes ``loss``, ``batch_size``, ``patch_size`` or
``learning_rate`` to :func:`~medsr.self_supervised.adapt` for the self-supervised runs (their method names carry it). ``--anisotropy`` prints, for each
reference volume, the share of its power in the upper half of the frequency band along
each axis (foreground box, mean Hann-windowed periodogram of the lines): a reference that
is natively blurrier along the simulated thick axis than in-plane scores a method that
restores in-plane sharpness there as an error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.ndimage import find_objects
from scipy.signal import periodogram
from srkit.common.io import atomic_output, atomic_write_text
from srkit.medsr.enhance import enhance_volume
from srkit.medsr.evaluate import evaluate_volumes, grid_distance, otsu_mask
from srkit.medsr.geometry import voxel_sizes
from srkit.medsr.io import Volume, read_volume
from srkit.medsr.plan import plan_enhance
from srkit.medsr.self_supervised import adapt
from srkit.medsr.simulate import simulate_volume
from srkit.medsr.slice_profile import profile_matrix

from benchmarks.harness import REPO_ROOT, SHARED_DATA, markdown_header, markdown_row, require_shared
from benchmarks.medsr_holdout import crop_to_factor

VOLUMES = {
    "chris_t1 (test)": ("mri_nifti/chris_t1.nii.gz", 2, False),
    "studyforrest T1 (test)": ("dicom_mr_t1_studyforrest", 0, False),
    "studyforrest, unseen contrast (test)": ("dicom_mr_t1_studyforrest", 0, True),
}
REAL = "mri_nifti/T2w.nii.gz"
ECLARE_VENV = REPO_ROOT / "benchmarks" / ".venv-eclare"
ECLARE_SPEC = "eclare==1.0.1"


def unseen_contrast(volume: Volume) -> Volume:
    """A contrast no MRI model here trained on: grey matter brightest, CSF mid, white dark.

    The T1's tissue classes (3-class Otsu of the head: CSF, grey and white matter) get new
    values at their mean intensities, with linear interpolation between them (0 -> 0,
    CSF -> 0.5, grey -> 1, white -> 0.25, the 99.9th percentile (fat) -> 0.6, times that
    percentile). The map turns only at pure-tissue values, so a partial-volume edge between
    neighbouring tissues stays an edge, and the background stays dark. (A voxelwise
    non-monotonic map turns edges into thin ridges, and a thresholded inversion makes
    speckle of the background noise: neither is a contrast a scanner makes.)
    """
    from skimage.filters import threshold_multiotsu

    data = volume.data.astype(np.float32)
    head = data[data > 0.1 * np.percentile(data, 99)]
    low, high = threshold_multiotsu(head, classes=3)
    csf, grey, white = (
        float(head[head < low].mean()),
        float(head[(head >= low) & (head < high)].mean()),
        float(head[head >= high].mean()),
    )
    top = float(np.percentile(data, 99.9))
    knots = [0.0, csf, grey, white, max(top, white + 1e-3)]
    values = [0.0, 0.5 * top, top, 0.25 * top, 0.6 * top]
    return replace(volume, data=np.interp(data, knots, values).astype(np.float32))


def load_case(name: str, factor: int, data_root: Path) -> tuple[Volume, int, np.ndarray]:
    """The reference volume, its thick axis and the foreground to score in.

    The foreground is the Otsu mask of the volume as read (the anatomy), also for a
    re-contrasted volume, whose own Otsu mask would follow its new intensities.
    """
    path, axis, recontrast = VOLUMES[name]
    hr = read_volume(data_root / path)
    hr = crop_to_factor(hr, [axis], factor)
    mask = otsu_mask(hr.data)
    return (unseen_contrast(hr) if recontrast else hr), axis, mask


def score(pred: Volume, hr: Volume, lr: Volume, axis: int, mask: np.ndarray) -> dict:
    result = evaluate_volumes(pred, hr, lr=lr, axis=axis, mask=mask)
    return {
        "psnr": round(result["model"]["psnr"], 3),
        "ssim": round(result["model"]["ssim"], 4),
        "bspline_psnr": round(result["baseline"]["psnr"], 3),
    }


# --------------------------------------------------------------------------- ECLARE


def eclare_python() -> Path:
    """ECLARE's own virtualenv (created on first use): the CPU torch wheel, then eclare."""
    python = ECLARE_VENV / "bin" / "python"
    if not (ECLARE_VENV / ".installed").exists():
        print(f"creating {ECLARE_VENV} for {ECLARE_SPEC} (GPL-3.0, benchmark only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(ECLARE_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, ECLARE_SPEC], check=True)
        (ECLARE_VENV / ".installed").write_text(ECLARE_SPEC + "\n")
    return python


def run_eclare(lr: Volume, n_patches: int | None) -> tuple[Volume, float]:
    """ECLARE on ``lr`` (a NIfTI it reads itself); returns its output and wall seconds."""
    import nibabel as nib

    runner = eclare_python().parent / "run-eclare"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "lr.nii.gz"
        nib.save(nib.Nifti1Image(lr.data.astype(np.float32), lr.affine), str(source))
        command = [
            str(runner),
            "--in-fpath",
            str(source),
            "--out-dir",
            str(Path(tmp) / "out"),
            "--gpu-id",
            "-1",
        ]
        if n_patches is not None:
            command += ["--n-patches", str(n_patches)]
        start = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        seconds = time.perf_counter() - start
        outputs = sorted((Path(tmp) / "out").glob("*eclare*.nii*"))
        if not outputs:
            raise RuntimeError("ECLARE wrote no output")
        image = nib.load(str(outputs[0]))
        data = np.asanyarray(image.dataobj).astype(np.float32)
    return Volume(data=data, affine=image.affine, modality="mri"), seconds


# --------------------------------------------------------------------------- cases


def keep_slices(hr: Volume, mask: np.ndarray, axis: int, n: int) -> tuple[Volume, np.ndarray]:
    """The central ``n`` fine slices along ``axis`` (a short scan)."""
    first = max((hr.shape[axis] - n) // 2, 0)
    index = tuple(slice(first, first + n) if a == axis else slice(None) for a in range(3))
    return hr.crop(index), mask[index]


def add_motion(lr: Volume, axis: int, mm: float, seed: int = 0) -> Volume:
    """Each thick slice moved in its plane by a random shift (normal, ``mm`` per axis):
    motion between slices, which the reference (still) does not have."""
    from scipy.ndimage import shift

    rng = np.random.default_rng(seed)
    sizes = voxel_sizes(lr.affine)
    others = [a for a in range(3) if a != axis]
    planes = np.moveaxis(lr.data, axis, 0).copy()
    for k in range(planes.shape[0]):
        offset = [rng.normal(0, mm) / sizes[a] for a in others]
        planes[k] = shift(planes[k], offset, order=3, mode="nearest")
    return replace(lr, data=np.ascontiguousarray(np.moveaxis(planes, 0, axis)))


def run_case(args, name: str, factor: int, kind: str, gap: float, done: dict) -> list[dict]:
    key = f"{name} | x{factor} {kind} gap {gap}"
    key += f" | {args.slices} thick slices" if args.slices else ""
    key += f" | motion {args.motion} mm" if args.motion else ""
    rows = []
    hr, axis, mask = load_case(name, factor, args.data)
    if args.slices:
        hr, mask = keep_slices(hr, mask, axis, args.slices * factor)
    spacing = float(voxel_sizes(hr.affine)[axis])
    gap_mm = gap * factor * spacing
    lr = simulate_volume(hr, axis=axis, factor=factor, profile=kind, gap_mm=gap_mm)
    if args.motion:
        lr = add_motion(lr, axis, args.motion)
    plan = plan_enhance(
        lr.shape, lr.affine, scale=tuple(factor if a == axis else 1 for a in range(3))
    )
    true_fwhm = factor * spacing - gap_mm
    tail = "" if args.adapt_profile == "auto" else f" {args.adapt_profile}"
    tail += "".join(f" {k}={v}" for k, v in args.adapt_option)
    methods = ["default", *(f"selfsup {int(b)}s{tail}" for b in args.budgets)]
    if args.eclare:
        methods += [f"eclare {int(b)}s" for b in args.budgets[-1:]]
    if args.eclare_defaults:
        methods.append("eclare defaults")
    if args.only:
        methods = [m for m in methods if any(m.startswith(p) for p in args.only)]
    for method in methods:
        if f"{key} | {method}" in done:
            rows.append(done[f"{key} | {method}"])
            continue
        start = time.perf_counter()
        row = {"case": key, "volume": name, "factor": factor, "profile": kind, "gap": gap}
        row["method"] = method
        row["true_fwhm_mm"] = round(true_fwhm, 3)
        if method == "default":
            pred = enhance_volume(lr, plan).volume
        elif method.startswith("selfsup"):
            budget = float(method.split()[1][:-1])
            model = adapt(
                lr,
                plan,
                budget=budget,
                profile=args.adapt_profile,
                progress=args.progress,
                **dict(args.adapt_option),
            )
            pred = enhance_volume(lr, plan, model=model).volume
            record = model.adaptation
            row.update(
                fwhm_mm=record["profile"]["fwhm_mm"],
                steps=record["steps"],
                fallback=record["fallback"],
                holdout_gain_db=record["holdout_gain_db"],
                adapt_s=record["seconds"],
                precision=record.get("precision"),
                steps_per_s=record.get("precision_timing", {}).get("steps_per_s"),
            )
        else:
            budget = None if method == "eclare defaults" else float(method.split()[1][:-1])
            # its own ESPRESO profile estimate runs first and counts in the budget
            n = (
                None
                if budget is None
                else max(1000, int((budget - args.espreso_seconds) * args.eclare_rate))
            )
            pred, _ = run_eclare(lr, n)
            # scored on its own grid (its header): a grid off ours fails the evaluation
            ours = enhance_volume(lr, plan, model="bspline").volume
            row["grid_offset_mm"] = round(grid_distance(pred, ours), 4)
            row["n_patches"] = n
        row["seconds"] = round(time.perf_counter() - start, 1)
        row.update(score(pred, hr, lr, axis, mask))
        done[f"{key} | {method}"] = row
        atomic_write_text(args.out, json.dumps(done, indent=1) + "\n", overwrite=True)
        rows.append(row)
        print(f"  {key} | {method}: {row['psnr']:.2f} dB ({row['seconds']} s)", flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    cases = list(dict.fromkeys(r["case"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    print(
        "\nPSNR (dB) / SSIM in the foreground (wall seconds of the method, adaptation or "
        "ECLARE's whole run included); FWHM true -> estimated (mm)\n"
    )
    print(markdown_header(["case", "B-spline", *methods, "FWHM"]))
    for case in cases:
        mine = {r["method"]: r for r in rows if r["case"] == case}
        first = next(iter(mine.values()))
        cells = [f"{first['bspline_psnr']:.2f}"]
        for m in methods:
            r = mine.get(m)
            cells.append(f"{r['psnr']:.2f} / {r['ssim']:.3f} ({r['seconds']:.0f} s)" if r else "")
        est = next((r["fwhm_mm"] for r in mine.values() if "fwhm_mm" in r), None)
        cells.append(f"{first['true_fwhm_mm']:.2f} -> {est:.2f}" if est else "")
        print(markdown_row([case, *cells]))


# --------------------------------------------------------------------------- real scan


def real_scan(args) -> None:
    """T2w.nii.gz (real 2 mm slices): data consistency of each method, and a figure."""
    (path,) = require_shared(REAL, root=args.data)
    lr = read_volume(path)
    plan = plan_enhance(lr.shape, lr.affine)
    axis = plan.thick_axis
    factor = plan.axis_scale[axis]
    model = adapt(lr, plan, budget=args.budgets[-1], progress=args.progress)
    record = model.adaptation
    prof = record["profile"]
    outputs = {
        "B-spline": enhance_volume(lr, plan, model="bspline").volume,
        "default": enhance_volume(lr, plan).volume,
        "self-supervised": enhance_volume(lr, plan, model=model).volume,
    }
    spacing = voxel_sizes(outputs["default"].affine)[axis]
    n = outputs["default"].shape[axis]
    matrix = profile_matrix(n, factor, prof["fwhm_mm"] / spacing, prof["kind"])
    print(f"\n{REAL}: {plan.reason}; profile {prof['kind']} FWHM {prof['fwhm_mm']} mm")
    print(markdown_header(["method", "re-degraded vs input PSNR (dB)"]))
    valid = lr.data > 0.1 * np.percentile(lr.data, 99)
    span = float(lr.data[valid].max() - lr.data[valid].min())
    for label, out in outputs.items():
        again = np.moveaxis(np.tensordot(matrix, np.moveaxis(out.data, axis, 0), 1), 0, axis)
        mse = float(np.mean((again[valid] - lr.data[valid]) ** 2))
        print(markdown_row([label, f"{10 * np.log10(span**2 / mse):.2f}"]))
    if args.figure:
        figure(lr, outputs, axis, args.figure)


def figure(lr: Volume, outputs: dict, axis: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"input (nearest)": None, **outputs}
    ref = outputs["default"]
    fig, axes = plt.subplots(2, len(panels), figsize=(3.2 * len(panels), 6.4))
    for col, (label, vol) in enumerate(panels.items()):
        if vol is None:
            factor = ref.shape[axis] // lr.shape[axis]
            data = np.repeat(lr.data, factor, axis=axis)
        else:
            data = vol.data
        vmax = np.percentile(data, 99.5)
        others = [a for a in range(3) if a != axis]
        for row, other in enumerate(others):
            plane = np.take(data, data.shape[other] // 2, axis=other)
            axes[row, col].imshow(np.rot90(plane), cmap="gray", vmin=0, vmax=vmax, aspect="auto")
            axes[row, col].set_axis_off()
        axes[0, col].set_title(label)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    print(f"wrote {path}")


ADAPT_OPTIONS = {"loss": str, "batch_size": int, "learning_rate": float, "patch_size": int}


def adapt_option(text: str) -> tuple[str, object]:
    """``--adapt-option KEY=VALUE``, typed."""
    key, sep, value = text.partition("=")
    if not sep or key not in ADAPT_OPTIONS:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, KEY one of {list(ADAPT_OPTIONS)}")
    return key, ADAPT_OPTIONS[key](value)


def high_band_share(x: np.ndarray) -> list[float]:
    """Per axis: the share of the (mean, Hann-windowed) line power in the band's upper half.

    Lines are cut to the shortest axis's length about their centre, so every axis is
    measured over the same number of samples.
    """
    n = min(x.shape)
    shares = []
    for axis in range(x.ndim):
        lines = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
        start = (x.shape[axis] - n) // 2
        power = periodogram(lines[:, start : start + n], window="hann", axis=-1)[1].mean(0)[1:]
        shares.append(float(power[len(power) // 2 :].sum() / power.sum()))
    return shares


def anisotropy(args) -> None:
    """Each reference's native sharpness along each axis (see the module doc)."""
    print("| volume | thick axis | upper-half-band power share per axis | thick / max |")
    print("|---|---:|---|---:|")
    cases = [(name, *load_case(name, 1, args.data)) for name in args.volumes]
    for path in args.anisotropy:
        volume = read_volume(args.data / path)
        cases.append((path, volume, None, otsu_mask(volume.data)))
    for name, volume, axis, mask in cases:
        x = volume.data[find_objects(mask.astype(np.int8))[0]].astype(np.float64)
        shares = high_band_share(x / np.percentile(x, 99))
        text = ", ".join(f"{s:.2e}" for s in shares)
        ratio = "" if axis is None else f"{shares[axis] / max(shares):.2f}"
        sizes = ", ".join(f"{v:.2f}" for v in voxel_sizes(volume.affine))
        print(f"| {name} ({sizes} mm) | {'' if axis is None else axis} | {text} | {ratio} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--volumes", nargs="+", default=list(VOLUMES))
    parser.add_argument("--factors", type=int, nargs="+", default=[4])
    parser.add_argument("--profiles", nargs="+", default=["box"])
    parser.add_argument("--gaps", type=float, nargs="+", default=[0.0], help="gap / spacing")
    parser.add_argument("--budgets", type=float, nargs="+", default=[120, 300, 600])
    parser.add_argument(
        "--adapt-profile",
        default="auto",
        help="--profile for the self-supervised runs (auto; or e.g. box, box:3.52 to test"
        " a given kind or width)",
    )
    parser.add_argument(
        "--adapt-option",
        type=adapt_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"for the self-supervised runs: {', '.join(ADAPT_OPTIONS)}",
    )
    parser.add_argument(
        "--anisotropy",
        nargs="*",
        default=None,
        metavar="PATH",
        help="each reference's own sharpness per axis (and that of these files under --data)",
    )
    parser.add_argument("--eclare", action="store_true", help="ECLARE at the largest budget")
    parser.add_argument("--eclare-defaults", action="store_true")
    parser.add_argument("--eclare-rate", type=float, default=15.6, help="its patches/s here")
    parser.add_argument(
        "--espreso-seconds", type=float, default=450, help="ECLARE's profile estimate here"
    )
    parser.add_argument(
        "--slices", type=int, default=None, help="keep this many thick slices (a short scan)"
    )
    parser.add_argument(
        "--motion",
        type=float,
        default=None,
        help="move each thick slice in-plane by a random shift of this many mm (std)",
    )
    parser.add_argument("--only", nargs="+", default=None, help="method name prefixes to run")
    parser.add_argument("--real", action="store_true", help="only the real T2w scan")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "medsr_selfsup.json"
    )
    args = parser.parse_args(argv)
    if args.real:
        real_scan(args)
        return
    unknown = [v for v in args.volumes if v not in VOLUMES]
    if unknown:
        sys.exit(f"error: unknown volume(s) {unknown}; choose from {list(VOLUMES)}")
    require_shared(*dict.fromkeys(VOLUMES[v][0] for v in args.volumes), root=args.data)
    if args.anisotropy is not None:
        require_shared(*args.anisotropy, root=args.data)
        anisotropy(args)
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = []
    for name in args.volumes:
        for factor in args.factors:
            for kind in args.profiles:
                for gap in args.gaps:
                    rows += run_case(args, name, factor, kind, gap, done)
    print_table(rows)


if __name__ == "__main__":
    main()
