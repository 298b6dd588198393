"""The training runner shared by ``medsr train`` and ``geosr train``.

One call, ``run_training(config)``, does the whole recipe: Adam with a cosine schedule,
MSE (or L1) loss, EMA weights, bf16 autocast on CUDA, a tqdm bar, CSV and TensorBoard
logs, validation after every epoch next to the interpolation baseline, ``last.pt``
checkpoints that ``resume=True`` continues from, and export of the best model as
safetensors plus card. Under ``torchrun`` it trains with DistributedDataParallel (NCCL on
GPUs, gloo on CPUs); rank 0 validates, logs and writes files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from .._version import __version__
from ..inference import upscale
from ..metrics import psnr, shave, ssim
from ..models import ModelCard, build_model, make_baseline, save_model
from ..models.architectures import SRModule
from ..models.layers import expand_per_axis
from ..models.weights import read_weights
from .config import RunConfig, config_from_dict, load_config
from .data import (
    IMAGE_SUFFIXES,
    PatchSampler,
    Reader,
    evaluate_planes,
    expand_paths,
    image_reader,
    load_pairs,
    plane_pairs,
    region_reader,
    regions_disjoint,
    split_channels,
)

CSV_FIELDS = [
    "epoch",
    "step",
    "loss",
    "lr",
    "psnr",
    "ssim",
    "baseline_psnr",
    "baseline_ssim",
    "gain_db",
    "seconds",
]


@dataclass
class TrainingResult:
    """What a run produced: the exported model, its metrics and where the logs are."""

    weights: Path
    card: ModelCard
    metrics: dict[str, float]
    output_dir: Path
    steps: int
    model: SRModule | None = None


def _distributed() -> tuple[int, int, bool]:
    """``(rank, world_size, started_here)``; starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), True


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _y_psnr_ready(x: np.ndarray) -> np.ndarray:
    """Rounds to 8-bit levels, as the natural-image protocol saves outputs as uint8."""
    return np.clip(np.round(x * 255.0), 0, 255) / 255.0


def evaluate_pairs(
    model: SRModule,
    pairs,
    *,
    scale,
    shave_border: int,
    quantize: bool,
    device: torch.device,
    tile: int = 0,
) -> dict[str, float]:
    """Mean PSNR/SSIM of ``model`` on ``pairs`` (data range 1, borders shaved)."""
    psnrs, ssims = [], []
    for pair in pairs:
        if model.dims == 2 and pair.lr.ndim == 4:  # data.planes: a 2D model on each plane
            pred = evaluate_planes(
                lambda plane: upscale(model, plane, scale=scale, device=device, tile=tile or None),
                pair.lr,
            )
        else:
            pred = upscale(model, pair.lr, scale=scale, device=device, tile=tile or None)
        if quantize:
            pred = _y_psnr_ready(pred)
        dims = pred.ndim - 1
        p, r = (
            shave(pred, shave_border, spatial_dims=dims),
            shave(pair.hr, shave_border, spatial_dims=dims),
        )
        psnrs.append(psnr(p, r, data_range=1.0))
        ssims.append(ssim(p, r, data_range=1.0, channel_axis=0))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}


def _make_card(cfg: RunConfig, model: SRModule, metrics: Mapping[str, Any]) -> ModelCard:
    return ModelCard(
        name=cfg.name,
        domain=cfg.domain,
        scale=max(model.scale),
        channels=model.channels,
        dims=model.dims,
        architecture=model.arch_name,
        hparams=model.hparams,
        axis_scale=tuple(model.scale),
        receptive_field=2 * max(model.receptive_radius) + 1,
        input_range=tuple(cfg.card.input_range),
        n_parameters=model.n_parameters(),
        description=cfg.card.description,
        training_data=tuple(cfg.card.training_data),
        metrics=dict(metrics),
        license=cfg.card.license,
        version=__version__,
        supports_half=False,
        supports_bfloat16=True,
        tile_hint=256 if model.dims == 2 else 64,
    )


def run_training(
    config: RunConfig | str | os.PathLike | Mapping[str, Any],
    *,
    resume: bool = False,
    readers: Mapping[str, Reader] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    max_epochs: int | None = None,
) -> TrainingResult:
    """Trains a model from a recipe and exports the best one.

    Args:
        config: a ``RunConfig``, a YAML path or a plain dict.
        resume: continue from ``<output_dir>/last.pt`` (optimizer, schedule, EMA, RNG
            state and the best score included); without a checkpoint it starts fresh.
        readers: extra file readers by name (front ends pass ``nifti``, ``geotiff``...).
        device: training device; default CUDA (this process's local rank) when available.
        progress: show a tqdm bar on rank 0.
        max_epochs: stop after this many epochs in this call (the schedule still spans
            ``train.epochs``); continue later with ``resume=True``.

    Returns:
        The exported best model's path, card and metrics.
    """
    if isinstance(config, RunConfig):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = config_from_dict(dict(config))
    else:
        cfg = load_config(config)
    rank, world, started_group = _distributed()
    try:
        return _train(cfg, resume, readers or {}, device, progress, rank, world, max_epochs)
    finally:
        if started_group:
            dist.destroy_process_group()


def _load_initial_weights(model: SRModule, cfg: RunConfig) -> None:
    """Fine-tuning: copies a weights file's tensors into ``model`` after checking the match."""
    path = Path(os.path.expandvars(cfg.train.init_weights))
    state, architecture, hparams, _ = read_weights(path)
    if architecture != cfg.model.architecture or dict(hparams) != model.hparams:
        raise ValueError(
            f"train.init_weights: {path} holds {architecture} {dict(hparams)}, "
            f"but the config builds {cfg.model.architecture} {model.hparams}"
        )
    model.load_state_dict(state, strict=True)


def _resolve_device(device, rank: int) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        return torch.device("cuda", local % torch.cuda.device_count())
    return torch.device("cpu")


def _train(
    cfg: RunConfig,
    resume: bool,
    readers,
    device,
    progress: bool,
    rank: int,
    world: int,
    max_epochs: int | None,
) -> TrainingResult:
    device = _resolve_device(device, rank)
    torch.manual_seed(cfg.train.seed)  # same initial weights on every rank
    scale = expand_per_axis(cfg.model.scale, cfg.model.dims, "model.scale")
    model = build_model(
        cfg.model.architecture,
        dims=cfg.model.dims,
        channels=cfg.model.channels,
        scale=scale,
        **cfg.model.hparams,
    ).to(device)
    # channels_last is several times faster for these convolutions on CPUs (oneDNN)
    memory_format = (
        torch.channels_last
        if device.type == "cpu" and cfg.model.dims == 2
        else torch.contiguous_format
    )
    if cfg.train.init_weights:
        _load_initial_weights(model, cfg)
    model = model.to(memory_format=memory_format)

    all_readers = {"image": image_reader(cfg.data), **readers}
    if cfg.data.reader not in all_readers:
        raise ValueError(
            f"data.reader: unknown reader {cfg.data.reader!r}; available: {', '.join(all_readers)}"
        )
    reader = all_readers[cfg.data.reader]
    suffixes = IMAGE_SUFFIXES if cfg.data.reader == "image" else ()
    train_files = expand_paths(cfg.data.train, cfg.data.root, suffixes)
    val_files = expand_paths(cfg.data.val, cfg.data.root, suffixes) if cfg.data.val else []
    if cfg.validation.max_items:
        val_files = val_files[: cfg.validation.max_items]
    overlap = sorted(set(map(str, train_files)) & set(map(str, val_files)))
    if overlap and not (
        cfg.data.train_region
        and cfg.data.val_region
        and regions_disjoint(cfg.data.train_region, cfg.data.val_region)
    ):
        raise ValueError(
            f"validation files are also training files: {', '.join(overlap[:3])}"
            " (a spatial hold-out needs disjoint data.train_region and data.val_region)"
        )
    val_reader = region_reader(reader, cfg.data.val_region)
    reader = region_reader(reader, cfg.data.train_region)
    degradation = cfg.data.degradation
    if cfg.data.planes:
        train_pairs = plane_pairs(train_files, reader, scale, degradation)
        # held-out volumes: the last axis is the thick one, planes run along the first
        val_pairs = (
            plane_pairs(val_files, val_reader, scale, degradation, orders=[(2, 1, 0)])
            if rank == 0
            else []
        )
    else:
        train_pairs = load_pairs(train_files, reader, scale, degradation, cfg.data.rescale)
        val_pairs = load_pairs(val_files, val_reader, scale, degradation) if rank == 0 else []

    if cfg.data.split_channels:
        train_pairs, val_pairs = split_channels(train_pairs), split_channels(val_pairs)
    rng = np.random.default_rng(cfg.train.seed + 1000 * rank)
    sampler = PatchSampler(
        train_pairs,
        scale,
        cfg.data.patch_size,
        cfg.data.augment,
        degradation.noise_sigma,
        rng,
        planes=cfg.data.planes,
    )

    ema = None
    if cfg.train.ema_decay > 0:
        ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema_decay), use_buffers=True
        )
    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if world > 1
        else model
    )
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    total_steps = cfg.train.epochs * cfg.train.iters_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total_steps, eta_min=cfg.train.lr_min
    )
    loss_fn = torch.nn.MSELoss() if cfg.train.loss == "mse" else torch.nn.L1Loss()
    use_amp = cfg.train.amp and device.type == "cuda"

    out_dir = Path(cfg.output_dir)
    checkpoint_path = out_dir / "last.pt"
    weights_path = out_dir / f"{cfg.name}.safetensors"
    start_epoch, best, best_metrics = 0, -math.inf, {}
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if state["config"]["model"] != cfg.to_dict()["model"]:
            raise ValueError(
                f"{checkpoint_path}: checkpoint was made with another model section; refusing to resume"
            )
        model.load_state_dict(state["model"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best, best_metrics = (
            state["epoch"],
            state["best"],
            json.loads(state["best_metrics"]),
        )
        if rank == 0:  # rank 0 wrote the checkpoint; other ranks reseed per epoch
            rng.bit_generator.state = json.loads(state["rng"])
            torch.set_rng_state(state["torch_rng"])
        else:
            rng = np.random.default_rng([cfg.train.seed, rank, start_epoch])
            sampler.rng = rng

    writer = None
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tensorboard"))
    csv_path = out_dir / "log.csv"
    if rank == 0 and (not resume or not csv_path.exists() or start_epoch == 0):
        with csv_path.open("w", newline="") as handle:
            csv.DictWriter(handle, CSV_FIELDS).writeheader()

    # the interpolation baseline is fixed: compute it once
    baseline_metrics = {}
    shave_border = cfg.validation.shave if cfg.validation.shave is not None else max(scale)

    def validate(network: SRModule) -> dict[str, float]:
        return evaluate_pairs(
            network,
            val_pairs,
            scale=scale,
            shave_border=shave_border,
            quantize=degradation.quantize,
            device=device,
            tile=cfg.validation.tile,
        )

    if rank == 0 and val_pairs:
        baseline = make_baseline(cfg.validation.baseline, dims=cfg.model.dims, scale=scale[0])
        baseline_metrics = validate(baseline.with_scale(scale))

    step = start_epoch * cfg.train.iters_per_epoch
    last_epoch = (
        cfg.train.epochs if max_epochs is None else min(cfg.train.epochs, start_epoch + max_epochs)
    )
    for epoch in range(start_epoch, last_epoch):
        model.train()
        started = time.perf_counter()
        bar = tqdm(
            range(cfg.train.iters_per_epoch),
            desc=f"{cfg.name} epoch {epoch + 1}/{cfg.train.epochs}",
            disable=not (progress and rank == 0),
            leave=False,
            mininterval=0.1 if sys.stderr.isatty() else 30.0,
        )
        running = 0.0
        for _ in bar:
            lr_batch, hr_batch = sampler.batch(cfg.train.batch_size)
            lr_batch = lr_batch.to(device, non_blocking=True, memory_format=memory_format)
            hr_batch = hr_batch.to(device, non_blocking=True, memory_format=memory_format)
            context = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext()
            with context:
                pred = net(lr_batch)
            loss = loss_fn(pred.float(), hr_batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            running += float(loss.detach())
            bar.set_postfix(loss=f"{float(loss.detach()):.2e}", refresh=False)
        mean_loss = running / cfg.train.iters_per_epoch

        if rank == 0:
            row = {
                "epoch": epoch + 1,
                "step": step,
                "loss": mean_loss,
                "lr": scheduler.get_last_lr()[0],
            }
            # validate the EMA weights and the raw weights; keep the better of the two
            candidates = {"ema": ema.module, "raw": model} if ema is not None else {"raw": model}
            evaluated, which = model, "raw"
            if val_pairs:
                results = {name: validate(network) for name, network in candidates.items()}
                which = max(results, key=lambda name: results[name]["psnr"])
                evaluated, metrics = candidates[which], results[which]
                row.update(
                    metrics,
                    baseline_psnr=baseline_metrics["psnr"],
                    baseline_ssim=baseline_metrics["ssim"],
                    gain_db=metrics["psnr"] - baseline_metrics["psnr"],
                )
                score = metrics["psnr"]
            else:
                score = -mean_loss
            row["seconds"] = time.perf_counter() - started
            with csv_path.open("a", newline="") as handle:
                csv.DictWriter(handle, CSV_FIELDS).writerow(row)
            for key, value in row.items():
                if key not in ("epoch", "step"):
                    writer.add_scalar(key, value, step)
            msg = f"epoch {epoch + 1}: loss {mean_loss:.3e}"
            if val_pairs:
                msg += (
                    f", val PSNR {row['psnr']:.2f} dB (baseline {cfg.validation.baseline} "
                    f"{row['baseline_psnr']:.2f}, gain {row['gain_db']:+.2f})"
                )
            tqdm.write(msg)
            if score > best:
                best = score
                best_metrics = {
                    k: row[k]
                    for k in ("psnr", "ssim", "baseline_psnr", "baseline_ssim", "gain_db")
                    if k in row
                }
                best_metrics.update(
                    epoch=epoch + 1,
                    weights=which,
                    baseline=cfg.validation.baseline,
                    shave=shave_border,
                    val_files=[str(p) for p in val_files],
                )
                save_model(evaluated, weights_path, _make_card(cfg, evaluated, best_metrics))
            _atomic_torch_save(
                {
                    "architecture": model.arch_name,
                    "hparams": model.hparams,
                    "model": model.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch + 1,
                    "best": best,
                    "best_metrics": json.dumps(best_metrics),
                    "rng": json.dumps(rng.bit_generator.state),
                    "torch_rng": torch.get_rng_state(),
                    "config": cfg.to_dict(),
                    "world_size": world,
                    "step": step,
                },
                checkpoint_path,
            )
        if world > 1:
            dist.barrier()

    if writer is not None:
        writer.close()
    card_data = (
        json.loads(weights_path.with_suffix(".json").read_text())
        if weights_path.with_suffix(".json").exists()
        else None
    )
    card = ModelCard.from_dict(card_data) if card_data else _make_card(cfg, model, best_metrics)
    return TrainingResult(weights_path, card, best_metrics, out_dir, step, model)
