"""Damaged or edited weights files are refused at load time, naming the file and the problem."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from srkit.common.models import ModelCard, WeightsError, build_model, load_model, save_model


def _tiny_edsr(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model("edsr", dims=2, channels=1, scale=2, width=8, depth=2).eval()
    card = ModelCard(
        name="tiny",
        domain="natural",
        scale=2,
        channels=1,
        dims=2,
        architecture="edsr",
        hparams=model.hparams,
        axis_scale=(2, 2),
        n_parameters=model.n_parameters(),
    )
    return model, save_model(model, tmp_path / "tiny.safetensors", card)


def _rewrite(path: Path, *, tensors=None, hparams=None) -> None:
    """Rewrites a toolkit safetensors file with some tensors or the hparams changed."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        stored = {key: handle.get_tensor(key) for key in handle.keys()}
    stored.update(tensors or {})
    if hparams is not None:
        metadata["hparams"] = json.dumps(hparams)
        card = json.loads(metadata["card"])
        metadata["card"] = json.dumps(card | {"hparams": hparams})
    save_file(stored, str(path), metadata=metadata)


def test_a_sound_file_still_loads(tmp_path):
    model, path = _tiny_edsr(tmp_path)
    loaded = load_model(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# --------------------------------------------------------------------------- non-finite


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_safetensors_is_refused_naming_file_and_tensor(tmp_path, bad):
    model, path = _tiny_edsr(tmp_path)
    weight = model.state_dict()["head.weight"].clone()
    weight.view(-1)[3] = bad
    _rewrite(path, tensors={"head.weight": weight})
    with pytest.raises(WeightsError, match=r"tensor 'head.weight' holds 1 non-finite") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_non_finite_checkpoint_is_refused(tmp_path):
    model, _ = _tiny_edsr(tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    key = "head.bias"
    state[key][0] = float("nan")
    path = tmp_path / "last.pt"
    torch.save({"architecture": "edsr", "hparams": model.hparams, "model": state}, path)
    with pytest.raises(WeightsError, match=rf"last.pt: tensor '{key}' holds 1 non-finite"):
        load_model(path)


# --------------------------------------------------------------------------- absurd hparams


def test_absurd_depth_in_the_file_is_refused_within_a_second(tmp_path):
    model, path = _tiny_edsr(tmp_path)
    _rewrite(path, hparams=model.hparams | {"depth": 2_000_000})
    path.with_suffix(".json").unlink()
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=r"hparams.depth = 2000000 cannot fit") as info:
        load_model(path)
    assert time.perf_counter() - started < 1.0
    assert str(path) in str(info.value)


def test_an_oversized_network_is_abandoned_while_it_is_built(tmp_path):
    """A depth within the integer bound but far beyond the stored values: the build on the
    meta device stops as soon as its parameters outgrow the file."""
    from srkit.common.models.registry import check_hparams_fit

    model, path = _tiny_edsr(tmp_path)
    state = model.state_dict()
    stored = sum(t.numel() for t in state.values())
    hparams = model.hparams | {"depth": stored // 2}
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="more parameters than the"):
        check_hparams_fit(path, "edsr", hparams, state)
    assert time.perf_counter() - started < 1.0


def test_hparams_that_reshape_the_tensors_are_refused_before_building(tmp_path):
    model, path = _tiny_edsr(tmp_path)
    _rewrite(path, hparams=model.hparams | {"depth": 1})  # fewer blocks than stored
    path.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match=r"do not match architecture 'edsr'.*unexpected body"):
        load_model(path)


def test_card_that_disagrees_with_the_weights_is_refused(tmp_path):
    """The sidecar card says depth 2000000: refused (quickly), naming the card file."""
    _, path = _tiny_edsr(tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["hparams"]["depth"] = 2_000_000
    card_path.write_text(json.dumps(card))
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=r"tiny.json: the card describes edsr") as info:
        load_model(path)
    assert time.perf_counter() - started < 1.0
    assert "2000000" in str(info.value)


# --------------------------------------------------------------------------- malformed cards


def test_malformed_card_json_names_the_file_and_position(tmp_path):
    _, path = _tiny_edsr(tmp_path)
    card_path = path.with_suffix(".json")
    card_path.write_text("{oops")
    with pytest.raises(WeightsError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{card_path}: not valid JSON (line 1 col 2): ")
    assert "Expecting property name" in message


def test_non_utf8_card_and_incomplete_card_are_weights_errors(tmp_path):
    _, path = _tiny_edsr(tmp_path)
    card_path = path.with_suffix(".json")
    card_path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(WeightsError, match=r"tiny.json: not a UTF-8 text"):
        load_model(path)
    card_path.write_text(json.dumps({"domain": "natural"}))
    with pytest.raises(WeightsError, match=r"tiny.json: invalid model card: missing .*name"):
        load_model(path)
    card_path.write_text("[1, 2]")
    with pytest.raises(WeightsError, match=r"tiny.json: a model card is a JSON object"):
        load_model(path)


def test_bare_state_dict_with_a_malformed_card_is_a_weights_error(tmp_path):
    model, _ = _tiny_edsr(tmp_path)
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text('{"name": "bare",')
    with pytest.raises(WeightsError, match=r"bare.json: not valid JSON \(line 1 col 17\)"):
        load_model(path)
