"""Suite-wide settings."""

from __future__ import annotations

import torch

# The suite is many small convolutions: one thread avoids oversubscription on small CI
# machines (on a busy 2-core machine two threads made tiny-window tiling ~100x slower).
torch.set_num_threads(1)
