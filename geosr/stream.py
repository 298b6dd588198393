"""Windowed reading, running and writing: the output is streamed window by window.

The output is cut into windows aligned to its GTiff blocks (``window_step``). Each window
reads its input *core* plus at least ``2 r`` pixels of context on every side (``r``: the
model's receptive radius), clamped at the raster edge, where a whole-raster run sees the
same boundary padding. Every read has the same shape, ``core + 4 r`` per axis (or the
raster size): a read that the raster edge cuts short is slid inwards instead, so it takes
more context on its inner side, which changes nothing in its core (the fill reaches ``r``
pixels and the model ``r`` more). Windows of one shape stack: ``batch_size`` of them go
through the model in one forward pass (``common.inference.Planewise``), and the output
does not depend on the batch size (within float rounding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from common import upscale
from common.inference import Planewise

from .masks import fill_invalid, upsample_nearest
from .normalize import to_output_dtype
from .plan import EnhanceOptions, EnhancePlan
from .raster import read_errors, read_valid


def window_step(scale: int, block: int, options: EnhanceOptions) -> int:
    """Output window side: ``tile * scale`` or ``window``, rounded down to whole blocks (>= 1)."""
    wanted = options.tile * scale if options.tile else options.window
    return max(block, wanted // block * block)


def iter_windows(height: int, width: int, step: int) -> Iterator[Window]:
    """Row-major output windows of ``step`` pixels (smaller at the right and bottom edges)."""
    for row in range(0, height, step):
        for col in range(0, width, step):
            yield Window(col, row, min(step, width - col), min(step, height - row))


def _read_span(core_start: int, core_stop: int, length: int, size: int, halo: int) -> int:
    """Start of a read of ``length`` input pixels holding ``[core - halo, core + halo)``
    clamped to ``[0, size)``."""
    return min(max(0, core_start - halo), size - length)


@dataclass(frozen=True)
class WindowRead:
    """Where one output window's input lies: the read window and its core inside it."""

    out_window: Window
    read_window: Window
    rows: slice  # the core, in read-window coordinates
    cols: slice


def plan_reads(
    windows: Sequence[Window], step: int, scale: int, radius: int, size: tuple[int, int]
) -> list[WindowRead]:
    """The read of every output window, all of one shape (see the module docstring)."""
    height, width = size
    halo = 2 * radius
    length_y = min(height, step // scale + 2 * halo)
    length_x = min(width, step // scale + 2 * halo)
    reads = []
    for window in windows:
        core_row, core_col = window.row_off // scale, window.col_off // scale
        core_h, core_w = window.height // scale, window.width // scale
        row0 = _read_span(core_row, core_row + core_h, length_y, height, halo)
        col0 = _read_span(core_col, core_col + core_w, length_x, width, halo)
        reads.append(
            WindowRead(
                window,
                Window(col0, row0, length_x, length_y),
                slice(core_row - row0, core_row - row0 + core_h),
                slice(core_col - col0, core_col - col0 + core_w),
            )
        )
    return reads


def fill_value(dtype: str, nodata: float | None) -> float:
    """What invalid output pixels hold: nodata, else NaN for floats, else 0."""
    if nodata is not None:
        return nodata
    return float("nan") if np.issubdtype(np.dtype(dtype), np.floating) else 0


@dataclass
class WindowResult:
    """One output window: data ``(bands, h, w)``, validity ``(h, w)``, whether it ran."""

    read: WindowRead
    data: np.ndarray
    valid: np.ndarray
    ran_model: bool


def _run_model(plan: EnhancePlan, stack: list[np.ndarray]) -> list[np.ndarray]:
    """Upscales same-shape ``(C, h, w)`` arrays in one forward pass; returns them upscaled."""
    channels = stack[0].shape[0]
    if plan.per_band:  # a 1-channel model: every band of every window is one plane
        planes = np.concatenate(stack)[None]
    else:
        planes = np.stack(stack, axis=1)  # (C, windows, h, w)
    sr = upscale(
        Planewise(plan.model),
        planes,
        tile=planes.shape[1:],
        device=plan.device,
        batch_size=1,
    )
    if plan.per_band:
        return [sr[0, k * channels : (k + 1) * channels] for k in range(len(stack))]
    return [sr[:, k] for k in range(len(stack))]


def process_batch(
    src, name: str, plan: EnhancePlan, reads: Sequence[WindowRead]
) -> list[WindowResult]:
    """Output of a few windows; those with a valid core share one forward pass."""
    s = plan.scale
    data_bands = [plan.bands[i] for i in plan.data_index]
    fill = fill_value(plan.out_dtype, plan.nodata)
    results, inputs = [], []
    for read in reads:
        with read_errors(name):
            raw = src.read(data_bands, window=read.read_window)
            valid = read_valid(src, data_bands, read.read_window, plan.layout, raw)
        core_valid = valid[:, read.rows, read.cols]
        shape = (len(plan.bands), read.out_window.height, read.out_window.width)
        out = np.empty(shape, dtype=plan.out_dtype)
        ran = bool(core_valid.any())
        if ran:
            normalized = np.stack([sc.forward(band) for sc, band in zip(plan.scalings, raw)])
            inputs.append(fill_invalid(normalized, valid, passes=plan.radius))
        else:
            out[plan.data_index] = fill
        if plan.alpha_index:
            alpha_bands = [plan.bands[i] for i in plan.alpha_index]
            with read_errors(name):
                alpha = src.read(alpha_bands, window=read.read_window)[:, read.rows, read.cols]
            for k, i in enumerate(plan.alpha_index):
                out[i] = upsample_nearest(alpha[k], s).astype(plan.out_dtype)
        valid_up = upsample_nearest(core_valid, s)
        results.append(WindowResult(read, out, valid_up, ran))
    if not inputs:
        return results
    outputs = iter(_run_model(plan, inputs))
    for result in results:
        if not result.ran_model:
            continue
        sr = next(outputs)
        read = result.read
        sr = sr[
            :, read.rows.start * s : read.rows.stop * s, read.cols.start * s : read.cols.stop * s
        ]
        for k, (i, sc) in enumerate(zip(plan.data_index, plan.scalings)):
            values = to_output_dtype(
                sc.inverse(sr[k]), plan.out_dtype, result.valid[k], plan.nodata
            )
            values[~result.valid[k]] = fill
            result.data[i] = values
    for result in results:
        result.valid = result.valid.all(axis=0)
    return results


def stream_windows(
    src, name: str, plan: EnhancePlan, dst, step: int, options: EnhanceOptions
) -> tuple[int, int, int]:
    """Writes every output window of ``dst``; returns ``(windows, skipped, forward passes)``.

    Windows whose core is all invalid are written as nodata without running the model.
    """
    from tqdm import tqdm

    windows = list(iter_windows(dst.height, dst.width, step))
    reads = plan_reads(windows, step, plan.scale, plan.radius, (src.height, src.width))
    batch = max(1, options.batch_size or 1)
    write_mask = plan.layout.mask_kind == "mask"
    skipped = passes = 0
    with tqdm(
        total=len(reads), desc="windows", unit="win", disable=None if options.progress else True
    ) as bar:
        pending: list[WindowRead] = []
        for index, read in enumerate(reads):
            pending.append(read)
            if len(pending) < batch and index + 1 < len(reads):
                continue
            results = process_batch(src, name, plan, pending)
            passes += any(r.ran_model for r in results)
            for result in results:
                skipped += not result.ran_model
                dst.write(result.data, window=result.read.out_window)
                if write_mask:
                    mask = np.where(result.valid, 255, 0).astype(np.uint8)
                    dst.write_mask(mask, window=result.read.out_window)
            bar.update(len(pending))
            pending = []
    return len(windows), skipped, passes
