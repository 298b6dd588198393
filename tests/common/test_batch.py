"""The batch runner (common.batch) through ``medsr enhance``: in process, on a LocalCluster,
and on a ``dask scheduler`` with two ``dask worker`` processes on 127.0.0.1, one of which is
killed mid-batch. Every process a test starts, it stops.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from srkit.common import batch
from srkit.common.batch import Job, read_report, remove_partials, run_batch
from srkit.medsr.cli import main
from srkit.medsr.files import EnhanceTask, sidecar_path

from tests.data.nifti import oblique_affine, phantom, write_nifti

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FILES = 8  # volumes per batch (>= 6)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def make_batch(folder: Path, count: int = FILES) -> Path:
    """``count`` small thick-slice volumes (0.9 x 0.9 x 3 mm, float32), seeded."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        data = phantom((32, 32, 8), seed=k) * 1000
        write_nifti(
            folder / f"v{k}.nii.gz", data, oblique_affine((0.9, 0.9, 3.0)), dtype=np.float32
        )
    return folder


def voxels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def partials(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_batch(tmp_path_factory.mktemp("batch") / "in")


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory):
    """The in-process reference run (no Dask)."""
    out = tmp_path_factory.mktemp("local") / "out"
    result = run("enhance", inputs, "-o", out)
    assert result.exit_code == 0, result.output
    return out


# --- in process: resume, overwrite, helpers (no cluster) ------------------------------------


def test_rerun_skips_current_outputs_untouched_and_overwrite_redoes_them(inputs, local_run):
    before = snapshot(local_run)
    values = {name: voxels(local_run / name) for name in before if name.endswith(".nii.gz")}
    assert sorted(before) == sorted(
        f"v{k}.{ext}" for k in range(FILES) for ext in ("json", "nii.gz")
    )
    result = run("enhance", inputs, "-o", local_run, "--report")
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped: ") == FILES
    assert f"{FILES} of {FILES} file(s) enhanced ({FILES} already up to date)" in result.output
    after = snapshot(local_run)
    after.pop(batch.REPORT_NAME)
    assert after == before  # bytes and mtimes
    rows = read_report(local_run / batch.REPORT_NAME)
    assert [r["status"] for r in rows] == ["skipped"] * FILES
    # other options: the output is not current, and is refused without --overwrite
    result = run("enhance", inputs, "-o", local_run, "--dtype", "keep")
    assert result.exit_code == 2
    assert result.stderr.count("already exists") == FILES
    unchanged = snapshot(local_run)
    unchanged.pop(batch.REPORT_NAME)
    assert unchanged == before
    result = run("enhance", inputs, "-o", local_run, "--overwrite", "--no-report")
    assert result.exit_code == 0, result.output
    redone = snapshot(local_run)
    assert all(redone[name][1] != before[name][1] for name in before)
    for name, value in values.items():
        np.testing.assert_allclose(voxels(local_run / name), value, rtol=0, atol=1e-3)


def test_sidecar_holds_the_resume_record(inputs, local_run):
    prov = json.loads(sidecar_path(local_run / "v0.nii.gz").read_text())
    record = prov["batch"]
    assert record["input_sha256"] == batch.sha256_file(inputs / "v0.nii.gz")
    assert record["options"]["model"] is None and record["options"]["dtype"] == "float32"
    assert "device" not in record["options"]  # result-invariant options are left out


def test_model_cache_loads_once_per_process():
    first = batch.cached_load_model("bspline")
    assert batch.cached_load_model("bspline") is first
    assert batch.cached_load_model("bicubic") is not first


def test_remove_partials_removes_only_the_targets_temporaries(tmp_path):
    target = tmp_path / "a.nii.gz"
    for name in (".a.nii.gz.x1.partial.nii.gz", ".a.json.x2.partial.json", ".a.nii.gz.y.old"):
        (tmp_path / name).write_text("")
    for name in ("a.nii.gz", ".b.nii.gz.z.partial.nii.gz", "a.partial.txt"):
        (tmp_path / name).write_text("keep")
    remove_partials([target, tmp_path / "a.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".b.nii.gz.z.partial.nii.gz",
        "a.nii.gz",
        "a.partial.txt",
    ]


class SlowEnhanceTask(EnhanceTask):
    """A file that takes 1.5 s more: while the first result travels to the client, each
    single-thread worker is still inside its second file at most, so the bound on what
    gets written after Ctrl-C does not depend on how loaded the machine is."""

    def run(self, job, overwrite, record):
        time.sleep(1.5)
        super().run(job, overwrite, record)


class InterruptingTask(EnhanceTask):
    """Writes its output, then Ctrl-C arrives while the next file is being written."""

    def run(self, job, overwrite, record):
        if job.input.name == "v1.nii.gz":
            temporary = job.output.with_name(f".{job.output.name}.abc.partial.nii.gz")
            temporary.write_bytes(b"half")  # what a killed write leaves
            raise KeyboardInterrupt
        return super().run(job, overwrite, record)


def test_ctrl_c_stops_the_batch_and_leaves_no_partial_output(inputs, tmp_path):
    jobs = [
        Job(inputs / f"v{k}.nii.gz", tmp_path / f"v{k}.nii.gz", {"model": "bspline"})
        for k in range(3)
    ]
    with pytest.raises(KeyboardInterrupt):
        run_batch(InterruptingTask(), jobs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v0.json", "v0.nii.gz"]


# --- a LocalCluster of 2 worker processes --------------------------------------------------


def test_local_cluster_gives_the_in_process_outputs(inputs, local_run, tmp_path):
    out = tmp_path / "out"
    result = run("enhance", inputs, "-o", out, "--workers", "2")
    assert result.exit_code == 0, result.output
    for k in range(FILES):
        np.testing.assert_allclose(
            voxels(out / f"v{k}.nii.gz"), voxels(local_run / f"v{k}.nii.gz"), rtol=0, atol=1e-3
        )
    rows = read_report(out / batch.REPORT_NAME)
    assert [Path(r["input"]).name for r in rows] == [f"v{k}.nii.gz" for k in range(FILES)]
    assert {r["status"] for r in rows} == {"ok"}
    assert len({r["worker"] for r in rows}) == 2  # both workers took files
    assert all(float(r["seconds"]) > 0 for r in rows)


# --- an existing scheduler: dask scheduler + 2 dask workers on 127.0.0.1 ----------------


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(address, {name: worker process})``: a scheduler and workers ``wA``, ``wB``."""
    folder = tmp_path_factory.mktemp("cluster")
    file = folder / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="2")
    common = {"cwd": REPO, "env": env, "start_new_session": True}
    started = [
        subprocess.Popen(
            [
                BIN / "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                file,
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "scheduler.log", "wb"),
            **common,
        )
    ]
    workers = {}
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert file.exists(), (folder / "scheduler.log").read_text()
        for name in ("wA", "wB"):
            workers[name] = subprocess.Popen(
                [
                    BIN / "dask",
                    "worker",
                    "--scheduler-file",
                    file,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--name",
                    name,
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(folder / f"{name}.log", "wb"),
                **common,
            )
            started.append(workers[name])
        from distributed import Client

        with Client(scheduler_file=str(file), timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        address = json.loads(file.read_text())["address"]
        yield address, workers
    finally:
        for process in reversed(started):
            _stop(process)


class ThreadsTask:
    """Returns the torch threads the task ran with."""

    resumable = False

    def run(self, job, overwrite, record):
        import torch

        return torch.get_num_threads()

    def recorded(self, output):
        return None

    def targets(self, job):
        return []


def test_a_task_runs_on_its_share_of_the_machines_cores(inputs, cluster):
    from distributed import Client
    from srkit.common.batch import run_job
    from srkit.common.resources import available_cores

    address, _ = cluster
    job = Job(inputs / "v0.nii.gz", inputs / "unused", {})
    with Client(address, timeout="10s") as client:
        shared = client.submit(run_job, ThreadsTask(), job, False, {"127.0.0.1": 2}, pure=False)
        alone = client.submit(run_job, ThreadsTask(), job, False, {"127.0.0.1": 1}, pure=False)
        cores = client.submit(available_cores, pure=False)
        shared, alone, cores = shared.result(), alone.result(), cores.result()
    assert shared.worker in ("wA", "wB") and shared.status == "ok"
    assert shared.value == max(1, cores // 2)  # 2 worker threads on the host share its cores
    assert alone.value == cores


def test_ctrl_c_on_the_scheduler_cancels_pending_files_and_leaves_no_partial_output(
    inputs, local_run, cluster, tmp_path
):
    from distributed import Client

    address, _ = cluster
    jobs = [Job(p, tmp_path / p.name, {"model": None}) for p in sorted(inputs.iterdir())]
    seen = []

    def interrupt(result):
        seen.append(result)
        raise KeyboardInterrupt  # Ctrl-C as the first file ends

    with pytest.raises(KeyboardInterrupt):
        run_batch(SlowEnhanceTask(), jobs, scheduler=address, on_result=interrupt)
    with Client(address, timeout="10s") as client:  # let started tasks end
        # A cancelled task that had started keeps running on its worker (the scheduler has
        # already forgotten it), so ask the workers, whose count includes such tasks.
        def running() -> int:
            counts = client.run(lambda dask_worker: dask_worker.state.executing_count)
            return sum(counts.values())

        deadline = time.monotonic() + 60
        while running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running() == 0
    written = sorted(p.name for p in tmp_path.glob("*.nii.gz"))
    # each worker finishes the file it is in and may have started one more: at most 4 of 8
    assert len(seen) == 1 and 1 <= len(written) <= 4  # the rest was cancelled
    assert partials(tmp_path) == []
    for name in written:  # whole outputs, each with its sidecar
        assert sidecar_path(tmp_path / name).exists()
        np.testing.assert_allclose(voxels(tmp_path / name), voxels(local_run / name), atol=1e-3)


def test_scheduler_batch_survives_a_killed_worker_and_resumes(inputs, local_run, cluster, tmp_path):
    address, workers = cluster
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "srkit.medsr.cli",
        "enhance",
        inputs,
        "-o",
        out,
        "--scheduler",
        address,
    ]
    started = time.time_ns()
    client = subprocess.Popen(
        [str(c) for c in command], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and client.poll() is None:
            if out.is_dir() and any(p.name.endswith(".nii.gz") for p in out.iterdir()):
                break
            time.sleep(0.02)
        assert client.poll() is None, "the batch ended before a worker could be killed"
        os.killpg(workers["wA"].pid, signal.SIGKILL)  # the worker and its nanny
        workers["wA"].wait(timeout=10)
        stdout, stderr = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 0, stderr.decode()
    assert f"{FILES} of {FILES} file(s) enhanced" in stdout.decode()
    for k in range(FILES):
        np.testing.assert_allclose(
            voxels(out / f"v{k}.nii.gz"), voxels(local_run / f"v{k}.nii.gz"), rtol=0, atol=1e-3
        )
    assert partials(out) == []  # the killed worker's temporaries are gone
    rows = read_report(out / batch.REPORT_NAME)
    assert sorted(Path(r["input"]).name for r in rows) == sorted(p.name for p in inputs.iterdir())
    # a task whose worker died after its output was complete is rerun and finds that
    # output current ("skipped"): it was still written by this batch, never before it
    assert {r["status"] for r in rows} <= {"ok", "skipped"} and "ok" in {r["status"] for r in rows}
    for row in rows:
        if row["status"] == "skipped":
            assert Path(row["output"]).stat().st_mtime_ns >= started
    assert "wB" in {r["worker"] for r in rows}
    before = snapshot(out)
    before.pop(batch.REPORT_NAME)
    again = run("enhance", inputs, "-o", out, "--scheduler", address)
    assert again.exit_code == 0, again.output
    after = snapshot(out)
    assert [r["status"] for r in read_report(out / batch.REPORT_NAME)] == ["skipped"] * FILES
    after.pop(batch.REPORT_NAME)
    assert after == before  # every output's bytes and mtime


def test_scheduler_batch_with_a_corrupt_file_finishes_the_others(
    inputs, local_run, cluster, tmp_path
):
    address, _ = cluster
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        shutil.copy(inputs / f"v{k}.nii.gz", folder / f"v{k}.nii.gz")
    (folder / "bad.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "out"
    result = run("enhance", folder, "-o", out, "--scheduler", address)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {folder / 'bad.nii.gz'}: not a readable NIfTI/MGZ file")
    assert "3 of 4 file(s) enhanced" in result.output
    for k in range(3):
        np.testing.assert_allclose(
            voxels(out / f"v{k}.nii.gz"), voxels(local_run / f"v{k}.nii.gz"), rtol=0, atol=1e-3
        )
    rows = {Path(r["input"]).name: r for r in read_report(out / batch.REPORT_NAME)}
    assert rows["bad.nii.gz"]["status"] == "failed"
    assert rows["bad.nii.gz"]["error"] == errors[0].removeprefix("error: ")
    assert [rows[f"v{k}.nii.gz"]["status"] for k in range(3)] == ["ok"] * 3
