"""Exact tiled inference on MONAI's ``sliding_window_inference``.

MONAI cuts the input into windows, batches them and stitches the upscaled outputs. Its
blending alone is not seam-free, because a window's border pixels see zero padding where
the whole image has real neighbours. Here every window carries a *halo* of at least the
model's receptive radius on each interior side, and its prediction is weighted by a map
that is 1 on the window's core and 0 on the halo (the halo is kept where it touches the
image border, where the whole-image run sees the same padding). The predictor returns
``(weight * prediction, weight)``; MONAI accumulates both with the same constant
importance, and their ratio is exactly the whole-image output, up to float rounding.

Memory is bounded by ``tile`` and ``batch_size`` on the compute device; the stitched
output (and two single-channel accumulators) live on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from ..models.architectures import SRModule
from ..models.layers import expand_per_axis
from ..models.registry import load_model

DEFAULT_TILE = {2: 256, 3: 64}
DEFAULT_BATCH = 4


class TilingError(ValueError):
    """Tile, halo or scale settings that cannot work; the message says which and why."""


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _halo_weight(
    window: Sequence[slice], image_size: Sequence[int], roi: Sequence[int], halo, scale
):
    """Per-window output weight: 1 on the core, 0 on interior-side halos."""
    weight = None
    for sl, size, r, h, s in zip(window, image_size, roi, halo, scale):
        lo = h if sl.start > 0 else 0
        hi = r - (h if sl.stop < size else 0)
        axis = torch.zeros(r * s)
        axis[lo * s : hi * s] = 1.0
        weight = axis if weight is None else weight[..., None] * axis
    return weight


class _HaloPredictor:
    """Runs the network on a batch of windows and returns ``(weight * out, weight)``."""

    def __init__(self, model, image_size, roi, halo, scale, device, use_bf16):
        self.model, self.image_size, self.roi = model, image_size, roi
        self.halo, self.scale, self.device, self.use_bf16 = halo, scale, device, use_bf16
        self.fallbacks = 0

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.use_bf16:
            return self.model(x).float()
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
            out = self.model(x).float()
        if not torch.isfinite(out).all() and torch.isfinite(x).all():
            self.fallbacks += 1  # bf16 overflowed: redo this batch in float32
            out = self.model(x).float()
        return out

    def __call__(self, windows: torch.Tensor, coords: list[list[slice]]):
        out = self._forward(windows)
        weights = torch.stack(
            [_halo_weight(c[2:], self.image_size, self.roi, self.halo, self.scale) for c in coords]
        )[:, None].to(out.device)
        return out * weights, weights


def _prepare_model(model: SRModule, scale, dims: int) -> SRModule:
    if model.flexible_scale:
        if scale is None:
            scale = model.scale if model.dims == dims else model.scale[0]
        wanted = expand_per_axis(scale, dims, "scale")
        if wanted != model.scale or model.dims != dims:
            model = model.with_scale(wanted, dims=dims)
        return model
    if model.dims != dims:
        raise TilingError(f"model is {model.dims}D but the array has {dims} spatial axes")
    if scale is not None and expand_per_axis(scale, dims, "scale") != model.scale:
        raise TilingError(f"model is trained for scale {model.scale}, not {scale}")
    return model


def _run(model, tensor, scale, roi, halo, batch, device, progress):
    image_size = tensor.shape[2:]
    overlap = [
        0.0 if r >= n else 2 * h / r for r, n, h in zip(roi, image_size, halo)
    ]  # the scan interval int(r*(1-overlap)) <= r - 2h, so window cores tile the image
    predictor = _HaloPredictor(model, image_size, roi, halo, scale, device, device.type == "cuda")
    model_on_device = model if _device_of(model) == device else copy.deepcopy(model).to(device)
    predictor.model = model_on_device
    with torch.inference_mode():
        weighted, weights = sliding_window_inference(
            tensor,
            roi_size=list(roi),
            sw_batch_size=batch,
            predictor=predictor,
            overlap=overlap,
            mode="constant",
            sw_device=device,
            device=torch.device("cpu"),
            progress=progress,
            with_coord=True,
        )
    if predictor.fallbacks:
        warnings.warn(
            f"bf16 gave non-finite values in {predictor.fallbacks} batch(es); redone in float32",
            stacklevel=3,
        )
    if not bool((weights > 0).all()):
        raise RuntimeError(
            "internal tiling error: some output pixels were covered by no window core"
        )
    return weighted / weights


def _device_of(model: torch.nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def upscale(
    model: SRModule | str | os.PathLike,
    array: np.ndarray | torch.Tensor,
    *,
    scale: int | Sequence[int] | None = None,
    tile: int | Sequence[int] | None = None,
    overlap: int | Sequence[int] | None = None,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> np.ndarray | torch.Tensor:
    """Super-resolves one image or volume with seam-free tiled inference.

    Args:
        model: a model from ``load_model``, or anything ``load_model`` accepts (a shipped
            name, a weights path, or ``"bicubic"``/``"bspline"``/``"lanczos"``/``"nearest"``).
        array: float ``(C, H, W)`` or ``(C, D, H, W)`` in the model's normalized range
            (see its card's ``input_range``). Integer arrays are refused: normalize first.
        scale: factor per spatial axis (int or sequence). Defaults to the model's scale; a
            trained model refuses another scale, an interpolation baseline takes any
            (default 2).
        tile: window size in input pixels per axis, halo included (default 256 in 2D,
            64 in 3D, or the card's ``tile_hint``); clipped to the image size. It must
            exceed twice the halo on axes where the image is larger than the tile.
        overlap: halo in input pixels added on each interior side of a window. Defaults to
            the model's receptive radius, the smallest value that keeps the result exact;
            smaller values are refused.
        device: compute device; default CUDA when available, else CPU. On CUDA the model
            runs under bf16 autocast, and a batch with non-finite output is redone in
            float32. Out of memory halves the batch, then the tile, then falls back to
            the CPU, each time with a warning.
        batch_size: windows per forward pass (default 4).
        progress: show a tqdm bar over windows.

    Returns:
        float32 array (or tensor, if a tensor was given) with each spatial axis multiplied
        by its scale. The result equals the untiled model output within float rounding
        (about 1e-6 for data in [0, 1]).
    """
    model = load_model(model)
    as_tensor = isinstance(array, torch.Tensor)
    tensor = array.detach().cpu() if as_tensor else torch.from_numpy(np.ascontiguousarray(array))
    if not tensor.is_floating_point():
        raise TypeError(
            f"upscale needs a float array in the model's normalized range, got {tensor.dtype}"
        )
    if tensor.ndim not in (3, 4):
        raise ValueError(f"expected (C, H, W) or (C, D, H, W), got shape {tuple(tensor.shape)}")
    tensor = tensor.float()[None]
    dims = tensor.ndim - 2
    model = _prepare_model(model, scale, dims)
    if model.channels and tensor.shape[1] != model.channels:
        raise ValueError(
            f"model expects {model.channels} channel(s), the array has {tensor.shape[1]}"
        )

    radius = model.receptive_radius
    halo = radius if overlap is None else expand_per_axis(overlap, dims, "overlap")
    if any(h < r for h, r in zip(halo, radius)):
        raise TilingError(
            f"overlap {halo} is below the model's receptive radius {radius}; tiles would show seams"
        )
    card_hint = getattr(model.card, "tile_hint", 0) if model.card is not None else 0
    if tile is None:
        tile = card_hint or DEFAULT_TILE[dims]
    tile_size = expand_per_axis(tile, dims, "tile")
    if any(t < 1 for t in tile_size):
        raise TilingError(f"tile must be >= 1, got {tile_size}")
    image_size = tuple(tensor.shape[2:])
    batch = DEFAULT_BATCH if batch_size is None else batch_size
    if batch < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch}")
    run_device = choose_device(device)

    was_training = model.training
    model.eval()
    try:
        while True:
            roi = tuple(min(t, n) for t, n in zip(tile_size, image_size))
            for r, n, h in zip(roi, image_size, halo):
                if r < n and r <= 2 * h:
                    raise TilingError(
                        f"tile {tile_size} is too small for halo {halo}: each tiled axis needs tile > 2*halo"
                    )
            try:
                out = _run(model, tensor, model.scale, roi, halo, batch, run_device, progress)
                break
            except torch.OutOfMemoryError:
                if run_device.type == "cuda":
                    torch.cuda.empty_cache()
                if batch > 1:
                    batch //= 2
                    warnings.warn(f"out of memory: retrying with batch_size={batch}", stacklevel=2)
                elif any(r > 2 * h + 1 for r, h in zip(roi, halo)):
                    tile_size = tuple(max(2 * h + 1, r // 2) for r, h in zip(roi, halo))
                    warnings.warn(f"out of memory: retrying with tile={tile_size}", stacklevel=2)
                elif run_device.type != "cpu":
                    run_device = torch.device("cpu")
                    warnings.warn("out of memory on the GPU: falling back to the CPU", stacklevel=2)
                else:
                    raise
    finally:
        model.train(was_training)
    out = out[0]
    return out if as_tensor else out.numpy()


@contextlib.contextmanager
def _no_grad_eval(model: torch.nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        model.train(was_training)


def predict_whole(model: SRModule, array: np.ndarray) -> np.ndarray:
    """Runs the model on the whole array at once on the CPU (the untiled reference)."""
    with _no_grad_eval(model):
        return model(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None])[
            0
        ].numpy()
