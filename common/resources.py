"""Checks that a run fits in memory before anything is allocated.

A header that declares 1500^3 voxels, ``--scale 1000`` or ``--target-spacing 0.001`` must
end in one line that gives the numbers, not in the allocator's message or a MemoryError
after minutes of work. ``SRKIT_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix) replaces the
available memory as the limit, to raise it (swap) or lower it (a shared node).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from .errors import SRKitError

MEMORY_ENV = "SRKIT_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class ResourceError(SRKitError):
    """A run that would need more memory than there is; the message gives the numbers."""


def format_bytes(n: float) -> str:
    """``1.5 GB`` style (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def _parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    number = text[: len(text) - len(unit)]
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise ResourceError(f"{MEMORY_ENV}={text!r}: not a size such as 64G") from None
    if not math.isfinite(value) or value <= 0:
        raise ResourceError(f"{MEMORY_ENV}={text!r}: must be a positive size")
    return int(value)


def available_memory() -> int | None:
    """The memory a run may use: ``SRKIT_MEMORY_LIMIT``, else MemAvailable, else None."""
    if os.environ.get(MEMORY_ENV):
        return _parse_size(os.environ[MEMORY_ENV])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(
    name: str | os.PathLike,
    shape: Sequence[int],
    what: str,
    *,
    itemsize: int = 4,
    copies: float = 1.0,
) -> int:
    """Raises :class:`ResourceError` when ``copies`` arrays of ``shape`` do not fit.

    Returns the bytes needed. ``name`` starts the message (the file, or ``upscale``).
    """
    count = math.prod(int(n) for n in shape)
    needed = int(count * itemsize * copies)
    limit = available_memory()
    if limit is not None and needed > limit:
        dims = "x".join(str(int(n)) for n in shape)
        raise ResourceError(
            f"{os.fspath(name)}: {what} needs {format_bytes(needed)} ({dims} values), more than"
            f" the {format_bytes(limit)} of memory available (set {MEMORY_ENV} to change the"
            " limit)"
        )
    return needed


# --------------------------------------------------------------------------- threads

CORES_ENV = "SRKIT_CORES"


def available_cores() -> int:
    """CPU cores this process may use: ``SRKIT_CORES`` if set, else the smaller of its CPU
    affinity (taskset, cpusets) and the cgroup v2 CPU quota (containers), at least 1."""
    if os.environ.get(CORES_ENV):
        try:
            value = int(os.environ[CORES_ENV])
        except ValueError:
            value = 0
        if value < 1:
            raise ResourceError(
                f"{CORES_ENV}={os.environ[CORES_ENV]!r}: must be a whole number >= 1"
            )
        return value
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def thread_budget(workers: int = 1, *, cores: int | None = None) -> int:
    """Intra-op threads per process so that ``workers`` processes together use at most
    ``cores`` (default :func:`available_cores`): ``max(1, cores // workers)``.

    With more workers than cores each gets one thread (then the machine is oversubscribed
    by the workers themselves; use fewer). ``workers=1`` gives every core, the default
    torch already uses (``torch.get_num_threads()`` is the physical core count unless
    ``OMP_NUM_THREADS`` says otherwise).

    Raises:
        ResourceError: ``workers`` or ``cores`` below 1.
    """
    total = available_cores() if cores is None else int(cores)
    if int(workers) < 1 or total < 1:
        raise ResourceError(
            f"thread_budget needs workers >= 1 and cores >= 1, got {workers}, {total}"
        )
    return max(1, total // int(workers))


def apply_thread_budget(workers: int = 1, *, cores: int | None = None) -> int:
    """Sets this process's torch intra-op threads to :func:`thread_budget` and returns it
    (the ONNX Runtime and OpenVINO backends follow ``torch.get_num_threads()``)."""
    import torch

    threads = thread_budget(workers, cores=cores)
    torch.set_num_threads(threads)
    return threads
