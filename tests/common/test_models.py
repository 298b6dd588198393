"""Tests of the architectures, their receptive radii, weights I/O, cards and the registry."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pytest
import torch
from safetensors.torch import save_file
from srkit.common.models import (
    ARCHITECTURES,
    BASELINES,
    DOMAINS,
    SRCNN,
    Interpolator,
    ModelCard,
    ModelNotFoundError,
    WeightsError,
    build_model,
    load_model,
    save_model,
)
from srkit.common.models.layers import PolyphaseUpsample
from torch import nn

from tests.common.tiny import TINY

# The upscaling architectures; guided_resnet works on the guide grid (scale 1, 2D) and has
# its own tests in tests/geosr/test_sharpen.py.
UPSCALERS = sorted(name for name in ARCHITECTURES if name != "guided_resnet")

SCALES_2D = [2, 3, 4]
SCALES_3D = [2, 3, 4, (1, 1, 4), (2, 2, 1)]
SHAPE_CASES = [(2, s) for s in SCALES_2D] + [(3, s) for s in SCALES_3D]


def _per_axis(scale, dims: int) -> tuple[int, ...]:
    return (scale,) * dims if isinstance(scale, int) else tuple(scale)


def _make_card(model, name: str = "test_model", domain: str = "mri") -> ModelCard:
    radius = model.receptive_radius
    return ModelCard(
        name=name,
        domain=domain,
        scale=max(model.scale),
        channels=model.channels,
        dims=model.dims,
        architecture=model.arch_name,
        hparams=model.hparams,
        axis_scale=tuple(model.scale),
        receptive_field=2 * max(radius) + 1,
        input_range=(0.0, 1.0),
        n_parameters=model.n_parameters(),
        description="a test card",
        training_data=("set-a (CC-BY-4.0)", "set-b"),
        metrics={"psnr": 31.25, "baseline": {"bicubic": {"psnr": 29.5}}},
        license="CC0-1.0",
        version="0.0.test",
        supports_half=True,
        supports_bfloat16=False,
        tile_hint=48,
    )


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("arch", UPSCALERS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("dims", "scale"), SHAPE_CASES)
def test_output_shape_is_input_times_scale(arch, channels, dims, scale):
    torch.manual_seed(0)
    model = build_model(arch, dims=dims, channels=channels, scale=scale, **TINY[arch]).eval()
    spatial = (7, 6) if dims == 2 else (4, 5, 3)
    x = torch.rand(2, channels, *spatial)
    with torch.no_grad():
        out = model(x)
    per_axis = _per_axis(scale, dims)
    assert model.scale == per_axis
    assert out.shape == (2, channels, *(n * s for n, s in zip(spatial, per_axis)))
    assert out.dtype == torch.float32


# --------------------------------------------------------------------------- receptive radius


def _measured_reach(model: nn.Module, spatial: tuple[int, ...], channels: int) -> tuple[int, ...]:
    """Per axis, how far (in input pixels) a change of the centre pixel reaches the output.

    Output sample ``j`` belongs to input pixel ``j // s``; the reach is the largest distance
    between the perturbed pixel and an input pixel whose outputs changed.
    """
    model = model.double().eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, channels, *spatial, generator=gen, dtype=torch.float64)
    centre = tuple(n // 2 for n in spatial)
    bumped = x.clone()
    bumped[(0, 0, *centre)] += 1.0
    with torch.no_grad():
        delta = (model(bumped) - model(x)).abs().amax(dim=(0, 1))
    changed = torch.nonzero(delta > 1e-10)
    assert len(changed), "perturbing the centre pixel changed nothing"
    reach = []
    for axis, (c, s) in enumerate(zip(centre, model.scale)):
        owners = torch.div(changed[:, axis], s, rounding_mode="floor")
        reach.append(int((owners - c).abs().max()))
    return tuple(reach)


RADIUS_CASES = [(2, 2), (2, 3), (3, 2), (3, (1, 1, 4))]


def _radius_params():
    for arch in UPSCALERS:
        for dims, scale in RADIUS_CASES:
            yield pytest.param(arch, dims, scale, id=f"{arch}-{dims}d-{scale}")


@pytest.mark.parametrize(("arch", "dims", "scale"), list(_radius_params()))
def test_receptive_radius_bounds_the_real_reach_and_is_tight(arch, dims, scale):
    torch.manual_seed(2)
    model = build_model(arch, dims=dims, channels=1, scale=scale, **TINY[arch])
    declared = model.receptive_radius
    spatial = (31, 29) if dims == 2 else (17, 17, 17)
    reach = _measured_reach(model, spatial, 1)
    assert len(declared) == dims
    assert all(r <= d for r, d in zip(reach, declared)), (reach, declared)  # exactness of tiling
    assert all(r >= d - 2 for r, d in zip(reach, declared)), (reach, declared)  # no waste


@pytest.mark.parametrize(("dims", "scale"), RADIUS_CASES)
def test_edsr_direct_upsampler_radius_is_tight_and_every_conv_runs_at_low_res(dims, scale):
    torch.manual_seed(4)
    model = build_model(
        "edsr", dims=dims, channels=1, scale=scale, upsampler="direct", **TINY["edsr"]
    )
    spatial = (31, 29) if dims == 2 else (17, 17, 17)
    reach = _measured_reach(model, spatial, 1)
    declared = model.receptive_radius
    assert all(d - 2 <= r <= d for r, d in zip(reach, declared)), (reach, declared)
    assert model.hparams["upsampler"] == "direct"
    assert isinstance(model.tail, nn.Identity)
    assert model.upsampler.out_channels == math.prod(_per_axis(scale, dims))
    with pytest.raises(ValueError, match="upsampler"):
        build_model("edsr", dims=2, scale=2, upsampler="nearest")


@pytest.mark.parametrize("kind", BASELINES)
@pytest.mark.parametrize(("dims", "scale"), [(2, 2), (2, 3), (3, (1, 1, 4))])
def test_interpolator_receptive_radius_bounds_the_real_reach(kind, dims, scale):
    model = Interpolator(kind, dims=dims, scale=scale)
    declared = model.receptive_radius
    spatial = (35, 33) if dims == 2 else (7, 8, 35)
    reach = _measured_reach(model, spatial, 2)
    assert all(r <= d for r, d in zip(reach, declared)), (reach, declared)
    per_axis = _per_axis(scale, dims)
    for r, d, s in zip(reach, declared, per_axis):
        if s == 1:
            assert r == d == 0  # an axis left alone has no halo
    if kind in ("bicubic", "lanczos"):  # compact kernels: the bound is attained
        assert all(r == d for r, d, s in zip(reach, declared, per_axis) if s > 1)


def test_declared_radii_literal():
    assert SRCNN(dims=2, scale=3).receptive_radius == (4, 4)  # ceil(5/3) + bicubic 2
    assert SRCNN(dims=3, scale=(1, 1, 4)).receptive_radius == (5, 5, 4)  # no bicubic on x1 axes
    assert build_model("espcn", dims=3, scale=2).receptive_radius == (4, 4, 4)
    assert build_model("edsr", dims=2, scale=2, depth=2).receptive_radius == (8, 8)
    assert Interpolator("bspline", dims=3, scale=(1, 1, 2)).receptive_radius == (0, 0, 14)


# --------------------------------------------------------------------------- weights round trip


def _random_variant(seed: int):
    rng = random.Random(seed)
    arch = UPSCALERS[seed % len(UPSCALERS)]
    dims = rng.choice([2, 3])
    channels = rng.choice([1, 2, 3])
    if dims == 3 and rng.random() < 0.5:
        scale = rng.choice([(1, 1, 2), (2, 2, 1), (1, 2, 3)])
    else:
        scale = rng.choice([2, 3, 4])
    odd = [1, 3, 5]
    if arch == "srcnn":
        hparams = {
            "kernels": [rng.choice(odd) for _ in range(3)],
            "widths": [rng.randint(2, 6), rng.randint(2, 6)],
        }
    elif arch == "espcn":
        n = rng.randint(1, 3)
        hparams = {
            "widths": [rng.randint(2, 6) for _ in range(n)],
            "kernels": [rng.choice(odd) for _ in range(n + 1)],
            "activation": rng.choice(["tanh", "relu"]),
            "residual": rng.choice([True, False]),
        }
    else:
        hparams = {
            "width": rng.randint(2, 5),
            "depth": rng.randint(0, 2),
            "res_scale": rng.choice([1.0, 0.5, 0.1]),
            "residual": rng.choice([True, False]),
            "upsampler": rng.choice(["conv", "direct"]),
        }
    domain = rng.choice(DOMAINS)
    return arch, dims, channels, scale, hparams, domain


@pytest.mark.parametrize("seed", range(8))
def test_random_variants_round_trip_through_safetensors(seed, tmp_path):
    arch, dims, channels, scale, hparams, domain = _random_variant(seed)
    torch.manual_seed(seed)
    model = build_model(arch, dims=dims, channels=channels, scale=scale, **hparams).eval()
    card = _make_card(model, name=f"variant{seed}", domain=domain)
    path = save_model(model, tmp_path / f"variant{seed}.safetensors", card)
    assert path.is_file() and path.with_suffix(".json").is_file()

    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.hparams == model.hparams
    assert loaded.hparams["scale"] == list(_per_axis(scale, dims))
    assert loaded.receptive_radius == model.receptive_radius
    assert not loaded.training
    assert loaded.card == card
    assert loaded.card.hparams == model.hparams
    assert loaded.card.axis_scale == tuple(model.scale)
    assert json.loads(path.with_suffix(".json").read_text()) == card.to_dict()

    state, state_loaded = model.state_dict(), loaded.state_dict()
    assert state.keys() == state_loaded.keys()
    for key in state:
        assert torch.equal(state[key], state_loaded[key]), key

    spatial = (9, 11) if dims == 2 else (5, 6, 4)
    x = torch.rand(2, channels, *spatial, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_sidecar_card_wins_over_the_embedded_card(tmp_path):
    model = build_model("espcn", dims=2, channels=1, scale=2, **TINY["espcn"])
    card = _make_card(model)
    path = save_model(model, tmp_path / "m.safetensors", card)
    updated = card.to_dict() | {"metrics": {"psnr": 33.5}}
    path.with_suffix(".json").write_text(json.dumps(updated))
    assert load_model(path).card.metrics == {"psnr": 33.5}
    path.with_suffix(".json").unlink()  # the embedded card remains
    assert load_model(path).card == card


def test_save_model_refuses_other_suffixes(tmp_path):
    model = build_model("srcnn", **TINY["srcnn"])
    with pytest.raises(WeightsError, match=r"\.safetensors"):
        save_model(model, tmp_path / "m.pt", _make_card(model))


def test_torch_checkpoint_loads(tmp_path):
    torch.manual_seed(3)
    model = build_model("edsr", dims=3, channels=2, scale=(1, 2, 2), width=3, depth=1).eval()
    path = tmp_path / "ckpt.pt"
    torch.save(
        {"architecture": "edsr", "hparams": model.hparams, "model": model.state_dict()}, path
    )
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.hparams == model.hparams
    assert not loaded.has_card and loaded.card.domain == "any"  # a generated card
    x = torch.rand(1, 2, 4, 5, 3)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


class _Payload:
    """An arbitrary class: unpickling it would run code, so weights_only must refuse it."""

    def __init__(self):
        self.value = 42


def test_torch_checkpoint_with_arbitrary_object_is_refused(tmp_path):
    model = build_model("srcnn", **TINY["srcnn"])
    path = tmp_path / "evil.pt"
    torch.save(
        {
            "architecture": "srcnn",
            "hparams": model.hparams,
            "model": model.state_dict(),
            "extra": _Payload(),
        },
        path,
    )
    with pytest.raises(WeightsError, match="weights-only") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_garbage_safetensors_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"this is not a safetensors file at all" * 3)
    with pytest.raises(WeightsError, match="not a readable safetensors file") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_foreign_safetensors_is_refused(tmp_path):
    model = build_model("srcnn", **TINY["srcnn"])
    path = tmp_path / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(WeightsError, match="not written by this toolkit") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_weights_not_matching_the_hparams_are_refused(tmp_path):
    model = build_model("srcnn", **TINY["srcnn"])
    path = save_model(model, tmp_path / "m.safetensors", _make_card(model))
    path.with_suffix(".json").unlink()
    other = build_model("srcnn", widths=(6, 4))
    path2 = tmp_path / "mismatch.safetensors"
    save_file(
        {k: v.contiguous() for k, v in other.state_dict().items()},
        str(path2),
        metadata={
            "format": "srkit-weights",
            "format_version": "1",
            "architecture": "srcnn",
            "hparams": json.dumps(model.hparams),  # says widths (8, 4)
        },
    )
    with pytest.raises(WeightsError, match="do not match architecture 'srcnn'"):
        load_model(path2)


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        load_model(tmp_path / "absent.safetensors")


# --------------------------------------------------------------------------- registry and cards


@pytest.mark.parametrize("kind", ["bicubic", "bspline", "lanczos", "nearest"])
def test_baselines_load_as_interpolators(kind):
    model = load_model(kind)
    assert isinstance(model, Interpolator)
    assert model.kind == kind and model.arch_name == kind
    assert model.flexible_scale and model.channels == 0
    assert model.card.domain == "any"
    assert model.card.architecture == kind and model.card.channels == 0
    assert list(model.parameters()) == []


def test_load_model_returns_an_instance_unchanged():
    model = build_model("espcn", **TINY["espcn"])
    assert load_model(model) is model


def test_unknown_model_lists_the_options():
    with pytest.raises(ModelNotFoundError) as info:
        load_model("no_such_model")
    message = str(info.value)
    assert "no_such_model" in message
    for kind in BASELINES:
        assert kind in message


def test_build_model_unknown_architecture():
    with pytest.raises(ModelNotFoundError, match="unknown architecture 'unet'") as info:
        build_model("unet")
    for arch in ARCHITECTURES:
        assert arch in str(info.value)


def test_card_rejects_invalid_domain_and_dims():
    with pytest.raises(ValueError, match="domain must be one of"):
        ModelCard(name="x", domain="xray", scale=2, channels=1, dims=2, architecture="srcnn")
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        ModelCard(name="x", domain="ct", scale=2, channels=1, dims=4, architecture="srcnn")


def test_card_from_dict_names_unknown_keys():
    card = _make_card(build_model("srcnn", **TINY["srcnn"]))
    data = card.to_dict()
    assert ModelCard.from_dict(data) == card
    with pytest.raises(ValueError, match="unknown model card key\\(s\\): psnr, zzz"):
        ModelCard.from_dict({**data, "zzz": 1, "psnr": 30.0})


def test_card_is_frozen():
    card = _make_card(build_model("srcnn", **TINY["srcnn"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.domain = "ct"
    changed = card.replace(domain="ct")
    assert changed.domain == "ct" and card.domain == "mri"


# --------------------------------------------------------------------------- SRCNN structure


@pytest.mark.parametrize(("dims", "conv"), [(2, nn.Conv2d), (3, nn.Conv3d)])
def test_srcnn_structure_matches_the_seed(dims, conv):
    model = SRCNN(dims=dims, channels=3, scale=3)
    assert isinstance(model.upsample, PolyphaseUpsample)
    assert model.upsample.kind == "bicubic" and model.upsample.scale == (3,) * dims
    body = list(model.body)
    assert [type(m) for m in body] == [conv, nn.ReLU, conv, nn.ReLU, conv]
    expected = [(3, 64, 5), (64, 32, 3), (32, 3, 5)]
    for layer, (cin, cout, k) in zip(body[::2], expected):
        assert (layer.in_channels, layer.out_channels) == (cin, cout)
        assert layer.kernel_size == (k,) * dims
        assert layer.padding == (k // 2,) * dims
        assert layer.stride == (1,) * dims
    weights = sum(cin * cout * k**dims + cout for cin, cout, k in expected)
    assert model.n_parameters() == weights == (91_395 if dims == 3 else 25_731)
    seed_hparams = {"dims": dims, "channels": 3, "scale": [3] * dims, "kernels": [5, 3, 5]}
    assert {key: model.hparams[key] for key in seed_hparams} == seed_hparams
    assert model.hparams["widths"] == [64, 32]


def test_srcnn_forward_is_body_of_bicubic_upsampling():
    torch.manual_seed(4)
    model = SRCNN(dims=2, channels=1, scale=3).eval()
    x = torch.rand(2, 1, 10, 9)
    with torch.no_grad():
        upsampled = Interpolator("bicubic", dims=2, scale=3)(x)
        assert upsampled.shape == (2, 1, 30, 27)
        assert torch.equal(model(x), model.body(upsampled))
        # and the bicubic step matters: nearest pre-upsampling gives something else
        nearest = Interpolator("nearest", dims=2, scale=3)(x)
        assert (model(x) - model.body(nearest)).abs().max() > 1e-4


# --------------------------------------------------------------------------- defaults and writes


@pytest.mark.parametrize("dims", [2, 3])
def test_baseline_cards_use_the_shared_default_tile_hint(dims):
    from srkit.common.inference import tiling
    from srkit.common.models.card import DEFAULT_TILE_HINT
    from srkit.common.models.registry import baseline_card

    assert baseline_card("bicubic", dims).tile_hint == DEFAULT_TILE_HINT[dims]
    assert DEFAULT_TILE_HINT[dims] == tiling.DEFAULT_TILE[dims]


def test_save_model_lands_weights_and_card_together_or_neither(tmp_path, monkeypatch):
    """A failing card write (disk full) leaves the previous pair intact and no temporaries."""
    from pathlib import Path

    model = build_model("srcnn", **TINY["srcnn"])
    path = save_model(model, tmp_path / "m.safetensors", _make_card(model))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["m.json", "m.safetensors"]

    write_text = Path.write_text

    def disk_full(self, *args, **kwargs):
        if self.name.startswith(".m.json"):
            raise OSError(28, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    torch.manual_seed(1)
    other = build_model("srcnn", **TINY["srcnn"])
    with pytest.raises(OSError, match="No space left"):
        save_model(other, path, _make_card(other, name="other"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
