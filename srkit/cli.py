"""The ``srkit`` command: what both front ends share (``srkit models``, ``srkit export``).

Domain work stays in ``medsr`` and ``geosr``; this group only lists every shipped model and
exports any of them to ONNX (the same ``export`` subcommand the front ends carry).
"""

from __future__ import annotations

from srkit.common.cli import make_group, models_command
from srkit.common.export import export_command

main = make_group("srkit", "Super-resolution toolkit: shared commands of medsr and geosr.")
main.add_command(models_command(("mri", "ct", "rs", "natural")))  # every domain, --json
main.add_command(export_command())
