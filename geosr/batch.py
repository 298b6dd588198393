"""``geosr enhance`` on many files: one job per raster through :mod:`common.batch`.

In process by default, or on a Dask ``LocalCluster`` (``--workers N``) or an existing
scheduler (``--scheduler ADDRESS``). A bad file fails alone with its one-line error; the
others finish. Each output carries its resume record in the ``SR_BATCH`` GeoTIFF tag (the
input's SHA-256, the model and the options), so a rerun skips every output that is
current without touching it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from srkit.common.batch import Job, JobResult, report_path, run_batch, use_model_cache, write_report

from .errors import GeosrError
from .plan import EnhanceOptions

BATCH_TAG = "SR_BATCH"
# EnhanceOptions fields that are not plain settings of the result
# (``command`` travels with the task instead: a rerun typed differently is still current)
_NOT_OPTIONS = ("log", "progress", "overwrite", "command")


def plain_options(options: EnhanceOptions) -> dict[str, Any]:
    """The settings of ``options`` as plain values (what travels to a worker)."""
    values = dataclasses.asdict(options)
    for name in _NOT_OPTIONS:
        values.pop(name)
    if isinstance(values["bands"], tuple):
        values["bands"] = list(values["bands"])
    return values


def options_from(plain: Mapping[str, Any], overwrite: bool) -> EnhanceOptions:
    """:class:`EnhanceOptions` back from :func:`plain_options` (no log, no progress bar)."""
    return EnhanceOptions(**plain, overwrite=overwrite, progress=False)


class EnhanceTask:
    """One raster of a ``geosr enhance`` batch (:class:`common.batch.BatchTask`).

    ``log`` (in-process runs only; it does not travel to workers): called with the model
    line of each file.
    """

    resumable = True

    def __init__(self, log: Callable[[str], None] | None = None, command: str | None = None):
        self.log = log
        self.command = command  # the SR_COMMAND tag

    def run(self, job: Job, overwrite: bool, record: Mapping[str, Any]) -> None:
        from . import models
        from .enhance import enhance_raster

        use_model_cache(models)  # one load per worker process
        options = dataclasses.replace(
            options_from(job.options, overwrite), log=self.log, command=self.command
        )
        tags = {BATCH_TAG: json.dumps(dict(record), sort_keys=True)}
        enhance_raster(job.input, job.output, options, extra_tags=tags)

    def recorded(self, output: Path) -> Mapping[str, Any] | None:
        import rasterio

        with rasterio.open(output) as dataset:
            text = dataset.tags().get(BATCH_TAG)
        return json.loads(text) if text else None

    def targets(self, job: Job) -> list[Path]:
        return [job.output]


def enhance_batch(
    files: Sequence[Path],
    targets: Sequence[Path],
    folder: Path | None,
    options: EnhanceOptions,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    report_csv: bool | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Enhances ``files`` into ``targets`` (from ``batch_targets``); returns each result.

    Creates ``folder`` if needed and removes it again when it stays empty. ``report_csv``
    (default: on for Dask runs) writes ``batch_report.csv`` into ``folder`` (else beside
    the first output). ``options.overwrite`` redoes current outputs too. In process, a
    bug (an exception other than a user error) still stops the batch.
    """
    plain = plain_options(options)
    jobs = [Job(Path(f), Path(t), plain) for f, t in zip(files, targets, strict=True)]
    task_type = functools.partial(EnhanceTask, command=options.command)
    return _run_jobs(task_type, jobs, folder, options, workers, scheduler, report_csv, on_result)


def _run_jobs(
    task_type, jobs, folder, options, workers, scheduler, report_csv, on_result
) -> list[JobResult]:
    """Runs ``jobs`` with a ``task_type(log)`` task, in process or on Dask; creates
    ``folder`` if needed (and removes it again when it stays empty) and writes the report
    (``report_csv``, default: on for Dask runs)."""
    on_dask = workers is not None or scheduler is not None
    if report_csv is None:
        report_csv = on_dask
    created = folder is not None and not folder.exists()
    if created:
        folder.mkdir()
    try:
        results = run_batch(
            task_type(None if on_dask else options.log),
            jobs,
            workers=workers,
            scheduler=scheduler,
            overwrite=options.overwrite,
            progress=options.progress,
            on_result=on_result,
        )
        if report_csv:
            write_report(report_path([j.output for j in jobs], folder), results)
    finally:
        if created and not any(folder.iterdir()):
            folder.rmdir()
    return results


# --------------------------------------------------------------------------- sharpen


def sharpen_target(product: Path, folder: Path) -> Path:
    """The output of one product in a ``geosr sharpen`` batch: ``FOLDER/<name>_sharp.tif``
    (``<name>`` without ``.SAFE``)."""
    name = product.name[:-5] if product.name.upper().endswith(".SAFE") else product.stem
    return folder / f"{name}_sharp.tif"


class SharpenTask:
    """One product (a Sentinel-2 ``.SAFE``, a Landsat folder) of a ``geosr sharpen`` batch.

    The record (the product's files' SHA-256, the method, model and options) goes into the
    output's ``SR_BATCH`` tag, so a rerun skips current outputs without touching them.
    """

    resumable = True

    def __init__(self, log: Callable[[str], None] | None = None):
        self.log = log

    def run(self, job: Job, overwrite: bool, record: Mapping[str, Any]) -> None:
        from . import sharpen as sharpen_module
        from .sharpen import SharpenOptions, sharpen

        use_model_cache(sharpen_module)  # one load per worker process
        settings = dict(job.options)
        method = settings.pop("method")
        options = SharpenOptions(**settings, overwrite=overwrite, log=self.log)
        tags = {BATCH_TAG: json.dumps(dict(record), sort_keys=True)}
        sharpen([job.input], None, job.output, method, options, extra_tags=tags)

    recorded = EnhanceTask.recorded

    def targets(self, job: Job) -> list[Path]:
        return [job.output]


def sharpen_batch(
    products: Sequence[Path],
    folder: Path,
    options,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    report_csv: bool | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Sharpens every product into ``folder`` (:func:`sharpen_target`), one job each, in
    process or on Dask as :func:`enhance_batch` does; returns each result."""
    plain = {
        name: getattr(options, name)
        for name in (
            "method", "model", "include_guide", "cog", "mtf", "window", "device",
            "self_supervised", "budget",
        )
    }  # fmt: skip
    jobs = [Job(Path(p), sharpen_target(Path(p), folder), plain) for p in products]
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.output in seen:
            raise GeosrError(
                f"{seen[job.output]} and {job.input} would write the same output "
                f"{job.output.name}; sharpen them into different folders"
            )
        seen[job.output] = job.input
    return _run_jobs(SharpenTask, jobs, folder, options, workers, scheduler, report_csv, on_result)
