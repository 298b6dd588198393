"""What takes the space of the installed environment: installed size per distribution,
grouped by what pulls it in (the core dependencies of pyproject.toml, or an extra).

Run ``python -m benchmarks.env_size`` in the environment to measure. Sizes are the files
each distribution's ``RECORD`` lists (what ``du`` counts under ``site-packages``), in MB
(10^6 bytes); a distribution needed by the core and by an extra counts as core.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

import tomllib
from packaging.requirements import Requirement

from .harness import REPO_ROOT

TOP = 12  # rows of the per-distribution table


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def installed_size(dist: metadata.Distribution) -> int:
    """Bytes of the files ``dist`` installed (its RECORD), those that still exist."""
    total = 0
    for file in dist.files or []:
        path = file.locate()
        if path.is_file():
            total += path.stat().st_size
    return total


def closure(requirements: list[str]) -> set[str]:
    """Normalized names of the installed distributions ``requirements`` pull in."""
    seen: set[str] = set()
    stack = [(Requirement(r), frozenset()) for r in requirements]
    while stack:
        req, _ = stack.pop()
        name = _name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        extras = set(req.extras)
        if name in seen and not extras:
            continue
        seen.add(name)
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None or any(
                child.marker.evaluate({"extra": e}) for e in (extras or {""})
            ):
                stack.append((child, frozenset()))
    return seen


def main() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": closure(project["dependencies"])}
    for extra, reqs in project["optional-dependencies"].items():
        groups[extra] = closure(reqs) - groups["core"]
    sizes = {_name(d.metadata["Name"]): installed_size(d) for d in metadata.distributions()}
    mb = 1e6
    print(
        f"python {sys.version.split()[0]}; installed distributions: {len(sizes)}, "
        f"{sum(sizes.values()) / mb:.0f} MB in all\n"
    )
    print("| group | distributions | MB | largest |")
    print("|---|---:|---:|---|")
    for group, names in groups.items():
        present = sorted((n for n in names if n in sizes), key=lambda n: -sizes[n])
        largest = ", ".join(f"{n} {sizes[n] / mb:.0f}" for n in present[:4])
        total = sum(sizes[n] for n in present)
        print(f"| {group} | {len(present)} | {total / mb:.0f} | {largest} |")
    core = sorted(groups["core"] & sizes.keys(), key=lambda n: -sizes[n])
    print("\n| core distribution | MB | share of core |")
    print("|---|---:|---:|")
    core_total = sum(sizes[n] for n in core)
    for n in core[:TOP]:
        print(f"| {n} | {sizes[n] / mb:.0f} | {100 * sizes[n] / core_total:.0f} % |")
    rest = core[TOP:]
    print(
        f"| {len(rest)} others | {sum(sizes[n] for n in rest) / mb:.0f} | "
        f"{100 * sum(sizes[n] for n in rest) / core_total:.0f} % |"
    )
    print(f"| **core total** | **{core_total / mb:.0f}** | 100 % |")


if __name__ == "__main__":
    main()
