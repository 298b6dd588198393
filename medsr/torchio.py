"""A TorchIO transform that runs ``medsr enhance`` on the ``ScalarImage``s of a subject.

Needs the ``torchio`` extra (``pip install 'srkit[torchio]'``)::

    import torchio as tio
    from srkit.medsr.torchio import SuperResolve

    subject = tio.Subject(t1=tio.ScalarImage("scan.nii.gz"))
    enhanced = SuperResolve(device="cpu")(subject)      # enhanced.t1: the new grid

Each ``ScalarImage`` (``(C, W, H, D)`` data with its RAS affine) goes through exactly the
path of ``medsr enhance`` (:func:`medsr.channels.enhance_channels`): the plan from the
affine's voxel sizes, normalization, the model, the inverse normalization; its affine is
replaced by the edges-kept one and its data by the float32 result.

``LabelMap``s are refused, not passed through: super-resolving intensities while a label
map stays on the old grid would leave a subject whose images no longer share a grid. To
do that knowingly, name the label map in ``exclude=[...]`` (then resample it yourself,
for example with ``tio.Resample("t1")``, which uses nearest neighbour for labels).
"""

from __future__ import annotations

from typing import Any

import torch
import torchio as tio

from .channels import check_options, enhance_channels
from .errors import MedsrError

__all__ = ["SuperResolve"]


class SuperResolve(tio.Transform):
    """Super-resolves every ``ScalarImage`` of a subject as ``medsr enhance`` does.

    Args:
        model: model spec or ``SRModule``; ``None`` picks the default for the modality and
            plan, as the CLI does.
        include, exclude: image names to enhance or to leave out (TorchIO's meaning).
        copy: work on a deep copy of the subject (TorchIO's default, True).
        options: ``scale``, ``axis``, ``target_spacing`` and the keyword options of
            :func:`medsr.enhance.enhance_volume` (``modality``, ``device``, ``tile``,
            ``batch_size``, ``progress``); an unknown name is a ``MedsrError`` at
            construction.

    Raises:
        MedsrError: (when called) a ``LabelMap`` among the selected images, or anything
            ``medsr enhance`` refuses, prefixed with the image's name.
    """

    def __init__(
        self,
        model: Any = None,
        *,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        copy: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(copy=copy, include=include, exclude=exclude)
        self.model = model
        self.options = check_options(options, type(self).__name__)
        self.args_names = ["model", "options"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """The subject with its selected scalar images enhanced in place."""
        images = subject.get_images_dict(
            intensity_only=False, include=self.include, exclude=self.exclude
        )
        for name, image in images.items():
            if image.type != tio.INTENSITY:
                raise MedsrError(
                    f"{name}: a {type(image).__name__} ({image.type}); SuperResolve enhances"
                    f" intensity images only. Pass exclude=[{name!r}] to leave it on the"
                    " old grid, then resample it (tio.Resample uses nearest neighbour for labels)"
                )
        for name, image in images.items():
            result = enhance_channels(
                image.data.numpy(), image.affine, model=self.model, name=name, **self.options
            )
            image.set_data(torch.from_numpy(result.data))
            image.affine = result.affine
        return subject
