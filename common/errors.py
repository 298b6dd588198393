"""The one base class of the errors a user can cause and fix.

Every problem that comes from the user's files, options or environment (a bad header, an
output that exists, a model that does not fit the input) is an :class:`SRKitError`. The
CLIs print those as one line, ``error: <message>``, and exit 2; any other exception is a
bug and shows its traceback (exit 1). Messages start with the file they concern where
there is one: ``scan.nii.gz: sform is singular``.

``SRKitError`` derives from ``ValueError`` so that code written against the earlier plain
``ValueError`` contract keeps working.
"""

from __future__ import annotations

import os


class SRKitError(ValueError):
    """A user-facing problem; the message names the file (if any) and the problem."""


class OutputError(SRKitError):
    """An output path that cannot be written: exists, is the input, folder missing, ..."""


class OutputExistsError(OutputError):
    """An output (or one of the files a run writes beside it) exists and ``overwrite`` is off."""


def path_error(path: str | os.PathLike, problem: str, cls: type[SRKitError] = SRKitError):
    """``cls("<path>: <problem>")``, the form every file-related error takes."""
    return cls(f"{os.fspath(path)}: {problem}")


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name if it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
