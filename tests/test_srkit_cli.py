"""The ``srkit`` command: every shipped model, and ONNX export with the card as metadata."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from srkit.common.models import list_models

from srkit.cli import main


def test_models_json_lists_every_shipped_model_of_every_domain():
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert [m["name"] for m in listing["models"]] == [c.name for c in list_models()]
    assert {"mri", "ct", "rs", "natural"} <= {m["domain"] for m in listing["models"]}


def test_export_writes_onnx_with_the_card(tmp_path):
    pytest.importorskip("onnx", reason="ONNX export needs srkit[onnx]")
    from srkit.common.export import read_metadata

    out = tmp_path / "rs.onnx"
    result = CliRunner().invoke(main, ["export", "rs_edsr_x2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert meta["name"] == "rs_edsr_x2" and meta["halo"] == [11, 11]
    assert meta["scale"] == [2, 2] and meta["input_range"] == [0.0, 3.0]
    again = CliRunner().invoke(main, ["export", "rs_edsr_x2", "-o", str(out)])
    assert again.exit_code == 2 and "error:" in again.output and "--overwrite" in again.output
