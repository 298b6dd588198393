"""``python -m srkit.common.training CONFIG [--resume]``: train a recipe with the shared runner."""

from __future__ import annotations

from .cli import train_command

if __name__ == "__main__":
    train_command(prog_name="python -m srkit.common.training")
