"""Inference backends for ``upscale``: torch (default), ONNX Runtime, OpenVINO, or auto.

- ``torch``: the model itself (channels-last oneDNN kernels on CPUs, bf16 on CUDA). Always
  available; the default.
- ``onnx``: the model exported by :mod:`common.export`, run by ONNX Runtime's CPU
  execution provider (``pip install 'srkit[onnx]'``).
- ``openvino``: the same ONNX graph compiled by OpenVINO for the CPU
  (``pip install 'srkit[openvino]'``).
- ``auto``: on a GPU, torch; on the CPU, the fastest installed backend for this model,
  measured once per process and model by a short probe (:func:`probe`: two timed calls on
  one 64x64 image after a warm-up, 0.2 to 3 s with the exports) and cached.

Both runtimes run on the CPU with ``torch.get_num_threads()`` intra-op threads (all cores
unless the caller or :func:`common.resources.thread_budget` lowered it), so the three are
compared at the same thread count. Exported graphs and compiled sessions are cached in
memory per (backend, weights SHA-256, scale, channels, threads); building one takes 0.1 to
1 s, small next to a run, so nothing is cached on disk.

The default comes from, in order: ``upscale(..., backend=)``, the innermost
:func:`using_backend` block (what the CLIs' ``--backend`` sets, so it reaches ``upscale``
through the front ends unchanged), the ``SRKIT_BACKEND`` environment variable (which worker
processes inherit), else ``torch``.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..errors import SRKitError
from ..models.architectures import SRModule

BACKENDS = ("torch", "onnx", "openvino", "auto")
BACKEND_ENV = "SRKIT_BACKEND"
# the package each runtime needs, and the extra that installs it
_RUNTIMES = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino")}
PROBE_SIDE = 64

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("srkit_backend", default=None)
_sessions: dict[tuple, Callable[[torch.Tensor], torch.Tensor]] = {}
_auto_choice: dict[tuple, str] = {}


class BackendError(SRKitError):
    """An unknown backend, a runtime that is not installed, or a device it cannot use."""


def check_backend(name: str) -> str:
    """``name`` if it is one of :data:`BACKENDS`, else :class:`BackendError`."""
    if name not in BACKENDS:
        raise BackendError(f"--backend {name}: unknown backend; choose from {', '.join(BACKENDS)}")
    return name


def is_installed(name: str) -> bool:
    """True when the runtime of backend ``name`` can be imported (torch always can)."""
    if name == "torch":
        return True
    package = _RUNTIMES[check_backend(name)][0]
    return (
        importlib.util.find_spec(package) is not None
        and importlib.util.find_spec("onnx") is not None
    )


def installed_backends() -> list[str]:
    """The concrete backends usable here, torch first."""
    return [name for name in ("torch", "onnx", "openvino") if is_installed(name)]


def require(name: str) -> str:
    """``name`` checked and installed, else :class:`BackendError` naming the extra."""
    check_backend(name)
    if name not in ("torch", "auto") and not is_installed(name):
        package, extra = _RUNTIMES[name]
        raise BackendError(
            f"--backend {name} needs {package}, which is not installed: pip install 'srkit[{extra}]'"
        )
    return name


@contextlib.contextmanager
def using_backend(name: str | None) -> Iterator[None]:
    """Within the block, ``upscale`` calls without ``backend=`` use ``name`` (None: keep
    the current default). ``SRKIT_BACKEND`` is set for the block too, so worker processes
    started inside it (a Dask ``LocalCluster``) use the same backend."""
    if name is None:
        yield
        return
    token = _current.set(require(name))
    previous = os.environ.get(BACKEND_ENV)
    os.environ[BACKEND_ENV] = name  # worker processes started inside the block inherit it
    try:
        yield
    finally:
        _current.reset(token)
        if previous is None:
            os.environ.pop(BACKEND_ENV, None)
        else:
            os.environ[BACKEND_ENV] = previous


def current_backend() -> str:
    """The default backend now: the innermost :func:`using_backend`, else ``SRKIT_BACKEND``,
    else ``torch``."""
    name = _current.get()
    if name is None and os.environ.get(BACKEND_ENV):
        name = os.environ[BACKEND_ENV]
        if name not in BACKENDS:
            raise BackendError(f"{BACKEND_ENV}={name}: choose from {', '.join(BACKENDS)}")
    return require(name or "torch")


def _key(model: SRModule, backend: str) -> tuple:
    from ..export import weights_digest

    return (
        backend,
        weights_digest(model),
        model.arch_name,
        model.dims,
        tuple(model.scale),
        model.channels,
        torch.get_num_threads(),
    )


def _onnx_runner(model: SRModule) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    from ..export import onnx_bytes

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_bytes(model), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {"input": batch})[0])

    run.threads = options.intra_op_num_threads  # type: ignore[attr-defined]
    return run


def _openvino_runner(model: SRModule) -> Callable[[torch.Tensor], torch.Tensor]:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    from ..export import onnx_bytes

    core = ov.Core()
    graph = core.read_model(onnx_bytes(model))
    config = {
        props.inference_num_threads: torch.get_num_threads(),
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        hints.inference_precision: ov.Type.f32,  # no bf16/f16 downcast on capable CPUs
    }
    compiled = core.compile_model(graph, "CPU", config)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        request.infer({0: batch})
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, copy=True))

    run.threads = compiled.get_property(props.inference_num_threads)  # type: ignore[attr-defined]
    return run


def _planewise_runner(
    inner: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A 2D runner applied to every plane of ``(N, C, P, H, W)`` (the Planewise layout)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        n, c, p, h, w = x.shape
        planes = x.permute(0, 2, 1, 3, 4).reshape(n * p, c, h, w)
        out = inner(planes)
        return out.reshape(n, p, *out.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()

    return run


def runner(model: SRModule, backend: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A cached CPU callable ``(N, C, *S) float32 -> (N, C, *(S * scale))`` running
    ``model`` (already at its run scale) on the ONNX Runtime or OpenVINO ``backend``.

    A :class:`~common.inference.planes.Planewise` model runs its 2D network through the
    backend, plane by plane, so one export serves 2D images and volumes.
    """
    from .planes import Planewise

    require(backend)
    if backend not in _RUNTIMES:
        raise BackendError(f"runner() takes onnx or openvino, got {backend!r}")
    if isinstance(model, Planewise):
        return _planewise_runner(runner(model.inner, backend))
    key = _key(model, backend)
    if key not in _sessions:
        build = _onnx_runner if backend == "onnx" else _openvino_runner
        _sessions[key] = build(model)
    return _sessions[key]


def probe(model: SRModule, backends: list[str] | None = None) -> dict[str, float]:
    """Seconds per ``upscale`` call of each backend (default: every installed one) on one
    ``PROBE_SIDE``-square image on the CPU (a plane-wise model: its 2D network), the best
    of two timed calls after a warm-up (which also builds the session)."""
    from ..export import input_channels
    from .planes import Planewise
    from .tiling import upscale

    model = model.inner if isinstance(model, Planewise) else model
    rng = np.random.default_rng(0)
    side = (PROBE_SIDE,) * model.dims
    sample = rng.random((input_channels(model) or 1, *side), dtype=np.float32)
    times = {}
    for name in backends or installed_backends():
        best = float("inf")
        for attempt in range(3):
            start = time.perf_counter()
            upscale(model, sample, device="cpu", backend=name, tile=sample.shape[1:])
            if attempt:
                best = min(best, time.perf_counter() - start)
        times[name] = best
    return times


def resolve(backend: str | None, model: SRModule, device: torch.device) -> str:
    """The concrete backend for ``model`` on ``device``: ``backend`` (None: the current
    default) checked; ``auto`` is torch on a GPU, else the fastest installed backend by
    :func:`probe` (cached per model and thread count).

    Raises:
        BackendError: unknown or missing runtime, or onnx/openvino on a non-CPU device.
    """
    name = require(current_backend() if backend is None else backend)
    if name == "auto":
        if device.type != "cpu" or len(installed_backends()) == 1:
            return "torch"
        from .planes import Planewise

        key = _key(model.inner if isinstance(model, Planewise) else model, "auto")
        if key not in _auto_choice:
            times = probe(model)
            _auto_choice[key] = min(times, key=times.get)
        return _auto_choice[key]
    if name != "torch" and device.type != "cpu":
        raise BackendError(f"--backend {name} runs on the CPU; use --device cpu or --backend torch")
    return name


def clear_cache() -> None:
    """Forgets every compiled session and auto choice (tests; freeing memory)."""
    _sessions.clear()
    _auto_choice.clear()


def backend_option():
    """The ``--backend`` click option of ``medsr enhance`` and ``geosr enhance``."""
    import click

    return click.option(
        "--backend",
        type=click.Choice(["torch", "onnx", "openvino", "auto"]),
        default="torch",
        show_default=True,
        help="Inference runtime: onnx/openvino need srkit[onnx]/srkit[openvino] (CPU); "
        "auto picks the fastest installed.",
    )
