"""Command-line pieces shared by ``medsr`` and ``geosr``: error reporting and ``models``.

Every failure the user can cause (an :class:`~common.errors.SRKitError`) ends as one line
``error: ...`` on stderr and exit code 2; ``--verbose`` adds the traceback. Any other
exception is a bug: its traceback and exit code 1.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Mapping, Sequence

import click
import numpy as np

from ._version import __version__
from .errors import SRKitError, first_line
from .io import TerminatedBySignal
from .models import BASELINES, list_models, make_baseline

EXIT_USAGE = 2
EXIT_BUG = 1


class SRGroup(click.Group):
    """A click group that reports user errors in one line and bugs with their traceback.

    - :class:`~common.errors.SRKitError`, click usage errors and ``OSError`` (a file that
      cannot be opened or written): ``error: <first line>`` on stderr, exit 2; ``--verbose``
      adds the traceback.
    - ``KeyboardInterrupt``: exit 130; SIGTERM/SIGHUP during a write: exit 128 + signal.
    - anything else is a bug: the traceback, a line asking for a report, exit 1.
    """

    def main(self, args: Sequence[str] | None = None, **kwargs):  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        verbose = "--verbose" in argv or "-v" in argv
        try:
            return super().main(args=argv, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except TerminatedBySignal as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(128 + exc.signum)
        except (SRKitError, OSError) as exc:
            if verbose:
                traceback.print_exc()
            click.echo(f"error: {first_line(exc)}", err=True)
            sys.exit(EXIT_USAGE)
        except Exception:  # a bug: show it whole
            traceback.print_exc()
            click.echo(
                f"error: internal error in {self.name} {__version__} (a bug; please report"
                " it with the traceback above)",
                err=True,
            )
            sys.exit(EXIT_BUG)


def make_group(name: str, help_text: str) -> click.Group:
    """The top-level group of a front end, with ``--version`` and ``--verbose``."""

    @click.group(
        name=name,
        cls=SRGroup,
        help=help_text,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    @click.version_option(__version__, "--version", prog_name=name)
    @click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
    def group(verbose: bool) -> None:
        pass

    return group


def format_models(domains: Sequence[str]) -> str:
    """A table of the shipped models of ``domains`` and the interpolation baselines."""
    rows = [
        (
            "name",
            "domain",
            "scale",
            "dims",
            "channels",
            "params",
            "receptive field",
            "validation gain",
        )
    ]
    for card in list_models():
        if card.domain not in domains:
            continue
        gain = card.metrics.get("gain_db")
        rows.append(
            (
                card.name,
                card.domain,
                "x".join(map(str, card.axis_scale)) or str(card.scale),
                str(card.dims),
                str(card.channels),
                f"{card.n_parameters:,}",
                str(card.receptive_field),
                f"{gain:+.2f} dB vs {card.metrics.get('baseline', '?')}"
                if gain is not None
                else "-",
            )
        )
    for kind in BASELINES:
        card = make_baseline(kind).card
        rows.append((kind, "any", "any", "2/3", "any", "0", str(card.receptive_field), "baseline"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )
    return (
        f"{table}\nvalidation gain: on the model-selection data; gains on data never used "
        "(held out) are in each card's metrics.holdout / metrics.benchmark and docs/benchmarks.md"
    )


def batch_size_option():
    """``--batch-size``, one meaning in every command: windows per forward pass."""
    return click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help="Windows per forward pass (default 1); more helps on a GPU, same result.",
    )


def format_models_json(domains: Sequence[str], methods: Mapping[str, str] | None = None) -> str:
    """``models --json`` of every command: the cards of the shipped models of ``domains``
    and of the interpolation baselines, ``{"models": [card, ...], "baselines": [card,
    ...], "methods": {name: text}}`` (``methods``: a front end's own weightless methods)."""
    record = {
        "models": [card.to_dict() for card in list_models() if card.domain in domains],
        "baselines": [make_baseline(kind).card.to_dict() for kind in BASELINES],
        "methods": dict(methods or {}),
    }
    return json_text(record)


def json_text(value) -> str:
    """``value`` as indented JSON for ``--json`` outputs: numpy scalars as Python numbers,
    NaN and +-Inf as ``null``, anything else unknown as its ``str``."""

    def clean(item):
        if isinstance(item, np.generic):
            item = item.item()
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {str(k): clean(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(v) for v in item]
        return item

    return json.dumps(clean(value), indent=2, default=str)


def models_command(domains: Sequence[str]) -> click.Command:
    """``models [--json]``: list shipped models of the front end's domains and the
    baselines."""

    @click.command("models")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def models(as_json: bool) -> None:
        """List the shipped models and interpolation baselines."""
        if as_json:
            click.echo(format_models_json(domains))
        else:
            click.echo(format_models(domains))

    return models
