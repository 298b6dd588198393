"""The benchmark harness (``benchmarks/harness.py``) and the scripts that use it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import harness

ROOT = Path(__file__).resolve().parents[1]
# every module under benchmarks/ that is a script (run as ``python -m benchmarks.NAME``)
SCRIPTS = sorted(
    p.stem
    for p in (ROOT / "benchmarks").glob("*.py")
    if p.stem not in ("__init__", "harness", "cards")
)


def test_markdown_table_exact():
    table = harness.markdown_table(["model", "seconds"], [["srcnn", "1.25"], ["edsr", 3]])
    assert table == "| model | seconds |\n|---|---|\n| srcnn | 1.25 |\n| edsr | 3 |"


def test_markdown_header_alignment_and_mismatch():
    assert (
        harness.markdown_header(["a", "b", "c"], align="lrc") == "| a | b | c |\n|---|---:|:---:|"
    )
    with pytest.raises(ValueError, match="2 letters for 3 columns"):
        harness.markdown_header(["a", "b", "c"], align="lr")


def _fake_clock(monkeypatch, ticks):
    clock = iter(ticks)
    monkeypatch.setattr(harness.time, "perf_counter", lambda: next(clock))


def test_median_time_uses_perf_counter_and_skips_warmup(monkeypatch):
    # one warm-up call of 100 s (ignored), then timed calls of 4, 1 and 2 s
    _fake_clock(monkeypatch, [0.0, 100.0, 100.0, 104.0, 104.0, 105.0, 105.0, 107.0])
    calls = []
    cleaned = []
    timing = harness.median_time(
        lambda: calls.append(len(calls)) or len(calls),
        repeat=3,
        warmup=1,
        cleanup=lambda: cleaned.append(True),
    )
    assert timing.seconds == 2.0
    assert timing.samples == (4.0, 1.0, 2.0)
    assert timing.result == 4  # what the last call returned
    assert len(calls) == 4 and len(cleaned) == 4


def test_median_time_single_call_and_even_count(monkeypatch):
    _fake_clock(monkeypatch, [10.0, 12.5])
    assert harness.median_time(lambda: None, repeat=1).seconds == 2.5
    _fake_clock(monkeypatch, [0.0, 1.0, 1.0, 4.0])
    assert harness.median_time(lambda: None, repeat=2).seconds == 2.0  # mean of the middle two
    with pytest.raises(ValueError, match="at least 1"):
        harness.median_time(lambda: None, repeat=0)


def test_require_shared(tmp_path, capsys):
    (tmp_path / "set5").mkdir()
    assert harness.require_shared("set5", root=tmp_path) == [tmp_path / "set5"]
    with pytest.raises(SystemExit) as exit_info:
        harness.require_shared("set5", "b100/HR", "set14", root=tmp_path)
    assert str(exit_info.value) == f"error: shared data not found: b100/HR, set14 under {tmp_path}"


def _shared_data_in_child(env: dict[str, str]) -> str:
    code = "from benchmarks.harness import SHARED_DATA; print(SHARED_DATA)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_shared_data_default_and_environment_override(tmp_path):
    assert _shared_data_in_child({}) == str(ROOT.parent / "shared" / "data")
    assert _shared_data_in_child({"SRKIT_SHARED_DATA": str(tmp_path)}) == str(tmp_path)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports_without_side_effects(name, capsys):
    path_before = list(sys.path)
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.main)
    assert sys.path == path_before  # no sys.path.insert
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_tiling_cpu_help_runs_as_module():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.tiling_cpu", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "CPU timing of exact tiled inference" in done.stdout
    assert "--repeats" in done.stdout and "--batch-size" in done.stdout
