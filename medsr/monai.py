"""MONAI transforms that run ``medsr enhance`` inside a MONAI pipeline.

``SuperResolved(keys=..., model=None, **options)`` is a ``MapTransform``; ``SuperResolve``
is its array version. Each takes a channel-first ``MetaTensor`` ``(C, X, Y, Z)`` with its
``affine`` (what ``LoadImaged`` + ``EnsureChannelFirstd`` give) and returns a new
``MetaTensor``: every channel enhanced exactly as ``medsr enhance`` would
(:func:`medsr.channels.enhance_channels`), the affine updated by the edges-kept rule, the
``spatial_shape`` set to the new grid and the provenance of each channel under
``meta["srkit_provenance"]`` (JSON text, so batches still collate).

MONAI is a core dependency, so this module imports without an extra::

    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
    from srkit.medsr.monai import SuperResolved

    pipeline = Compose([LoadImaged("image"), EnsureChannelFirstd("image"),
                        SuperResolved("image", device="cpu")])
    sample = pipeline({"image": "scan.nii.gz"})

The transform is not invertible. Header fields MONAI copied from the file (``pixdim``,
``dim``, ``srow_*``) describe the input; the ``affine`` is the truth for the output.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from .channels import check_options, enhance_channels
from .errors import MedsrError

__all__ = ["SuperResolve", "SuperResolved"]

PROVENANCE_KEY = "srkit_provenance"


class SuperResolve(Transform):
    """Super-resolves one channel-first ``MetaTensor`` as ``medsr enhance`` does.

    Args:
        model: model spec (shipped name, weights path, ``bspline``...) or an ``SRModule``;
            ``None`` picks the default for the modality and plan, as the CLI does.
        options: ``scale``, ``axis``, ``target_spacing`` and the keyword options of
            :func:`medsr.enhance.enhance_volume` (``modality``, ``device``, ``tile``,
            ``batch_size``, ``progress``); an unknown name is a ``MedsrError`` at
            construction.
    """

    def __init__(self, model: Any = None, **options: Any) -> None:
        self.model = model
        self.options = check_options(options, type(self).__name__)

    def __call__(self, img: Any, name: str = "image") -> MetaTensor:
        """The enhanced ``MetaTensor`` (float32, on the input's device).

        Raises:
            MedsrError: input without an affine (a plain tensor or array), not
                ``(C, X, Y, Z)``, or anything ``medsr enhance`` refuses.
        """
        if not isinstance(img, MetaTensor):
            raise MedsrError(
                f"{name}: a MetaTensor with an affine is needed, got {type(img).__name__}"
                " (load it with LoadImaged and EnsureChannelFirstd)"
            )
        data = img.detach().cpu().numpy()
        result = enhance_channels(
            data, img.affine.detach().cpu().numpy(), model=self.model, name=name, **self.options
        )
        meta = {k: copy.deepcopy(v) for k, v in img.meta.items() if k != "affine"}
        meta["spatial_shape"] = np.asarray(result.data.shape[1:], dtype=np.int64)
        meta[PROVENANCE_KEY] = json.dumps(result.provenance)
        affine = torch.as_tensor(result.affine, dtype=torch.float64)
        out = MetaTensor(torch.from_numpy(result.data), affine=affine, meta=meta)
        return out.to(img.device)


class SuperResolved(MapTransform):
    """Dictionary version of :class:`SuperResolve`: enhances the images under ``keys``.

    Args:
        keys: the keys of the images to enhance.
        model: as for :class:`SuperResolve`.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
        options: as for :class:`SuperResolve`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        model: Any = None,
        allow_missing_keys: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = SuperResolve(model=model, **options)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """A copy of ``data`` with each key's image enhanced."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], name=str(key))
        return d
