"""Renders ``docs/figures/geosr_crops.png``: low-res | bicubic | default model | high-res crops.

The high-resolution raster is degraded with ``geosr simulate`` (Gaussian MTF, x``--factor``),
enhanced back with ``geosr enhance`` (the default model, and bicubic), and one crop of each
is shown side by side (the low-res input nearest-upsampled to the same size). Without
``--hr`` it uses a generated raster (``tests/data/geotiff.py``), so the committed figure is
not derived from third-party data; pass a real raster to see real imagery::

    .venv/bin/python -m benchmarks.geosr_figure
    .venv/bin/python -m benchmarks.geosr_figure --hr ../shared/data/naip_opengeos/m_4709963_se_14_1_20100629.tif --bands 1,2,3 --out /tmp/naip_crops.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from benchmarks.harness import REPO_ROOT


def _display(path: Path, bands: list[int], window, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        data = src.read(bands, window=window).astype(np.float64)
    image = (data - low[:, None, None]) / (high - low)[:, None, None]
    image = np.clip(np.moveaxis(image, 0, -1), 0, 1)
    return image[..., 0] if image.shape[-1] == 1 else image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hr", default=None, help="High-resolution raster (default: generated).")
    parser.add_argument("--bands", default="1,2,3")
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--crop", type=int, default=96, help="Crop side in HR pixels.")
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "figures" / "geosr_crops.png"))
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from rasterio.windows import Window
    from srkit.geosr.enhance import EnhanceOptions, enhance_raster
    from srkit.geosr.models import default_model
    from srkit.geosr.simulate import simulate_raster

    from tests.data.geotiff import make_uint8_rgb

    bands = [int(b) for b in args.bands.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hr = Path(args.hr) if args.hr else make_uint8_rgb(tmp, seed=3, size=(192, 256))
        lr, bicubic, model = tmp / "lr.tif", tmp / "bicubic.tif", tmp / "model.tif"
        simulate_raster(hr, lr, args.factor, "gaussian", args.bands)
        choice = default_model(args.factor, len(bands))
        enhance_raster(lr, bicubic, EnhanceOptions(scale=args.factor, model="bicubic"))
        enhance_raster(lr, model, EnhanceOptions(scale=args.factor))
        with rasterio.open(hr) as src:
            data = src.read(bands, masked=True)
            low = np.array([np.percentile(b.compressed(), 1) for b in data])
            high = np.array([np.percentile(b.compressed(), 99) for b in data])
            row = max(0, src.height // 2 - args.crop // 2) // args.factor * args.factor
            col = max(0, src.width // 2 - args.crop // 2) // args.factor * args.factor
        c, f = args.crop, args.factor
        hr_window = Window(col, row, c, c)
        lr_window = Window(col // f, row // f, c // f, c // f)
        panels = [
            (
                f"low-res input (x{f} nearest)",
                np.kron(
                    _display(lr, [1, 2, 3][: len(bands)], lr_window, low, high),
                    np.ones((f, f, 1) if len(bands) > 1 else (f, f)),
                ),
            ),
            ("bicubic", _display(bicubic, list(range(1, len(bands) + 1)), hr_window, low, high)),
            (
                f"default model ({choice.spec})",
                _display(model, list(range(1, len(bands) + 1)), hr_window, low, high),
            ),
            ("high-res reference", _display(hr, bands, hr_window, low, high)),
        ]
        fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
        for ax, (title, image) in zip(axes, panels):
            ax.imshow(image, cmap="gray", interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        source = Path(args.hr).name if args.hr else "generated raster (tests/data/geotiff.py)"
        fig.suptitle(f"geosr simulate (Gaussian MTF) + enhance x{f}: {source}", fontsize=10)
        fig.tight_layout()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
