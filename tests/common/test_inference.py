"""Tests of tiled inference: tiling is exact, settings are checked, fallbacks work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from srkit.common.inference import TilingError, choose_device, predict_whole, tiling, upscale
from srkit.common.models import (
    BASELINES,
    EDSR,
    Interpolator,
    ModelCard,
    SRModule,
    build_model,
    load_model,
)
from torch import nn

from tests.common.tiny import TINY

# (architecture or baseline kind, channels, dims, scale, array shape (C, *spatial)). Sizes are
# 2*radius + odd margins: with the smallest tile the windows step by one pixel, so the
# window count is the product of the margins.
RADIUS = {
    "srcnn": 5,
    "espcn": 4,
    "edsr": 6,
    "nearest": 1,
    "bicubic": 2,
    "lanczos": 3,
    "bspline": 14,
}
CASES = [
    ("srcnn", 1, 2, 2, (1, 2 * 6 + 27, 2 * 6 + 21)),
    ("espcn", 3, 2, 3, (3, 2 * 4 + 27, 2 * 4 + 21)),
    ("edsr", 1, 2, 2, (1, 2 * 7 + 27, 2 * 7 + 21)),
    ("srcnn", 1, 3, 2, (1, 15, 17, 13)),
    ("espcn", 1, 3, (1, 1, 4), (1, 13, 11, 15)),
    ("edsr", 2, 3, (2, 2, 1), (2, 17, 19, 16)),
    *[(kind, 3, 2, 3, (3, 2 * RADIUS[kind] + 27, 2 * RADIUS[kind] + 21)) for kind in BASELINES],
    *[(kind, 1, 3, (1, 1, 4), (1, 5, 4, 2 * RADIUS[kind] + 9)) for kind in BASELINES],
]
TILE_KINDS = ("smallest", "middle", "nondivisor", "larger")


def _model_for(name: str, channels: int, dims: int, scale) -> SRModule:
    if name in BASELINES:
        return Interpolator(name, dims=dims, scale=scale)
    torch.manual_seed(0)
    return build_model(name, dims=dims, channels=channels, scale=scale, **TINY[name])


def _tile(kind: str, halo: tuple[int, ...], spatial: tuple[int, ...]) -> tuple[int, ...]:
    """A tile of the requested kind, per axis."""
    tiles = []
    for h, n in zip(halo, spatial):
        smallest = 2 * h + 1
        if kind == "smallest":
            tiles.append(smallest)
        elif kind == "larger":
            tiles.append(n + 3)
        elif kind == "middle":
            tiles.append(max(smallest, (n + smallest) // 2))
        else:  # a tile whose core step does not divide the image: the last window overlaps
            for t in range((n + smallest) // 2 + 1, n):
                if (n - t) % (t - 2 * h):
                    tiles.append(t)
                    break
            else:
                tiles.append(smallest)
    return tuple(tiles)


def _case_id(case) -> str:
    name, channels, dims, scale, _ = case
    return f"{name}-{dims}d-c{channels}-x{scale}".replace(" ", "")


@pytest.mark.parametrize("tile_kind", TILE_KINDS)
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_tiled_equals_untiled(case, tile_kind):
    name, channels, dims, scale, shape = case
    model = _model_for(name, channels, dims, scale)
    x = np.random.default_rng(len(shape) + shape[-1]).random(shape, dtype=np.float32)
    expected = predict_whole(model, x)
    spatial = shape[1:]
    per_axis = model.scale
    assert expected.shape == (shape[0], *(n * s for n, s in zip(spatial, per_axis)))

    assert max(model.receptive_radius) <= RADIUS[name]  # the image sizes below assume it
    tile = _tile(tile_kind, model.receptive_radius, spatial)
    if tile_kind != "larger":  # the case must really be tiled along some axis
        assert any(t < n for t, n in zip(tile, spatial)), (tile, spatial)
    batch = 3 if tile_kind in ("smallest", "nondivisor") else 1
    if name in BASELINES:  # a baseline loaded by name, rescaled at call time
        out = upscale(load_model(name), x, scale=scale, tile=tile, batch_size=batch)
    else:
        out = upscale(model, x, tile=tile, batch_size=batch)
    assert out.dtype == np.float32
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() < 1e-5


class UnderDeclaredEDSR(EDSR):
    """An EDSR that claims one pixel less reach than it has."""

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        return tuple(r - 2 for r in super().receptive_radius)  # real reach is declared - 1


def test_a_halo_below_the_real_reach_shows_seams():
    # the contract above is not vacuous: too small a halo gives visible differences
    torch.manual_seed(0)
    model = UnderDeclaredEDSR(dims=2, channels=1, scale=2, **TINY["edsr"])
    x = np.random.default_rng(3).random((1, 31, 29), dtype=np.float32)
    out = upscale(model, x, tile=11)
    assert np.abs(out - predict_whole(model, x)).max() > 1e-4


# --------------------------------------------------------------------------- trivial predictor


class DoubledNearest(SRModule):
    """MONAI-style trivial predictor: nearest upsampling times two, no spatial reach."""

    arch_name = "doubled_nearest"

    def __init__(self, dims: int = 2, scale=2):
        super().__init__(dims, 0, scale)

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        return (0,) * self.dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, s in enumerate(self.scale):
            x = x.repeat_interleave(s, dim=2 + axis)
        return x * 2


# Where no output pixel is covered by more than two window cores, the stitched average is
# exact: p + p and 2p / 2 do not round. Tiles that divide the image, or that cut one axis only.
@pytest.mark.parametrize("tile", [1, 2, 3, 6, (4, 9), (8, 6), (5, 18), (24, 7), 100])
def test_trivial_predictor_is_exact_2d(tile):
    x = np.random.default_rng(5).random((2, 24, 18), dtype=np.float32)
    out = upscale(DoubledNearest(2, (2, 3)), x, tile=tile, batch_size=3)
    expected = 2 * np.repeat(np.repeat(x, 2, axis=1), 3, axis=2)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("tile", [1, (2, 3, 4), (7, 6, 5), (4, 6, 8)])
def test_trivial_predictor_is_exact_3d(tile):
    x = np.random.default_rng(6).random((1, 4, 6, 8), dtype=np.float32)
    out = upscale(DoubledNearest(3, (1, 1, 4)), x, tile=tile, batch_size=4)
    np.testing.assert_array_equal(out, 2 * np.repeat(x, 4, axis=3))


@pytest.mark.parametrize("tile", [4, 5, 7, (3, 8, 5)])
def test_trivial_predictor_with_many_overlaps_is_bit_exact(tile):
    # up to 8 window cores overlap a pixel here; exactly one of them writes it
    x = np.random.default_rng(7).random((1, 7, 11, 9), dtype=np.float32)
    out = upscale(DoubledNearest(3, (2, 1, 2)), x, tile=tile, batch_size=2)
    expected = 2 * np.repeat(np.repeat(x, 2, axis=1), 2, axis=3)
    assert out.shape == expected.shape == (1, 14, 11, 18)
    np.testing.assert_array_equal(out, expected)


# --------------------------------------------------------------------------- settings


@pytest.fixture
def srcnn2d() -> SRModule:
    return _model_for("srcnn", 1, 2, 2)  # receptive radius 6


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(9).random((1, 37, 33), dtype=np.float32)


def test_too_small_tile_is_refused(srcnn2d, image):
    assert srcnn2d.receptive_radius == (5, 5)
    with pytest.raises(TilingError, match="too small"):
        upscale(srcnn2d, image, tile=10)
    with pytest.raises(TilingError, match="too small"):
        upscale(srcnn2d, image, tile=(11, 10))
    # an axis the tile covers whole is not tiled, so the halo does not matter there
    out = upscale(srcnn2d, image[:, :, :10], tile=(11, 10))
    np.testing.assert_allclose(out, predict_whole(srcnn2d, image[:, :, :10]), atol=1e-5)


def test_overlap_below_the_radius_is_refused(srcnn2d, image):
    with pytest.raises(TilingError, match="below the model's receptive radius"):
        upscale(srcnn2d, image, tile=20, overlap=4)
    with pytest.raises(TilingError, match="below the model's receptive radius"):
        upscale(srcnn2d, image, tile=20, overlap=(5, 4))


def test_larger_overlap_is_still_exact(srcnn2d, image):
    out = upscale(srcnn2d, image, tile=25, overlap=9)
    assert np.abs(out - predict_whole(srcnn2d, image)).max() < 1e-5
    with pytest.raises(TilingError, match="too small"):
        upscale(srcnn2d, image, tile=18, overlap=9)


def test_integer_input_is_refused_with_what_to_do(srcnn2d):
    """An integer array is one user error (an SRKitError) naming the numpy dtype, the
    model's range and the way out, not a TypeError about torch dtypes."""
    with pytest.raises(TilingError, match=r"got a uint8 array: scale it first .* / 255") as e:
        upscale(srcnn2d, np.zeros((1, 20, 20), dtype=np.uint8))
    assert "torch" not in str(e.value) and "enhance_array" in str(e.value)
    with pytest.raises(TilingError, match=r"input range \[0, 1\], got a int16 array"):
        upscale(srcnn2d, torch.zeros(1, 20, 20, dtype=torch.int16))


def test_a_2d_model_on_a_volume_points_to_the_plane_path():
    with pytest.raises(TilingError, match=r"2D but the array has 3 spatial axes; .*upscale_planes"):
        upscale("mri_smore_x2", np.zeros((1, 8, 8, 8), np.float32))


def test_wrong_shapes_are_refused(srcnn2d, image):
    with pytest.raises(ValueError, match="expects 1 channel"):
        upscale(srcnn2d, np.zeros((3, 20, 20), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected \(C, H, W\)"):
        upscale(srcnn2d, image[0])
    with pytest.raises(TilingError, match="model is 2D"):
        upscale(srcnn2d, image[None])


def test_trained_model_refuses_another_scale(srcnn2d, image):
    with pytest.raises(TilingError, match="trained for scale"):
        upscale(srcnn2d, image, scale=3)
    out = upscale(srcnn2d, image, scale=(2, 2), tile=20)  # its own scale is fine
    assert out.shape == (1, 74, 66)


def test_baseline_takes_any_scale():
    x = np.random.default_rng(10).random((2, 13, 11), dtype=np.float32)
    out = upscale("bicubic", x, scale=3, tile=9)
    assert out.shape == (2, 39, 33)
    assert np.abs(out - predict_whole(Interpolator("bicubic", 2, 3), x)).max() < 1e-5
    assert upscale("bicubic", x).shape == (2, 26, 22)  # default factor 2

    vol = np.random.default_rng(11).random((1, 6, 5, 9), dtype=np.float32)
    out = upscale(load_model("lanczos"), vol, scale=(1, 2, 3), tile=(2, 7, 7))
    assert out.shape == (1, 6, 10, 27)
    reference = predict_whole(Interpolator("lanczos", 3, (1, 2, 3)), vol)
    assert np.abs(out - reference).max() < 1e-5


def test_per_axis_interpolator_keeps_its_scale_by_default():
    vol = np.random.default_rng(12).random((1, 4, 5, 6), dtype=np.float32)
    model = Interpolator("bicubic", dims=3, scale=(1, 1, 4))
    assert upscale(model, vol).shape == predict_whole(model, vol).shape == (1, 4, 5, 24)


# --------------------------------------------------------------------------- types


def test_output_is_float32_and_input_untouched(srcnn2d, image):
    x64 = image.astype(np.float64)
    before = x64.copy()
    out = upscale(srcnn2d, x64, tile=20)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(x64, before)
    assert np.abs(out - predict_whole(srcnn2d, image)).max() < 1e-5


def test_tensor_in_tensor_out(srcnn2d, image):
    tensor = torch.from_numpy(image.copy())
    before = tensor.clone()
    out = upscale(srcnn2d, tensor, tile=20)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.equal(tensor, before)
    assert np.abs(out.numpy() - predict_whole(srcnn2d, image)).max() < 1e-5
    # half input is computed in float32
    half = upscale(srcnn2d, tensor.half(), tile=20)
    assert half.dtype == torch.float32


def test_training_mode_is_restored(srcnn2d, image):
    srcnn2d.train()
    upscale(srcnn2d, image, tile=20)
    assert srcnn2d.training
    predict_whole(srcnn2d, image)
    assert srcnn2d.training


def _record_runs(monkeypatch) -> list[tuple]:
    real = tiling._run
    calls: list[tuple] = []

    def recording(model, tensor, scale, roi, halo, batch, device, progress):
        calls.append((tuple(roi), tuple(halo), batch))
        return real(model, tensor, scale, roi, halo, batch, device, progress)

    monkeypatch.setattr(tiling, "_run", recording)
    return calls


def test_default_tile_comes_from_the_card_or_the_default(monkeypatch, srcnn2d, image):
    calls = _record_runs(monkeypatch)
    upscale(srcnn2d, image, device="cpu")
    assert calls[-1] == ((37, 33), (5, 5), 1)  # default 256, clipped; one window per CPU pass
    srcnn2d.card = ModelCard(
        name="t", domain="natural", scale=2, channels=1, dims=2, architecture="srcnn", tile_hint=20
    )
    upscale(srcnn2d, image, device="cpu")
    assert calls[-1] == ((20, 20), (5, 5), 1)
    upscale(srcnn2d, image, tile=(17, 30), batch_size=2)
    assert calls[-1] == ((17, 30), (5, 5), 2)


def test_default_batch_is_one_window_on_the_cpu_and_four_on_an_accelerator():
    assert tiling.default_batch(torch.device("cpu")) == 1
    assert tiling.default_batch(torch.device("cuda", 0)) == 4
    assert tiling.default_batch(torch.device("mps")) == 4


# --------------------------------------------------------------------------- out of memory


def test_out_of_memory_halves_the_batch(monkeypatch, srcnn2d, image):
    real = tiling._run
    calls = []

    def flaky(model, tensor, scale, roi, halo, batch, device, progress):
        calls.append((tuple(roi), batch))
        if len(calls) == 1:
            raise torch.OutOfMemoryError("simulated out of memory")
        return real(model, tensor, scale, roi, halo, batch, device, progress)

    monkeypatch.setattr(tiling, "_run", flaky)
    with pytest.warns(UserWarning, match="batch_size=2"):
        out = upscale(srcnn2d, image, tile=20, batch_size=4)
    assert calls == [((20, 20), 4), ((20, 20), 2)]
    assert np.abs(out - predict_whole(srcnn2d, image)).max() < 1e-5


def test_out_of_memory_at_batch_one_halves_the_tile(monkeypatch, srcnn2d, image):
    real = tiling._run
    calls = []

    def needs_small_tiles(model, tensor, scale, roi, halo, batch, device, progress):
        calls.append((tuple(roi), batch))
        if max(roi) > 20:
            raise torch.OutOfMemoryError("simulated out of memory")
        return real(model, tensor, scale, roi, halo, batch, device, progress)

    monkeypatch.setattr(tiling, "_run", needs_small_tiles)
    with pytest.warns(UserWarning) as record:
        out = upscale(srcnn2d, image, tile=30, batch_size=2)
    messages = [str(w.message) for w in record]
    assert any("batch_size=1" in m for m in messages), messages
    assert any("tile=(15, 15)" in m for m in messages), messages
    assert calls == [((30, 30), 2), ((30, 30), 1), ((15, 15), 1)]
    assert np.abs(out - predict_whole(srcnn2d, image)).max() < 1e-5


def test_out_of_memory_on_the_cpu_at_the_smallest_tile_is_raised(monkeypatch, srcnn2d, image):
    def always(*args):
        raise torch.OutOfMemoryError("simulated out of memory")

    monkeypatch.setattr(tiling, "_run", always)
    with pytest.warns(UserWarning, match="tile"), pytest.raises(torch.OutOfMemoryError):
        upscale(srcnn2d, image, tile=14, batch_size=1, device="cpu")


# --------------------------------------------------------------------------- bf16 guard


class InfUnderAutocast(SRModule):
    """Returns inf when run under CPU autocast, a finite upsampling otherwise."""

    arch_name = "inf_under_autocast"

    def __init__(self):
        super().__init__(2, 1, 2)
        self.conv = nn.Conv2d(1, 1, 1)
        self.autocast_seen: list[bool] = []

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        return (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        autocast = torch.is_autocast_enabled("cpu")
        self.autocast_seen.append(autocast)
        return torch.full_like(y, float("inf")) if autocast else y


def _network(model) -> tiling._Network:
    return tiling._Network(model, torch.device("cpu"), use_bf16=True)


def test_bf16_non_finite_output_is_redone_in_float32():
    model = InfUnderAutocast().eval()
    network = _network(model)
    windows = torch.rand(2, 1, 6, 5, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        out = network(windows)
        expected = model.conv(windows).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert model.autocast_seen[:2] == [True, False]
    assert network.fallbacks == 1
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out, expected)


def test_bf16_non_finite_input_is_not_redone():
    model = InfUnderAutocast().eval()
    network = _network(model)
    windows = torch.rand(1, 1, 6, 5)
    windows[0, 0, 2, 2] = float("inf")
    with torch.no_grad():
        out = network(windows)
    assert network.fallbacks == 0
    assert model.autocast_seen == [True]
    assert torch.isinf(out).all()


def test_choose_device():
    assert choose_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the default is CUDA")
    assert choose_device(None) == torch.device("cpu")
