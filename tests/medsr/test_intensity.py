"""Normalization round trips, CT window, NaN/negative handling, modality detection."""

from __future__ import annotations

import numpy as np
from srkit.medsr.intensity import (
    ct_normalization,
    detect_modality,
    mri_normalization,
    normalization_for,
)


def test_mri_percentiles_in_foreground_and_exact_inverse():
    rng = np.random.default_rng(0)
    values = np.zeros((20, 20, 20), np.float32)
    values[5:15, 5:15, 5:15] = rng.uniform(100, 1100, (10, 10, 10))
    norm = mri_normalization(values)
    fg = values[values != 0].astype(np.float64)
    assert norm.low == np.percentile(fg, 0.5)
    assert norm.high == np.percentile(fg, 99.5)
    y = norm.forward(values)
    assert abs(np.percentile(y[values != 0], 0.5)) < 1e-6
    assert abs(np.percentile(y[values != 0], 99.5) - 1) < 1e-6
    np.testing.assert_allclose(norm.inverse(y), values, atol=1e-4)


def test_ct_window_exact_values_and_inverse():
    norm = ct_normalization()
    hu = np.array([-1024.0, 3071.0, 0.0, -2000.0, 4000.0], np.float32)
    y = norm.forward(hu)
    np.testing.assert_allclose(y[:3], [0.0, 1.0, 1024 / 4095], atol=1e-7)
    assert y[3] < 0 and y[4] > 1  # not clipped: values outside the window pass through
    np.testing.assert_allclose(norm.inverse(y), hu, atol=1e-3)


def test_nan_and_negative_values():
    values = np.array([[[np.nan, -50.0, 10.0, 200.0]]], np.float32)
    norm = mri_normalization(values)
    y = norm.forward(values)
    assert np.isfinite(y).all() and y[0, 0, 0] == 0.0
    back = norm.inverse(y)
    np.testing.assert_allclose(back[0, 0, 1:], values[0, 0, 1:], atol=1e-4)
    assert back[0, 0, 1] < 0  # negative kept, not clipped


def test_constant_volume_is_invertible():
    norm = mri_normalization(np.full((4, 4, 4), 7.0))
    assert (norm.low, norm.high) == (7.0, 8.0)
    assert norm.inverse(norm.forward(np.full(3, 7.0))).tolist() == [7.0, 7.0, 7.0]


def test_detect_modality():
    ct = np.full((8, 8, 8), -1000.0)
    ct[2:6, 2:6, 2:6] = 40
    assert detect_modality(ct) == "ct"
    assert detect_modality(np.abs(ct)) == "mri"
    assert detect_modality(np.abs(ct), "ct") == "ct"
    assert detect_modality(ct, "mri") == "mri"
    assert normalization_for(ct, "ct").low == -1024.0
