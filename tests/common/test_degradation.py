from __future__ import annotations

import math

import numpy as np
import pytest
from srkit.common.degradation import (
    add_noise,
    bicubic_downsample,
    gaussian_blur,
    gaussian_mtf_downsample,
    imresize,
    mod_crop,
    thick_slice,
)

RNG = np.random.default_rng(0)

# Keys (a = -0.5) kernel at offsets 0.25, 0.75, 1.25, 1.75
K = np.array([0.8671875, 0.2265625, -0.0703125, -0.0234375])


def test_imresize_upscale_x2_impulse_gives_keys_weights():
    x = np.zeros((1, 1, 9))
    x[..., 4] = 1.0
    out = imresize(x, (1, 2))
    assert out.shape == (1, 1, 18)
    # output j sits at input coordinate j/2 - 0.25 (0-based): phases 0.25 / 0.75
    expected = np.concatenate([K[::-1], K])
    np.testing.assert_allclose(out[0, 0, 5:13], expected, atol=1e-15)
    assert out[0, 0, :5].tolist() == [0.0] * 5


def test_imresize_downscale_x2_antialiased_impulse():
    x = np.zeros((16, 1))
    x[8] = 1.0
    out = imresize(x, (0.5, 1))[:, 0]
    # kernel stretched by 2: weights 0.5 * K at distances 0.5, 1.5, 2.5, 3.5 (sum exactly 1)
    np.testing.assert_allclose(out[2:6], [0.5 * K[3], 0.5 * K[1], 0.5 * K[0], 0.5 * K[2]])
    assert out.sum() == pytest.approx(0.5)  # mean preserved: 16 -> 8 samples


def test_imresize_matlab_reference_4x4():
    # 1-D: [0, 1, 2, 3] at scale 0.5 -> sample at 0.5 with symmetric padding
    # [2 1 0 | 0 1 2 3 | 3]: sum(0.5 * K-weights * values) = 0.4609375, and 3 - that.
    x = np.arange(16.0).reshape(4, 4)  # = 4 * row + col
    expected = np.array([[2.3046875, 4.3828125], [10.6171875, 12.6953125]])
    np.testing.assert_allclose(imresize(x, 0.5), expected, atol=1e-12)
    y = np.array([[1.0, 2, 3], [4, 5, 6]])
    np.testing.assert_allclose(
        imresize(y, 2.0)[0], [0.625, 0.8984375, 1.4453125, 1.9921875, 2.5390625, 2.8125]
    )


def test_imresize_properties():
    const = np.full((2, 13, 17), 0.7, dtype=np.float32)
    for s in (0.5, 1 / 3, 0.3, 2, 1.7):
        out = imresize(const, s)
        assert out.dtype == np.float32
        assert out.shape == (2, math.ceil(13 * s), math.ceil(17 * s))
        np.testing.assert_allclose(out, 0.7, rtol=1e-6)
    assert imresize(np.zeros((5, 7), dtype=np.int64), 2).dtype == np.float64
    # linear ramp: interior stays linear (cubic reproduces linear functions)
    ramp = np.tile(np.arange(32.0), (4, 1))
    out = imresize(ramp, (1, 0.5))
    np.testing.assert_allclose(out[:, 3:-3], np.tile(np.arange(32.0)[::2] + 0.5, (4, 1))[:, 3:-3])
    assert imresize(np.zeros((3, 20, 30)), output_shape=(7, 11)).shape == (3, 7, 11)
    with pytest.raises(ValueError):
        imresize(const)
    with pytest.raises(ValueError):
        imresize(const, 0.5, output_shape=(4, 4))


def test_imresize_3d_per_axis_leaves_scale_one_axes_untouched():
    vol = RNG.random((2, 3, 4, 16))
    out = imresize(vol, (1, 1, 0.25), spatial_dims=3)
    assert out.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(out, imresize(vol.reshape(-1, 16), (1, 0.25)).reshape(out.shape))
    iso = imresize(vol, 0.5, spatial_dims=3)
    assert iso.shape == (2, 2, 2, 8)


def test_bicubic_downsample_and_mod_crop():
    x = RNG.random((3, 12, 16))
    np.testing.assert_allclose(bicubic_downsample(x, 4), imresize(x, 0.25))
    assert bicubic_downsample(x, (3, 4)).shape == (3, 4, 4)
    with pytest.raises(ValueError, match="mod_crop"):
        bicubic_downsample(RNG.random((1, 13, 16)), 4)
    assert mod_crop(RNG.random((1, 13, 18)), 4).shape == (1, 12, 16)
    assert mod_crop(RNG.random((1, 7, 13, 18)), (1, 4, 3), spatial_dims=3).shape == (1, 7, 12, 18)
    with pytest.raises(ValueError, match="0"):
        mod_crop(x, 0)


def test_gaussian_blur_spatial_only_and_noise():
    x = np.zeros((2, 9, 9))
    x[0, 4, 4] = 1.0
    out = gaussian_blur(x, 1.0)
    assert out[1].max() == 0.0  # channels not mixed
    assert out.sum() == pytest.approx(1.0)
    assert out[0, 4, 3] == pytest.approx(out[0, 3, 4])
    np.testing.assert_allclose(gaussian_blur(np.full((1, 5, 6), 2.0), (1.0, 2.0)), 2.0)
    a = add_noise(np.zeros((1, 64, 64)), 0.1, np.random.default_rng(1))
    b = add_noise(np.zeros((1, 64, 64)), 0.1, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.std() == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_gaussian_mtf_downsample(factor):
    const = np.full((1, 6 * factor + 1, 5 * factor), 3.0)
    out = gaussian_mtf_downsample(const, factor)
    assert out.shape == (1, 6, 5)
    np.testing.assert_allclose(out, 3.0)
    # cosine at LR Nyquist, phased so LR centres k*f + (f-1)/2 hit its extrema
    n = 32 * factor
    t = np.arange(n) - (factor - 1) / 2
    wave = np.cos(np.pi * t / factor)[None, :]
    lr = gaussian_mtf_downsample(
        np.repeat(wave, 2 * factor, axis=0)[None], factor, mtf_at_nyquist=0.3
    )
    interior = lr[0, 1, 8:-8] * (-1.0) ** np.arange(8, 24)
    np.testing.assert_allclose(interior, 0.3, rtol=0.01)


def test_gaussian_mtf_downsample_errors():
    with pytest.raises(ValueError, match="1.0"):
        gaussian_mtf_downsample(np.zeros((8, 8)), 2, mtf_at_nyquist=1.0)
    with pytest.raises(ValueError, match="factor"):
        gaussian_mtf_downsample(np.zeros((8, 8)), 0)


def test_thick_slice_box_block_mean_and_shape():
    x = RNG.random((2, 13, 5, 4))
    out = thick_slice(x, 4, axis=1, profile="box")
    assert out.shape == (2, 3, 5, 4)
    np.testing.assert_allclose(out, x[:, :12].reshape(2, 3, 4, 5, 4).mean(axis=2))
    # gap 1 with factor 3: slab [3k, 3k + 2] covers half, full, half slices
    y = thick_slice(x, 3, axis=-3, profile="box", gap=1.0)
    ref = 0.25 * x[:, 0:12:3] + 0.5 * x[:, 1:12:3] + 0.25 * x[:, 2:12:3]
    np.testing.assert_allclose(y, ref)


@pytest.mark.parametrize("profile", ["box", "gaussian"])
@pytest.mark.parametrize("factor,gap", [(2, 0.0), (3, 0.5), (4, 1.0), (5, 0.0)])
def test_thick_slice_constant_and_ramp(profile, factor, gap):
    np.testing.assert_allclose(
        thick_slice(np.full((1, 20, 3), 2.5), factor, 1, profile=profile, gap=gap), 2.5
    )
    ramp = np.broadcast_to(np.arange(60.0)[:, None], (60, 2))
    out = thick_slice(ramp, factor, axis=0, profile=profile, gap=gap)
    centres = np.arange(60 // factor) * factor + (factor - 1) / 2
    np.testing.assert_allclose(out[2:-2, 0], centres[2:-2], atol=1e-12)


def test_thick_slice_gaussian_weights():
    x = np.zeros(24)
    x[10] = 1.0
    sigma = 4 / (2 * math.sqrt(2 * math.log(2)))  # FWHM = 4 slices
    d = np.arange(5, 15) - 9.5  # LR slice 2 centred at 9.5; taps within 3 sigma = 5.1
    w = np.exp(-(d**2) / (2 * sigma**2))
    out = thick_slice(x, 4, axis=0)
    assert out[2] == pytest.approx(w[5] / w.sum())


def test_thick_slice_errors():
    x = np.zeros((8, 8))
    with pytest.raises(ValueError, match="0"):
        thick_slice(x, 0, axis=0)
    with pytest.raises(ValueError, match="2.5"):
        thick_slice(x, 2, axis=0, gap=2.5)
    with pytest.raises(ValueError, match="'tri'"):
        thick_slice(x, 2, axis=0, profile="tri")
