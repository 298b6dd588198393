"""Training: typed YAML recipes, on-the-fly degradation, and the shared runner."""

from __future__ import annotations

from .config import ConfigError, RunConfig, config_from_dict, load_config
from .loop import TrainingResult, evaluate_pairs, run_training

__all__ = [
    "ConfigError",
    "RunConfig",
    "TrainingResult",
    "config_from_dict",
    "evaluate_pairs",
    "load_config",
    "run_training",
]
