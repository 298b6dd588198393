"""One raster too large for one machine's time: its row bands of windows on a Dask cluster.

``geosr enhance huge.tif --scheduler ADDRESS`` (or ``--workers N``) runs the same
pipeline as :func:`geosr.enhance.enhance_raster` (checks, plan, atomic output, ``--cog``
and ``--dst-crs``) with one stage replaced, the window streaming:

1. the client plans the output windows with the shared planner
   (:func:`geosr.stream.plan_stream`: block-aligned cores, halo ``2 r``) and groups them
   into row bands (:func:`geosr.stream.row_bands`), one Dask task each;
2. each task opens the input by path, plans the run itself (the plan is deterministic:
   the same model, bands and per-band scalings as on the client) and streams its band's
   windows into a tile GeoTIFF in a hidden work folder beside the output. Memory per
   task is that of ``geosr enhance``: a few windows, never the band or the raster;
3. the client copies the tiles block by block into the output, written with the same
   profile, metadata and tags as a single-machine run, so geometry and metadata are
   identical by construction and pixels equal within the tiling tolerance.

Why tiles copied block by block rather than a GDAL VRT and ``gdal_translate``: the tiles
are full-width row bands, so the copy is a plain sequential read and write (measured in
``docs/distributed.md``), and the output keeps geosr's whole metadata contract (band
tags, descriptions, colour tables, internal masks, ``SR_*`` tags) without a second pass
that would rewrite the header of a COG. The client never holds more than one block.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.windows import Window
from srkit.common.batch import Job, run_batch, use_model_cache
from srkit.common.io import atomic_output

from .batch import options_from, plain_options
from .enhance import EnhanceResult, enhance_raster
from .errors import GeosrError
from .georef import Georeference, check_georeference
from .outputs import output_profile, output_tags
from .plan import EnhanceOptions, EnhancePlan, plan_enhance, select_bands
from .raster import GDAL_ENV, block_size, copy_metadata, open_raster
from .stream import plan_stream, row_bands, stream_windows


def band_profile(profile: Mapping[str, Any], rows: tuple[int, int]) -> dict[str, Any]:
    """The output profile cut to the output rows ``rows`` (same columns, shifted origin)."""
    cut = dict(profile, height=rows[1] - rows[0])
    if cut.get("transform") is not None:
        cut["transform"] = cut["transform"] @ Affine.translation(0, rows[0])
    return cut


class BandTask:
    """One row band of one raster (:class:`common.batch.BatchTask`): writes its tile."""

    resumable = False  # a band is redone on every run (its tile is temporary)

    def run(self, job: Job, overwrite: bool, record: Mapping[str, Any]) -> tuple[int, int, int]:
        from . import models

        use_model_cache(models)
        plain = dict(job.options)
        rows = tuple(plain.pop("rows"))
        # the parent's --clip bounds: no band re-measures the whole input's range
        bounds = [None if b is None else tuple(b) for b in plain.pop("clip_bounds")]
        options = options_from({**plain, "clip": "none"}, overwrite=True)
        name = job.input.name
        with rasterio.Env(**GDAL_ENV), open_raster(job.input) as src:
            georef = check_georeference(src, name, allow_no_crs=options.allow_no_crs)
            plan, _ = plan_enhance(src, name, options, [], select_bands(src, name, options))
            plan.clip_bounds = bounds
            block = block_size(plan.scale, options.block)
            profile = band_profile(output_profile(src, plan, georef, block), rows)
            with (
                atomic_output(job.output, overwrite=True) as temporary,
                rasterio.open(temporary, "w", **profile) as dst,
            ):
                return stream_windows(src, name, plan, dst, block, options, rows=rows)

    def recorded(self, output: Path) -> None:
        return None

    def targets(self, job: Job) -> list[Path]:
        return [job.output]


@dataclasses.dataclass
class DaskWriter:
    """A ``write_sr`` replacement for :func:`enhance_raster` that runs on Dask."""

    workers: int | None = None
    scheduler: str | None = None
    progress: bool = False

    def __call__(
        self,
        src,
        name: str,
        plan: EnhancePlan,
        choice,
        georef: Georeference,
        path: Path,
        options: EnhanceOptions,
    ) -> tuple[int, int, int]:
        block = block_size(plan.scale, options.block)
        reads = plan_stream((src.height, src.width), plan.scale, block, plan.radius, options)
        bands = row_bands(reads)
        plain = plain_options(options)
        profile = output_profile(src, plan, georef, block)
        path = Path(path)
        with tempfile.TemporaryDirectory(
            dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
        ) as work:
            jobs = [
                Job(
                    Path(src.name),
                    Path(work) / f"rows{k:06d}.tif",
                    {**plain, "rows": list(b), "clip_bounds": plan.clip_bounds},
                )
                for k, b in enumerate(bands)
            ]
            results = run_batch(
                BandTask(),
                jobs,
                workers=self.workers,
                scheduler=self.scheduler,
                overwrite=True,
                progress=self.progress,
                unit="band",
            )
            failed = [r for r in results if r.failed]
            if failed:
                raise GeosrError(f"{name}: {len(failed)} row band(s) failed: {failed[0].error}")
            with rasterio.open(path, "w", **profile) as dst:
                copy_metadata(src, dst, plan.bands, output_tags(src, plan, choice, options))
                assemble(dst, [(job.output, b) for job, b in zip(jobs, bands)], plan)
        counts = [r.value for r in results]
        return len(reads), sum(c[1] for c in counts), sum(c[2] for c in counts)


def assemble(dst, tiles: list[tuple[Path, tuple[int, int]]], plan: EnhancePlan) -> None:
    """Copies each band tile into ``dst`` at its rows, block by block (data and mask)."""
    write_mask = plan.layout.mask_kind == "mask"
    for tile, (start, _) in tiles:
        with rasterio.open(tile) as band:
            for _, window in band.block_windows(1):
                target = Window(window.col_off, window.row_off + start, window.width, window.height)
                dst.write(band.read(window=window), window=target)
                if write_mask:
                    dst.write_mask(band.dataset_mask(window=window), window=target)


def enhance_raster_distributed(
    input_path: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: EnhanceOptions | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
) -> EnhanceResult:
    """:func:`geosr.enhance.enhance_raster` with its row bands on Dask (module docstring).

    ``workers``: a LocalCluster of that many processes; ``scheduler``: an existing
    cluster's address. Inputs, outputs and the work folder beside the output must sit on
    storage every worker sees.
    """
    options = options or EnhanceOptions()
    writer = DaskWriter(workers, scheduler, progress=options.progress)
    return enhance_raster(input_path, output, options, writer=writer)
