"""Suite-wide settings."""

from __future__ import annotations

import torch

# The suite is many small convolutions: one thread avoids oversubscription on small CI
# machines (on a busy 2-core machine two threads made tiny-window tiling ~100x slower).
torch.set_num_threads(1)

try:  # the fuzz tests: the same examples on every CI run; HYPOTHESIS_PROFILE=explore for more
    import os

    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None)
    settings.register_profile("explore", max_examples=2000, database=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
