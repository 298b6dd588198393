"""The training runner shared by ``medsr train`` and ``geosr train``.

One call, ``run_training(config)``, does the whole recipe: Adam with a cosine schedule,
MSE (or L1) loss, EMA weights, bf16 autocast on CUDA, a tqdm bar, a CSV log (and
TensorBoard scalars when the optional ``tensorboard`` package is installed), validation after every epoch next to the interpolation baseline, ``last.pt``
checkpoints that ``resume=True`` continues from, and export of the best model as
safetensors plus card. Under ``torchrun`` it trains with DistributedDataParallel (NCCL on
GPUs, gloo on CPUs); rank 0 validates, logs and writes files.

A run reads as its steps: ``_setup`` (network, data, optimizer), ``_resume``,
``_open_logs``, then per epoch ``_train_epoch``, ``_validate_epoch``, ``_log_epoch`` and
``_save_epoch``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from .._version import __version__
from ..io import atomic_write_text
from ..models import ModelCard, make_baseline, save_model
from ..models.architectures import SRModule
from ..models.card import DEFAULT_TILE_HINT
from ..models.weights import card_path_for, read_card
from .checkpoint import TrainingCheckpoint, save_checkpoint
from .config import ConfigError, RunConfig, config_from_dict, load_config
from .data import Reader
from .state import TrainingState, resume_run, setup_run
from .validation import evaluate_pairs

__all__ = ["CSV_FIELDS", "TrainingResult", "evaluate_pairs", "run_training"]

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


def _make_card(cfg: RunConfig, model: SRModule, metrics: Mapping[str, Any]) -> ModelCard:
    """The network's own card (architecture, scale, receptive field) with the recipe's words."""
    return model.card.replace(
        name=cfg.name,
        domain=cfg.domain,
        input_range=tuple(cfg.card.input_range),
        description=cfg.card.description,
        training_data=tuple(cfg.card.training_data),
        metrics=dict(metrics),
        license=cfg.card.license,
        supports_half=False,
        supports_bfloat16=True,
        version=__version__,  # a card loaded with init weights must not keep its old one
        n_parameters=model.n_parameters(),
        tile_hint=DEFAULT_TILE_HINT[model.dims],
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


def tensorboard_writer_class(cfg: RunConfig) -> type | None:
    """TensorBoard's ``SummaryWriter`` when ``train.tensorboard`` asks for it (or is unset)
    and the optional package is installed, else ``None`` (the CSV log is always written).

    Raises:
        ConfigError: ``train.tensorboard: true`` without the ``tensorboard`` package.
    """
    if cfg.train.tensorboard is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if cfg.train.tensorboard:
            raise ConfigError(
                "train.tensorboard: true, but the tensorboard package is not installed;"
                " pip install 'srkit[tensorboard]' or set train.tensorboard: false"
            ) from None
        return None
    return SummaryWriter


def _open_logs(run: TrainingState, resume: bool, writer_class: type | None) -> None:
    """Rank 0: writes ``config.json``, opens TensorBoard if wanted, starts ``log.csv``."""
    if run.rank != 0:
        return
    run.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.out_dir / "config.json", json.dumps(run.cfg.to_dict(), indent=2))
    if writer_class is not None:
        run.writer = writer_class(str(run.out_dir / "tensorboard"))
    if not resume or not run.csv_path.exists() or run.start_epoch == 0:
        with run.csv_path.open("w", newline="") as handle:
            csv.DictWriter(handle, CSV_FIELDS).writeheader()


def _validate(run: TrainingState, network: SRModule) -> dict[str, float]:
    """PSNR/SSIM of ``network`` on the validation pairs, through the inference API."""
    return evaluate_pairs(
        network,
        run.data.val_pairs,
        scale=run.scale,
        shave_border=run.shave_border,
        quantize=run.cfg.data.degradation.quantize,
        device=run.device,
        tile=run.cfg.validation.tile,
    )


def _validate_baseline(run: TrainingState) -> None:
    """The interpolation baseline is fixed: validated once, on rank 0."""
    if run.rank == 0 and run.data.val_pairs:
        cfg = run.cfg
        baseline = make_baseline(cfg.validation.baseline, dims=cfg.model.dims, scale=run.scale[0])
        run.baseline_metrics = _validate(run, baseline.with_scale(run.scale))


def _train_epoch(run: TrainingState, epoch: int, progress: bool) -> float:
    """One epoch of optimizer steps (EMA updated after each); returns the mean loss."""
    cfg, device, memory_format = run.cfg, run.device, run.memory_format
    loss_fn = torch.nn.MSELoss() if cfg.train.loss == "mse" else torch.nn.L1Loss()
    use_amp = cfg.train.amp and device.type == "cuda"
    run.model.train()
    bar = tqdm(
        range(cfg.train.iters_per_epoch),
        desc=f"{cfg.name} epoch {epoch + 1}/{cfg.train.epochs}",
        disable=not (progress and run.rank == 0),
        leave=False,
        mininterval=0.1 if sys.stderr.isatty() else 30.0,
    )
    running = 0.0
    for _ in bar:
        lr_batch, hr_batch = run.sampler.batch(cfg.train.batch_size)
        lr_batch = lr_batch.to(device, non_blocking=True, memory_format=memory_format)
        hr_batch = hr_batch.to(device, non_blocking=True, memory_format=memory_format)
        context = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext()
        with context:
            pred = run.net(lr_batch)
        loss = loss_fn(pred.float(), hr_batch)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.train.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        run.step += 1
        running += float(loss.detach())
        bar.set_postfix(loss=f"{float(loss.detach()):.2e}", refresh=False)
    return running / cfg.train.iters_per_epoch


def _validate_epoch(
    run: TrainingState, epoch: int, mean_loss: float
) -> tuple[dict[str, Any], SRModule, str, float]:
    """Validates the EMA and the raw weights and keeps the better: ``(log row, network,
    "ema" or "raw", score)``; without validation data the score is ``-loss``."""
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "step": run.step,
        "loss": mean_loss,
        "lr": run.scheduler.get_last_lr()[0],
    }
    candidates = {"raw": run.model}
    if run.ema is not None:
        candidates = {"ema": run.ema.module, "raw": run.model}
    if not run.data.val_pairs:
        return row, run.model, "raw", -mean_loss
    results = {name: _validate(run, network) for name, network in candidates.items()}
    which = max(results, key=lambda name: results[name]["psnr"])
    metrics = results[which]
    row.update(
        metrics,
        baseline_psnr=run.baseline_metrics["psnr"],
        baseline_ssim=run.baseline_metrics["ssim"],
        gain_db=metrics["psnr"] - run.baseline_metrics["psnr"],
    )
    return row, candidates[which], which, metrics["psnr"]


def _log_epoch(run: TrainingState, row: Mapping[str, Any]) -> None:
    """One ``log.csv`` row, TensorBoard scalars and a one-line summary."""
    with run.csv_path.open("a", newline="") as handle:
        csv.DictWriter(handle, CSV_FIELDS).writerow(row)
    if run.writer is not None:
        for key, value in row.items():
            if key not in ("epoch", "step"):
                run.writer.add_scalar(key, value, run.step)
    msg = f"epoch {row['epoch']}: loss {row['loss']:.3e}"
    if "psnr" in row:
        msg += (
            f", val PSNR {row['psnr']:.2f} dB (baseline {run.cfg.validation.baseline} "
            f"{row['baseline_psnr']:.2f}, gain {row['gain_db']:+.2f})"
        )
    tqdm.write(msg)


def _save_epoch(
    run: TrainingState, row: Mapping[str, Any], evaluated: SRModule, which: str, score: float
) -> None:
    """Exports ``evaluated`` when ``score`` is the best yet, then writes ``last.pt``."""
    cfg = run.cfg
    if score > run.best:
        run.best = score
        keys = ("psnr", "ssim", "baseline_psnr", "baseline_ssim", "gain_db")
        run.best_metrics = {k: row[k] for k in keys if k in row}
        run.best_metrics.update(
            epoch=row["epoch"],
            weights=which,
            baseline=cfg.validation.baseline,
            shave=run.shave_border,
            val_files=[str(p) for p in run.data.val_files],
        )
        save_model(evaluated, run.weights_path, _make_card(cfg, evaluated, run.best_metrics))
    checkpoint = TrainingCheckpoint(
        architecture=run.model.arch_name,
        hparams=run.model.hparams,
        model=run.model.state_dict(),
        ema=run.ema.module.state_dict() if run.ema is not None else None,
        ema_n_averaged=int(run.ema.n_averaged) if run.ema is not None else 0,
        optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(),
        epoch=row["epoch"],
        step=run.step,
        best=run.best,
        best_metrics=run.best_metrics,
        rng=run.rng.bit_generator.state,
        torch_rng=torch.get_rng_state(),
        config=cfg.to_dict(),
        world_size=run.world,
    )
    save_checkpoint(checkpoint, run.checkpoint_path)


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
    writer_class = tensorboard_writer_class(cfg)  # every rank: refuse before any work
    run = setup_run(cfg, readers, device, rank, world)
    if resume and run.checkpoint_path.exists():
        resume_run(run)
    _open_logs(run, resume, writer_class)
    _validate_baseline(run)
    run.step = run.start_epoch * cfg.train.iters_per_epoch
    last_epoch = cfg.train.epochs
    if max_epochs is not None:
        last_epoch = min(cfg.train.epochs, run.start_epoch + max_epochs)
    for epoch in range(run.start_epoch, last_epoch):
        started = time.perf_counter()
        mean_loss = _train_epoch(run, epoch, progress)
        if rank == 0:
            row, evaluated, which, score = _validate_epoch(run, epoch, mean_loss)
            row["seconds"] = time.perf_counter() - started
            _log_epoch(run, row)
            _save_epoch(run, row, evaluated, which, score)
        if world > 1:
            dist.barrier()
    if run.writer is not None:
        run.writer.close()
    card_file = card_path_for(run.weights_path)
    card = (
        read_card(card_file) if card_file.exists() else _make_card(cfg, run.model, run.best_metrics)
    )
    return TrainingResult(
        run.weights_path, card, run.best_metrics, run.out_dir, run.step, run.model
    )
