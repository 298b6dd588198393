"""srkit.medsr.monai: the MONAI transforms run ``medsr enhance`` and keep the geometry exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("monai", reason="MONAI is absent (a core dependency: pip install srkit)")

from monai.data import MetaTensor  # noqa: E402
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged  # noqa: E402
from srkit.medsr.errors import MedsrError  # noqa: E402
from srkit.medsr.geometry import upsampled_affine  # noqa: E402
from srkit.medsr.monai import SuperResolve, SuperResolved  # noqa: E402


def span(values: np.ndarray) -> float:
    return float(np.nanmax(values) - np.nanmin(values))


def test_compose_equals_medsr_enhance(aniso_nifti, medsr_output):
    result, written = medsr_output
    pipeline = Compose(
        [LoadImaged("image"), EnsureChannelFirstd("image"), SuperResolved("image", device="cpu")]
    )
    out = pipeline({"image": str(aniso_nifti)})["image"]
    assert isinstance(out, MetaTensor)
    assert tuple(out.shape) == (1, 16, 16, 24)
    # the affine is medsr enhance's, exactly, and that is the edges-kept rule along z
    affine = out.affine.numpy()
    assert np.array_equal(affine, result.volume.affine)
    loaded = LoadImaged("image")({"image": str(aniso_nifti)})["image"].affine.numpy()
    assert np.array_equal(affine, upsampled_affine(loaded, (1, 1, 3)))
    assert not np.array_equal(affine, loaded)
    assert list(out.meta["spatial_shape"]) == [16, 16, 24]
    # the voxels are medsr enhance's, in memory and as written
    expected = result.volume.data
    tolerance = 1e-4 * span(expected)
    assert np.abs(out[0].numpy() - expected).max() <= tolerance
    on_disk = LoadImaged("image", image_only=True)({"image": str(written)})["image"].numpy()
    assert np.abs(out[0].numpy() - on_disk).max() <= tolerance
    provenance = json.loads(out.meta["srkit_provenance"])
    assert provenance[0]["model"]["name"] == result.provenance["model"]["name"]
    assert provenance[0]["scale"] == [1, 1, 3]


def test_channels_are_enhanced_alone_with_one_affine(aniso_nifti):
    loaded = Compose([LoadImaged("image"), EnsureChannelFirstd("image")])(
        {"image": str(aniso_nifti)}
    )["image"]
    meta = {k: v for k, v in loaded.meta.items() if k != "affine"}
    two = MetaTensor(torch.cat([loaded, 2 * loaded + 5]), affine=loaded.affine, meta=meta)
    out = SuperResolve(model="bspline", scale="1,1,2", device="cpu")(two)
    assert tuple(out.shape) == (2, 16, 16, 16)
    assert np.array_equal(out.affine.numpy(), upsampled_affine(loaded.affine.numpy(), (1, 1, 2)))
    # B-spline is linear: channel 1 is 2 * channel 0 + 5 up to rounding
    first, second = out[0].numpy(), out[1].numpy()
    assert np.abs(second - (2 * first + 5)).max() <= 1e-4 * span(second)


def test_refusals_name_the_key_and_the_option():
    with pytest.raises(MedsrError, match=r"unknown option 'scal' \(did you mean 'scale'\?\)"):
        SuperResolved("image", scal=2)
    with pytest.raises(MedsrError, match="image: a MetaTensor with an affine is needed"):
        SuperResolved("image")({"image": torch.zeros(1, 4, 4, 4)})
    flat = MetaTensor(torch.zeros(4, 4, 4), affine=torch.eye(4, dtype=torch.float64))
    with pytest.raises(MedsrError, match=r"scan: expected channel-first \(C, X, Y, Z\)"):
        SuperResolved("scan")({"scan": flat})
