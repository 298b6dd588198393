"""Plane-wise application of 2D models to volumes (common.inference.planes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from srkit.common.inference import Planewise, upscale, upscale_planes
from srkit.common.models import build_model

from tests.common.tiny import TINY


@pytest.fixture(scope="module")
def through_plane_model():
    torch.manual_seed(0)
    return build_model(
        "edsr", dims=2, channels=1, scale=(4, 1), upsampler="direct", **TINY["edsr"]
    ).eval()


def _per_plane(model, volume, **kw) -> np.ndarray:
    return np.stack(
        [upscale(model, np.ascontiguousarray(volume[:, k]), **kw) for k in range(volume.shape[1])],
        axis=1,
    )


@pytest.mark.parametrize(("tile", "batch_size"), [(None, None), (16, 1), (12, 3)])
def test_upscale_planes_equals_one_upscale_per_plane(through_plane_model, tile, batch_size):
    volume = np.random.default_rng(1).random((1, 7, 20, 27)).astype(np.float32)
    out = upscale_planes(through_plane_model, volume, tile=tile, batch_size=batch_size)
    assert out.shape == (1, 7, 80, 27) and out.dtype == np.float32
    expected = _per_plane(through_plane_model, volume)
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6)


def test_planes_are_independent_and_the_wrapper_declares_it(through_plane_model):
    wrapped = Planewise(through_plane_model)
    assert wrapped.dims == 3 and wrapped.scale == (1, 4, 1)
    assert wrapped.receptive_radius == (0, *through_plane_model.receptive_radius)
    volume = np.random.default_rng(2).random((1, 5, 9, 11)).astype(np.float32)
    bumped = volume.copy()
    bumped[0, 2, 4, 5] += 1.0
    base, moved = (
        upscale_planes(through_plane_model, volume),
        upscale_planes(through_plane_model, bumped),
    )
    changed = np.abs(moved - base).max(axis=(0, 2, 3)) > 0
    assert changed.tolist() == [False, False, True, False, False]


def test_upscale_planes_refuses_3d_models():
    model = build_model("edsr", dims=3, channels=1, scale=(1, 1, 2), **TINY["edsr"])
    with pytest.raises(ValueError, match="needs a 2D model"):
        upscale_planes(model, np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="wraps a 2D model"):
        Planewise(model)
