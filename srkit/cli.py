"""The ``srkit`` command: what both front ends share (``srkit models``, ``srkit export``).

Domain work stays in ``medsr`` and ``geosr``; this group only lists every shipped model and
exports any of them to ONNX (the same ``export`` subcommand the front ends carry).
"""

from __future__ import annotations

import click

from srkit.common.cli import format_models, make_group
from srkit.common.export import export_command

main = make_group("srkit", "Super-resolution toolkit: shared commands of medsr and geosr.")


@main.command("models")
def models() -> None:
    """List every shipped model (all domains) and the interpolation baselines."""
    click.echo(format_models(("mri", "ct", "rs", "natural")))


main.add_command(export_command())
