"""``geosr sharpen``: coarse bands brought onto a finer guide grid by the scene's own bands.

Pipeline: ``read -> nest -> fit -> stream -> rename``.

- **read**: the guide files must share one grid (CRS, transform, size); their bands, in
  order, are the guides. Each coarse file keeps its bands, in order.
- **nest** (``nest_grid``): each coarse grid must nest in the guide grid: same CRS, the same
  orientation, an integer ratio ``r`` (2, 3, 6...) and an origin a whole number of guide
  pixels away (Sentinel-2 tiles, crops). A sub-pixel offset, a different CRS, a rotation or
  a non-integer ratio is refused with one line naming the numbers. The output covers the
  guide grid exactly (its CRS, transform, width and height); guide pixels outside the
  coarse footprint are invalid.
- **fit** (``fit_scene``): the per-band regression on the guides degraded to the coarse grid
  (``geosr.guided``), summed window by window over valid pixels.
- **stream**: output windows on the coarse footprint (``common.inference.windows``), each
  read with a halo of ``2 x`` the method's reach (coarse pixels), sharpened by
  ``geosr.guided.sharpen_block`` and written into the coarse file's output bands. Memory
  depends on the window size, never on the raster size.
- **rename**: written to a temporary beside the output (``common.io.atomic_output``) and
  renamed into place when complete (``--cog`` converts first): a failure leaves no output.

Validity: an output pixel is valid when its coarse pixel and every guide band are valid
there. Invalid pixels hold the coarse nodata, else NaN (floats) or 0. The output keeps
the coarse dtype, nodata, band descriptions, band tags, scales/offsets and the first coarse
file's dataset tags, plus ``SR_*`` provenance tags.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window
from srkit.common.errors import OutputError, SRKitError, first_line
from srkit.common.inference.windows import plan_windows
from srkit.common.io import atomic_output, check_not_input, check_targets
from srkit.common.models import load_model

from .errors import GeosrError
from .georef import check_georeference
from .guided import (
    DEFAULT_MTF,
    FitAccumulator,
    InjectionFit,
    check_method,
    coarse_validity,
    degrade,
    guide_halo,
    model_guide_layout,
    sharpen_block,
)
from .masks import fill_invalid, upsample_nearest
from .normalize import BandScaling, band_scaling, to_output_dtype
from .postprocess import to_cog
from .products import find_product
from .raster import (
    GDAL_ENV,
    band_layout,
    creation_options,
    open_raster,
    provenance_tags,
    read_errors,
    read_valid,
)
from .stream import fill_value

DEFAULT_MODEL = "rs_guided"
DEFAULT_WINDOW = 1024  # output (guide) pixels per window side, halo excluded
TOLERANCE = 1e-6  # in guide pixels: what counts as a whole-pixel offset or integer ratio


@dataclass(frozen=True)
class SharpenOptions:
    """Settings of ``sharpen`` (the CLI's options).

    Attributes:
        method: ``"cnn"`` (default; ``model``), ``"detail-injection"`` or ``"bicubic"``.
        model: a guided model spec for ``cnn`` (shipped name or path); default ``rs_guided``.
        include_guide: append the guide bands (their values, cast to the output dtype).
        cog: write a Cloud Optimized GeoTIFF.
        overwrite: replace an existing output.
        mtf: the coarse sensor's MTF at its Nyquist frequency (Gaussian PSF), for the
            regression and the low-pass of detail injection and the CNN.
        window: output pixels per window side (memory is about ``window**2`` times the
            band count, in float32).
        device: torch device of the CNN.
        self_supervised: fine-tune the CNN on each coarse file by Wald's protocol first
            (``self_supervised_model``; the pretrained model is kept when it does not help).
        budget: seconds of fine-tuning per coarse file.
        progress: show a progress bar.
        log: called with one line per coarse file (what was done).
    """

    method: str = "cnn"
    model: str | None = None
    include_guide: bool = False
    cog: bool = False
    overwrite: bool = False
    mtf: float = DEFAULT_MTF
    window: int = DEFAULT_WINDOW
    device: str = "cpu"
    self_supervised: bool = False
    budget: float = 60.0
    progress: bool = False
    log: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Nesting:
    """How a coarse grid sits in the guide grid: coarse pixel ``(i, j)`` covers guide
    pixels ``[row + i r, row + (i + 1) r) x [col + j r, col + (j + 1) r)``; ``rows`` and
    ``cols`` are the coarse pixels wholly inside the guide raster (the footprint)."""

    ratio: int
    row: int
    col: int
    rows: slice
    cols: slice

    def footprint(self) -> tuple[slice, slice]:
        """The guide pixels covered by the footprint."""
        r = self.ratio
        return (
            slice(self.row + self.rows.start * r, self.row + self.rows.stop * r),
            slice(self.col + self.cols.start * r, self.col + self.cols.stop * r),
        )


def _whole(value: float) -> int | None:
    nearest = round(value)
    return int(nearest) if abs(value - nearest) <= TOLERANCE * max(1.0, abs(value)) else None


def nest_grid(
    coarse_transform: Affine,
    coarse_shape: tuple[int, int],
    guide_transform: Affine,
    guide_shape: tuple[int, int],
    name: str,
) -> Nesting:
    """The nesting of a coarse grid in the guide grid (see the module docstring).

    Raises:
        GeosrError: rotated or flipped relative to the guide, a non-integer ratio, a ratio
            below 2, a sub-pixel offset, or no coarse pixel inside the guide raster.
    """
    m = ~guide_transform @ coarse_transform  # coarse pixel -> guide pixel coordinates
    if abs(m.b) > TOLERANCE * abs(m.a) or abs(m.d) > TOLERANCE * abs(m.e) or m.a <= 0 or m.e <= 0:
        raise GeosrError(
            f"{name}: its grid is rotated or flipped relative to the guide's; "
            "resample it onto a grid aligned with the guide first"
        )
    ratio = _whole(m.a)
    if ratio is None or _whole(m.e) != ratio:
        raise GeosrError(
            f"{name}: its pixels are {m.a:g} x {m.e:g} guide pixels; the ratio must be one "
            "integer (2, 3, 6...)"
        )
    if ratio < 2:
        raise GeosrError(
            f"{name}: its pixels are {m.a:g} guide pixel(s); a coarse band must be at least "
            "2x coarser than the guide"
        )
    col, row = _whole(m.c), _whole(m.f)
    if col is None or row is None:
        raise GeosrError(
            f"{name}: grid does not nest in the guide grid: its origin is offset by "
            f"({m.c:.4g}, {m.f:.4g}) guide pixels (x, y), not a whole number; resample it "
            "onto the guide's grid first"
        )
    height, width = coarse_shape
    gh, gw = guide_shape

    def inside(offset: int, n: int, guide_n: int) -> slice:
        start = max(0, math.ceil(-offset / ratio))
        stop = min(n, (guide_n - offset) // ratio)
        return slice(start, max(start, stop))

    rows, cols = inside(row, height, gh), inside(col, width, gw)
    if rows.stop <= rows.start or cols.stop <= cols.start:
        raise GeosrError(f"{name}: no coarse pixel lies inside the guide raster")
    return Nesting(ratio, row, col, rows, cols)


@dataclass(frozen=True)
class Radiometry:
    """How a file's DNs are read: GDAL-style ``physical = DN * scale + offset`` (``None``:
    the file's own tags) and an extra DN that marks no data (products; ``None``: none)."""

    physical: tuple[float, float] | None = None
    nodata: float | None = None

    def scale_offset(self, src, band: int) -> tuple[float, float]:
        """The band's ``(scale, offset)``: this radiometry's, else the file's tags."""
        if self.physical is not None:
            return self.physical
        return src.scales[band - 1], src.offsets[band - 1]

    def scalings(self, src, bands: Sequence[int]) -> list[BandScaling]:
        """The normalization of ``bands`` (``geosr.normalize.band_scaling``)."""
        return [band_scaling(src.dtypes[b - 1], *self.scale_offset(src, b)) for b in bands]

    def valid(self, src, bands, window, layout, raw: np.ndarray) -> np.ndarray:
        """``read_valid`` plus this radiometry's nodata DN."""
        valid = read_valid(src, bands, window, layout, raw)
        if self.nodata is not None and src.nodata is None:
            valid &= raw != self.nodata
        return valid


@dataclass
class CoarseInput:
    """One coarse file: its bands, scalings, nesting and output band slots (1-based)."""

    path: Path
    bands: list[int]
    scalings: list[BandScaling]
    nesting: Nesting
    slots: list[int]
    layout: object
    fit: InjectionFit | None = None
    model: object = None
    radiometry: Radiometry = field(default_factory=Radiometry)
    name: str = ""  # output band description when the file gives none (products)


@dataclass
class SharpenResult:
    """What ``sharpen`` wrote: the output, its band count, method and per-file details."""

    output: Path
    bands: int
    method: str
    model: str
    ratios: list[int]
    windows: int
    fits: list[InjectionFit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class GuideStack:
    """The guide files as one band stack on one grid (read normalized, window by window)."""

    def __init__(self, sources, names: list[str], radiometry: list[Radiometry] | None = None):
        self.sources = sources
        self.names = names
        self.radiometry = radiometry or [Radiometry() for _ in sources]
        first = sources[0]
        for src, name in zip(sources[1:], names[1:]):
            if src.crs != first.crs or src.transform != first.transform or src.shape != first.shape:
                raise GeosrError(
                    f"{name}: guide grid differs from {names[0]}'s "
                    f"({src.width}x{src.height} vs {first.width}x{first.height}, or the "
                    "CRS or transform); all guides must share one grid"
                )
        self.bands = [list(range(1, src.count + 1)) for src in sources]
        self.layouts = [band_layout(src, b) for src, b in zip(sources, self.bands)]
        self.scalings = [
            rad.scalings(src, b) for src, b, rad in zip(sources, self.bands, self.radiometry)
        ]
        self.count = sum(len(b) for b in self.bands)
        self.shape = first.shape
        self.crs = first.crs
        self.transform = first.transform

    def read(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """Normalized guides ``(K, h, w)`` and where all of them are valid ``(h, w)``."""
        window = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        data, valid = [], np.ones((window.height, window.width), dtype=bool)
        for src, name, bands, layout, scalings, rad in zip(
            self.sources, self.names, self.bands, self.layouts, self.scalings, self.radiometry
        ):
            with read_errors(name):
                raw = src.read(bands, window=window)
                valid &= rad.valid(src, bands, window, layout, raw).all(axis=0)
            data.extend(sc.forward(band) for sc, band in zip(scalings, raw))
        return np.stack(data).astype(np.float32), valid

    def read_raw(self, window: Window) -> np.ndarray:
        """Raw guide values of every band in ``window``."""
        parts = []
        for src, name, bands in zip(self.sources, self.names, self.bands):
            with read_errors(name):
                parts.append(src.read(bands, window=window))
        return np.concatenate(parts)


def _read_coarse(src, item: CoarseInput, rows: slice, cols: slice):
    """Normalized coarse bands and their validity in footprint coordinates."""
    n = item.nesting
    window = Window(
        n.cols.start + cols.start,
        n.rows.start + rows.start,
        cols.stop - cols.start,
        rows.stop - rows.start,
    )
    with read_errors(Path(src.name).name):
        raw = src.read(item.bands, window=window)
        valid = item.radiometry.valid(src, item.bands, window, item.layout, raw)
    data = np.stack([sc.forward(band) for sc, band in zip(item.scalings, raw)])
    return data.astype(np.float32), valid


def _guide_window(item: CoarseInput, rows: slice, cols: slice) -> tuple[slice, slice]:
    """Guide pixels under coarse footprint rows/cols."""
    grows, gcols = item.nesting.footprint()
    r = item.nesting.ratio
    return (
        slice(grows.start + rows.start * r, grows.start + rows.stop * r),
        slice(gcols.start + cols.start * r, gcols.start + cols.stop * r),
    )


def fit_scene(src, item: CoarseInput, guides: GuideStack, mtf: float) -> InjectionFit:
    """The regression of ``item``'s bands on the degraded guides over its footprint."""
    n = item.nesting
    size = (n.rows.stop - n.rows.start, n.cols.stop - n.cols.start)
    halo = guide_halo(n.ratio)
    acc = FitAccumulator(len(item.bands), guides.count)
    for w in plan_windows(size, None, halo, 1, core=max(1, DEFAULT_WINDOW // n.ratio)):
        coarse, valid = _read_coarse(src, item, *w.read)
        grows, gcols = _guide_window(item, *w.read)
        g, g_valid = guides.read(grows, gcols)
        g = fill_invalid(g, g_valid[None], passes=halo * n.ratio)
        low = degrade(g, n.ratio, mtf)
        valid = valid & coarse_validity(g_valid, n.ratio)[None]
        core = (slice(None), *w.core_in_read)
        acc.add(coarse[core], low[core], valid[core])
    return acc.solve()


def _load_guided_model(spec: str | None, bands: int, guides: int):
    name = spec or DEFAULT_MODEL
    try:
        model = load_model(name)
    except SRKitError as exc:
        raise GeosrError(f"--model {name}: {first_line(exc)}") from None
    if model.arch_name != "guided_resnet":
        raise GeosrError(
            f"--model {name}: a {model.arch_name} model is not a guided model; "
            "geosr sharpen --method cnn needs a guided_resnet (e.g. rs_guided)"
        )
    model_guide_layout(model, bands, guides)
    return model.to(memory_format=torch.channels_last)


def _output_dtype(dtypes: Sequence[str]) -> str:
    return str(np.result_type(*[np.dtype(d) for d in dtypes]))


def _fill_outside(dst, slots: list[int], nesting: Nesting, shape, dtype: str, fill) -> None:
    """Writes ``fill`` into the output bands ``slots`` outside the coarse footprint."""
    grows, gcols = nesting.footprint()
    height, width = shape
    strips = [
        (slice(0, grows.start), slice(0, width)),
        (slice(grows.stop, height), slice(0, width)),
        (slice(grows.start, grows.stop), slice(0, gcols.start)),
        (slice(grows.start, grows.stop), slice(gcols.stop, width)),
    ]
    for rows, cols in strips:
        for r0 in range(rows.start, rows.stop, 512):
            r1 = min(rows.stop, r0 + 512)
            if r1 <= r0 or cols.stop <= cols.start:
                continue
            block = np.full((len(slots), r1 - r0, cols.stop - cols.start), fill, dtype=dtype)
            window = Window(cols.start, r0, cols.stop - cols.start, r1 - r0)
            dst.write(block, indexes=slots, window=window)


def balanced_core(size: tuple[int, int], largest: int) -> tuple[int, int]:
    """Per axis, the core length that splits ``size`` into as few windows as ``largest``
    allows, all about equal (627 pixels at most 512: 2 windows of 314, not 512 + 115, whose
    equal-shape reads would cover the raster almost twice)."""
    largest = max(1, largest)
    return tuple(-(-n // -(-n // largest)) for n in size)


def _stream_coarse(
    src, item: CoarseInput, guides: GuideStack, dst, dtype, nodata, options, model, bar
) -> int:
    """Writes ``item``'s sharpened bands, window by window; returns the window count."""
    n = item.nesting
    r = n.ratio
    radius = max(model.receptive_radius) if model is not None else 0
    reach = guide_halo(r, radius)
    size = (n.rows.stop - n.rows.start, n.cols.stop - n.cols.start)
    windows = plan_windows(size, None, 2 * reach, 1, core=balanced_core(size, options.window // r))
    grows0, gcols0 = n.footprint()
    fill = fill_value(dtype, nodata)
    for w in windows:
        coarse, valid = _read_coarse(src, item, *w.read)
        grows, gcols = _guide_window(item, *w.read)
        g, g_valid = guides.read(grows, gcols)
        coarse = fill_invalid(coarse, valid, passes=reach)
        g = fill_invalid(g, g_valid[None], passes=reach * r)
        try:
            out = sharpen_block(
                coarse, g, r, options.method, item.fit, model, options.mtf, options.device
            )
        except SRKitError as exc:
            raise GeosrError(f"{item.path.name}: {first_line(exc)}") from None
        crow, ccol = w.core_in_read
        core = (slice(crow.start * r, crow.stop * r), slice(ccol.start * r, ccol.stop * r))
        core_valid = upsample_nearest(valid[:, crow, ccol], r) & g_valid[core][None]
        data = np.empty((len(item.bands), *core_valid.shape[1:]), dtype=dtype)
        for k, sc in enumerate(item.scalings):
            values = to_output_dtype(sc.inverse(out[k][core]), dtype, core_valid[k], nodata)
            values[~core_valid[k]] = fill
            data[k] = values
        rows, cols = w.core
        window = Window(
            gcols0.start + cols.start * r,
            grows0.start + rows.start * r,
            (cols.stop - cols.start) * r,
            (rows.stop - rows.start) * r,
        )
        dst.write(data, indexes=item.slots, window=window)
        if bar is not None:
            bar.update(1)
    return len(windows)


def _copy_band_metadata(src, band: int, dst, slot: int, fallback: str) -> None:
    tags = src.tags(band)
    if tags:
        dst.update_tags(slot, **tags)
    dst.set_band_description(slot, src.descriptions[band - 1] or fallback)
    if src.units[band - 1]:
        dst.set_band_unit(slot, src.units[band - 1])


def _band_label(path: Path, count: int, band: int) -> str:
    return path.stem if count == 1 else f"{path.stem} band {band}"


def sharpen(
    coarse_paths: Sequence[str | os.PathLike] | str | os.PathLike,
    guide_paths: Sequence[str | os.PathLike] | str | os.PathLike | None,
    output: str | os.PathLike,
    method: str = "cnn",
    options: SharpenOptions | None = None,
    *,
    extra_tags: dict[str, str] | None = None,
    **settings,
) -> SharpenResult:
    """Sharpens the coarse rasters onto the guide rasters' grid (see the module docstring).

    Args:
        coarse_paths: one or more coarse rasters (GeoTIFF, JP2, anything rasterio opens);
            every band of each is sharpened, in order. Or one product folder (a Sentinel-2
            ``.SAFE``, a Landsat collection folder; ``geosr.products``), which brings its
            own guides and radiometry.
        guide_paths: one or more guide rasters on one finer grid; their bands, in order,
            are the guides (``None`` or empty for a product).
        output: the GeoTIFF to write (the guide grid; coarse dtype and nodata).
        method: ``"cnn"`` (default), ``"detail-injection"`` or ``"bicubic"``.
        options: ``SharpenOptions``; ``settings`` override its fields (``model=...``,
            ``include_guide=True``, ``cog=True``, ``overwrite=True``...).
        extra_tags: more dataset tags (a batch's resume record, ``SR_BATCH``).

    Raises:
        GeosrError: grids that do not nest (a sub-pixel offset, a different CRS, a
            non-integer ratio), a missing or unreadable file, a model that does not fit;
            nothing is written then.
        OutputError: the output exists (without ``overwrite``) or is an input.
    """
    options = options or SharpenOptions()
    options = SharpenOptions(**{**options.__dict__, "method": method, **settings})
    check_method(options.method)
    if not 0 < options.mtf < 1:
        raise GeosrError(f"--mtf {options.mtf}: must be in (0, 1)")
    if options.budget <= 0:
        raise GeosrError(f"--budget {options.budget}: must be > 0 seconds")
    if options.self_supervised and options.method != "cnn":
        raise GeosrError("--self-supervised fine-tunes the CNN: use it with --method cnn")
    if options.window < 16:
        raise GeosrError(f"--window {options.window}: must be at least 16 output pixels")
    coarse_paths = [Path(p) for p in _as_list(coarse_paths)]
    guide_paths = [Path(p) for p in _as_list(guide_paths or [])]
    if not coarse_paths:
        raise GeosrError("no coarse raster given")
    product = find_product(coarse_paths[0]) if len(coarse_paths) == 1 else None
    if product is not None:
        if guide_paths:
            raise GeosrError(f"{coarse_paths[0]}: a product brings its own guides; drop --guide")
        coarse_paths, guide_paths = product.coarse, product.guides
    if not guide_paths:
        raise GeosrError("no guide raster given (--guide FINE.tif)")
    output = Path(output)
    check_not_input(output, [*coarse_paths, *guide_paths])
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give a file name")
    check_targets([output], overwrite=options.overwrite)
    with rasterio.Env(**GDAL_ENV), contextlib.ExitStack() as stack:
        notes: list[str] = list(product.notes) if product else []
        coarse_sources = [stack.enter_context(open_raster(p)) for p in coarse_paths]
        guide_sources = [stack.enter_context(open_raster(p)) for p in guide_paths]
        for src, path in zip(guide_sources, guide_paths):
            check_georeference(src, path.name)
        if product is not None and product.snap_guides:
            guide_sources, note = _snap_guides(stack, guide_sources, coarse_sources[0])
            if note:
                notes.append(f"{guide_paths[0].name}: {note}")

        def radiometry(path: Path) -> Radiometry:
            if product is None:
                return Radiometry()
            return Radiometry(product.physical.get(path), product.nodata)

        guides = GuideStack(
            guide_sources, [p.name for p in guide_paths], [radiometry(p) for p in guide_paths]
        )
        items, slot = [], 1
        for src, path in zip(coarse_sources, coarse_paths):
            check_georeference(src, path.name)
            if src.crs != guides.crs:
                raise GeosrError(
                    f"{path.name}: CRS {src.crs} differs from the guide's {guides.crs}; "
                    "reproject one onto the other first"
                )
            nesting = nest_grid(src.transform, src.shape, guides.transform, guides.shape, path.name)
            bands = list(range(1, src.count + 1))
            rad = radiometry(path)
            items.append(
                CoarseInput(
                    path, bands, rad.scalings(src, bands), nesting,
                    list(range(slot, slot + len(bands))), band_layout(src, bands),
                    radiometry=rad, name=product.names.get(path, "") if product else "",
                )
            )  # fmt: skip
            slot += len(bands)
        dtype = _output_dtype([src.dtypes[0] for src in coarse_sources])
        nodata = next((src.nodata for src in coarse_sources if src.nodata is not None), None)
        if nodata is None and product is not None:
            nodata = product.nodata
        guide_slots: list[int] = []
        if options.include_guide:
            for src, path in zip(guide_sources, guide_paths):
                if not np.can_cast(src.dtypes[0], dtype):
                    raise GeosrError(
                        f"--include-guide: {path.name} is {src.dtypes[0]}, which does not fit "
                        f"the output's {dtype}"
                    )
            guide_slots = list(range(slot, slot + guides.count))
        model = None
        model_name = options.method
        if options.method == "cnn":
            model = _load_guided_model(
                options.model, max(len(i.bands) for i in items), guides.count
            )
            model.to(options.device)
            model_name = model.card.name
        for src, item in zip(coarse_sources, items):
            if options.method != "bicubic":
                item.fit = fit_scene(src, item, guides, options.mtf)
            item.model = model
            if model is not None and options.self_supervised:
                item.model, note = self_supervised_model(
                    src, item, guides, model, options.budget, options.mtf
                )
                notes.append(note)
                if options.log:
                    options.log(note)
        count = slot - 1 + len(guide_slots)
        profile = creation_options(dtype, 512)
        profile.update(
            width=guides.shape[1],
            height=guides.shape[0],
            count=count,
            dtype=dtype,
            crs=guides.crs,
            transform=guides.transform,
            interleave="band",
        )
        if nodata is not None:
            profile["nodata"] = nodata
        tags = provenance_tags(
            model_name,
            max(i.nesting.ratio for i in items),
            "",
            method=options.method,
            coarse=",".join(p.name for p in coarse_paths),
            guide=",".join(p.name for p in guide_paths),
            ratios=",".join(str(i.nesting.ratio) for i in items),
            mtf=f"{options.mtf:g}",
        )
        tags.update(extra_tags or {})
        windows = 0
        with (
            atomic_output(output, overwrite=options.overwrite) as final,
            contextlib.ExitStack() as work_stack,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            current = final
            if options.cog:
                work = Path(
                    work_stack.enter_context(
                        tempfile.TemporaryDirectory(
                            dir=output.parent, prefix=f".{output.name}.", suffix=".partial"
                        )
                    )
                )
                current = work / "sharpened.tif"
            windows = _write(
                current, profile, coarse_sources, items, guides, guide_slots, dtype, nodata,
                options, tags,
            )  # fmt: skip
            if options.cog:
                to_cog(current, final, dtype)
    if options.log:
        for item in items:
            options.log(
                f"{item.path.name}: {len(item.bands)} band(s) x{item.nesting.ratio} by "
                f"{options.method} ({model_name})"
            )
    return SharpenResult(
        output,
        count,
        options.method,
        model_name,
        [i.nesting.ratio for i in items],
        windows,
        [i.fit for i in items if i.fit is not None],
        notes,
    )


def _write(
    path, profile, coarse_sources, items, guides, guide_slots, dtype, nodata, options, tags
) -> int:
    """Creates the output and streams every coarse file's bands (then the guides) into it."""
    from tqdm import tqdm

    fill = fill_value(dtype, nodata)
    windows = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.update_tags(**coarse_sources[0].tags())
        dst.update_tags(**tags)
        scales, offsets = list(dst.scales), list(dst.offsets)
        for src, item in zip(coarse_sources, items):
            for band, slot in zip(item.bands, item.slots):
                label = item.name or _band_label(item.path, src.count, band)
                _copy_band_metadata(src, band, dst, slot, label)
                scales[slot - 1], offsets[slot - 1] = item.radiometry.scale_offset(src, band)
        k = 0
        for src, path, rad in zip(guides.sources, guides.names, guides.radiometry):
            for band in range(1, src.count + 1):
                if guide_slots:
                    slot = guide_slots[k]
                    _copy_band_metadata(
                        src, band, dst, slot, _band_label(Path(path), src.count, band)
                    )
                    scales[slot - 1], offsets[slot - 1] = rad.scale_offset(src, band)
                k += 1
        dst.scales, dst.offsets = scales, offsets
        with tqdm(desc="windows", unit="win", disable=None if options.progress else True) as bar:
            for src, item in zip(coarse_sources, items):
                _fill_outside(dst, item.slots, item.nesting, guides.shape, dtype, fill)
                windows += _stream_coarse(
                    src, item, guides, dst, dtype, nodata, options, item.model, bar
                )
        if guide_slots:
            height, width = guides.shape
            for r0 in range(0, height, 512):
                window = Window(0, r0, width, min(512, height - r0))
                dst.write(guides.read_raw(window).astype(dtype), indexes=guide_slots, window=window)
    return windows


def _snap_guides(stack, guide_sources, coarse_src):
    """Guides read through a cubic ``WarpedVRT`` onto the grid that nests in the coarse
    grid (Landsat's pan is half a pan pixel off the MS grid); unchanged when they nest."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    first = guide_sources[0]
    m = ~first.transform @ coarse_src.transform
    ratio = _whole(m.a)
    if ratio is None or ratio < 2 or (_whole(m.c) is not None and _whole(m.f) is not None):
        return guide_sources, ""
    transform = coarse_src.transform @ Affine.scale(1 / ratio)
    height, width = coarse_src.height * ratio, coarse_src.width * ratio
    snapped = [
        stack.enter_context(
            WarpedVRT(
                src, crs=src.crs, transform=transform, width=width, height=height,
                resampling=Resampling.cubic, nodata=src.nodata if src.nodata is not None else 0,
            )
        )
        for src in guide_sources
    ]  # fmt: skip
    return snapped, (
        f"offset ({m.c:.3g}, {m.f:.3g}) pixels from the nesting grid; resampled (cubic) onto it"
    )


def _as_list(value) -> list:
    if isinstance(value, str | os.PathLike):
        return [value]
    return list(value)


SELF_SUPERVISED_MIN = 16  # coarse pixels per side the reduced (Wald) scene needs
SELF_SUPERVISED_CROP = 384  # at most this many coarse pixels per side are read for it


def self_supervised_model(
    src,
    item: CoarseInput,
    guides: GuideStack,
    model,
    budget: float,
    mtf: float = DEFAULT_MTF,
    seed: int = 0,
):
    """``model`` fine-tuned on the scene itself by Wald's protocol, or ``model`` unchanged.

    The central crop (at most ``SELF_SUPERVISED_CROP`` coarse pixels a side) of the coarse
    footprint and its guides are both degraded by the ratio; the copy learns to give the
    coarse bands back at their native resolution for ``budget`` seconds on the left 80 %
    of the crop. It is kept only when its L1 error on the right 20 % is lower than the
    starting model's; a scene too small to learn from (a reduced side under
    ``SELF_SUPERVISED_MIN`` pixels) keeps the starting model too.

    Returns:
        ``(model, note)``: the model to use and one line saying what happened.
    """

    n = item.nesting
    r = n.ratio
    height, width = n.rows.stop - n.rows.start, n.cols.stop - n.cols.start
    crop_h, crop_w = (min(side, SELF_SUPERVISED_CROP) // r * r for side in (height, width))
    if min(crop_h, crop_w) // r < SELF_SUPERVISED_MIN:
        return model, (
            f"{item.path.name}: too small for self-supervised fine-tuning "
            f"({width}x{height} coarse pixels at ratio {r}); the pretrained model is used"
        )
    r0, c0 = (height - crop_h) // 2, (width - crop_w) // 2
    rows, cols = slice(r0, r0 + crop_h), slice(c0, c0 + crop_w)
    coarse, valid = _read_coarse(src, item, rows, cols)
    g, g_valid = guides.read(*_guide_window(item, rows, cols))
    tuned, result = self_supervised_arrays(
        coarse, valid, g, g_valid, r, model, budget, mtf=mtf, seed=seed
    )
    return tuned, f"{item.path.name}: {result}"


def self_supervised_arrays(
    coarse: np.ndarray,
    valid: np.ndarray,
    guides: np.ndarray,
    guide_valid: np.ndarray,
    ratio: int,
    model,
    budget: float,
    mtf: float = DEFAULT_MTF,
    seed: int = 0,
):
    """Wald's-protocol fine-tuning of ``model`` on one scene held in memory.

    ``coarse`` ``(B, h, w)`` with its validity ``valid`` ``(B, h, w)``, ``guides``
    ``(G, h * ratio, w * ratio)`` with ``guide_valid`` ``(h * ratio, w * ratio)``, all in
    the model's normalized units. Both are degraded by ``ratio``; a copy of ``model`` learns
    for ``budget`` seconds to give ``coarse`` back on the left 80 % of the columns, and is
    kept only when its L1 error on the right 20 % is lower than ``model``'s.

    Returns:
        ``(model, note)``: the model to use and what happened, in a few words.
    """
    import copy

    from .guided_train import TrainItem, WaldScene, train_items, train_model

    r = ratio
    crop_h, crop_w = coarse.shape[1:]
    if min(crop_h, crop_w) // r < SELF_SUPERVISED_MIN:
        return model, (
            f"too small for self-supervised fine-tuning ({crop_w}x{crop_h} coarse pixels at "
            f"ratio {r}); the pretrained model is used"
        )
    # Wald's reduction needs whole coarse pixels of the reduced grid: cut the crop to a
    # multiple of the ratio (the fine-tuning only needs a representative part of the scene)
    crop_h, crop_w = (crop_h // r) * r, (crop_w // r) * r
    coarse, valid = coarse[:, :crop_h, :crop_w], valid[:, :crop_h, :crop_w]
    guides, guide_valid = (
        guides[:, : crop_h * r, : crop_w * r],
        guide_valid[: crop_h * r, : crop_w * r],
    )
    valid_all = valid.all(axis=0) & coarse_validity(guide_valid, r)
    coarse = fill_invalid(coarse, valid, passes=8)
    g = fill_invalid(guides, guide_valid[None], passes=8 * r)
    low_c, low_g = degrade(coarse, r, mtf), degrade(g, r, mtf)
    scenes = [
        WaldScene(f"b{k}", low_c[k : k + 1], low_g, coarse[k : k + 1], valid_all, r)
        for k in range(coarse.shape[0])
    ]
    items = train_items(scenes, model, mtf)  # one fit per band, on the whole reduced crop
    split = crop_w * 4 // 5  # the 80 / 20 column split, on the native coarse grid
    train = [TrainItem(i.x[:, :, :split], i.y[:, :, :split], i.valid[:, :split]) for i in items]
    check = [TrainItem(i.x[:, :, split:], i.y[:, :, split:], i.valid[:, split:]) for i in items]

    def check_loss(net) -> float:
        with torch.no_grad():
            losses = [
                float(
                    (
                        (net(torch.from_numpy(i.x[None]))[0] - torch.from_numpy(i.y)).abs()
                        * torch.from_numpy(i.valid)
                    ).sum()
                    / max(int(i.valid.sum()), 1)
                )
                for i in check
            ]
        return float(np.mean(losses))

    tuned = copy.deepcopy(model)
    before = check_loss(model)
    steps = train_model(
        tuned, train, 100000, batch=8, patch=48, lr=1e-4,
        lr_min=1e-4, seed=seed, time_limit=budget, log=None,
    )  # fmt: skip
    after = check_loss(tuned)
    if after < before:
        return tuned, (
            f"self-supervised fine-tuning ({steps} steps) lowered the "
            f"reduced-resolution L1 from {before:.4f} to {after:.4f}"
        )
    return model, (
        f"self-supervised fine-tuning did not help ({before:.4f} -> "
        f"{after:.4f}); the pretrained model is used"
    )
