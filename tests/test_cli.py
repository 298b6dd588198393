"""The medsr/geosr command skeletons: version, models, train, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from srkit.common import __version__, list_models
from srkit.geosr.cli import main as geosr_main
from srkit.medsr.cli import main as medsr_main

CLIS = {"medsr": medsr_main, "geosr": geosr_main}


@pytest.mark.parametrize("name", CLIS)
def test_version_and_help(name):
    runner = CliRunner()
    result = runner.invoke(CLIS[name], ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"{name}, version {__version__}"
    result = runner.invoke(CLIS[name], ["--help"])
    assert result.exit_code == 0
    for command in ("models", "train"):
        assert command in result.output


@pytest.mark.parametrize("name", CLIS)
def test_models_lists_baselines_and_domain_models(name):
    result = CliRunner().invoke(CLIS[name], ["models"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["name", "domain", "scale"]
    listed = {line.split()[0] for line in lines[1:]}
    assert {"bicubic", "bspline", "lanczos", "nearest"} <= listed
    domains = ("mri", "ct") if name == "medsr" else ("rs", "natural")
    assert {c.name for c in list_models() if c.domain in domains} <= listed
    assert not {c.name for c in list_models() if c.domain not in domains} & listed
    assert lines[0].endswith("validation gain")  # model selection, not held out
    rows = {line.split()[0]: line for line in lines[1:]}
    for card in list_models():
        if card.domain in domains:
            assert rows[card.name].endswith(
                f"{card.metrics['gain_db']:+.2f} dB vs {card.metrics['baseline']}"
            )


@pytest.mark.parametrize("name", CLIS)
def test_train_bad_config_is_one_line_error(name, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndomain: natural\ntrain: {lerning_rate: 1}\n")
    result = CliRunner().invoke(CLIS[name], ["train", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}: train.lerning_rate: unknown key " + (
        "(valid keys: epochs, iters_per_epoch, batch_size, lr, lr_min, weight_decay, loss, ema_decay, amp, "
        "grad_clip, seed, init_weights, tensorboard)"
    )
    assert "Traceback" not in result.output + result.stderr
    missing = CliRunner().invoke(CLIS[name], ["train", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: ") and len(missing.stderr.strip().splitlines()) == 1


def test_verbose_shows_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndomain: natural\ndata: {root: /nonexistent, train: [a.png]}\n")
    quiet = subprocess.run(
        [sys.executable, "-m", "srkit.geosr.cli", "train", str(bad)], capture_output=True, text=True
    )
    assert quiet.returncode == 2
    assert quiet.stderr.strip().splitlines() == [
        "error: a.png: no files match (looked for /nonexistent/a.png)"
    ]
    loud = subprocess.run(
        [sys.executable, "-m", "srkit.geosr.cli", "--verbose", "train", str(bad)],
        capture_output=True,
        text=True,
    )
    assert loud.returncode == 2
    assert "Traceback" in loud.stderr and loud.stderr.strip().endswith(
        "error: a.png: no files match (looked for /nonexistent/a.png)"
    )
