"""Exact tiled inference: the shared window plan run through MONAI's ``PatchInferer``.

The windows come from :func:`common.inference.windows.plan_windows`, the planner every
front end uses: each window's *read* carries a halo of at least the model's receptive
radius on each interior side (none where it touches the image border, where the whole
image run sees the same padding), so its *core* equals the whole-image output. Cores
partition the image; each output pixel is copied from the one window that owns it, so no
blending arithmetic touches the result: it equals the untiled output up to the
convolution's own rounding (the promise is 1e-4 for data in [0, 1]).

MONAI's ``PatchInferer`` batches the windows (``batch_size`` per forward pass) through a
splitter that yields the planned reads and a merger that copies the owned cores. Memory is
bounded by ``tile`` and ``batch_size`` on the compute device; the output lives on the CPU.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import os
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from monai.inferers import Merger, PatchInferer, Splitter

from ..errors import SRKitError
from ..models.architectures import ScaleError, SRModule
from ..models.card import DEFAULT_TILE_HINT
from ..models.layers import expand_per_axis
from ..models.registry import load_model
from ..resources import check_memory
from . import backends
from .invalid import NAN_POLICIES, fill_channels, mask_channels
from .windows import Window, WindowError, plan_windows

DEFAULT_TILE = DEFAULT_TILE_HINT
DEFAULT_BATCH = 4
# On the CPU one window per pass is faster: a pass's activations then stay in cache
# (benchmarks/model_speed.py and docs/benchmarks.md, "Tile and batch on the CPU").
DEFAULT_BATCH_CPU = 1
# Channels-last tensors take oneDNN's faster CPU path (1.5-3x for the shipped models); its
# rounding depends on the window shape (~1e-6), inside the 1e-4 tiling promise. On by
# default; SRKIT_CHANNELS_LAST=0 turns it off (the contiguous layout).
CPU_CHANNELS_LAST = os.environ.get("SRKIT_CHANNELS_LAST", "1") != "0"


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


class _PlannedSplitter(Splitter):
    """MONAI splitter that yields the read windows of :func:`plan_windows` (no padding)."""

    def __init__(self, windows: Sequence[Window], progress: bool = False):
        super().__init__(patch_size=tuple(r.stop - r.start for r in windows[0].read))
        self.windows, self.progress = list(windows), progress

    def get_input_shape(self, inputs: torch.Tensor) -> tuple:
        return tuple(inputs.shape[2:])

    def get_padded_shape(self, inputs: torch.Tensor) -> tuple:
        return tuple(inputs.shape[2:])

    def __call__(self, inputs: torch.Tensor) -> Iterator[tuple[torch.Tensor, list[int]]]:
        from tqdm import tqdm

        for window in tqdm(self.windows, desc="tiles", disable=not self.progress):
            yield inputs[(slice(None), slice(None), *window.read)], [r.start for r in window.read]


class _OwnedCoreMerger(Merger):
    """MONAI merger that copies each window's owned core into the output: no blending
    arithmetic touches the result (cores partition the output)."""

    def __init__(self, merged_shape, cropped_shape=None, device=None, *, windows, scale):
        super().__init__(merged_shape, cropped_shape, device)
        self.out = torch.empty(self.merged_shape, dtype=torch.float32, device=device)
        self.scale = tuple(scale)
        # windows in the splitter's order; slid reads at the border may share a location
        self.by_location: dict[tuple[int, ...], collections.deque] = {}
        for w in windows:
            key = tuple(r.start * s for r, s in zip(w.read, scale))
            self.by_location.setdefault(key, collections.deque()).append(w)

    def aggregate(self, values: torch.Tensor, location: Sequence[int]) -> None:
        try:
            window = self.by_location[tuple(int(v) for v in location)].popleft()
        except (KeyError, IndexError):
            raise RuntimeError("internal tiling error: unexpected window position") from None
        src = (slice(None), slice(None), *window.core_in_output_of_read(self.scale))
        dst = (slice(None), slice(None), *window.output(self.scale))
        self.out[dst] = values[src].to(self.out.device)

    def finalize(self) -> torch.Tensor:
        self.is_finalized = True
        return self.out


class _Network:
    """The model on its device: channels-last windows on CPUs, bf16 autocast on CUDA with
    a float32 redo of any batch that overflowed."""

    def __init__(self, model, device, use_bf16, memory_format=None):
        self.model, self.device, self.use_bf16 = model, device, use_bf16
        self.memory_format = memory_format
        self.fallbacks = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        if not self.use_bf16:
            return self.model(x).float().cpu()
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
            out = self.model(x).float()
        if not torch.isfinite(out).all() and torch.isfinite(x).all():
            self.fallbacks += 1  # bf16 overflowed: redo this batch in float32
            out = self.model(x).float()
        return out.cpu()


def _prepare_model(model: SRModule, scale, dims: int) -> SRModule:
    try:
        return model.at_scale(scale, dims)
    except ScaleError as exc:
        hint = ""
        if model.dims == 2 and dims == 3:
            hint = (
                "; run a 2D model on a volume plane by plane with"
                " srkit.common.inference.upscale_planes(model, volume), or use"
                " srkit.medsr.enhance_image, which picks the planes from the geometry"
            )
        raise TilingError(f"{exc}{hint}") from None


def _plan(image_size, roi, halo) -> list[Window]:
    try:
        return plan_windows(image_size, roi, halo)
    except WindowError as exc:
        raise TilingError(f"tile {roi}: {exc}") from None


def _run_exported(model, tensor, scale, roi, halo, batch, progress, backend):
    """The exported graph on ONNX Runtime / OpenVINO (CPU), same windows and stitching."""
    windows = _plan(tuple(tensor.shape[2:]), roi, halo)
    return _infer(windows, tensor, scale, batch, progress, backends.runner(model, backend))


def _run(model, tensor, scale, roi, halo, batch, device, progress):
    windows = _plan(tuple(tensor.shape[2:]), roi, halo)
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
    network = _Network(model_on_device, device, device.type == "cuda", window_format)
    out = _infer(windows, tensor, scale, batch, progress, network)
    if network.fallbacks:
        warnings.warn(
            f"bf16 gave non-finite values in {network.fallbacks} batch(es); redone in float32",
            stacklevel=3,
        )
    return out


def _infer(windows, tensor, scale, batch, progress, network) -> torch.Tensor:
    """Runs ``network`` over the planned windows and stitches the owned cores."""
    inferer = PatchInferer(
        splitter=_PlannedSplitter(windows, progress),
        merger_cls=_OwnedCoreMerger,
        batch_size=batch,
        windows=windows,
        scale=scale,
        device=torch.device("cpu"),
    )
    with torch.inference_mode():
        return inferer(tensor, network)


def default_batch(device: torch.device) -> int:
    """Windows per forward pass when ``batch_size`` is not given: 4 on an accelerator,
    1 on the CPU."""
    return DEFAULT_BATCH_CPU if device.type == "cpu" else DEFAULT_BATCH


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
    backend: str | None = None,
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
        batch_size: windows per forward pass (default 1 on the CPU, 4 on an accelerator).
        progress: show a tqdm bar over windows.
        nan_policy: what non-finite (NaN/Inf) input values do (see
            :mod:`common.inference.invalid`). ``"mask"`` (default, what the CLIs do): they
            are filled from their nearest valid neighbours before the model and set to NaN
            at their upscaled footprint after it, so no valid output value becomes NaN.
            ``"propagate"``: they go through the model as they are (a NaN spreads over the
            receptive field). ``"raise"``: a non-finite input is an error.
        backend: ``"torch"``, ``"onnx"`` (ONNX Runtime), ``"openvino"`` or ``"auto"`` (the
            fastest installed one for this model on the CPU, torch on a GPU); see
            :mod:`common.inference.backends`. Default: the current one
            (:func:`~common.inference.backends.using_backend`, ``SRKIT_BACKEND``), else
            torch. onnx and openvino run on the CPU (``device`` None means the CPU then).

    Returns:
        float32 array (or tensor, if a tensor was given) with each spatial axis multiplied
        by its scale. The result equals the untiled model output within 1e-4 for data in
        [0, 1] (about 1e-6 in practice).

    Raises:
        TilingError: bad tile, overlap, scale or device; a model that gives non-finite
            values from finite input (broken weights).
        BackendError: an unknown backend, or one whose runtime is not installed.
        ResourceError: an output that would not fit in memory (checked before any work).
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
        low, high = model.card.input_range
        kind = str(array.dtype).replace("torch.", "")
        raise TilingError(
            f"upscale takes float values in the model's input range [{low:g}, {high:g}], got a"
            f" {kind} array: scale it first (e.g. array.astype('float32') / 255 for 8-bit"
            " data), or use srkit.geosr.enhance_array / srkit.medsr.enhance_image, which"
            " normalize and restore the units for you"
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
    backend = backends.require(backends.current_backend() if backend is None else backend)
    if device is None and backend in ("onnx", "openvino"):
        device = "cpu"
    run_device = choose_device(device)
    batch = default_batch(run_device) if batch_size is None else batch_size
    if batch < 1:
        raise TilingError(f"batch_size must be >= 1, got {batch}")
    backend = backends.resolve(backend, model, run_device)

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
                if backend == "torch":
                    out = _run(model, tensor, model.scale, roi, halo, batch, run_device, progress)
                else:
                    out = _run_exported(
                        model, tensor, model.scale, roi, halo, batch, progress, backend
                    )
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
