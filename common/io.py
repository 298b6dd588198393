"""Atomic outputs: every file or folder the toolkit writes goes through :func:`atomic_outputs`.

The contract, for every writer (weights, cards, checkpoints, NIfTI, DICOM series,
GeoTIFF, sidecars):

- the writer writes to a temporary path beside the target (same folder, so the final
  rename is atomic), named ``.<name>.<random>.partial<suffixes>`` so that format-by-suffix
  libraries (nibabel, GDAL) still see the right extension;
- nothing is done before every target has been checked: with ``overwrite=False`` an
  existing target (any of them, sidecars included) is an :class:`OutputExistsError`
  before any work; a missing or unwritable folder is an :class:`OutputError`;
- on success the temporary gets the mode a plain ``open(..., "w")`` / ``mkdir`` would
  give under the current umask, then is renamed into place. Without ``overwrite`` the
  rename refuses to clobber a target that appeared during the run (a concurrent run);
- on any exception, ``KeyboardInterrupt``, ``SIGTERM`` or ``SIGHUP``, every temporary is
  removed and no target is touched. The two signals are turned into
  :class:`TerminatedBySignal` while an output is open (main thread only), so the
  clean-up runs; the CLIs exit ``128 + signal``.

A folder target (a DICOM series) that already exists is replaced only with
``overwrite=True``; the caller decides whether that folder may be replaced (see
``medsr``'s rule: only a folder holding a previous output of this tool).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError, OutputExistsError

PARTIAL_MARK = ".partial"
_HANDLED_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s
)


class TerminatedBySignal(BaseException):
    """Raised in the main thread when SIGTERM/SIGHUP arrives while an output is open."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signal.Signals(signum).name}")
        self.signum = signum


def umask_mode(directory: bool = False) -> int:
    """The mode ``open(path, "w")`` (0o666) or ``mkdir`` (0o777) gives under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def all_suffixes(path: Path) -> str:
    """``.nii.gz`` for ``a.nii.gz``, ``.tif`` for ``a.tif``, ``""`` for a plain folder name."""
    return "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix


@dataclass(frozen=True)
class OutputTarget:
    """One final path of an atomic write; ``directory=True`` for a folder (DICOM series)."""

    path: Path
    directory: bool = False


def _as_target(item: str | os.PathLike | OutputTarget) -> OutputTarget:
    return item if isinstance(item, OutputTarget) else OutputTarget(Path(item))


def _identities(paths: Sequence[str | os.PathLike]) -> set[tuple[int, int]]:
    ids = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids


def is_within(inner: Path, outer: Path) -> bool:
    """True when ``inner`` is ``outer`` or lies below it (resolved paths)."""
    return inner == outer or outer in inner.parents


def check_not_input(
    path: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    error: type[OutputError] | type = OutputError,
) -> None:
    """Refuses an output ``path`` that is one of ``inputs`` (also through symlinks and hard
    links), or a folder that contains one, or holds a hard link to one.

    ``error`` is the exception class raised (a front end's own ``SRKitError``).
    """
    path = Path(path)
    resolved = path.resolve()
    sources = [Path(p).resolve() for p in inputs]
    ids = _identities(sources)
    if resolved in sources or (path.exists() and _identities([path]) & ids):
        raise error(f"{path}: output is the input; refusing to overwrite it")
    if any(is_within(source, resolved) for source in sources):
        raise error(f"{path}: output contains the input; refusing to replace it")
    if path.is_dir() and _identities(list(path.iterdir())) & ids:
        raise error(f"{path}: holds a hard link to an input file; refusing to replace it")


def check_targets(
    targets: Sequence[str | os.PathLike | OutputTarget], *, overwrite: bool = False
) -> None:
    """The checks :func:`atomic_outputs` makes before any work, usable on their own.

    Raises:
        OutputExistsError: a target exists and ``overwrite`` is False.
        OutputError: a target's folder is missing or not writable, or a file target is an
            existing folder (or a folder target an existing file) and overwrite is off.
    """
    for item in targets:
        target = _as_target(item)
        path = target.path
        folder = path.parent
        if not folder.is_dir():
            raise OutputError(f"{path}: the output's folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{path}: the output's folder {folder} is not writable")
        if os.path.lexists(path):
            if not overwrite:
                raise OutputExistsError(
                    f"{path}: exists; pass --overwrite to replace it or choose another path"
                )
            if path.is_dir() and not path.is_symlink() and not target.directory:
                raise OutputError(f"{path}: is a folder; give a file name")


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turns SIGTERM/SIGHUP into :class:`TerminatedBySignal` inside the block (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise TerminatedBySignal(signum)

    previous = {}
    for signum in _HANDLED_SIGNALS:
        try:
            previous[signum] = signal.signal(signum, handler)
        except (ValueError, OSError):  # not settable here
            pass
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _make_temporary(target: OutputTarget) -> Path:
    path = target.path
    prefix = f".{path.name}."
    suffix = PARTIAL_MARK + all_suffixes(path)
    try:
        if target.directory:
            return Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=suffix))
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
        return Path(name)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {path.parent} ({exc.strerror})") from None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _commit_file(temporary: Path, final: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, final)
        return
    try:  # link() fails if ``final`` exists: an atomic no-clobber rename
        os.link(temporary, final)
    except FileExistsError:
        raise OutputExistsError(
            f"{final}: appeared while this run was writing it (another run?); "
            "pass --overwrite to replace it"
        ) from None
    except OSError:  # file systems without hard links
        if os.path.lexists(final):
            raise OutputExistsError(f"{final}: appeared while this run was writing it") from None
        os.replace(temporary, final)
        return
    temporary.unlink()


def _commit_directory(temporary: Path, final: Path, overwrite: bool) -> None:
    if not os.path.lexists(final):
        try:
            os.rename(temporary, final)  # fails on an existing non-empty folder or a file
        except OSError:
            raise OutputExistsError(f"{final}: appeared while this run was writing it") from None
        return
    if not overwrite:
        raise OutputExistsError(f"{final}: appeared while this run was writing it")
    aside = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
    old = aside / "old"
    os.rename(final, old)
    try:
        os.rename(temporary, final)
    except BaseException:
        os.rename(old, final)  # put the previous output back
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_outputs(
    targets: Sequence[str | os.PathLike | OutputTarget], *, overwrite: bool = False
) -> Iterator[list[Path]]:
    """Yields one temporary path per target; renames them all into place on success.

    Args:
        targets: final paths (files), or :class:`OutputTarget` with ``directory=True`` for
            a folder. A file's temporary exists (empty) when yielded; a folder's exists
            (empty) too. Writers that create their own file at the path may overwrite it.
        overwrite: replace existing targets. Off: any existing target is refused before
            the block runs, and again at the rename (no clobbering of a file that appeared
            meanwhile).

    Every temporary is committed as it is, in the order of ``targets`` (the main output
    first, its sidecars after).
    """
    resolved = [_as_target(t) for t in targets]
    check_targets(resolved, overwrite=overwrite)
    temporaries: list[Path] = []
    try:
        with _signals_raise():
            for target in resolved:
                temporaries.append(_make_temporary(target))
            yield list(temporaries)
            for target, temporary in zip(resolved, temporaries, strict=True):
                mode = umask_mode(target.directory)
                if target.directory:
                    os.chmod(temporary, mode)
                    for root, dirs, files in os.walk(temporary):
                        for name in dirs:
                            os.chmod(os.path.join(root, name), mode)
                        for name in files:
                            os.chmod(os.path.join(root, name), umask_mode())
                    _commit_directory(temporary, target.path, overwrite)
                else:
                    os.chmod(temporary, mode)
                    _commit_file(temporary, target.path, overwrite)
    finally:
        for temporary in temporaries:
            if os.path.lexists(temporary):
                _remove(temporary)
            for extra in (".aux.xml", ".msk"):  # GDAL side files of a temporary raster
                side = temporary.with_name(temporary.name + extra)
                if os.path.lexists(side):
                    _remove(side)


@contextlib.contextmanager
def atomic_output(
    target: str | os.PathLike, *, overwrite: bool = False, directory: bool = False
) -> Iterator[Path]:
    """:func:`atomic_outputs` for one target: yields its temporary path."""
    with atomic_outputs([OutputTarget(Path(target), directory)], overwrite=overwrite) as paths:
        yield paths[0]


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Writes ``data`` to ``path`` through :func:`atomic_output`; returns the path."""
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temporary:
        temporary.write_bytes(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` through :func:`atomic_output`; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)
