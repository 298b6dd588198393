"""Small hyperparameters that keep architecture tests fast."""

from __future__ import annotations

TINY = {
    "srcnn": {"widths": (8, 4)},
    "espcn": {"widths": (8, 4)},
    "edsr": {"width": 4, "depth": 1},
}
