"""``common.upscale`` on hostile arrays: NaN/Inf, odd scales, devices, sizes, broken models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from srkit.common.inference import TilingError, choose_device, upscale
from srkit.common.inference.invalid import parent_mask
from srkit.common.models import build_model
from srkit.common.resources import ResourceError, check_memory

from tests.common.tiny import TINY


def _image_with_hole(value=np.nan):
    rng = np.random.default_rng(0)
    image = rng.random((1, 64, 64)).astype(np.float32)
    image[0, 20:30, 30:40] = value
    return image


@pytest.mark.parametrize("model", ["bicubic", "rs_edsr_x2"])
def test_mask_keeps_invalid_at_its_footprint_and_nowhere_else(model):
    image = _image_with_hole()
    out = upscale(model, image, scale=2)
    expected = np.zeros((1, 128, 128), bool)
    expected[0, 40:60, 60:80] = True
    assert np.array_equal(np.isnan(out), expected)
    spread = upscale(model, image, scale=2, nan_policy="propagate")
    assert np.isnan(spread).sum() > expected.sum()  # what the API did before
    with pytest.raises(TilingError, match=r"100 non-finite value\(s\)"):
        upscale(model, image, scale=2, nan_policy="raise")


def test_infinite_values_are_invalid_too():
    out = upscale("bicubic", _image_with_hole(np.inf), scale=2)
    assert int(np.isnan(out).sum()) == 400 and int(np.isinf(out).sum()) == 0


def test_mask_is_per_channel_and_valid_values_match_a_clean_run():
    rng = np.random.default_rng(1)
    clean = rng.random((2, 40, 40)).astype(np.float32)
    holed = clean.copy()
    holed[1, 5:8, 5:8] = np.nan
    out = upscale("bicubic", holed, scale=2)
    assert not np.isnan(out[0]).any() and int(np.isnan(out[1]).sum()) == 36
    np.testing.assert_array_equal(out[0], upscale("bicubic", clean, scale=2)[0])
    far = np.ones((80, 80), bool)
    far[:30, :30] = False  # away from the hole's receptive field
    np.testing.assert_allclose(out[1][far], upscale("bicubic", clean, scale=2)[1][far], atol=1e-6)


def test_parent_mask_non_integer_ratio():
    mask = np.array([False, True, False])
    assert parent_mask(mask, (7,)).tolist() == [False, False, True, True, True, False, False]


@pytest.mark.parametrize(
    "scale, message",
    [(2.5, "whole number"), (0, "whole number"), (float("nan"), "whole number"), ("2", "whole")],
)
def test_bad_scales_are_clear_errors(scale, message):
    with pytest.raises(TilingError, match=message):
        upscale("bicubic", np.zeros((1, 8, 8), np.float32), scale=scale)


def test_device_errors_are_one_line():
    with pytest.raises(TilingError, match=r"^--device foo: not a torch device \(use cpu"):
        choose_device("foo")
    if not torch.cuda.is_available():
        with pytest.raises(TilingError, match="CUDA is not available"):
            choose_device("cuda:0")
    assert choose_device("cpu") == torch.device("cpu")


def test_an_output_larger_than_memory_is_refused_before_any_work(monkeypatch):
    monkeypatch.setenv("SRKIT_MEMORY_LIMIT", "1M")
    with pytest.raises(
        ResourceError,
        match=r"upscale: the output needs 1\.2 MB \(1x512x512 values\), more than the 1\.0 MB",
    ):
        upscale("bicubic", np.zeros((1, 256, 256), np.float32), scale=2)
    monkeypatch.setenv("SRKIT_MEMORY_LIMIT", "64G")
    with pytest.raises(ResourceError, match=r"the output needs 1\.9 TB \(1x640000x640000 values\)"):
        upscale("bicubic", np.zeros((1, 64, 64), np.float32), scale=10**4)
    monkeypatch.setenv("SRKIT_MEMORY_LIMIT", "lots")
    with pytest.raises(ResourceError, match="not a size"):
        check_memory("x", (10,), "y")


def test_a_model_that_gives_non_finite_output_is_refused():
    model = build_model("srcnn", scale=2, **TINY["srcnn"])
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(TilingError, match="non-finite output value"):
        upscale(model, np.zeros((1, 16, 16), np.float32))


def test_complex_arrays_are_refused():
    with pytest.raises(TilingError, match="complex-valued"):
        upscale("bicubic", np.zeros((1, 8, 8), np.complex64))
