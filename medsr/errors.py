"""The one exception type medsr raises for problems the user can fix (bad files, options)."""

from __future__ import annotations

import os

from srkit.common.errors import SRKitError


class MedsrError(SRKitError):
    """A user-facing problem; the message starts with the file it concerns."""


def input_error(path: str | os.PathLike, problem: str) -> MedsrError:
    """``MedsrError("<path>: <problem>")``, the form every medsr error takes."""
    return MedsrError(f"{path}: {problem}")
