"""The state of one training run, and the steps that create and restore it.

``setup_run`` builds the network (seeded, optionally fine-tuned), reads the data and makes
the patch sampler, EMA, optimizer and schedule; ``resume_run`` restores all of it from the
run's ``last.pt`` (a ``TrainingCheckpoint``), so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..models import build_model
from ..models.architectures import SRModule
from ..models.layers import expand_per_axis
from ..models.weights import read_weights
from .checkpoint import load_checkpoint
from .config import ConfigError, RunConfig
from .data import PatchSampler, RunData, load_run_data


def _load_initial_weights(model: SRModule, cfg: RunConfig) -> None:
    """Fine-tuning: copies a weights file's tensors into ``model`` after checking the match."""
    path = Path(os.path.expandvars(cfg.train.init_weights))
    state, architecture, hparams, _ = read_weights(path)
    if architecture != cfg.model.architecture or dict(hparams) != model.hparams:
        raise ConfigError(
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


@dataclass
class TrainingState:
    """What one training run carries from step to step."""

    cfg: RunConfig
    device: torch.device
    rank: int
    world: int
    scale: tuple[int, ...]
    model: SRModule
    memory_format: torch.memory_format
    data: RunData
    rng: np.random.Generator
    sampler: PatchSampler
    ema: AveragedModel | None
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    start_epoch: int = 0
    step: int = 0
    best: float = -math.inf
    best_metrics: dict[str, Any] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    writer: Any = None

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.output_dir)

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def weights_path(self) -> Path:
        return self.out_dir / f"{self.cfg.name}.safetensors"

    @property
    def csv_path(self) -> Path:
        return self.out_dir / "log.csv"

    @property
    def shave_border(self) -> int:
        shave = self.cfg.validation.shave
        return shave if shave is not None else max(self.scale)


def build_network(cfg: RunConfig, device: torch.device) -> tuple[SRModule, torch.memory_format]:
    """The seeded (or fine-tuned) network on ``device``, in its fastest memory format."""
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
    return model.to(memory_format=memory_format), memory_format


def setup_run(cfg: RunConfig, readers, device, rank: int, world: int) -> TrainingState:
    """Network, data, patch sampler, EMA, optimizer and schedule of a fresh run."""
    device = _resolve_device(device, rank)
    model, memory_format = build_network(cfg, device)
    scale = tuple(model.scale)
    data = load_run_data(
        cfg.data, readers, scale, cfg.validation.max_items, with_validation=rank == 0
    )
    rng = np.random.default_rng(cfg.train.seed + 1000 * rank)
    sampler = PatchSampler(
        data.train_pairs,
        scale,
        cfg.data.patch_size,
        cfg.data.augment,
        cfg.data.degradation.noise_sigma,
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
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=cfg.train.epochs * cfg.train.iters_per_epoch, eta_min=cfg.train.lr_min
    )
    return TrainingState(
        cfg=cfg,
        device=device,
        rank=rank,
        world=world,
        scale=scale,
        model=model,
        memory_format=memory_format,
        data=data,
        rng=rng,
        sampler=sampler,
        ema=ema,
        net=net,
        optimizer=optimizer,
        scheduler=scheduler,
    )


def resume_run(run: TrainingState) -> None:
    """Restores weights, EMA, optimizer, schedule, progress and RNG from ``last.pt``."""
    path, cfg = run.checkpoint_path, run.cfg
    state = load_checkpoint(path)
    if state.config is None or state.optimizer is None or state.scheduler is None:
        raise ConfigError(f"{path}: holds weights only (no training state); cannot resume")
    if state.config["model"] != cfg.to_dict()["model"]:
        raise ConfigError(
            f"{path}: checkpoint was made with another model section; refusing to resume"
        )
    run.model.load_state_dict(state.model)
    if run.ema is not None and state.ema is not None:
        run.ema.module.load_state_dict(state.ema)
        run.ema.n_averaged.fill_(state.ema_n_averaged)
    run.optimizer.load_state_dict(state.optimizer)
    run.scheduler.load_state_dict(state.scheduler)
    run.start_epoch, run.best, run.best_metrics = state.epoch, state.best, state.best_metrics
    if run.rank == 0:  # rank 0 wrote the checkpoint; other ranks reseed per epoch
        run.rng.bit_generator.state = state.rng
        torch.set_rng_state(state.torch_rng)
    else:
        run.rng = np.random.default_rng([cfg.train.seed, run.rank, run.start_epoch])
        run.sampler.rng = run.rng
