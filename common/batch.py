"""One batch runner for both front ends: in process, on a ``LocalCluster``, or on a scheduler.

A batch is a list of :class:`Job` (input path, output path, plain options). A front end
describes how to run one job with a :class:`BatchTask`; :func:`run_batch` runs them all:

- **where**: in this process, one after the other (the default: a single file costs
  nothing extra); on a Dask ``LocalCluster`` of ``workers`` processes; or on an existing
  Dask scheduler at ``scheduler`` (``tcp://host:8786``). One Dask task per file;
- **task contract**: a task gets paths and plain options only, never arrays, and reads
  and writes by path (so inputs and outputs sit on storage every worker sees); each
  worker process loads a model once (:func:`cached_load_model`) and runs torch on
  ``cores // worker threads on its machine`` threads
  (:func:`common.resources.thread_budget`); outputs
  are written atomically by the front end (``common.io.atomic_outputs``);
- **faults**: a bad input (:class:`~common.errors.SRKitError` or ``OSError``) fails only
  its own file, with its one-line error; a worker that dies has its task retried
  elsewhere by Dask (at most :data:`MAX_RETRIES` times); Ctrl-C cancels every pending
  task and removes the batch's temporaries, so no partial output is left;
- **resume**: a job is skipped, without touching any file, when its output exists and
  the output's provenance (the front end's sidecar or tags) holds the same
  :func:`job_record`: the input's SHA-256, the model and the options. Missing or failed
  outputs are redone; ``overwrite`` redoes everything;
- **report**: :func:`write_report` writes one CSV row per file (status, seconds, worker,
  error) and a tqdm bar counts files.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ._version import __version__
from .errors import SRKitError, first_line
from .io import PARTIAL_MARK, atomic_write_text
from .resources import apply_thread_budget

MAX_RETRIES = 2  # Dask retries of a task whose worker died (the "at most 2")
REPORT_NAME = "batch_report.csv"
REPORT_FIELDS = ("input", "output", "status", "seconds", "worker", "error")
MODEL_CACHE_SIZE = 4  # models kept per worker process
# options that do not change an output (the tiling contract): a rerun that only changes
# them still resumes
RESULT_INVARIANT = ("device", "tile", "batch_size", "progress", "command_line")


class BatchError(SRKitError):
    """A batch that cannot start: no scheduler at the address, bad ``--workers``."""


@dataclass(frozen=True)
class Job:
    """One file of a batch: where it is read, where it is written, and how.

    ``options`` holds plain values only (str, int, float, bool, None, lists): it travels
    to the workers and into the provenance record.
    """

    input: Path
    output: Path
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class JobResult:
    """What became of one job: ``status`` is ``ok``, ``skipped`` (resumed) or ``failed``."""

    job: Job
    status: str
    seconds: float = 0.0
    worker: str = "local"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    value: Any = None  # what the task's run returned (counts, a summary)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


class BatchTask(Protocol):
    """How a front end runs one job; an instance must pickle (a module-level class).

    ``resumable``: whether outputs carry a resume record (False: every job runs, and no
    input is hashed, as for the row bands of one raster).
    """

    resumable: bool

    def run(self, job: Job, overwrite: bool, record: Mapping[str, Any]) -> Any:
        """Writes ``job.output`` (atomically), storing ``record`` in its provenance."""

    def recorded(self, output: Path) -> Mapping[str, Any] | None:
        """The record stored with an existing output by :meth:`run`, else None."""

    def targets(self, job: Job) -> Sequence[Path]:
        """Every path :meth:`run` writes (the output, its sidecar): for the clean-up."""


# --- per worker process: threads and models ------------------------------------------


_MODELS: OrderedDict[tuple, Any] = OrderedDict()
_MODELS_LOCK = threading.Lock()


def _model_key(spec: Any) -> tuple:
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():  # a weights file: a new file under the same name is a new model
        stat = path.stat()
        return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return (text,)


def cached_load_model(spec: Any) -> Any:
    """``common.load_model`` that keeps the last few models of this process.

    A model instance is returned as it is. The cache is per process, so each Dask worker
    loads a model once however many files it enhances.
    """
    from .models import SRModule, load_model

    if isinstance(spec, SRModule):
        return spec
    key = _model_key(spec)
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
    model = load_model(spec)
    with _MODELS_LOCK:
        _MODELS[key] = model
        while len(_MODELS) > MODEL_CACHE_SIZE:
            _MODELS.popitem(last=False)
    return model


def use_model_cache(*modules: Any) -> None:
    """Makes each front-end module's ``load_model`` the process cache (idempotent).

    The front ends look ``load_model`` up as a module global at call time; a batch task
    calls this in the process that runs it, so every later load there is cached.
    """
    for module in modules:
        if getattr(module, "load_model", None) is not cached_load_model:
            module.load_model = cached_load_model


# --- resume ---------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks); of a folder (a DICOM series, a
    Sentinel-2 ``.SAFE``), of every file's relative path and hash, in sorted order."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(item.relative_to(path).as_posix().encode() + b"\0")
            digest.update(sha256_file(item).encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def job_record(job: Job) -> dict[str, Any]:
    """What makes an output current: input hash, model (weights hash for a file), options.

    Options in :data:`RESULT_INVARIANT` are left out. The record is JSON-normalized
    (tuples become lists), so it compares equal to one read back from a sidecar.
    """
    import json

    options = {k: job.options[k] for k in sorted(job.options) if k not in RESULT_INVARIANT}
    record: dict[str, Any] = {
        "input_sha256": sha256_file(job.input),
        "options": options,
        "version": __version__,
    }
    model = job.options.get("model")
    if model is not None and Path(str(model)).expanduser().is_file():
        record["model_sha256"] = sha256_file(Path(str(model)).expanduser())
    return json.loads(json.dumps(record))


def is_current(task: BatchTask, job: Job, record: Mapping[str, Any]) -> bool:
    """True when ``job.output`` exists and its provenance holds ``record`` (reads only)."""
    if not os.path.lexists(job.output):
        return False
    try:
        stored = task.recorded(job.output)
    except (OSError, ValueError):
        return False
    return stored is not None and dict(stored) == dict(record)


# --- one job, wherever it runs ----------------------------------------------------------


def _worker_name() -> tuple[str, Any]:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return "local", None
    return str(worker.name if worker.name is not None else worker.address), worker


def _error_message(job: Job, exc: BaseException) -> str:
    """The one-line error of a failed file, naming the file."""
    message = first_line(exc)
    if str(job.input) in message or job.input.name in message:
        return message
    return f"{job.input}: {message}"


def run_job(
    task: BatchTask,
    job: Job,
    overwrite: bool = False,
    host_threads: Mapping[str, int] | None = None,
) -> JobResult:
    """Runs one job (the Dask task, and the in-process step); a user error fails it alone.

    On a Dask worker, torch gets :func:`common.resources.thread_budget` threads for the
    worker threads of its machine (``host_threads``: host -> total threads) and warnings are returned in
    the result (the client prints them). Any other exception is a bug and propagates.
    """
    start = time.perf_counter()
    name, worker = _worker_name()
    caught: list[warnings.WarningMessage] = []
    with contextlib.ExitStack() as stack:
        if worker is not None:
            from distributed.comm import get_address_host

            host = get_address_host(worker.address)
            apply_thread_budget((host_threads or {}).get(host, worker.state.nthreads))
            caught = stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
        value = None
        try:
            record = job_record(job) if task.resumable else {}
            if task.resumable and not overwrite and is_current(task, job, record):
                status, error = "skipped", None
            else:
                value = task.run(job, overwrite, record)
                status, error = "ok", None
        except (SRKitError, OSError) as exc:
            status, error = "failed", _error_message(job, exc)
    return JobResult(
        job,
        status,
        round(time.perf_counter() - start, 3),
        name,
        error,
        [str(w.message) for w in caught],
        value,
    )


def remove_partials(paths: Sequence[Path]) -> None:
    """Removes the temporaries ``common.io`` leaves when a process is killed mid-write.

    Only names of the form ``.<target name>.<random>.partial...`` (and ``.old`` folders
    of a folder replacement) beside each target are removed.
    """
    import shutil

    for path in paths:
        folder = path.parent
        if not folder.is_dir():
            continue
        prefix = f".{path.name}."
        for entry in folder.iterdir():
            name = entry.name
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if PARTIAL_MARK in rest or rest.endswith(".old"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        entry.unlink()


# --- where the jobs run -----------------------------------------------------------------


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client on ``scheduler``, or on a new ``LocalCluster`` of ``workers``.

    Yields None when neither is given (run in process). The LocalCluster has one thread
    per worker process, listens on 127.0.0.1 only, lets a task's workers die
    :data:`MAX_RETRIES` times before the task fails, and is closed on exit (its workers
    are stopped, also on Ctrl-C).
    """
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise BatchError("--workers starts a local cluster; with --scheduler pass only one")
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise BatchError(f"--scheduler {scheduler}: no Dask scheduler there ({exc})") from None
        with client:
            yield client
        return
    if workers < 1:
        raise BatchError(f"--workers must be >= 1, got {workers}")
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": MAX_RETRIES}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def host_threads(client: Any) -> dict[str, int]:
    """Total worker threads per host of ``client``'s cluster (for :func:`thread_budget`)."""
    from distributed.comm import get_address_host

    totals: dict[str, int] = {}
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        host = get_address_host(address)
        totals[host] = totals.get(host, 0) + int(info.get("nthreads", 1))
    return totals


def _bar(total: int, progress: bool, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=unit + "s", unit=unit, disable=None if progress else True)


def run_batch(
    task: BatchTask,
    jobs: Sequence[Job],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_result: Callable[[JobResult], None] | None = None,
    unit: str = "file",
) -> list[JobResult]:
    """Runs every job (see the module docstring); returns the results in job order.

    ``on_result`` is called as each job ends (in completion order). In process, a bug
    (any exception other than a user error) stops the batch; on Dask it fails its file
    with ``internal error`` and the batch goes on. Temporaries of killed or interrupted
    tasks are removed before returning, also on Ctrl-C (in process and on a LocalCluster,
    whose workers are stopped first). Interrupted on an existing ``scheduler``, pending
    tasks are cancelled and tasks already running finish or fail on their own, each
    writing a whole output or nothing.
    """
    results: dict[int, JobResult] = {}

    def done(index: int, result: JobResult) -> None:
        results[index] = result
        bar.update(1)
        if on_result:
            on_result(result)

    with _bar(len(jobs), progress, unit) as bar:
        try:
            with dask_client(workers, scheduler) as client:
                if client is None:
                    for index, job in enumerate(jobs):
                        done(index, run_job(task, job, overwrite))
                else:
                    _run_on_dask(client, task, jobs, overwrite, done)
        except BaseException:
            # interrupted on an existing cluster, tasks that had started may still be
            # writing: their own atomic writes clean up after them, so leave them be
            if scheduler is None:
                remove_partials([p for job in jobs for p in task.targets(job)])
            raise
        # every task has ended: what is left was written by a worker that died
        remove_partials([p for job in jobs for p in task.targets(job)])
    return [results[i] for i in range(len(jobs))]


def _run_on_dask(client, task, jobs, overwrite, done) -> None:
    from distributed import as_completed

    threads = host_threads(client)
    futures = {
        client.submit(
            run_job, task, job, overwrite, threads, pure=False, retries=MAX_RETRIES
        ): index
        for index, job in enumerate(jobs)
    }
    try:
        for future in as_completed(list(futures)):
            index = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a bug or workers that kept dying
                job = jobs[index]
                result = JobResult(
                    job,
                    "failed",
                    error=f"{job.input}: internal error: {type(exc).__name__}: {first_line(exc)}",
                )
            done(index, result)
    except BaseException:  # Ctrl-C: nothing more starts; the caller removes temporaries
        client.cancel(list(futures), force=True)
        raise


# --- command line -----------------------------------------------------------------------


def cluster_options(command: Callable) -> Callable:
    """Adds ``--workers N``, ``--scheduler ADDRESS`` and ``--report/--no-report`` to a
    click command (its function gets ``workers``, ``scheduler`` and ``report_csv``)."""
    import click

    options = [
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="Run on a local Dask cluster of N worker processes: one task per file (geosr:"
            " per row band of a single raster); see docs/distributed.md.",
        ),
        click.option(
            "--scheduler",
            default=None,
            help="Run on the Dask scheduler at ADDRESS (tcp://host:8786), as --workers does.",
        ),
        click.option(
            "--report/--no-report",
            "report_csv",
            default=None,
            help=f"Batch: write {REPORT_NAME} in the output folder (default: with"
            " --workers/--scheduler).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# --- report -----------------------------------------------------------------------------


def report_path(outputs: Sequence[Path], folder: str | os.PathLike | None = None) -> Path:
    """``<folder>/batch_report.csv``; without a folder, the first output's folder."""
    base = Path(folder) if folder is not None else outputs[0].parent
    return base / REPORT_NAME


def format_report(results: Sequence[JobResult]) -> str:
    """The CSV text: one row per file with status, seconds, worker and error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPORT_FIELDS)
    for r in results:
        writer.writerow(
            [r.job.input, r.job.output, r.status, f"{r.seconds:.3f}", r.worker, r.error or ""]
        )
    return buffer.getvalue()


def write_report(path: str | os.PathLike, results: Sequence[JobResult]) -> Path:
    """Writes :func:`format_report` to ``path`` atomically (replacing a previous report)."""
    return atomic_write_text(path, format_report(results), overwrite=True)


def read_report(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a report, as dicts keyed by :data:`REPORT_FIELDS`."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
