"""Tests of the shared layers: N-d pixel shuffle, polyphase weights and interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from srkit.common.models.layers import (
    PolyphaseUpsample,
    interpolation_radius,
    pixel_shuffle_nd,
    polyphase_weights,
    symmetric_indices,
)

KINDS = ("nearest", "bicubic", "lanczos", "bspline")


def _keys_cubic(t: float, a: float = -0.5) -> float:
    """Keys' cubic convolution kernel, written out independently of the module."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def _upsample(kind: str, x: np.ndarray, scale: tuple[int, ...]) -> np.ndarray:
    """Runs ``PolyphaseUpsample`` on a single-channel array (no batch, no channel axis)."""
    module = PolyphaseUpsample(kind, scale)
    with torch.no_grad():
        return module(torch.from_numpy(x)[None, None])[0, 0].numpy()


# --------------------------------------------------------------------------- pixel shuffle


@pytest.mark.parametrize("scale", [2, 3])
def test_pixel_shuffle_nd_matches_torch_in_2d(scale):
    x = torch.randn(2, 3 * scale * scale, 5, 7, generator=torch.Generator().manual_seed(scale))
    out = pixel_shuffle_nd(x, (scale, scale))
    assert out.shape == (2, 3, 5 * scale, 7 * scale)
    assert torch.equal(out, torch.pixel_shuffle(x, scale))


def test_pixel_shuffle_nd_3d_per_axis_matches_index_arithmetic():
    scale = (1, 2, 3)
    n, c, d, h, w = 2, 2, 3, 4, 5
    factor = math.prod(scale)
    x = torch.arange(n * c * factor * d * h * w, dtype=torch.float32).reshape(
        n, c * factor, d, h, w
    )
    expected = torch.empty(n, c, d * scale[0], h * scale[1], w * scale[2])
    for b in range(n):
        for ch in range(c):
            for z in range(d * scale[0]):
                for y in range(h * scale[1]):
                    for xx in range(w * scale[2]):
                        r0, r1, r2 = z % scale[0], y % scale[1], xx % scale[2]
                        src = ch * factor + (r0 * scale[1] + r1) * scale[2] + r2
                        expected[b, ch, z, y, xx] = x[
                            b, src, z // scale[0], y // scale[1], xx // scale[2]
                        ]
    out = pixel_shuffle_nd(x, scale)
    assert out.shape == (n, c, 3, 8, 15)
    assert torch.equal(out, expected)


def test_pixel_shuffle_nd_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="not divisible"):
        pixel_shuffle_nd(torch.zeros(1, 5, 3, 3), (2, 2))


# --------------------------------------------------------------------------- polyphase weights


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_polyphase_weights_shape_and_partition_of_unity(kind, scale):
    weights = polyphase_weights(kind, scale)
    radius = interpolation_radius(kind)
    assert weights.shape == (scale, 2 * radius + 1)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_polyphase_weights_bicubic_scale2_are_keys_weights():
    weights = polyphase_weights("bicubic", 2)
    taps = range(-2, 3)
    for phase, offset in enumerate((-0.25, 0.25)):
        expected = [_keys_cubic(offset - k) for k in taps]
        np.testing.assert_allclose(weights[phase], expected, rtol=0, atol=1e-15)
    # and the values worked out by hand (Keys a=-0.5 at 1.75, 0.75, 0.25, 1.25, 2.25)
    hand = [-0.0234375, 0.2265625, 0.8671875, -0.0703125, 0.0]
    np.testing.assert_array_equal(weights[0], hand)
    np.testing.assert_array_equal(weights[1], hand[::-1])


def test_polyphase_weights_nearest_scale3_is_one_hot_at_tap_zero():
    weights = polyphase_weights("nearest", 3)
    np.testing.assert_array_equal(weights, [[0, 1, 0]] * 3)


def test_polyphase_weights_unknown_kind():
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        polyphase_weights("cubic", 2)


# --------------------------------------------------------------------------- interpolation


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bspline_matches_scipy_zoom_2d(scale):
    x = np.random.default_rng(scale).random((23, 18)).astype(np.float32)
    out = _upsample("bspline", x, (scale, scale))
    ref = ndi.zoom(x.astype(np.float64), scale, order=3, mode="reflect", grid_mode=True)
    assert out.shape == ref.shape == (23 * scale, 18 * scale)
    assert np.abs(out - ref).max() < 2e-6


def test_bspline_matches_scipy_zoom_3d_per_axis():
    x = np.random.default_rng(7).random((5, 6, 13)).astype(np.float32)
    out = _upsample("bspline", x, (1, 1, 4))
    ref = ndi.zoom(x.astype(np.float64), (1, 1, 4), order=3, mode="reflect", grid_mode=True)
    assert out.shape == ref.shape == (5, 6, 52)
    assert np.abs(out - ref).max() < 2e-6


@pytest.mark.parametrize("scale", [(2, 3), (3, 1), (4, 4)])
def test_nearest_is_repeat(scale):
    x = np.random.default_rng(1).random((7, 9)).astype(np.float32)
    expected = np.repeat(np.repeat(x, scale[0], axis=0), scale[1], axis=1)
    np.testing.assert_array_equal(_upsample("nearest", x, scale), expected)


def test_nearest_3d_per_axis_is_repeat():
    x = np.random.default_rng(2).random((3, 4, 5)).astype(np.float32)
    expected = np.repeat(np.repeat(x, 2, axis=0), 3, axis=2)
    np.testing.assert_array_equal(_upsample("nearest", x, (2, 1, 3)), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_scale_one_axes_are_left_alone(kind):
    x = torch.rand(2, 3, 6, 11, generator=torch.Generator().manual_seed(3))
    assert torch.equal(PolyphaseUpsample(kind, (1, 1))(x), x)
    module = PolyphaseUpsample(kind, (1, 3))
    out = module(x)
    assert out.shape == (2, 3, 6, 33)
    # rows never mix: each row upsampled on its own gives the same values
    for row in range(x.shape[2]):
        assert torch.equal(out[:, :, row], module(x[:, :, row : row + 1])[:, :, 0])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_keeps_constants(scale):
    x = np.full((9, 7), 0.625, dtype=np.float32)
    out = _upsample("bicubic", x, (scale, scale))
    assert out.shape == (9 * scale, 7 * scale)
    np.testing.assert_allclose(out, 0.625, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_reproduces_a_linear_ramp_in_the_interior(scale):
    n = 16
    slope, offset = 0.05, 0.1
    ramp = (slope * np.arange(n) + offset).astype(np.float32)
    x = np.tile(ramp[:, None], (1, 5))  # varies along axis 0 only
    out = _upsample("bicubic", x, (scale, 2))
    u = (np.arange(n * scale) + 0.5) / scale - 0.5  # edges-kept sample positions
    expected = slope * u + offset
    # away from the borders no tap reaches the (non-linear) symmetric extension
    interior = (u >= 1.0) & (u <= n - 2.0)
    assert interior.sum() >= n * scale - 4 * scale
    np.testing.assert_allclose(out[interior], np.tile(expected[interior, None], (1, 10)), atol=1e-6)
    # at the borders the symmetric extension flattens the ramp: the first sample is not linear
    assert abs(out[0, 0] - expected[0]) > 1e-3


# --------------------------------------------------------------------------- symmetric extension


def _reflect(i: int, n: int) -> int:
    while not 0 <= i < n:
        i = -1 - i if i < 0 else 2 * n - 1 - i
    return i


@pytest.mark.parametrize(("size", "pad"), [(4, 2), (4, 4), (2, 5), (1, 3), (3, 10)])
def test_symmetric_indices_half_sample_extension(size, pad):
    idx = symmetric_indices(size, pad)
    expected = [_reflect(i, size) for i in range(-pad, size + pad)]
    assert idx.tolist() == expected
    np.testing.assert_array_equal(idx.numpy(), np.pad(np.arange(size), pad, mode="symmetric"))


def test_symmetric_indices_size2_pad5_literal():
    # a b | a b | b a a b b a ...: period 4 = 2n, each edge sample repeated
    assert symmetric_indices(2, 5).tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]
