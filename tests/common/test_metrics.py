from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity
from srkit.common.metrics import ergas, psnr, rgb_to_y, sam, shave, ssim, y_psnr, y_ssim

RNG = np.random.default_rng(0)


def test_psnr_constant_error_is_20_db():
    ref = RNG.random((3, 8, 8))
    assert psnr(ref + 0.1, ref, data_range=1.0) == pytest.approx(20.0, abs=1e-9)
    assert psnr(ref + 1.0, ref, data_range=255.0) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_identical_is_inf():
    ref = RNG.random((8, 8))
    assert psnr(ref, ref.copy(), data_range=1.0) == float("inf")


def test_psnr_mask_ignores_unmasked_errors():
    ref = np.zeros((2, 6, 6))
    mask = np.zeros((6, 6), dtype=bool)
    mask[1:4, 2:5] = True
    pred = np.broadcast_to(np.where(mask, 0.1, 0.9), ref.shape)
    assert psnr(pred, ref, data_range=1.0, mask=mask) == pytest.approx(20.0, abs=1e-9)
    assert psnr(pred, ref, data_range=1.0) < 5


def test_psnr_argument_errors():
    a = np.zeros((4, 4))
    with pytest.raises(TypeError):
        psnr(a, a)  # data_range is required
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="data_range"):
            psnr(a, a, data_range=bad)
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        psnr(a, np.zeros((4, 5)), data_range=1.0)
    with pytest.raises(ValueError, match="mask"):
        psnr(a, a, data_range=1.0, mask=np.zeros((4, 4), dtype=bool))


def test_ssim_identical_and_matches_skimage():
    ref = RNG.random((3, 32, 32))
    pred = ref + 0.05 * RNG.standard_normal(ref.shape)
    assert ssim(ref, ref, data_range=1.0) == pytest.approx(1.0)
    expected = structural_similarity(
        pred,
        ref,
        data_range=1.0,
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(pred, ref, data_range=1.0) == pytest.approx(expected, abs=1e-12)
    assert ssim(pred[0], ref[0], data_range=1.0, channel_axis=None) < 1
    with pytest.raises(TypeError):
        ssim(pred, ref)


def test_ssim_3d_thin_volume():
    ref = RNG.random((1, 8, 16, 16))
    assert ssim(ref, ref, data_range=1.0) == pytest.approx(1.0)
    noisy = ref + 0.1 * RNG.standard_normal(ref.shape)
    assert ssim(noisy, ref, data_range=1.0) < 0.99
    assert ssim(noisy[0], ref[0], data_range=1.0, channel_axis=None) == pytest.approx(
        ssim(noisy, ref, data_range=1.0)
    )


def test_ssim_mask():
    ref = RNG.random((1, 40, 40))
    pred = ref.copy()
    pred[:, :, 25:] += 0.3 * RNG.standard_normal((1, 40, 15))
    full = ssim(pred, ref, data_range=1.0)
    # all-true mask reproduces the unmasked value
    assert ssim(pred, ref, data_range=1.0, mask=np.ones((40, 40), bool)) == pytest.approx(full)
    # a mask far (> window radius) from the corrupted region sees a perfect match
    mask = np.zeros((40, 40), bool)
    mask[:, :15] = True
    assert ssim(pred, ref, data_range=1.0, mask=mask) == pytest.approx(1.0)
    assert full < 0.9


def test_rgb_to_y_reference_colours():
    def y(r, g, b):
        return float(rgb_to_y(np.array([r, g, b], float).reshape(3, 1, 1))[0, 0])

    assert y(1, 1, 1) == pytest.approx(235.0)
    assert y(0, 0, 0) == pytest.approx(16.0)
    assert y(1, 0, 0) == pytest.approx(16 + 65.481)
    assert rgb_to_y(np.zeros((3, 4, 5))).shape == (4, 5)
    with pytest.raises(ValueError):
        rgb_to_y(np.zeros((4, 4, 5)))


def test_shave_shapes():
    assert shave(np.zeros((3, 10, 12)), 2).shape == (3, 6, 8)
    assert shave(np.zeros((1, 8, 10, 12)), 1, spatial_dims=3).shape == (1, 6, 8, 10)
    assert shave(np.zeros((10, 12)), 0).shape == (10, 12)
    x = np.arange(25.0).reshape(5, 5)
    np.testing.assert_array_equal(shave(x, 1), x[1:4, 1:4])
    with pytest.raises(ValueError):
        shave(x, 3)
    with pytest.raises(ValueError):
        shave(x, -1)


def test_y_psnr_known_offset_and_shave():
    ref = RNG.integers(10, 200, (3, 20, 20)) / 255.0
    pred = ref + 2 / 255
    # Y difference = 219 * 2/255 everywhere
    expected = 20 * math.log10(255 / (219 * 2 / 255))
    assert y_psnr(pred, ref, scale=4) == pytest.approx(expected, abs=1e-9)
    pred[:, :4, :] = 0.0  # errors inside the shaved border are ignored
    pred[:, :, -4:] = 1.0
    assert y_psnr(pred, ref, scale=4) == pytest.approx(expected, abs=1e-9)
    # grayscale: Y = 255 * gray, no 16..235 mapping
    gray = ref[:1]
    assert y_psnr(gray + 2 / 255, gray, scale=2) == pytest.approx(20 * math.log10(255 / 2))


def test_y_psnr_quantize():
    ref = RNG.integers(0, 256, (3, 12, 12)) / 255.0
    pred = ref + 0.4 / 255  # rounds back onto the reference levels
    assert y_psnr(pred, ref, scale=2) == float("inf")
    assert math.isfinite(y_psnr(pred, ref, scale=2, quantize=False))


def test_y_ssim():
    ref = RNG.integers(0, 256, (3, 32, 32)) / 255.0
    assert y_ssim(ref, ref, scale=2) == pytest.approx(1.0)
    pred = np.clip(ref + 0.05 * RNG.standard_normal(ref.shape), 0, 1)
    yp = rgb_to_y(np.round(pred * 255) / 255)[2:-2, 2:-2]
    yr = rgb_to_y(ref)[2:-2, 2:-2]
    expected = structural_similarity(
        yp, yr, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert y_ssim(pred, ref, scale=2) == pytest.approx(expected, abs=1e-12)


def test_sam():
    ref = np.zeros((2, 1, 3))
    ref[0] = 1.0
    pred = np.zeros((2, 1, 3))
    pred[1] = 1.0
    assert sam(pred, ref) == pytest.approx(90.0)
    ref = RNG.random((4, 5, 5)) + 0.1
    assert sam(3.0 * ref, ref) == pytest.approx(0.0, abs=1e-6)
    # 45 degrees in one pixel, 0 in another, a zero-norm pixel excluded
    ref = np.array([[[1.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]])
    pred = np.array([[[1.0, 2.0, 1.0]], [[1.0, 0.0, 1.0]]])
    assert sam(pred, ref) == pytest.approx(22.5)
    assert sam(pred, ref, mask=np.array([[True, False, True]])) == pytest.approx(45.0)
    with pytest.raises(ValueError):
        sam(pred[:1], ref[:1])


def test_ergas_hand_computed():
    ref = np.array([[[2.0, 2.0], [2.0, 2.0]], [[1.0, 3.0], [1.0, 3.0]]])
    pred = np.array([[[3.0, 3.0], [3.0, 3.0]], [[1.0, 3.0], [1.0, 5.0]]])
    # band 1: RMSE 1, mean 2; band 2: RMSE sqrt(4/4) = 1, mean 2 -> 100/4 * sqrt(0.25) = 12.5
    assert ergas(pred, ref, scale=4) == pytest.approx(12.5)
    assert ergas(ref, ref, scale=4) == 0.0
    mask = np.array([[True, True], [True, False]])
    assert ergas(pred, ref, scale=2, mask=mask) == pytest.approx(50 * math.sqrt(0.125))
    with pytest.raises(ValueError, match="zero mean"):
        ergas(pred, ref - ref.mean(axis=(1, 2), keepdims=True), scale=4)
