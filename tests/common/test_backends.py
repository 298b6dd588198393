"""Inference backends: ONNX Runtime and OpenVINO give the torch output through the same
exact tiling, ``auto`` picks by measurement, missing runtimes name their extra, and the
thread budget never oversubscribes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from srkit.common import load_model, upscale
from srkit.common.inference import backends
from srkit.common.inference.backends import BackendError, using_backend
from srkit.common.inference.planes import upscale_planes
from srkit.common.models.registry import available_shipped
from srkit.common.resources import (
    ResourceError,
    apply_thread_budget,
    available_cores,
    thread_budget,
)

TOLERANCE = 1e-4
RUNTIME_BACKENDS = [
    pytest.param("onnx", id="onnx"),
    pytest.param("openvino", id="openvino"),
]


def _need(backend: str) -> None:
    pytest.importorskip("onnx", reason="onnx is not installed (srkit[onnx])")
    package = "onnxruntime" if backend == "onnx" else "openvino"
    pytest.importorskip(package, reason=f"{package} is not installed (srkit[{backend}])")


@pytest.fixture(autouse=True)
def _fresh_cache():
    backends.clear_cache()
    yield
    backends.clear_cache()


@pytest.mark.parametrize("backend", RUNTIME_BACKENDS)
@pytest.mark.parametrize("name", ["rs_edsr_x2", "natural_srcnn_x3", "mri_smore_x3", "bicubic"])
def test_tiled_backend_equals_untiled_torch(backend, name):
    """On [0, 1] data: tiled on the backend == untiled on the backend == untiled torch."""
    _need(backend)
    model = load_model(name)
    radius = max(model.receptive_radius)
    rng = np.random.default_rng(0)
    x = rng.random((1, 3 * radius + 7, 2 * radius + 13), dtype=np.float32)
    reference = upscale(model, x, backend="torch", tile=10**4)
    whole = upscale(model, x, backend=backend, tile=10**4)
    tiled = upscale(model, x, backend=backend, tile=2 * radius + 5, batch_size=3)
    assert whole.shape == tiled.shape == reference.shape
    assert np.abs(whole - reference).max() < TOLERANCE
    assert np.abs(tiled - whole).max() < TOLERANCE
    assert np.abs(tiled - reference).max() < TOLERANCE


@pytest.mark.parametrize("backend", RUNTIME_BACKENDS)
def test_every_shipped_model_on_the_backend(backend):
    _need(backend)
    rng = np.random.default_rng(1)
    from srkit.common.export import input_channels

    for name in available_shipped():
        model = load_model(name)
        x = rng.random((input_channels(model), 21, 17), dtype=np.float32)
        if input_channels(model) != model.channels:  # a guided model: not an upscale model
            continue
        expected = upscale(model, x, backend="torch")
        got = upscale(model, x, backend=backend)
        assert np.abs(got - expected).max() < TOLERANCE, name


@pytest.mark.parametrize("backend", RUNTIME_BACKENDS)
def test_planes_through_the_backend(backend):
    """SMORE-style plane-wise runs (what medsr does) use the 2D export plane by plane."""
    _need(backend)
    model = load_model("ct_smore_x2")
    x = np.random.default_rng(2).random((1, 4, 30, 26), dtype=np.float32)
    expected = upscale_planes(model, x)
    with using_backend(backend):
        got = upscale_planes(model, x, tile=25)
    assert got.shape == expected.shape == (1, 4, 60, 26)
    assert np.abs(got - expected).max() < TOLERANCE
    assert any(key[0] == backend for key in backends._sessions)


def test_backends_differ_from_each_other_only_by_rounding():
    """ONNX Runtime and OpenVINO are real, separate runs (not a torch fallback)."""
    _need("onnx")
    _need("openvino")
    model = load_model("natural_edsr_x2")
    x = torch.rand(2, 1, 33, 35)
    a = backends.runner(model, "onnx")(x)
    b = backends.runner(model, "openvino")(x)
    assert a.shape == b.shape == (2, 1, 66, 70)
    assert float((a - b).abs().max()) < TOLERANCE
    assert len(backends._sessions) == 2


def test_sessions_are_cached_per_weights_and_threads(monkeypatch):
    _need("onnx")
    model = load_model("rs_edsr_x4")
    first = backends.runner(model, "onnx")
    assert backends.runner(load_model("rs_edsr_x4"), "onnx") is first  # same weights
    assert first.threads == torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    other = backends.runner(model, "onnx")
    assert other is not first and other.threads == 3


def test_default_backend_from_context_and_environment(monkeypatch):
    _need("onnx")
    monkeypatch.delenv(backends.BACKEND_ENV, raising=False)
    assert backends.current_backend() == "torch"
    with using_backend("onnx"):
        assert backends.current_backend() == "onnx"
        assert backends.os.environ[backends.BACKEND_ENV] == "onnx"
        x = np.random.default_rng(3).random((1, 20, 20), dtype=np.float32)
        upscale("rs_edsr_x2", x)
    assert [key[0] for key in backends._sessions] == ["onnx"]
    assert backends.current_backend() == "torch"
    assert backends.BACKEND_ENV not in backends.os.environ
    monkeypatch.setenv(backends.BACKEND_ENV, "onnx")
    assert backends.current_backend() == "onnx"
    if not backends.is_installed("openvino"):
        monkeypatch.setenv(backends.BACKEND_ENV, "openvino")
        with pytest.raises(BackendError, match=r"pip install 'srkit\[openvino\]'"):
            backends.current_backend()
    monkeypatch.setenv(backends.BACKEND_ENV, "cuda")
    with pytest.raises(BackendError, match="SRKIT_BACKEND=cuda: choose from torch"):
        backends.current_backend()


def test_unknown_backend_is_an_error():
    x = np.zeros((1, 8, 8), dtype=np.float32)
    with pytest.raises(BackendError, match="unknown backend; choose from torch, onnx"):
        upscale("bicubic", x, backend="tensorrt")


@pytest.mark.parametrize(("backend", "extra"), [("onnx", "onnx"), ("openvino", "openvino")])
def test_missing_runtime_names_the_extra(backend, extra, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("onnxruntime", "openvino") else real(name, *a),
    )
    assert backends.installed_backends() == ["torch"]
    with pytest.raises(BackendError, match=rf"pip install 'srkit\[{extra}\]'"):
        upscale("bicubic", np.zeros((1, 8, 8), dtype=np.float32), backend=backend)
    # auto with nothing else installed is torch, without a probe
    model = load_model("bicubic")
    assert backends.resolve("auto", model, torch.device("cpu")) == "torch"


def test_runtime_backends_refuse_a_gpu_and_auto_takes_torch_there():
    model = load_model("bicubic")
    with pytest.raises(BackendError, match="runs on the CPU"):
        backends.resolve("onnx", model, torch.device("cuda"))
    assert backends.resolve("auto", model, torch.device("cuda")) == "torch"


def test_auto_picks_the_fastest_by_probe_and_caches(monkeypatch):
    _need("onnx")
    calls = []

    def probe(model, names=None):
        calls.append(model)
        return {"torch": 0.3, "onnx": 0.1, "openvino": 0.2}

    monkeypatch.setattr(backends, "probe", probe)
    model = load_model("rs_edsr_x2")
    assert backends.resolve("auto", model, torch.device("cpu")) == "onnx"
    assert backends.resolve("auto", load_model("rs_edsr_x2"), torch.device("cpu")) == "onnx"
    assert len(calls) == 1  # cached per weights


def test_probe_times_every_installed_backend():
    _need("onnx")
    times = backends.probe(load_model("ct_smore_x4"), ["torch", "onnx"])
    assert set(times) == {"torch", "onnx"}
    assert all(0 < t < 10 for t in times.values())


def test_cli_backend_option(tmp_path):
    from click.testing import CliRunner
    from srkit.geosr.cli import main as geosr_main

    done = CliRunner().invoke(geosr_main, ["enhance", "x.tif", "--backend", "tensorrt"])
    assert done.exit_code == 2
    assert "'tensorrt' is not one of 'torch', 'onnx', 'openvino', 'auto'" in done.output


# ------------------------------------------------------------------------------ threads


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("workers", [1, 2, 3, 5, 16, 40])
def test_thread_budget_never_oversubscribes(workers, cores):
    threads = thread_budget(workers, cores=cores)
    assert threads >= 1
    assert workers * threads <= max(cores, workers)  # one thread each is the floor
    if workers <= cores:
        assert workers * (threads + 1) > cores  # and no core is left idle needlessly


def test_thread_budget_values_and_errors(monkeypatch):
    assert thread_budget(1, cores=16) == 16
    assert thread_budget(3, cores=16) == 5
    assert thread_budget(4, cores=2) == 1
    with pytest.raises(ResourceError, match="workers >= 1"):
        thread_budget(0, cores=4)
    monkeypatch.setenv("SRKIT_CORES", "6")
    assert available_cores() == 6 and thread_budget(2) == 3
    monkeypatch.setenv("SRKIT_CORES", "none")
    with pytest.raises(ResourceError, match="SRKIT_CORES"):
        available_cores()


def test_apply_thread_budget_sets_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("SRKIT_CORES", "4")
    try:
        assert apply_thread_budget(2) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("backend", RUNTIME_BACKENDS)
def test_medsr_enhance_backend_reaches_upscale(backend, tmp_path):
    """``medsr enhance --backend`` runs the model on that runtime, same output."""
    _need(backend)
    nib = pytest.importorskip("nibabel")
    from click.testing import CliRunner
    from srkit.medsr.cli import main as medsr_main

    rng = np.random.default_rng(4)
    data = (200 + 800 * rng.random((20, 18, 6))).astype(np.float32)
    src = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), src)
    outputs = {}
    for name in ("torch", backend):
        target = tmp_path / f"sr_{name}.nii.gz"
        done = CliRunner().invoke(
            medsr_main, ["enhance", str(src), "-o", str(target), "--backend", name]
        )
        assert done.exit_code == 0, done.output
        outputs[name] = np.asarray(nib.load(target).dataobj)
    assert outputs["torch"].shape == (20, 18, 12)
    assert {key[0] for key in backends._sessions} == {backend}
    # the intensities are MRI units (~1000): 1e-4 of the normalized range
    assert np.abs(outputs[backend] - outputs["torch"]).max() < 1e-4 * 1000
