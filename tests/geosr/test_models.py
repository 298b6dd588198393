from __future__ import annotations

import pytest
from srkit.common.models import ModelCard, select
from srkit.geosr.models import default_model, prepare_model


def card(name, scale, channels, gain=0.0, domain="rs"):
    return ModelCard(
        name=name,
        domain=domain,
        scale=scale,
        channels=channels,
        dims=2,
        architecture="espcn",
        metrics={"gain_db": gain},
    )


def _of(cards, domain):
    return [c for c in cards if domain is None or c.domain == domain]


def test_fallback_is_bicubic_and_says_why(monkeypatch):
    cards = [card("natural_x3", 3, 1, domain="natural")]
    monkeypatch.setattr(select, "list_models", lambda domain=None: _of(cards, domain))
    choice = default_model(3, 4)
    assert choice.spec == "bicubic"
    assert (
        choice.reason
        == "no shipped remote-sensing model for x3 with 4 band(s); using bicubic interpolation"
    )


def test_shipped_rs_models_slot_in(monkeypatch):
    shipped = [
        card("rs_gray_x2", 2, 1, 1.0),
        card("rs_rgb_x2", 2, 3, 0.5),
        card("rs_rgb_x4", 4, 3, 2.0),
        card("rs_rgb_x2_better", 2, 3, 0.9),
    ]
    monkeypatch.setattr(select, "list_models", lambda domain=None: _of(shipped, domain))
    assert default_model(2, 3).spec == "rs_rgb_x2_better"  # exact band count, best gain
    assert default_model(2, 4).spec == "rs_gray_x2"  # else a 1-channel model, per band
    assert default_model(4, 3).spec == "rs_rgb_x4"
    assert default_model(3, 3).spec == "bicubic"


def test_the_shipped_defaults():
    assert default_model(2, 5).spec == "rs_edsr_x2"  # per band, any band count
    assert default_model(4, 3).spec == "rs_edsr_x4"
    assert default_model(3, 4).spec == "bicubic"  # no x3 remote-sensing model ships


def test_prepare_model_scales_baselines():
    assert prepare_model("bicubic", 3, 5).scale == (3, 3)
    with pytest.raises(Exception, match="unknown model"):
        prepare_model("no_such_model", 2, 3)
