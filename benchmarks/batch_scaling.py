"""Files per minute of a ``medsr enhance`` batch: serial, then 1, 2 and 4 Dask workers.

Writes ``--files`` seeded thick-slice volumes (``--shape``, 0.9 x 0.9 x 3 mm), then runs
the same batch through :func:`common.batch.run_batch` in process (serial) and on a
``LocalCluster`` of each ``--workers`` count (one thread per worker; torch threads from
the thread budget, so workers x threads <= cores). The cluster start (with each worker's
imports of torch and medsr) is timed apart from the batch. The per-task overhead is the round trip of an empty task through the same
runner on one worker (scheduling, serialization, the report row), plus hashing the input
for the resume record; it is compared with the serial seconds of a typical file::

    .venv/bin/python -m benchmarks.batch_scaling
    .venv/bin/python -m benchmarks.batch_scaling --files 16 --workers 1 2 4 8
    .venv/bin/python -m benchmarks.batch_scaling --assembly 6144   # geosr's tile mosaic

``--assembly SIZE`` instead times the two ways to mosaic one raster's row-band tiles
(docs/distributed.md): the block copy geosr uses, and a GDAL VRT + CreateCopy.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.harness import markdown_header, markdown_row


class EmptyTask:
    """A batch task that writes nothing: what the runner itself costs per file."""

    resumable = False

    def run(self, job, overwrite, record):
        return None

    def recorded(self, output):
        return None

    def targets(self, job):
        return [job.output]


def warm_up() -> None:
    """What a worker imports before its first file (timed with the cluster start)."""
    import srkit.medsr.files  # noqa: F401
    import torch  # noqa: F401


def write_inputs(folder: Path, count: int, shape: tuple[int, int, int]) -> list[Path]:
    import nibabel as nib
    from scipy.ndimage import gaussian_filter

    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    files = []
    for k in range(count):
        rng = np.random.default_rng(k)
        data = gaussian_filter(rng.random(shape), 2.0).astype(np.float32) * 1000
        path = folder / f"v{k:03d}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), str(path))
        files.append(path)
    return files


def run_once(files, out: Path, workers: int | None, model: str | None):
    """(cluster start s, batch s, results) of one batch into a fresh ``out``."""
    from srkit.common.batch import dask_client, run_batch
    from srkit.medsr.files import EnhanceTask, batch_jobs

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    jobs = batch_jobs(files, out, {"model": model})
    if workers is None:
        start = time.perf_counter()
        results = run_batch(EnhanceTask(), jobs)
        return 0.0, time.perf_counter() - start, results
    start = time.perf_counter()
    with dask_client(workers=workers) as client:
        client.wait_for_workers(workers)
        client.run(warm_up)  # imports torch and medsr: start-up, not per-file cost
        started = time.perf_counter() - start
        begin = time.perf_counter()
        results = run_batch(EnhanceTask(), jobs, scheduler=client.scheduler.address)
        return started, time.perf_counter() - begin, results


def overhead_per_task(files, out: Path, count: int) -> tuple[float, float]:
    """(runner round trip s, input hash s) per task, on one worker."""
    from srkit.common.batch import Job, dask_client, run_batch, sha256_file

    jobs = [Job(files[k % len(files)], out / f"empty{k}", {}) for k in range(count)]
    with dask_client(workers=1) as client:
        run_batch(EmptyTask(), jobs[:4], scheduler=client.scheduler.address)  # warm up
        begin = time.perf_counter()
        run_batch(EmptyTask(), jobs, scheduler=client.scheduler.address)
        trip = (time.perf_counter() - begin) / count
    begin = time.perf_counter()
    for path in files:
        sha256_file(path)
    return trip, (time.perf_counter() - begin) / len(files)


VRT_SOURCE = """    <SimpleSource>
      <SourceFilename relativeToVRT="0">{path}</SourceFilename>
      <SourceBand>{band}</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>
      <DstRect xOff="0" yOff="{row}" xSize="{width}" ySize="{height}"/>
    </SimpleSource>
"""


def write_vrt(path: Path, tiles, width: int, height: int, count: int, dtype: str) -> None:
    """A GDAL VRT mosaic of full-width row-band tiles ``[(file, first row, rows)]``."""
    gdal_type = {"uint8": "Byte", "uint16": "UInt16", "float32": "Float32"}[dtype]
    bands = []
    for band in range(1, count + 1):
        sources = "".join(
            VRT_SOURCE.format(path=t, band=band, width=width, height=h, row=r) for t, r, h in tiles
        )
        bands.append(
            f'  <VRTRasterBand dataType="{gdal_type}" band="{band}">\n{sources}  </VRTRasterBand>\n'
        )
    path.write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n{"".join(bands)}</VRTDataset>\n'
    )


def assembly_times(root: Path, size: int, band_rows: int) -> dict[str, float]:
    """Seconds to mosaic full-width row-band tiles into one GeoTIFF, two ways.

    ``block copy``: what ``geosr.distributed`` does (read each tile block, write it into
    a dataset created with the output profile). ``VRT + translate``: a VRT of the tiles,
    then ``rasterio.shutil.copy`` (GDAL CreateCopy, as ``gdal_translate``).
    """
    import rasterio
    import rasterio.shutil
    from rasterio.windows import Window
    from srkit.geosr.raster import creation_options

    profile = dict(creation_options("uint8", 512), width=size, count=3, dtype="uint8")
    rng = np.random.default_rng(0)
    base = np.repeat(np.repeat(rng.integers(0, 255, (3, size // 16, size // 16)), 16, 1), 16, 2)
    tiles = []
    for row in range(0, size, band_rows):
        rows = min(band_rows, size - row)
        path = root / f"tile{row:06d}.tif"
        with rasterio.open(path, "w", **dict(profile, height=rows)) as dst:
            dst.write(base[:, row : row + rows].astype(np.uint8))
        tiles.append((path, row, rows))
    times = {}
    begin = time.perf_counter()
    with rasterio.open(root / "copy.tif", "w", **dict(profile, height=size)) as dst:
        for path, row, _ in tiles:
            with rasterio.open(path) as tile:
                for _, w in tile.block_windows(1):
                    target = Window(w.col_off, w.row_off + row, w.width, w.height)
                    dst.write(tile.read(window=w), window=target)
    times["block copy"] = time.perf_counter() - begin
    begin = time.perf_counter()
    write_vrt(root / "mosaic.vrt", tiles, size, size, 3, "uint8")
    options = {k: v for k, v in profile.items() if k not in ("width", "count", "dtype")}
    rasterio.shutil.copy(root / "mosaic.vrt", root / "translate.tif", **options)
    times["VRT + translate"] = time.perf_counter() - begin
    with rasterio.open(root / "copy.tif") as a, rasterio.open(root / "translate.tif") as b:
        if not np.array_equal(a.read(), b.read()):
            raise SystemExit("the two mosaics differ")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 16])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--model", default=None, help="default: medsr's choice for the scan")
    parser.add_argument(
        "--assembly",
        type=int,
        default=0,
        metavar="SIZE",
        help="only time the mosaic of one SIZE x SIZE raster's row-band tiles (geosr)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.assembly:
        with tempfile.TemporaryDirectory(prefix="batch_scaling.") as tmp:
            times = assembly_times(Path(tmp), args.assembly, 512)
        print(f"{args.assembly} x {args.assembly} x 3 uint8 output, row bands of 512 rows")
        print(markdown_header(("assembly", "seconds"), "lr"))
        for name, seconds in times.items():
            print(markdown_row((name, f"{seconds:.2f}")))
        return 0
    import torch
    from srkit.common.resources import available_cores

    torch.set_num_threads(1)  # serial: one thread (the shared machine); workers: the budget

    print(
        f"{platform.machine()}, {available_cores()} cores, torch {torch.__version__},"
        f" {args.files} files of {'x'.join(map(str, args.shape))} voxels (0.9x0.9x3 mm),"
        f" model {args.model or 'default'}; serial on 1 torch thread, each worker on"
        f" cores // workers"
    )
    with tempfile.TemporaryDirectory(prefix="batch_scaling.") as tmp:
        root = Path(tmp)
        files = write_inputs(root / "in", args.files, tuple(args.shape))
        rows, reference, typical = [], None, None
        for workers in [None, *args.workers]:
            started, seconds, results = run_once(files, root / "out", workers, args.model)
            failed = [r.error for r in results if r.failed]
            if failed:
                raise SystemExit(f"batch failed: {failed[0]}")
            task_seconds = [r.seconds for r in results]
            if workers is None:
                reference = seconds
                typical = float(np.median(task_seconds))
            rows.append(
                (
                    "serial (in process)" if workers is None else f"{workers} worker(s)",
                    f"{started:.1f}",
                    f"{seconds:.1f}",
                    f"{60 * len(files) / seconds:.1f}",
                    f"{reference / seconds:.2f}",
                    f"{np.median(task_seconds):.2f}",
                )
            )
        trip, hashing = overhead_per_task(files, root / "out", 40)
    print()
    print(
        markdown_header(
            (
                "run",
                "cluster start (s)",
                "batch (s)",
                "files/min",
                "speed-up vs serial",
                "median s per file (in task)",
            ),
            "lrrrrr",
        )
    )
    for row in rows:
        print(markdown_row(row))
    overhead = trip + hashing
    print()
    print(
        f"per-task overhead: {1000 * trip:.1f} ms runner round trip + {1000 * hashing:.2f} ms"
        f" input hash = {1000 * overhead:.1f} ms, {100 * overhead / typical:.2f} % of a typical"
        f" file ({typical:.2f} s serial); limit 5 %"
    )
    return 0 if overhead < 0.05 * typical else 1


if __name__ == "__main__":
    raise SystemExit(main())
