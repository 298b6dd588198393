"""The one window planner: where each window reads, and which output it owns.

A model with receptive radius ``r`` gives, at an input pixel, the same value on a window
as on the whole image when the window holds ``r`` real pixels on every side of it (or
touches the image border, where both see the same padding). So a window is planned as:

- its **core**: the input region whose output this window alone writes. Cores partition
  the image, start at multiples of ``align`` (block alignment: a GeoTIFF's output blocks),
  and are ``tile - 2 * halo`` long, rounded down to ``align`` (at least ``align``);
- its **read**: the core grown by ``halo`` on each side, clamped to the image, then slid
  inwards where the image border cuts it short, so every read has the same shape
  (``min(size, core + 2 * halo)`` per axis). Equal shapes stack into one batch; the extra
  context of a slid read changes nothing in its core.

``tile`` is the read window in input pixels, halo included, on every front end: ``upscale``
in memory and ``geosr``'s streaming both plan with :func:`plan_windows`, so ``--tile`` and
``--batch-size`` (windows per forward pass) mean the same in both.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SRKitError


class WindowError(SRKitError):
    """A tile that cannot hold its halo."""


@dataclass(frozen=True)
class Window:
    """One window: ``read`` and ``core`` as slices of the input, per spatial axis."""

    read: tuple[slice, ...]
    core: tuple[slice, ...]

    @property
    def core_in_read(self) -> tuple[slice, ...]:
        """The core in the read window's coordinates."""
        return tuple(
            slice(c.start - r.start, c.stop - r.start) for c, r in zip(self.core, self.read)
        )

    def output(self, scale: Sequence[int]) -> tuple[slice, ...]:
        """The output region this window owns (its core times ``scale``)."""
        return tuple(slice(c.start * s, c.stop * s) for c, s in zip(self.core, scale))

    def core_in_output_of_read(self, scale: Sequence[int]) -> tuple[slice, ...]:
        """The owned output inside the read window's output (what to copy)."""
        return tuple(slice(c.start * s, c.stop * s) for c, s in zip(self.core_in_read, scale))


def _axis(size: int, tile: int, halo: int, align: int, core: bool) -> list[tuple[slice, slice]]:
    """(read, core) pairs along one axis; ``core``: ``tile`` is the core length."""
    if core:
        step = max(align, tile // align * align)
    else:
        if tile >= size:
            return [(slice(0, size), slice(0, size))]
        if tile <= 2 * halo:
            raise WindowError(
                f"tile {tile} is too small for halo {halo}: each tiled axis needs tile > 2*halo"
            )
        step = max(align, (tile - 2 * halo) // align * align)
    if step >= size:
        return [(slice(0, size), slice(0, size))]
    length = min(size, step + 2 * halo)
    pairs = []
    for start in range(0, size, step):
        stop = min(start + step, size)
        read_start = min(max(0, start - halo), size - length)
        pairs.append((slice(read_start, read_start + length), slice(start, stop)))
    return pairs


def plan_windows(
    size: Sequence[int],
    tile: int | Sequence[int] | None,
    halo: int | Sequence[int],
    align: int | Sequence[int] = 1,
    *,
    core: int | Sequence[int] | None = None,
) -> list[Window]:
    """Every window of an image of ``size`` (row-major order; see the module docstring).

    Args:
        size: input size per spatial axis.
        tile: read window per axis in input pixels, halo included (clipped to ``size``).
        halo: context per side, at least the model's receptive radius.
        align: core starts and lengths are multiples of this (per axis).
        core: instead of ``tile``: the core length per axis (rounded down to ``align``,
            at least ``align``); the read is then ``core + 2 * halo``. Pass ``tile=None``.

    Raises:
        WindowError: an axis larger than its tile where ``tile <= 2 * halo``.
    """
    dims = len(size)

    def per_axis(value, name):
        values = (int(value),) * dims if np.ndim(value) == 0 else tuple(int(v) for v in value)
        if len(values) != dims or any(v < 0 for v in values):
            raise WindowError(f"{name} needs 1 or {dims} non-negative values, got {value!r}")
        return values

    if (tile is None) == (core is None):
        raise WindowError("give exactly one of tile and core")
    by_core = core is not None
    tiles = per_axis(core if by_core else tile, "core" if by_core else "tile")
    halos, aligns = per_axis(halo, "halo"), per_axis(align, "align")
    if any(t < 1 for t in tiles) or any(a < 1 for a in aligns):
        raise WindowError(f"tile and align must be >= 1, got tile {tile!r}, align {align!r}")
    axes = [_axis(n, t, h, a, by_core) for n, t, h, a in zip(size, tiles, halos, aligns)]
    return [
        Window(tuple(p[0] for p in combo), tuple(p[1] for p in combo))
        for combo in itertools.product(*axes)
    ]
