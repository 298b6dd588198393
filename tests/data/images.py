"""Generates small 8-bit RGB PNG textures for training tests (seeded, no download).

Run ``python -m tests.data.images OUT_DIR`` to write them by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random RGB texture with edges, uint8 (H, W, 3)."""
    base = gaussian_filter(rng.random((size, size, 3)), sigma=(2.0, 2.0, 0.0))
    yy, xx = np.mgrid[:size, :size]
    stripes = 0.5 + 0.5 * np.sin(xx * rng.uniform(0.2, 0.6) + yy * rng.uniform(0.1, 0.4))
    edge = (xx + yy * rng.uniform(-1, 1) > size / 2).astype(float)
    image = (
        0.4 * (base - base.min()) / np.ptp(base) + 0.3 * stripes[..., None] + 0.3 * edge[..., None]
    )
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def write_textures(out_dir: Path, count: int = 6, size: int = 48, seed: int = 0) -> list[Path]:
    """Writes ``count - 2`` ``train_*.png`` and 2 ``val_*.png`` textures into ``out_dir``."""
    import imageio.v3 as iio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        name = f"train_{i}.png" if i < count - 2 else f"val_{i}.png"
        path = out_dir / name
        iio.imwrite(path, texture(rng, size))
        paths.append(path)
    return paths


if __name__ == "__main__":
    write_textures(Path(sys.argv[1]))
