"""Shipped models: weights load, cards are complete, recipes reproduce them, gains are real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from srkit.common import list_models, load_model
from srkit.common.models import DOMAINS, SHIPPED
from srkit.common.models.registry import available_shipped
from srkit.common.training import load_config

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"


def test_every_registered_model_is_shipped():
    assert sorted(available_shipped()) == sorted(SHIPPED)
    assert sorted(c.name for c in list_models()) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_card_is_complete_and_matches_the_weights(name):
    model = load_model(name)
    card = model.card
    assert card.name == name and card.domain in DOMAINS
    assert card.architecture == model.arch_name
    assert dict(card.hparams) == model.hparams
    assert card.axis_scale == model.scale and card.scale == max(model.scale)
    assert card.n_parameters == model.n_parameters()
    assert card.receptive_field == 2 * max(model.receptive_radius) + 1
    assert card.input_range[0] < card.input_range[1]
    assert card.description and card.license
    assert card.training_data and not any("chris_t1" in src for src in card.training_data)
    metrics = card.metrics
    assert metrics["gain_db"] == pytest.approx(metrics["psnr"] - metrics["baseline_psnr"])
    assert metrics["gain_db"] > 0 and metrics["val_files"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_recipe_reproduces_the_card(name):
    """The recipe (its last stage, configs/<name>_stage<N>.yaml, when there are several)
    describes the shipped card; every earlier stage feeds the next through init_weights."""
    stages = [REPO / "configs" / f"{name}.yaml"]
    stages += sorted((REPO / "configs").glob(f"{name}_stage*.yaml"))
    configs = [load_config(path) for path in stages]
    for previous, following in zip(configs, configs[1:]):
        assert following.train.init_weights == f"{previous.output_dir}/{name}.safetensors"
        assert following.model == previous.model
        assert following.data.val == previous.data.val
    cfg = configs[-1]
    card = load_model(name).card
    assert cfg.name == name and cfg.domain == card.domain
    assert cfg.model.architecture == card.architecture
    assert {**cfg.model.hparams} == {
        k: v for k, v in card.hparams.items() if k not in ("dims", "channels", "scale")
    }
    assert cfg.model.channels == card.channels and cfg.model.dims == card.dims
    assert cfg.card.training_data == list(card.training_data)
    assert tuple(cfg.card.input_range) == card.input_range
    # validation files are never training files, or only their disjoint region is
    from srkit.common.training.data import expand_paths, regions_disjoint

    if DATA.is_dir():
        train = set(expand_paths(cfg.data.train, REPO / cfg.data.root))
        val = set(expand_paths(cfg.data.val, REPO / cfg.data.root))
        if train & val:
            assert regions_disjoint(cfg.data.train_region, cfg.data.val_region)
    if "chris_t1" in str(cfg.data.train):
        pytest.fail("chris_t1.nii.gz (CC BY-NC) must never be a training file")


@pytest.mark.skipif(
    not (DATA / "set14" / "HR").is_dir(),
    reason="needs ../shared/data/set14 (real benchmark images)",
)
@pytest.mark.parametrize(
    ("name", "scale", "published_bicubic"),
    [("natural_edsr_x2", 2, 30.24), ("natural_srcnn_x3", 3, 27.55), ("natural_edsr_x4", 4, 26.00)],
)
def test_natural_models_beat_bicubic_by_1db_on_held_out_set14(name, scale, published_bicubic):
    """Set14 is never seen in training or model selection (Set5 was the validation set)."""
    from benchmarks.natural_sr import evaluate

    files = sorted((DATA / "set14" / "HR").glob("*.png"))
    model = evaluate(load_model(name), files, scale)
    bicubic = evaluate(load_model("bicubic"), files, scale)
    assert bicubic["psnr"] == pytest.approx(published_bicubic, abs=0.05)
    assert model["psnr"] > bicubic["psnr"] + 1.0, (model, bicubic)
    assert model["ssim"] > bicubic["ssim"]


@pytest.mark.skipif(
    not (DATA / "set5" / "HR").is_dir(), reason="needs ../shared/data/set5 (real benchmark images)"
)
def test_natural_srcnn_card_metric_is_reproducible_on_set5():
    from benchmarks.natural_sr import evaluate

    card = load_model("natural_srcnn_x3").card
    measured = evaluate(
        load_model("natural_srcnn_x3"), sorted((DATA / "set5" / "HR").glob("*.png")), 3
    )
    assert measured["psnr"] == pytest.approx(card.metrics["benchmark"]["Set5"]["y_psnr"], abs=2e-3)
    assert np.isfinite(measured["ssim"])


def test_every_card_records_held_out_metrics_and_the_weights_stay_small():
    total = sum((REPO / "common" / "weights" / f).stat().st_size for f in SHIPPED.values())
    assert total < 20e6  # all shipped weights together
    for card in list_models():
        assert card.metrics.get("holdout") or card.metrics.get("benchmark"), card.name
