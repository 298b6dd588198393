"""The ``train`` click command shared by ``medsr train`` and ``geosr train``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import click

from .data import Reader


def make_train_command(readers: Callable[[], Mapping[str, Reader]] | None = None) -> click.Command:
    """A ``train CONFIG`` command running the shared runner with the front end's readers."""

    @click.command("train")
    @click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--resume", is_flag=True, help="Continue from <output_dir>/last.pt.")
    @click.option(
        "--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available)."
    )
    @click.option("--output-dir", default=None, help="Override the recipe's output_dir.")
    @click.option(
        "--max-epochs",
        type=click.IntRange(min=1),
        default=None,
        help="Stop after N epochs of this call; continue later with --resume.",
    )
    def train(
        config: Path,
        resume: bool,
        device: str | None,
        output_dir: str | None,
        max_epochs: int | None,
    ) -> None:
        """Train a model from a YAML recipe (see configs/) and export the best one."""
        from .config import load_config
        from .loop import run_training

        cfg = load_config(config)
        if output_dir:
            cfg.output_dir = output_dir
        result = run_training(
            cfg,
            resume=resume,
            readers=readers() if readers else None,
            device=device,
            max_epochs=max_epochs,
        )
        metrics = ", ".join(
            f"{k}={v:.4f}" for k, v in result.metrics.items() if isinstance(v, float)
        )
        click.echo(f"exported {result.weights} ({metrics})")

    return train


train_command = make_train_command()
