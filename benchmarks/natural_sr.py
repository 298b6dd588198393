"""Natural-image SR benchmark: Y-PSNR/SSIM on Set5, Set14 and B100 beside published numbers.

Protocol (SRCNN's): HR RGB -> crop to a multiple of the scale -> BT.601 Y (16-235) ->
MATLAB-compatible bicubic downscaling -> 8-bit rounding of the low-res input -> model ->
8-bit rounding of the output -> PSNR/SSIM on Y (0-255) with ``scale`` pixels shaved.
The bicubic baseline goes through the same path.

Run::

    .venv/bin/python -m benchmarks.natural_sr --model natural_srcnn_x3 --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from srkit.common import load_model, upscale
from srkit.common.degradation import bicubic_downsample, mod_crop
from srkit.common.metrics import psnr, shave, ssim
from srkit.common.training.data import read_image

from benchmarks.harness import (
    SHARED_DATA,
    markdown_header,
    markdown_row,
    median_time,
    require_shared,
)

DATASETS = {"Set5": "set5/HR", "Set14": "set14/HR", "B100": "bsd100/HR"}

# Published Y-PSNR (dB): bicubic and SRCNN from Dong et al. (TPAMI 2016, T91-trained
# 9-1-5 and 9-5-5); FSRCNN (Dong et al. 2016); EDSR-baseline (Lim et al. 2017);
# IMDN (Hui et al. 2019).
PUBLISHED = {
    3: {
        "Set5": {
            "bicubic": 30.39,
            "SRCNN 9-1-5 (T91)": 32.39,
            "SRCNN 9-5-5": 32.75,
            "FSRCNN": 33.18,
            "EDSR-baseline": 34.37,
            "IMDN": 34.36,
        },
        "Set14": {
            "bicubic": 27.55,
            "SRCNN 9-1-5 (T91)": 29.00,
            "SRCNN 9-5-5": 29.30,
            "FSRCNN": 29.37,
            "EDSR-baseline": 30.28,
            "IMDN": 30.32,
        },
        "B100": {
            "bicubic": 27.21,
            "SRCNN 9-5-5": 28.41,
            "FSRCNN": 28.53,
            "EDSR-baseline": 29.09,
            "IMDN": 29.09,
        },
    },
    2: {
        "Set5": {
            "bicubic": 33.66,
            "SRCNN 9-5-5": 36.66,
            "FSRCNN": 37.00,
            "EDSR-baseline": 37.99,
            "IMDN": 38.00,
        },
        "Set14": {
            "bicubic": 30.24,
            "SRCNN 9-5-5": 32.45,
            "FSRCNN": 32.63,
            "EDSR-baseline": 33.57,
            "IMDN": 33.63,
        },
        "B100": {
            "bicubic": 29.56,
            "SRCNN 9-5-5": 31.36,
            "FSRCNN": 31.53,
            "EDSR-baseline": 32.16,
            "IMDN": 32.19,
        },
    },
    4: {
        "Set5": {
            "bicubic": 28.42,
            "SRCNN 9-5-5": 30.48,
            "FSRCNN": 30.72,
            "EDSR-baseline": 32.09,
            "IMDN": 32.21,
        },
        "Set14": {
            "bicubic": 26.00,
            "SRCNN 9-5-5": 27.49,
            "FSRCNN": 27.61,
            "EDSR-baseline": 28.58,
            "IMDN": 28.58,
        },
        "B100": {
            "bicubic": 25.96,
            "SRCNN 9-5-5": 26.90,
            "FSRCNN": 26.98,
            "EDSR-baseline": 27.57,
            "IMDN": 27.56,
        },
    },
}


def evaluate(model, files: list[Path], scale: int) -> dict[str, float]:
    """Mean Y-PSNR/SSIM of ``model`` over ``files`` with the protocol above."""
    psnrs, ssims = [], []
    for path in files:
        hr = mod_crop(read_image(path, "y"), scale)
        lr = np.clip(np.round(bicubic_downsample(hr, scale) * 255), 0, 255).astype(np.float32) / 255
        sr = upscale(model, lr, scale=scale)
        sr = np.clip(np.round(sr * 255), 0, 255)
        ref = hr * 255  # Y of the 8-bit RGB original, unrounded (as MATLAB's rgb2ycbcr on doubles)
        p, r = shave(sr, scale), shave(ref, scale)
        psnrs.append(psnr(p, r, data_range=255.0))
        ssims.append(ssim(p, r, data_range=255.0, channel_axis=0))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "n": len(files)}


def evaluate_datasets(model, data: Path, datasets: list[str], scale: int) -> dict[str, dict]:
    """:func:`evaluate` on each of ``datasets`` (keys of ``DATASETS``) under ``data``."""
    results = {}
    for ds in datasets:
        files = sorted((data / DATASETS[ds]).glob("*.png"))
        if not files:
            raise SystemExit(f"error: no images in {data / DATASETS[ds]}")
        results[ds] = evaluate(model, files, scale)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="model spec (repeatable)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument(
        "--update-card",
        type=Path,
        default=None,
        help="write the measured numbers into this JSON model card's metrics",
    )
    args = parser.parse_args(argv)
    args.datasets = list(dict.fromkeys(args.datasets))  # one column per data set
    require_shared(*(DATASETS[ds] for ds in args.datasets), root=args.data)
    loaded = [load_model(spec) for spec in args.model]
    models = {(m.card.name if m.has_card else spec): m for spec, m in zip(args.model, loaded)}
    scales = sorted({m.card.scale for m in models.values()} or {3})
    for scale in scales:
        print(f"\n### x{scale}: Y-PSNR (dB) / SSIM\n")
        print(markdown_header(["method", *args.datasets]))
        rows: dict[str, list[str]] = {}
        measured: dict[str, dict[str, dict[str, float]]] = {}
        timings = {}
        for name, model in {"bicubic (this toolkit)": load_model("bicubic"), **models}.items():
            if not model.serves(scale, dims=2):
                continue
            timing = median_time(
                lambda model=model, scale=scale: evaluate_datasets(
                    model, args.data, args.datasets, scale
                ),
                repeat=1,
            )
            timings[name] = timing.seconds
            measured[name] = timing.result
            rows[name] = [f"{r['psnr']:.2f} / {r['ssim']:.4f}" for r in timing.result.values()]
        for method in sorted(
            {m for ds in args.datasets for m in PUBLISHED.get(scale, {}).get(ds, {})},
            key=lambda m: PUBLISHED[scale]["Set5"].get(m, 0),
        ):
            cells = [
                f"{PUBLISHED[scale][ds][method]:.2f}"
                if method in PUBLISHED[scale].get(ds, {})
                else "-"
                for ds in args.datasets
            ]
            print(markdown_row([f"{method} (published)", *cells]))
        for name, cells in rows.items():
            print(markdown_row([f"**{name}**", *cells]))
        print(
            "\nseconds per method (all datasets, this CPU): "
            + ", ".join(f"{k}: {v:.1f}" for k, v in timings.items())
        )
        if args.update_card:
            _update_card(args.update_card, measured, scale, models)


def _update_card(card_path: Path, measured, scale: int, models) -> None:
    """Adds per-dataset Y-PSNR/SSIM of the card's model and of bicubic to its metrics, and
    re-derives the structural fields (receptive field, parameters) from the loaded model."""
    card = json.loads(card_path.read_text())
    network = models[card["name"]]
    card["receptive_field"] = 2 * max(network.receptive_radius) + 1
    card["n_parameters"] = network.n_parameters()
    model = measured[card["name"]]
    bicubic = measured["bicubic (this toolkit)"]
    benchmark = {
        ds: {
            "y_psnr": round(model[ds]["psnr"], 3),
            "y_ssim": round(model[ds]["ssim"], 4),
            "bicubic_y_psnr": round(bicubic[ds]["psnr"], 3),
            "bicubic_y_ssim": round(bicubic[ds]["ssim"], 4),
            "gain_db": round(model[ds]["psnr"] - bicubic[ds]["psnr"], 3),
            "images": model[ds]["n"],
        }
        for ds in model
    }
    card["metrics"] = {
        **card["metrics"],
        "benchmark": benchmark,
        "protocol": f"Y (BT.601), MATLAB bicubic x{scale} LR rounded to 8 bit, {scale}-px shave",
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"updated {card_path}")


if __name__ == "__main__":
    main()
