"""Edges-kept geometry with exact numbers on oblique affines."""

from __future__ import annotations

import numpy as np
import pytest
from srkit.medsr.geometry import (
    downsampled_affine,
    fov_corners,
    parse_axis,
    thick_axis,
    upsampled_affine,
    voxel_sizes,
)

from tests.data.nifti import oblique_affine


def test_upsampled_affine_exact_numbers_axis_aligned():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]
    new = upsampled_affine(affine, (1, 2, 4))
    # voxel sizes old/s; first centre moves by -(s-1)/(2s) old voxels
    expected = np.array(
        [
            [2.0, 0, 0, 10.0],
            [0, 1.5, 0, 20.0 - 3.0 * 1 / 4],
            [0, 0, 1.0, 30.0 - 4.0 * 3 / 8],
            [0, 0, 0, 1],
        ]
    )
    np.testing.assert_array_equal(new, expected)


@pytest.mark.parametrize("scale", [(1, 1, 4), (2, 2, 1), (3, 2, 5), (2.5, 1, 1.6)])
def test_fov_corners_identical_before_and_after_on_oblique_affine(scale):
    affine = oblique_affine((0.9, 1.1, 3.0))
    shape = (16, 12, 8)
    new_shape = tuple(round(n * s) for n, s in zip(shape, scale))
    s = np.array(new_shape) / np.array(shape)  # the realised factor (13 / 8 for 1.6)
    new = upsampled_affine(affine, s)
    np.testing.assert_allclose(fov_corners(new, new_shape), fov_corners(affine, shape), atol=1e-12)
    np.testing.assert_allclose(voxel_sizes(new), voxel_sizes(affine) / s, rtol=1e-12)
    # first voxel centre moved by -(s-1)/(2s) old voxels along each axis
    step = -(s - 1) / (2 * s)
    np.testing.assert_allclose(new[:3, 3], affine[:3, :3] @ step + affine[:3, 3], atol=1e-12)


def test_fov_corner_values_exact():
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    corners = fov_corners(affine, (3, 4, 2))
    assert corners.min(axis=0).tolist() == [-1.0, -1.0, -2.5]
    assert corners.max(axis=0).tolist() == [5.0, 7.0, 7.5]
    up = fov_corners(upsampled_affine(affine, (1, 1, 5)), (3, 4, 10))
    assert up.min(axis=0).tolist() == [-1.0, -1.0, -2.5]
    assert up.max(axis=0).tolist() == [5.0, 7.0, 7.5]


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsampled_is_exact_inverse(factor):
    affine = oblique_affine((1.0, 1.0, 1.0))
    low = downsampled_affine(affine, (1, 1, factor))
    np.testing.assert_allclose(upsampled_affine(low, (1, 1, factor)), affine, atol=1e-12)
    # LR slice k centre = HR index k f + (f - 1) / 2
    k = 3
    hr_index = k * factor + (factor - 1) / 2
    np.testing.assert_allclose(low @ [0, 0, k, 1], affine @ [0, 0, hr_index, 1], atol=1e-12)


def test_thick_axis_detection_and_threshold():
    assert thick_axis(oblique_affine((1.0, 1.0, 2.0))) == 2
    assert thick_axis(oblique_affine((3.0, 0.9, 0.9))) == 0
    assert thick_axis(oblique_affine((1.0, 1.49, 1.0))) is None
    assert thick_axis(oblique_affine((1.0, 1.5, 1.0))) == 1


def test_parse_axis():
    assert [parse_axis(a) for a in ("x", "Y", "z", "0", 2)] == [0, 1, 2, 0, 2]
    with pytest.raises(ValueError, match="axis must be"):
        parse_axis("w")
    with pytest.raises(ValueError, match="> 0"):
        upsampled_affine(np.eye(4), (1, 0, 1))
