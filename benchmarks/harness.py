"""What the benchmark scripts share: the repository and shared-data paths, one timing
loop, and one Markdown table formatter.

Every script runs from the repository root as a module, ``python -m benchmarks.NAME``, so
none of them edits ``sys.path``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SRKIT_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
"""The third-party data sets: ``../shared/data`` beside the repository, or
``$SRKIT_SHARED_DATA`` when that is set."""


def require_shared(*relative: str | Path, root: Path | None = None) -> list[Path]:
    """The paths ``relative`` under ``root`` (default :data:`SHARED_DATA`).

    Exits (``SystemExit``, status 1) with one line naming every missing path and the
    root when any of them does not exist; returns them in order otherwise.
    """
    base = SHARED_DATA if root is None else Path(root)
    paths = [base / p for p in relative]
    missing = [str(p) for p, full in zip(relative, paths) if not full.exists()]
    if missing:
        sys.exit(f"error: shared data not found: {', '.join(missing)} under {base}")
    return paths


@dataclass(frozen=True)
class Timing:
    """The wall-clock seconds of timed calls: their median, every sample in call order,
    and what the last call returned."""

    seconds: float
    samples: tuple[float, ...]
    result: Any


def median_time(
    fn: Callable[[], Any],
    *,
    repeat: int = 3,
    warmup: int = 0,
    cleanup: Callable[[], Any] | None = None,
) -> Timing:
    """Calls ``fn`` ``warmup`` times untimed, then ``repeat`` times timed with
    ``time.perf_counter``; returns the median in seconds (``repeat=1``: that one call).

    ``cleanup``, when given, runs after every call (warm-up calls included) outside the
    timed span, e.g. to remove an output file. ``fn`` must do its own device
    synchronization (``torch.cuda.synchronize``) for the time to cover GPU work.
    Raises ``ValueError`` when ``repeat < 1``.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    result = None
    samples = []
    for index in range(warmup + repeat):
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        if index >= warmup:
            samples.append(elapsed)
        if cleanup is not None:
            cleanup()
    return Timing(statistics.median(samples), tuple(samples), result)


_ALIGN = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_header(header: Sequence[object], align: str | None = None) -> str:
    """The first two lines of a Markdown table (no trailing newline): the column names
    and the rule. ``align`` has one letter a column: ``l`` (the default, ``---``),
    ``r`` (``---:``) or ``c`` (``:---:``)."""
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(header)} columns")
    rule = "|" + "".join(_ALIGN[a] + "|" for a in align)
    return f"{markdown_row(header)}\n{rule}"


def markdown_row(cells: Iterable[object]) -> str:
    """One Markdown table row: ``| a | b |`` (cells as ``str`` gives them)."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown_table(
    header: Sequence[object], rows: Iterable[Iterable[object]], align: str | None = None
) -> str:
    """A whole Markdown table (no trailing newline); see :func:`markdown_header`."""
    return "\n".join([markdown_header(header, align), *(markdown_row(r) for r in rows)])


def fp32_matmul_rate(device: str = "cpu", n: int = 2048, repeat: int = 5) -> float:
    """This process's fp32 matmul rate in FLOP/s: the speed baseline every speed claim is
    a ratio to (measured in the same run, with the same threads)."""
    import torch

    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)

    def run() -> None:
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return 2 * n**3 / median_time(run, repeat=repeat, warmup=1).seconds
