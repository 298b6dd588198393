from __future__ import annotations

import numpy as np
from srkit.geosr.masks import fill_invalid, upsample_nearest


def test_fill_keeps_valid_and_reaches_passes():
    data = np.zeros((1, 9, 9), dtype=np.float32)
    data[0, :, :3] = 5.0
    valid = np.zeros_like(data, dtype=bool)
    valid[0, :, :3] = True
    out = fill_invalid(data, valid, passes=2, constant=-1.0)
    np.testing.assert_array_equal(out[0, :, :5], 5.0)  # two rings grown from the valid side
    np.testing.assert_array_equal(out[0, :, 5:], -1.0)  # beyond reach: the constant


def test_fill_is_window_independent():
    """A window's fill equals the whole-array fill wherever the window sees 'passes' pixels."""
    rng = np.random.default_rng(0)
    data = rng.random((2, 60, 50)).astype(np.float32)
    valid = rng.random((2, 60, 50)) > 0.6
    valid[:, 20:40, 10:30] = False
    passes = 3
    whole = fill_invalid(data, valid, passes)
    for r0, c0, r1, c1 in [(5, 7, 41, 33), (17, 0, 60, 25), (0, 22, 30, 50)]:
        part = fill_invalid(data[:, r0:r1, c0:c1], valid[:, r0:r1, c0:c1], passes)
        inner = (
            slice(None),
            slice(passes if r0 else 0, (r1 - r0) - (passes if r1 < 60 else 0)),
            slice(passes if c0 else 0, (c1 - c0) - (passes if c1 < 50 else 0)),
        )
        np.testing.assert_array_equal(part[inner], whole[:, r0:r1, c0:c1][inner])


def test_upsample_nearest():
    m = np.array([[1, 0], [0, 1]], dtype=bool)
    np.testing.assert_array_equal(
        upsample_nearest(m, 2), [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    )
