"""Exact tiled inference on MONAI's ``sliding_window_inference``.

MONAI cuts the input into windows, batches them and moves them to the compute device.
Its blending alone is not seam-free, because a window's border pixels see zero padding
where the whole image has real neighbours. Here every window carries a *halo* of at least
the model's receptive radius on each interior side (none where it touches the image
border, where the whole-image run sees the same padding), so its *core* equals the
whole-image output. The cores of neighbouring windows overlap; each output pixel is
*owned* by exactly one window and copied from it, so no blending arithmetic touches the
result: it equals the untiled output up to the convolution's own rounding.

Memory is bounded by ``tile`` and ``batch_size`` on the compute device; the output lives
on the CPU, plus an input-sized single-channel buffer of MONAI's.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers import sliding_window_inference

from ..errors import SRKitError
from ..models.architectures import ScaleError, SRModule
from ..models.card import DEFAULT_TILE_HINT
from ..models.layers import expand_per_axis
from ..models.registry import load_model
from ..resources import check_memory
from .invalid import NAN_POLICIES, fill_channels, mask_channels

DEFAULT_TILE = DEFAULT_TILE_HINT
DEFAULT_BATCH = 4
# Channels-last tensors take oneDNN's faster CPU path (about 1.5x for the shipped EDSRs),
# but its arithmetic then depends on the window shape (~1e-6 relative), so tiled output is no
# longer bit-identical to untiled output. Off by default; SRKIT_CHANNELS_LAST=1 turns it on.
CPU_CHANNELS_LAST = os.environ.get("SRKIT_CHANNELS_LAST", "0") == "1"


class TilingError(SRKitError):
    """Tile, halo or scale settings that cannot work; the message says which and why."""


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, else CUDA when available, else the CPU.

    Raises:
        TilingError: ``device`` is not a device name, or names a backend this machine
            lacks (``cuda`` without a GPU).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise TilingError(
            f"--device {device}: not a torch device (use cpu, cuda, cuda:N or mps)"
        ) from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise TilingError(f"--device {device}: CUDA is not available on this machine")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise TilingError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise TilingError(f"--device {device}: MPS is not available on this machine")
    elif chosen.type not in ("cpu", "cuda", "mps"):
        raise TilingError(f"--device {device}: not supported (use cpu, cuda, cuda:N or mps)")
    return chosen


def check_scale(scale, dims: int) -> tuple[int, ...] | None:
    """``scale`` as a ``dims``-tuple of whole factors >= 1 (None stays None)."""
    if scale is None:
        return None
    values = scale if isinstance(scale, Sequence) and not isinstance(scale, str) else (scale,)
    factors = []
    for value in values:
        number = float(value) if isinstance(value, (int, float, np.number)) else None
        if number is None or not np.isfinite(number) or number != int(number) or number < 1:
            raise TilingError(f"scale must be a whole number >= 1 (or one per axis), got {scale!r}")
        factors.append(int(number))
    if len(factors) not in (1, dims):
        raise TilingError(f"scale needs 1 or {dims} factors, got {scale!r}")
    return tuple(factors) * (dims if len(factors) == 1 else 1)


def _owned_ranges(image_size, roi, interval, halo) -> list[dict[int, tuple[int, int]]]:
    """Per axis: window start -> the input range ``[lo, hi)`` that window alone writes.

    Windows start where MONAI's ``dense_patch_slices`` puts them. The boundary between
    consecutive windows is where the later one's core begins (``start + halo``), which lies
    inside both cores because starts are at most ``tile - 2 * halo`` apart. So the owned
    ranges partition each axis, and every output pixel comes from one window's core.
    """
    windows = dense_patch_slices(image_size, roi, interval)
    owned = []
    for axis, (size, h) in enumerate(zip(image_size, halo)):
        starts = sorted({w[axis].start for w in windows})
        bounds = [0, *(start + h for start in starts[1:]), size]
        owned.append({start: (bounds[i], bounds[i + 1]) for i, start in enumerate(starts)})
    return owned


class _OwnedCopyPredictor:
    """Runs the network on a batch of windows and copies each window's owned core into the
    output; MONAI only gets a small dummy to stitch, so no arithmetic touches the result."""

    def __init__(self, model, out, owned, scale, device, use_bf16, memory_format=None):
        self.model, self.out, self.owned = model, out, owned
        self.scale, self.device, self.use_bf16 = scale, device, use_bf16
        self.memory_format = memory_format
        self.fallbacks = 0

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        if not self.use_bf16:
            return self.model(x).float()
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
            out = self.model(x).float()
        if not torch.isfinite(out).all() and torch.isfinite(x).all():
            self.fallbacks += 1  # bf16 overflowed: redo this batch in float32
            out = self.model(x).float()
        return out

    def __call__(self, windows: torch.Tensor, coords: list[list[slice]]) -> torch.Tensor:
        pred = self._forward(windows).to(self.out.device)
        for index, coord in enumerate(coords):
            dst, src = [slice(None)], [slice(None)]
            for axis, (window, s) in enumerate(zip(coord[2:], self.scale)):
                try:
                    lo, hi = self.owned[axis][window.start]
                except KeyError:
                    raise RuntimeError(
                        "internal tiling error: unexpected window position"
                    ) from None
                dst.append(slice(lo * s, hi * s))
                src.append(slice((lo - window.start) * s, (hi - window.start) * s))
            self.out[0][tuple(dst)] = pred[index][tuple(src)]
        return torch.zeros((windows.shape[0], 1, *windows.shape[2:]), device=windows.device)


def _prepare_model(model: SRModule, scale, dims: int) -> SRModule:
    try:
        return model.at_scale(scale, dims)
    except ScaleError as exc:
        raise TilingError(str(exc)) from None


def _run(model, tensor, scale, roi, halo, batch, device, progress):
    image_size = tuple(tensor.shape[2:])
    # window cores (tile minus a halo on interior sides) must overlap or touch
    overlap = [0.0 if r >= n else 2 * h / r for r, n, h in zip(roi, image_size, halo)]
    interval = [
        r if r == n else max(int(r * (1 - o)), 1) for r, n, o in zip(roi, image_size, overlap)
    ]
    out = torch.empty((1, tensor.shape[1], *(n * s for n, s in zip(image_size, scale))))
    owned = _owned_ranges(image_size, roi, interval, halo)
    # optional channels-last fast path on CPUs (see CPU_CHANNELS_LAST)
    # (a plane-wise 2D model in a 3D run converts its planes itself)
    model_format = window_format = None
    ranks = {p.ndim for p in model.parameters()} & {4, 5}
    if device.type == "cpu" and len(ranks) == 1 and CPU_CHANNELS_LAST:
        rank = ranks.pop()
        model_format = torch.channels_last if rank == 4 else torch.channels_last_3d
        window_format = model_format if rank == tensor.ndim else None
    if _device_of(model) == device and model_format is None:
        model_on_device = model
    else:
        model_on_device = copy.deepcopy(model).to(device)
        if model_format is not None:
            model_on_device = model_on_device.to(memory_format=model_format)
    predictor = _OwnedCopyPredictor(
        model_on_device, out, owned, scale, device, device.type == "cuda", window_format
    )
    with torch.inference_mode():
        sliding_window_inference(
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
    return out


def default_tile(model: SRModule, dims: int) -> int:
    """The window side ``upscale`` uses without ``tile``: the card's hint, else 256 (2D)
    or 64 (3D) input pixels."""
    return model.card.tile_hint or DEFAULT_TILE[dims]


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
    nan_policy: str = "mask",
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
        nan_policy: what non-finite (NaN/Inf) input values do (see
            :mod:`common.inference.invalid`). ``"mask"`` (default, what the CLIs do): they
            are filled from their nearest valid neighbours before the model and set to NaN
            at their upscaled footprint after it, so no valid output value becomes NaN.
            ``"propagate"``: they go through the model as they are (a NaN spreads over the
            receptive field). ``"raise"``: a non-finite input is an error.

    Returns:
        float32 array (or tensor, if a tensor was given) with each spatial axis multiplied
        by its scale. The result equals the untiled model output within 1e-4 for data in
        [0, 1] (about 1e-6 in practice).

    Raises:
        TilingError: bad tile, overlap, scale or device; an output that would not fit in
            memory (checked before any work); a model that gives non-finite values from
            finite input (broken weights).
    """
    if nan_policy not in NAN_POLICIES:
        raise TilingError(
            f"nan_policy must be one of {', '.join(NAN_POLICIES)}, got {nan_policy!r}"
        )
    model = load_model(model)
    as_tensor = isinstance(array, torch.Tensor)
    tensor = array.detach().cpu() if as_tensor else torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex():
        raise TilingError(f"complex-valued arrays are not supported, got {tensor.dtype}")
    if not tensor.is_floating_point():
        raise TypeError(
            f"upscale needs a float array in the model's normalized range, got {tensor.dtype}"
        )
    if tensor.ndim not in (3, 4):
        raise TilingError(f"expected (C, H, W) or (C, D, H, W), got shape {tuple(tensor.shape)}")
    if 0 in tensor.shape:
        raise TilingError(f"the array is empty (shape {tuple(tensor.shape)})")
    tensor = tensor.float()
    dims = tensor.ndim - 1
    scale = check_scale(scale, dims)
    model = _prepare_model(model, scale, dims)
    out_shape = (tensor.shape[0], *(n * s for n, s in zip(tensor.shape[1:], model.scale)))
    check_memory("upscale", out_shape, "the output", copies=1.25)
    missing = None
    finite = bool(torch.isfinite(tensor).all())
    if not finite and nan_policy == "raise":
        count = int((~torch.isfinite(tensor)).sum())
        raise TilingError(f"the array has {count} non-finite value(s) (nan_policy='raise')")
    if not finite and nan_policy == "mask":
        filled, missing = fill_channels(tensor.numpy())
        tensor = torch.from_numpy(np.ascontiguousarray(filled))
    tensor = tensor[None]
    if model.channels and tensor.shape[1] != model.channels:
        raise TilingError(
            f"model expects {model.channels} channel(s), the array has {tensor.shape[1]}"
        )

    radius = model.receptive_radius
    halo = radius if overlap is None else expand_per_axis(overlap, dims, "overlap")
    if any(h < r for h, r in zip(halo, radius)):
        raise TilingError(
            f"overlap {halo} is below the model's receptive radius {radius}; tiles would show seams"
        )
    if tile is None:
        tile = default_tile(model, dims)
    tile_size = expand_per_axis(tile, dims, "tile")
    if any(t < 1 for t in tile_size):
        raise TilingError(f"tile must be >= 1, got {tile_size}")
    image_size = tuple(tensor.shape[2:])
    batch = DEFAULT_BATCH if batch_size is None else batch_size
    if batch < 1:
        raise TilingError(f"batch_size must be >= 1, got {batch}")
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
    if (finite or missing is not None) and not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).sum())
        raise TilingError(
            f"the model gave {bad} non-finite output value(s) from finite input (broken"
            " weights, or input far outside the model's range)"
        )
    if missing is not None:
        out = torch.from_numpy(mask_channels(out.numpy(), missing))
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
