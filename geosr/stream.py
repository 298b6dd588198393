"""Windowed reading, running and writing: the output is streamed window by window.

The windows come from the shared planner (:func:`common.inference.windows.plan_windows`),
as for in-memory ``upscale``: cores aligned to the output's GTiff blocks, each read the
core plus a halo of ``2 r`` pixels (``r``: the model's receptive radius) clamped at the
raster edge, where a whole-raster run sees the same boundary padding, and slid inwards
there so every read has one shape. Windows of one shape stack: ``batch_size`` of them go
through the model in one forward pass (``common.inference.Planewise``), and the output
does not depend on the batch size (within float rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window
from srkit.common import upscale
from srkit.common.clipping import clip_in_place
from srkit.common.errors import SRKitError, first_line
from srkit.common.inference import Planewise
from srkit.common.inference.windows import WindowError, plan_windows

from .errors import GeosrError
from .masks import fill_invalid, upsample_nearest
from .normalize import to_output_dtype
from .plan import EnhanceOptions, EnhancePlan
from .raster import read_errors, read_valid


@dataclass(frozen=True)
class WindowRead:
    """Where one output window's input lies: the read window and its core inside it."""

    out_window: Window
    read_window: Window
    rows: slice  # the core, in read-window coordinates
    cols: slice


def plan_stream(
    size: tuple[int, int], scale: int, block: int, radius: int, options: EnhanceOptions
) -> list[WindowRead]:
    """Every window of a raster of ``size`` (rows, cols), from the shared planner.

    The halo is ``2 * radius`` (the invalid-pixel fill reaches ``radius``, the model
    ``radius`` more); cores are aligned to the output blocks (``block / scale`` input
    pixels). ``options.tile`` is the read window in input pixels, halo included, as for
    ``upscale``; without it the core is ``options.window / scale`` input pixels.
    """
    halo = 2 * radius
    align = max(1, block // scale)
    try:
        if options.tile:
            windows = plan_windows(size, options.tile, halo, align)
        else:
            windows = plan_windows(size, None, halo, align, core=max(1, options.window // scale))
    except WindowError as exc:
        raise GeosrError(f"--tile {options.tile}: {exc}") from None
    reads = []
    for w in windows:
        (r0, c0), (rr, cc) = (w.core[0], w.core[1]), (w.read[0], w.read[1])
        rows, cols = w.core_in_read
        reads.append(
            WindowRead(
                Window(
                    c0.start * scale,
                    r0.start * scale,
                    (c0.stop - c0.start) * scale,
                    (r0.stop - r0.start) * scale,
                ),
                Window(cc.start, rr.start, cc.stop - cc.start, rr.stop - rr.start),
                rows,
                cols,
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
    try:
        outputs = iter(_run_model(plan, inputs))
    except SRKitError as exc:  # the model's refusal (non-finite output...): name the file
        raise GeosrError(f"{name}: {first_line(exc)}") from None
    for result in results:
        if not result.ran_model:
            continue
        sr = next(outputs)
        read = result.read
        sr = sr[
            :, read.rows.start * s : read.rows.stop * s, read.cols.start * s : read.cols.stop * s
        ]
        for k, (i, sc) in enumerate(zip(plan.data_index, plan.scalings)):
            raw = np.asarray(sc.inverse(sr[k]), dtype=np.float64)  # raw units, a new array
            if plan.clip_bounds:  # --clip, before the cast to the output dtype
                clip_in_place(raw, plan.clip_bounds[k])
            values = to_output_dtype(raw, plan.out_dtype, result.valid[k], plan.nodata)
            values[~result.valid[k]] = fill
            result.data[i] = values
    for result in results:
        result.valid = result.valid.all(axis=0)
    return results


def row_bands(reads: Sequence[WindowRead]) -> list[tuple[int, int]]:
    """The output row ranges ``(start, stop)`` of the rows of windows, top to bottom."""
    spans = {
        (int(r.out_window.row_off), int(r.out_window.row_off + r.out_window.height)) for r in reads
    }
    return sorted(spans)


def stream_windows(
    src,
    name: str,
    plan: EnhancePlan,
    dst,
    block: int,
    options: EnhanceOptions,
    rows: tuple[int, int] | None = None,
) -> tuple[int, int, int]:
    """Writes every output window of ``dst``; returns ``(windows, skipped, forward passes)``.

    Windows whose core is all invalid are written as nodata without running the model.
    ``rows``: only the windows of this output row band (:func:`row_bands`), written into
    a ``dst`` that holds just that band (its row 0 is output row ``rows[0]``).
    """
    from tqdm import tqdm

    reads = plan_stream((src.height, src.width), plan.scale, block, plan.radius, options)
    offset = 0
    if rows is not None:
        offset = rows[0]
        reads = [r for r in reads if rows[0] <= r.out_window.row_off < rows[1]]
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
                window = result.read.out_window
                if offset:
                    window = Window(
                        window.col_off, window.row_off - offset, window.width, window.height
                    )
                dst.write(result.data, window=window)
                if write_mask:
                    mask = np.where(result.valid, 255, 0).astype(np.uint8)
                    dst.write_mask(mask, window=window)
            bar.update(len(pending))
            pending = []
    return len(reads), skipped, passes
