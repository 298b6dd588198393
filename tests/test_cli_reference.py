"""docs/cli.md is generated from the click commands; this fails when it is stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_cli_reference_matches_the_commands():
    spec = importlib.util.spec_from_file_location("cli_ref", REPO / "docs/make_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    assert (REPO / "docs/cli.md").read_text() == text, (
        "docs/cli.md is stale: run .venv/bin/python docs/make_cli_reference.py"
    )
    for option in ("--overwrite", "--clip", "--force", "--dtype", "--json", "--no-progress"):
        assert f"`{option}`" in text
    for heading in ("### `srkit export`", "### `medsr enhance`", "### `geosr enhance`"):
        assert heading in text
