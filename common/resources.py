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
