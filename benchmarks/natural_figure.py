"""Draws the natural-image figures in docs/figures/.

- ``natural_crops.png``: low-res input | bicubic | shipped model | reference crops of a
  photograph, with Y-PSNR of the whole image in the titles (the benchmark protocol:
  MATLAB bicubic low-res input rounded to 8 bit, Y channel, ``scale`` pixels shaved). The
  default photograph is scikit-image's bundled ``astronaut`` (NASA, public domain), so the
  committed figure is not derived from ../shared/data. The Y model runs on each RGB
  channel for the colour panels.
- ``natural_psnr_params.png``: Set5 Y-PSNR against parameter count, per scale, for the
  published methods (numbers and parameter counts from their papers) and for every
  shipped ``natural`` model (numbers from its card's ``metrics.benchmark``, written by
  ``python -m benchmarks.natural_sr --update-card``).

Run::

    .venv/bin/python -m benchmarks.natural_figure
    .venv/bin/python -m benchmarks.natural_figure --image ../shared/data/set14/HR/baboon.png --out-dir /tmp
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from srkit.common import list_models, load_model, upscale
from srkit.common.degradation import bicubic_downsample, mod_crop
from srkit.common.metrics import psnr, rgb_to_y, shave

from benchmarks.harness import REPO_ROOT
from benchmarks.natural_sr import PUBLISHED

# Parameter counts as published (Dong et al. 2016 for SRCNN and FSRCNN; Lim et al. 2017
# for EDSR-baseline; Hui et al. 2019 for IMDN).
PUBLISHED_PARAMS = {
    "SRCNN 9-1-5 (T91)": {2: 8_032, 3: 8_032, 4: 8_032},
    "SRCNN 9-5-5": {2: 57_184, 3: 57_184, 4: 57_184},
    "FSRCNN": {2: 12_464, 3: 12_464, 4: 12_464},
    "EDSR-baseline": {2: 1_370_000, 3: 1_550_000, 4: 1_520_000},
    "IMDN": {2: 694_000, 3: 703_000, 4: 715_000},
}


def bundled_photo() -> np.ndarray:
    """scikit-image's ``astronaut`` (512 x 512 RGB uint8, NASA, public domain)."""
    from skimage import data

    return data.astronaut()


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def crops_figure(rgb: np.ndarray, model_spec: str, out: Path, crop: int, title: str) -> str:
    import matplotlib.pyplot as plt

    model = load_model(model_spec)
    scale = model.card.scale
    hr = mod_crop(np.moveaxis(rgb[..., :3], -1, 0).astype(np.float32) / 255.0, scale)
    lr = _to_uint8(bicubic_downsample(hr, scale)).astype(np.float32) / 255.0
    bicubic = _to_uint8(upscale("bicubic", lr, scale=scale)).astype(np.float32) / 255.0
    # the Y model on each channel (one channel at a time: the model takes one)
    ours = np.concatenate([upscale(model, lr[c : c + 1], scale=scale) for c in range(3)])
    ours = _to_uint8(ours).astype(np.float32) / 255.0

    def y_psnr(x: np.ndarray) -> float:
        return psnr(shave(rgb_to_y(x), scale), shave(rgb_to_y(hr), scale), data_range=255.0)

    scores = {"bicubic": y_psnr(bicubic), model.card.name: y_psnr(ours)}
    h, w = hr.shape[1:]
    top = int(h * 0.17) // scale * scale  # the astronaut's face
    left = int(w * 0.36) // scale * scale
    window = (slice(top, top + crop), slice(left, left + crop))
    nearest = np.kron(lr, np.ones((1, scale, scale), np.float32))
    panels = [
        (f"low-res input (x{scale} nearest)", nearest),
        (f"bicubic\n{scores['bicubic']:.2f} dB (Y)", bicubic),
        (f"{model.card.name}\n{scores[model.card.name]:.2f} dB (Y)", ours),
        ("reference", hr),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.6))
    for ax, (name, image) in zip(axes, panels):
        ax.imshow(np.moveaxis(image[:, window[0], window[1]], 0, -1), interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"{title}: MATLAB-bicubic x{scale} low-res input; PSNR on the whole image", fontsize=10
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return f"{out}: " + ", ".join(f"{k} {v:.2f} dB" for k, v in scores.items())


def params_figure(out: Path) -> str:
    import matplotlib.pyplot as plt

    ours = [
        c
        for c in list_models()
        if c.domain == "natural" and "Set5" in c.metrics.get("benchmark", {})
    ]
    scales = sorted(PUBLISHED)
    fig, axes = plt.subplots(1, len(scales), figsize=(4.2 * len(scales), 3.8))
    lines = []
    for ax, scale in zip(axes, scales):
        table = PUBLISHED[scale]["Set5"]
        ax.axhline(table["bicubic"], color="grey", ls="--", lw=1, label="bicubic")
        for method, params in PUBLISHED_PARAMS.items():
            if method in table:
                ax.scatter(params[scale], table[method], color="tab:blue", s=22)
                ax.annotate(
                    method,
                    (params[scale], table[method]),
                    fontsize=7,
                    xytext=(3, -9),
                    textcoords="offset points",
                )
        for card in (c for c in ours if c.scale == scale):
            value = card.metrics["benchmark"]["Set5"]["y_psnr"]
            ax.scatter(card.n_parameters, value, color="tab:red", marker="*", s=90)
            ax.annotate(
                f"{card.name} (ours)",
                (card.n_parameters, value),
                fontsize=7,
                color="tab:red",
                xytext=(3, 4),
                textcoords="offset points",
            )
            lines.append(f"x{scale} {card.name}: {card.n_parameters} params, Set5 {value:.2f} dB")
        ax.set_xscale("log")
        ax.set_xlim(4e3, 4e6)
        ax.set_xlabel("parameters")
        ax.set_ylabel("Set5 Y-PSNR (dB)")
        ax.set_title(f"x{scale}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle(
        "Set5 Y-PSNR against parameters: published (blue) and shipped models (red)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return f"{out}: " + "; ".join(lines)


def main(argv: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=None, help="default: skimage astronaut")
    parser.add_argument("--model", default="natural_edsr_x4")
    parser.add_argument("--crop", type=int, default=128, help="crop side in HR pixels")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs" / "figures")
    args = parser.parse_args(argv)
    if args.image is None:
        rgb, title = bundled_photo(), "scikit-image astronaut (NASA, public domain)"
    else:
        import imageio.v3 as iio

        rgb, title = np.asarray(iio.imread(args.image)), args.image.name
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=-1)
    print(crops_figure(rgb, args.model, args.out_dir / "natural_crops.png", args.crop, title))
    print(params_figure(args.out_dir / "natural_psnr_params.png"))


if __name__ == "__main__":
    main()
