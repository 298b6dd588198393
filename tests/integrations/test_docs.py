"""The examples of docs/api.md "Integrations" run as they are, and print what they say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HEADING = "## Integrations: MONAI, TorchIO, rioxarray"


def examples() -> dict[str, str]:
    """The python blocks of the section, by the module each one needs."""
    text = API.read_text(encoding="utf-8")
    assert HEADING in text, f"{API} lost its section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return dict(zip(["monai", "torchio", "rioxarray"], blocks, strict=True))


def run(code: str, folder: Path, monkeypatch) -> str:
    monkeypatch.chdir(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(API), "exec"), {"__name__": "__docs__"})
    return out.getvalue()


@pytest.mark.parametrize(
    ("module", "reason", "printed"),
    [
        ("monai", "MONAI is absent", ["(1, 32, 32, 30)", "[ 0.  0.  1. -1.]"]),
        (
            "torchio",
            "TorchIO is absent: pip install 'srkit[torchio]'",
            ["(1, 32, 32, 30) (0.9, 0.9, 1.0)"],
        ),
        ("rioxarray", "rioxarray is absent: pip install 'srkit[xarray]'", ["5.0 EPSG:32618 0"]),
    ],
)
def test_integration_example_runs(module, reason, printed, tmp_path, monkeypatch):
    pytest.importorskip(module, reason=reason)
    output = run(examples()[module], tmp_path, monkeypatch)
    for text in printed:
        assert text in output, output
