"""The ``sr`` accessor: ``geosr enhance`` on an (rio)xarray ``DataArray``, numpy or dask.

Needs the ``xarray`` extra (``pip install 'srkit[xarray]'``). Importing this module
registers the accessor::

    import rioxarray
    import srkit.geosr.xarray  # noqa: F401  (registers da.sr)

    da = rioxarray.open_rasterio("scene.tif", chunks={"x": 512, "y": 512})
    sr = da.sr.enhance(scale=2)          # lazy when da is dask-backed
    sr.rio.to_raster("scene_sr.tif")

What it keeps, by the same rules as ``geosr enhance``:

- the grid: the transform is :func:`geosr.georef.output_transform` (``transform *
  Affine.scale(1 / s)``, edges kept, rotated grids included), written to ``spatial_ref``;
  the ``x``/``y`` coordinates are recomputed as the pixel centres of the finer grid (as
  rioxarray computes them from a transform; ``xc``/``yc`` for rotated grids). Other
  coordinates along ``x`` or ``y`` cannot be carried to the new grid and are dropped;
- the CRS (``spatial_ref``), ``_FillValue``/nodata, attributes and the encoding;
- the values: per-band normalization (:func:`geosr.normalize.band_scaling` from the stored
  dtype and the ``scale_factor``/``add_offset`` or ``scales``/``offsets`` attributes), the
  model of :func:`geosr.models.default_model` / :func:`geosr.models.prepare_model`, the
  invalid-pixel fill of :func:`geosr.masks.fill_invalid`, the inverse normalization and
  :func:`geosr.normalize.to_output_dtype` (the input's dtype, or ``float32``). Invalid
  pixels (nodata, NaN) stay invalid.

A dask-backed array runs lazily with ``dask.array.map_overlap`` and a depth of ``2 r``
(``r``: the model's receptive radius; the fill reaches ``r``, the model ``r`` more: the halo
``geosr``'s stream planner reads), so every chunk's core equals the in-memory result (within
float rounding, 1e-4 of the data span). Chunks are first enlarged where needed to at least
that depth, and the bands are joined into one chunk (a multi-band model mixes them).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import xarray as xr
from rioxarray.rioxarray import affine_to_coords
from srkit.common import upscale
from srkit.common.clipping import ClipRule, clip_in_place, valid_range
from srkit.common.inference import upscale_planes

from .errors import GeosrError
from .georef import output_transform
from .masks import fill_invalid, upsample_nearest
from .models import ModelChoice, default_model, prepare_model
from .normalize import BandScaling, band_scaling, range_warnings, to_output_dtype
from .plan import band_clip_bounds, check_device, check_scale
from .raster import percentile_range
from .stream import fill_value

__all__ = ["SRAccessor"]

STATS_MAX_SIDE = 1024  # the decimated read of geosr.raster.estimate_ranges (its max_side)


def _per_band(attrs: dict, plural: str, single: str, count: int) -> list[float | None]:
    """rioxarray's per-band ``scales``/``offsets`` tuple, else its one ``scale_factor``."""
    if plural in attrs:
        values = list(np.ravel(attrs[plural]))
        if len(values) == count:
            return [float(v) for v in values]
    value = attrs.get(single)
    return [None if value is None else float(value)] * count


def valid_pixels(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """Boolean validity of raw values: finite and not ``nodata`` (geosr's rule for a raster
    whose mask is its nodata value, or NaN for floats without one)."""
    ok = np.isfinite(raw) if np.issubdtype(raw.dtype, np.floating) else np.ones(raw.shape, bool)
    if nodata is not None and not np.isnan(nodata):
        ok &= raw != nodata
    return ok


class _BlockRunner:
    """``geosr enhance``'s per-window work on a ``(C, h, w)`` block of raw values."""

    def __init__(
        self,
        model: Any,
        scalings: Sequence[BandScaling],
        scale: int,
        radius: int,
        nodata: float | None,
        out_dtype: str,
        tiling: dict[str, Any],
        clip_bounds: Sequence[tuple[float, float] | None] = (),
    ) -> None:
        self.model, self.scalings, self.scale, self.radius = model, list(scalings), scale, radius
        self.nodata, self.out_dtype, self.tiling = nodata, out_dtype, tiling
        self.clip_bounds = list(clip_bounds)

    @property
    def per_band(self) -> bool:
        """A 1-channel model on several bands runs once per band (as ``geosr enhance``)."""
        return self.model.channels == 1 and len(self.scalings) > 1

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """The upscaled block ``(C, h s, w s)`` in ``out_dtype``; invalid pixels filled."""
        s = self.scale
        valid = valid_pixels(raw, self.nodata)
        fill = fill_value(self.out_dtype, self.nodata)
        out = np.full((raw.shape[0], raw.shape[1] * s, raw.shape[2] * s), fill, self.out_dtype)
        if not valid.any():
            return out
        normalized = np.stack([sc.forward(band) for sc, band in zip(self.scalings, raw)])
        filled = fill_invalid(normalized, valid, passes=self.radius)
        if self.per_band:  # a 1-channel model: every band is one plane
            sr = upscale_planes(self.model, filled[None], **self.tiling)[0]
        else:
            sr = upscale(self.model, filled, **self.tiling)
        valid_up = upsample_nearest(valid, s)
        for k, sc in enumerate(self.scalings):
            raw_values = np.asarray(sc.inverse(sr[k]), dtype=np.float64)
            if self.clip_bounds:  # --clip, before the cast (as geosr.stream)
                clip_in_place(raw_values, self.clip_bounds[k])
            values = to_output_dtype(raw_values, self.out_dtype, valid_up[k], self.nodata)
            values[~valid_up[k]] = fill
            out[k] = values
        return out

    def lazy(self, data: Any) -> Any:
        """The upscaled dask array: ``map_overlap`` with a depth of ``2 r`` (chunks first
        enlarged to at least that, the bands joined into one chunk)."""
        import dask.array as dsk
        from dask.array.overlap import ensure_minimum_chunksize

        depth, s = 2 * self.radius, self.scale
        data = data.rechunk({0: -1})
        if depth:
            data = data.rechunk(
                {a: ensure_minimum_chunksize(depth, data.chunks[a]) for a in (1, 2)}
            )
        chunks = data.chunks
        return dsk.map_overlap(
            self.overlapped(depth, chunks),
            data,
            depth={0: 0, 1: depth, 2: depth},
            boundary="none",
            trim=False,
            dtype=np.dtype(self.out_dtype),
            chunks=(chunks[0], tuple(c * s for c in chunks[1]), tuple(c * s for c in chunks[2])),
            meta=np.empty((0, 0, 0), dtype=self.out_dtype),
        )

    def overlapped(self, depth: int, chunks: Sequence[Sequence[int]]):
        """The function ``map_overlap`` calls: runs a block read with ``depth`` pixels of
        halo (none at the array's edges) and keeps the output of its own chunk."""
        s = self.scale

        def run(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
            if block_info is None or 0 not in block_info:  # dask's meta probe
                return np.empty((block.shape[0], 0, 0), self.out_dtype)
            location = block_info[0]["chunk-location"]
            cut = [slice(None)]
            for axis in (1, 2):
                index, count = location[axis], len(chunks[axis])
                lead = depth if index > 0 else 0
                trail = depth if index < count - 1 else 0
                cut.append(slice(lead * s, (block.shape[axis] - trail) * s))
            return self(block)[tuple(cut)]

        return run


def _band_scalings(
    da: xr.DataArray, data: Any, net: Any, nodata: float | None, normalize: str, spec: str
) -> list[BandScaling]:
    """Each band's :func:`geosr.normalize.band_scaling`, as ``geosr enhance`` plans it, and
    its range warnings for trained models; ``data`` is the ``(band, y, x)`` values."""
    bands, height, width = data.shape
    in_dtype = str(da.dtype)
    stored = str(da.encoding.get("rasterio_dtype", in_dtype))
    decoded = any(
        float(da.encoding.get(key, neutral)) != neutral
        for key, neutral in (("scale_factor", 1.0), ("add_offset", 0.0))
    )
    if decoded:  # rioxarray applied the scale/offset tags: the values are physical
        stored, scales, offsets = in_dtype, [None] * bands, [None] * bands
    else:
        scales = _per_band(da.attrs, "scales", "scale_factor", bands)
        offsets = _per_band(da.attrs, "offsets", "add_offset", bands)
    stats: list[tuple[float, float]] | None = None
    if normalize == "stats" or not net.flexible_scale:
        step = max(1, int(np.ceil(max(height, width) / STATS_MAX_SIDE)))
        sample = np.asarray(data[:, ::step, ::step])
        valid = valid_pixels(sample, nodata)
        stats = [percentile_range(band[ok]) for band, ok in zip(sample, valid)]
    scalings = [
        band_scaling(stored, sc, off, normalize, stats=None if stats is None else stats[k])
        for k, (sc, off) in enumerate(zip(scales, offsets))
    ]
    if stats is not None and not net.flexible_scale:
        finite = [(k, lo, hi) for k, (lo, hi) in enumerate(stats) if np.isfinite(lo)]
        names = [f"band {k + 1}" for k, _, _ in finite]
        ranges = [
            (
                float(scalings[k].forward(np.array(lo))),
                float(scalings[k].forward(np.array(hi))),
            )
            for k, lo, hi in finite
        ]
        for message in range_warnings(names, ranges, tuple(net.card.input_range), spec):
            warnings.warn(message, stacklevel=4)
    return scalings


@xr.register_dataarray_accessor("sr")
class SRAccessor:
    """``da.sr``: super-resolution of a georeferenced ``(band, y, x)`` or ``(y, x)`` array."""

    def __init__(self, data_array: xr.DataArray) -> None:
        self._da = data_array

    def enhance(
        self,
        scale: int = 2,
        model: str | None = None,
        *,
        normalize: str = "auto",
        dtype: str | None = None,
        device: str | None = None,
        tile: int | None = None,
        batch_size: int | None = None,
        clip: str = "auto",
    ) -> xr.DataArray:
        """The array upscaled ``scale`` times, as ``geosr enhance`` would write it.

        Args:
            scale: integer factor >= 1 (``geosr enhance --scale``).
            model: model spec; ``None`` picks :func:`geosr.models.default_model` for the
                scale and band count (``--model``).
            normalize: ``auto``, ``dtype``, ``stats`` or ``none`` (``--normalize``);
                ``stats`` reads a decimated copy first (computed for dask arrays).
            dtype: ``None`` keeps the array's dtype (rounded and clipped for integers), or
                ``"float32"`` (``--dtype``).
            device, tile, batch_size: as for :func:`common.upscale`.
            clip: ``auto`` (each band's valid range widened by 5 % of its span), ``none``
                or ``"LO,HI"`` in physical units (``scale_factor``/``add_offset``
                applied), as ``geosr enhance --clip``; ``auto`` computes a dask array's
                range first.

        Returns:
            A new ``DataArray`` (dask-backed and lazy when the input is), with the new
            coordinates, transform, and the input's CRS, nodata, attributes and encoding.

        Raises:
            GeosrError: no ``x``/``y`` dimensions, more than one other dimension, a bad
                scale, dtype, normalization or model (the same messages as the CLI).
        """
        da = self._da
        scale = check_scale(scale)
        try:
            y_dim, x_dim = da.rio.y_dim, da.rio.x_dim
        except Exception as exc:  # rioxarray's MissingSpatialDimensionError
            raise GeosrError(f"sr.enhance: {exc}") from None
        others = [d for d in da.dims if d not in (y_dim, x_dim)]
        if len(others) > 1:
            raise GeosrError(
                f"sr.enhance: expected (band, y, x) or (y, x), got dims {da.dims};"
                " select or stack the extra dimensions first"
            )
        band_dim = others[0] if others else None
        order = [d for d in (band_dim, y_dim, x_dim) if d is not None]
        cube = da.transpose(*order)
        if band_dim is None:
            cube = cube.expand_dims("band", 0)
        bands = cube.shape[0]
        in_dtype = str(da.dtype)
        if np.issubdtype(da.dtype, np.complexfloating):
            raise GeosrError("sr.enhance: complex-valued data is not supported")
        if dtype not in (None, "same", in_dtype, "float32"):
            raise GeosrError(f"dtype {dtype!r}: use float32 (or omit it to keep {in_dtype})")
        out_dtype = "float32" if dtype == "float32" else in_dtype
        nodata = da.rio.nodata
        nodata = None if nodata is None else float(nodata)

        # the model and the scalings: geosr's own functions
        choice = ModelChoice(model, "given") if model else default_model(scale, bands)
        target = check_device(device)
        net = prepare_model(choice.spec, scale, bands).to(target)
        radius = int(max(net.receptive_radius))
        scalings = _band_scalings(da, cube.data, net, nodata, normalize, choice.spec)
        tiling = {"device": target, "tile": tile, "batch_size": batch_size}
        bounds = _clip_bounds(da, cube.data, nodata, clip)
        runner = _BlockRunner(net, scalings, scale, radius, nodata, out_dtype, tiling, bounds)
        data = cube.data
        result = runner.lazy(data) if _is_dask(data) else runner(np.asarray(data))
        with _quiet_affine():
            return _wrap(da, cube, result, band_dim, y_dim, x_dim, scale, out_dtype)


def _clip_bounds(
    da: xr.DataArray, data: Any, nodata: float | None, clip: str
) -> list[tuple[float, float] | None]:
    """Per band, ``geosr enhance``'s ``--clip`` bounds in raw (stored) units."""
    try:
        rule = ClipRule.parse(clip)
    except Exception as exc:
        raise GeosrError(f"sr.enhance: {exc}") from None
    if rule.mode == "none":
        return []
    gain = float(da.attrs.get("scale_factor", 1.0) or 1.0)
    shift = float(da.attrs.get("add_offset", 0.0) or 0.0)
    bounds: list[tuple[float, float] | None] = []
    for k in range(data.shape[0]):
        low = high = float("nan")
        if rule.mode == "auto":
            band = data[k]
            if _is_dask(band):
                import dask.array as dsk

                band = band.astype("float64")
                keep = dsk.isfinite(band)
                if nodata is not None and not np.isnan(nodata):
                    keep &= band != nodata
                masked = dsk.where(keep, band, np.nan)
                low, high = (float(v) for v in dsk.compute(dsk.nanmin(masked), dsk.nanmax(masked)))
            else:
                band = np.asarray(band)
                low, high = valid_range(band, valid_pixels(band[None], nodata)[0])
        bounds.append(band_clip_bounds(rule, (low, high), gain, shift)[1])
    return bounds


@contextlib.contextmanager
def _quiet_affine() -> Iterator[None]:
    """Hides affine's ``*``-operator deprecation warning raised inside rioxarray."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Use `@` matmul", PendingDeprecationWarning)
        warnings.filterwarnings("ignore", "Use `@` matmul", DeprecationWarning)
        yield


def _is_dask(data: Any) -> bool:
    return type(data).__module__.startswith("dask.")


def _wrap(
    da: xr.DataArray,
    cube: xr.DataArray,
    values: Any,
    band_dim: str | None,
    y_dim: str,
    x_dim: str,
    scale: int,
    out_dtype: str,
) -> xr.DataArray:
    """The result as a ``DataArray`` on the finer grid with the input's metadata."""
    height, width = cube.shape[1] * scale, cube.shape[2] * scale
    transform = output_transform(da.rio.transform(), scale)
    spatial = affine_to_coords(transform, width, height, x_dim=x_dim, y_dim=y_dim)
    coords: dict[str, Any] = {}
    for name, coord in da.coords.items():
        if y_dim in coord.dims or x_dim in coord.dims:
            continue  # x, y, and anything on the old grid (xc/yc are recomputed below)
        coords[name] = coord
    if spatial[x_dim].ndim == 1:
        coords[x_dim] = (x_dim, spatial[x_dim], da[x_dim].attrs if x_dim in da.coords else {})
        coords[y_dim] = (y_dim, spatial[y_dim], da[y_dim].attrs if y_dim in da.coords else {})
    else:  # a rotated grid: 2D centre coordinates, as rioxarray names them
        coords["xc"] = ((y_dim, x_dim), spatial[x_dim])
        coords["yc"] = ((y_dim, x_dim), spatial[y_dim])
    dims = ("band" if band_dim is None else band_dim, y_dim, x_dim)
    out = xr.DataArray(values, dims=dims, coords=coords, attrs=dict(da.attrs), name=da.name)
    if band_dim is None:
        out = out.isel(band=0, drop=True)
    out = out.transpose(*[d for d in da.dims])
    out.encoding = {k: v for k, v in da.encoding.items() if k not in ("source", "preferred_chunks")}
    if str(np.dtype(out_dtype)) != str(da.dtype):
        out.encoding.pop("dtype", None)
        out.encoding.pop("rasterio_dtype", None)
    out = out.rio.write_transform(transform)
    if da.rio.crs is not None:
        out = out.rio.write_crs(da.rio.crs)
    return out
