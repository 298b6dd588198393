"""Prints the shipped models' cards as Markdown: what each is, what it expects, what it beat.

Everything comes from ``srkit.list_models()`` (the JSON cards beside the weights), so the
table in docs/benchmarks.md cannot drift from what ``load_model`` returns::

    .venv/bin/python -m benchmarks.model_cards
"""

from __future__ import annotations

import argparse

from srkit.common import list_models
from srkit.common.models.registry import SHIPPED, WEIGHTS_DIR

from benchmarks.harness import REPO_ROOT, markdown_header, markdown_row


def _recipes(name: str) -> str:
    stages = [REPO_ROOT / "configs" / f"{name}.yaml"]
    stages += sorted(REPO_ROOT.glob(f"configs/{name}_stage*.yaml"))
    return ", ".join(f"`{p.relative_to(REPO_ROOT)}`" for p in stages if p.exists()) or "-"


def _holdout(metrics) -> str:
    rows = metrics.get("holdout") or []
    parts = [
        f"{name}: {scores['gain_db']:+.2f}"
        for name, scores in (metrics.get("benchmark") or {}).items()
        if name != "Set5"  # Set5 is the natural models' validation set
    ]
    for row in rows:
        where = row.get("volume") or row.get("raster") or "?"
        how = row.get("profile") or row.get("kernel") or ""
        parts.append(f"{where} {how}: {row['gain_db']:+.2f}")
    return "; ".join(parts) or "-"


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    cards = sorted(list_models(), key=lambda c: (c.domain, c.name))
    header = ["model", "domain", "architecture", "scale per axis", "parameters"]
    header += ["receptive field", "input range", "weights (MB)", "validation gain (dB)"]
    print(markdown_header([*header, "held-out gain (dB)", "recipe"]))
    total = 0.0
    for card in cards:
        size = (WEIGHTS_DIR / SHIPPED[card.name]).stat().st_size / 1e6
        total += size
        m = card.metrics
        val = (
            f"{m['gain_db']:+.2f} ({m.get('baseline', '?')}, {len(m.get('val_files', []))} files)"
            if "gain_db" in m
            else "-"
        )
        hp = {k: v for k, v in card.hparams.items() if k not in ("dims", "channels", "scale")}
        arch = f"{card.architecture} {hp}".replace("'", "")
        cells = [f"`{card.name}`", card.domain, arch, "x".join(map(str, card.axis_scale))]
        cells += [f"{card.n_parameters:,}", card.receptive_field, list(card.input_range)]
        print(markdown_row([*cells, f"{size:.2f}", val, _holdout(m), _recipes(card.name)]))
    print(f"\n{len(cards)} shipped models, {total:.2f} MB of weights in all.\n")
    for card in cards:
        print(f"- **{card.name}**: {card.description}")
        for source in card.training_data:
            print(f"  - training data: {source}")


if __name__ == "__main__":
    main()
