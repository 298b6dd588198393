"""Writes docs/cli.md, the one command-line reference of ``srkit``, ``medsr`` and ``geosr``,
from the click commands themselves (``tests/test_cli_reference.py`` fails when it is stale).

    .venv/bin/python docs/make_cli_reference.py            # rewrite docs/cli.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

INTRO = """# Command-line reference

Generated from the commands by `python docs/make_cli_reference.py`; do not edit by hand.

The three commands share one grammar: the same option means the same thing everywhere.

| option | meaning in every command that has it |
|---|---|
| `-o, --output` | where the result goes; an existing output needs `--overwrite`, and the input is never overwritten |
| `--overwrite` | replace an existing output (never the input) |
| `--progress / --no-progress` | show or hide the progress bar (files in a batch, windows otherwise) |
| `--dtype` | `keep` the input's stored type (rounded, clipped to it) or write `float32` |
| `--clip` | `auto` (the input's valid range widened by 5 % of its span), `none`, or `LO,HI` in physical units |
| `--force` | run a model whose card's domain does not match the input (with a warning) |
| `--tile` | the read window per axis, in input pixels, halo included |
| `--batch-size` | windows per forward pass |
| `--device` | `cpu`, `cuda` or `cuda:N` (default: CUDA when available) |
| `--backend` | `torch`, `onnx`, `openvino` or `auto` (env `SRKIT_BACKEND`) |
| `--workers / --scheduler` | run a batch on a Dask LocalCluster of N processes, or on an existing scheduler |
| `--json` | machine-readable output of `info` and `models` |
| `-v, --verbose` | on a group: show the traceback of an error |

Every user error is one line `error: ...` on stderr with exit code 2; a bug prints its
traceback and exit code 1.
"""


def _param_rows(command: click.Command) -> list[str]:
    rows = []
    for param in command.params:
        if isinstance(param, click.Argument) or getattr(param, "hidden", False):
            continue
        names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
        help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {names} | {help_text} |")
    return rows


def _usage(command: click.Command, path: str) -> str:
    ctx = click.Context(command, info_name=path)
    return " ".join(command.collect_usage_pieces(ctx))


def _walk(group: click.Group, name: str) -> list[str]:
    out = [f"## `{name}`", "", (group.help or "").strip(), ""]
    for sub_name in sorted(group.commands):
        command = group.commands[sub_name]
        path = f"{name} {sub_name}"
        out += [f"### `{path}`", "", "```", f"{path} {_usage(command, path)}", "```", ""]
        out += [(command.help or "").strip(), ""]
        rows = _param_rows(command)
        if rows:
            out += ["| option | help |", "|---|---|", *rows, ""]
    return out


def render() -> str:
    from srkit.geosr.cli import main as geosr_main
    from srkit.medsr.cli import main as medsr_main

    from srkit.cli import main as srkit_main

    lines = [INTRO]
    for name, group in (("srkit", srkit_main), ("medsr", medsr_main), ("geosr", geosr_main)):
        lines += _walk(group, name)
    return "\n".join(lines).rstrip() + "\n"


TARGET = Path(__file__).resolve().parent / "cli.md"

if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if TARGET.read_text() == text else "docs/cli.md is stale")
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
