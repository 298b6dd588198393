"""Writes held-out benchmark rows into a shipped model's JSON card (``--update-card``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def write_holdout(card_path: Path, rows: Sequence[dict], protocol: str) -> None:
    """Stores the rows measured with the card's own model as ``metrics.holdout`` (floats
    rounded to 4 decimals; timings and the model name dropped) plus the protocol text."""
    card = json.loads(card_path.read_text())
    card["metrics"] = {
        **card["metrics"],
        "holdout": [
            {
                k: round(v, 4) if isinstance(v, float) else v
                for k, v in row.items()
                if k not in ("seconds", "model")
            }
            for row in rows
            if row["model"] == card["name"]
        ],
        "holdout_protocol": protocol,
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"\nupdated {card_path}")
