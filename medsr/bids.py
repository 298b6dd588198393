"""BIDS derivatives: where ``medsr enhance`` writes when its input sits in a BIDS dataset.

An input ``<root>/sub-01[/ses-1]/<datatype>/sub-01[_ses-1]_<entities>_<suffix>.nii[.gz]``
below a ``<root>/dataset_description.json`` is enhanced into the derivative dataset
``<root>/derivatives/srkit/`` at the same relative path, its name given the ``desc-sr``
entity in the BIDS entity order (``sub-01_acq-fast_run-2_desc-sr_T1w.nii.gz``), the JSON
sidecar beside it. The derivative dataset gets its ``dataset_description.json``
(``DatasetType: derivative``, ``GeneratedBy`` srkit, ``SourceDatasets``) the first
time; an existing one is kept as it is, and must be a derivative description.

:func:`bids_output` decides (``--bids``: required; default: when the input looks like
the above; ``--no-bids``: never) before any work; :meth:`BidsDerivative.created` makes
the folders and the description around the atomic write and removes what it made when
the write fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from srkit.common._version import __version__
from srkit.common.errors import OutputExistsError
from srkit.common.io import atomic_output

from .errors import input_error

PIPELINE = "srkit"
DESC = "sr"
BIDS_VERSION = "1.10.0"
DESCRIPTION = "dataset_description.json"
# The entity order of the BIDS specification (Appendix: Entity table), desc last.
ENTITY_ORDER = (
    "sub",
    "ses",
    "sample",
    "task",
    "tracksys",
    "acq",
    "nuc",
    "voi",
    "ce",
    "trc",
    "stain",
    "rec",
    "dir",
    "run",
    "mod",
    "echo",
    "flip",
    "inv",
    "mt",
    "part",
    "proc",
    "hemi",
    "space",
    "split",
    "recording",
    "chunk",
    "seg",
    "res",
    "den",
    "label",
    "desc",
)
NIFTI_EXTENSIONS = (".nii.gz", ".nii")
_PAIR = re.compile(r"([a-zA-Z]+)-([a-zA-Z0-9]+)")
_SUFFIX = re.compile(r"[a-zA-Z0-9]+")


@dataclass(frozen=True)
class BidsName:
    """A BIDS file name: ``(key, label)`` entities in file order, suffix, extension."""

    entities: tuple[tuple[str, str], ...]
    suffix: str
    extension: str

    def get(self, key: str) -> str | None:
        return dict(self.entities).get(key)

    def with_entity(self, key: str, label: str) -> BidsName:
        """This name with ``key-label`` replacing any ``key`` entity, placed in the BIDS
        entity order: before the first entity that comes after ``key`` in that order
        (entities unknown to the order keep their place)."""
        kept = [(k, v) for k, v in self.entities if k != key]
        rank = ENTITY_ORDER.index(key)
        at = next(
            (
                i
                for i, (k, _) in enumerate(kept)
                if k in ENTITY_ORDER and ENTITY_ORDER.index(k) > rank
            ),
            len(kept),
        )
        return BidsName((*kept[:at], (key, label), *kept[at:]), self.suffix, self.extension)

    def __str__(self) -> str:
        pairs = "_".join(f"{k}-{v}" for k, v in self.entities)
        return f"{pairs}_{self.suffix}{self.extension}"


def parse_name(name: str) -> BidsName | None:
    """``sub-01_ses-1_T1w.nii.gz`` as a :class:`BidsName`; None for a non-BIDS name (no
    leading ``sub-``, a part that is not ``key-label``, or not ``.nii``/``.nii.gz``)."""
    extension = next((e for e in NIFTI_EXTENSIONS if name.endswith(e)), None)
    if extension is None:
        return None
    parts = name[: -len(extension)].split("_")
    if len(parts) < 2 or not _SUFFIX.fullmatch(parts[-1]):
        return None
    matches = [_PAIR.fullmatch(part) for part in parts[:-1]]
    if not all(matches):
        return None
    entities = tuple((m.group(1), m.group(2)) for m in matches)
    if entities[0][0] != "sub" or len({k for k, _ in entities}) != len(entities):
        return None
    return BidsName(entities, parts[-1], extension)


def find_root(path: Path) -> Path | None:
    """The nearest folder above ``path`` holding a ``dataset_description.json``."""
    for folder in Path(os.path.abspath(path)).parents:
        if (folder / DESCRIPTION).is_file():
            return folder
    return None


def _layout_problem(path: Path, root: Path | None) -> tuple[BidsName | None, str | None]:
    """The input's BIDS name, or why it is not a file of a BIDS dataset."""
    if root is None:
        return None, f"no {DESCRIPTION} in any folder above it"
    name = parse_name(path.name)
    if name is None:
        return None, "not a BIDS NIfTI name (sub-<label>[_<key>-<value>...]_<suffix>.nii[.gz])"
    folders = Path(os.path.abspath(path)).parent.relative_to(root).parts
    expected = [f"sub-{name.get('sub')}"]
    if name.get("ses") is not None:
        expected.append(f"ses-{name.get('ses')}")
    if list(folders[:-1]) != expected or len(folders) != len(expected) + 1:
        return None, (
            f"not at {'/'.join(expected)}/<datatype>/ of the BIDS dataset {root}"
            f" (found {'/'.join(folders) or '.'})"
        )
    return name, None


@dataclass(frozen=True)
class BidsDerivative:
    """Where one input's BIDS derivative goes.

    Attributes:
        source_root: the input's BIDS dataset (holds ``dataset_description.json``).
        root: the derivative dataset, ``source_root/derivatives/srkit``.
        output: the derivative NIfTI file (the sidecar is its ``.json`` beside it).
        source: the input, relative to ``source_root``.
    """

    source_root: Path
    root: Path
    output: Path
    source: Path

    @property
    def description_path(self) -> Path:
        return self.root / DESCRIPTION

    def description(self, command: str) -> dict:
        """The derivative dataset's ``dataset_description.json`` content."""
        source_name = _source_description(self.source_root).get("Name")
        source_item: dict[str, str] = {"URL": "bids:raw:"}
        doi = _source_description(self.source_root).get("DatasetDOI")
        if isinstance(doi, str) and doi:
            source_item["DOI"] = doi
        return {
            "Name": f"srkit super-resolution of {source_name}"
            if isinstance(source_name, str) and source_name
            else "srkit super-resolution",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [
                {
                    "Name": PIPELINE,
                    "Version": __version__,
                    "Description": f"medsr enhance (desc-{DESC}); first written by: {command}",
                }
            ],
            "DatasetLinks": {"raw": "../../"},
            "SourceDatasets": [source_item],
        }

    def sidecar_fields(self) -> dict:
        """BIDS fields of the output's JSON sidecar: ``Sources`` (a BIDS URI)."""
        return {"Sources": [f"bids:raw:{self.source.as_posix()}"]}

    def check(self) -> None:
        """Before any work: an existing description must be a derivative's, and the
        nearest existing folder on the way to the output must be writable."""
        if os.path.lexists(self.description_path):
            try:
                existing = json.loads(self.description_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise input_error(self.description_path, f"unreadable ({exc})") from None
            if not isinstance(existing, dict) or existing.get("DatasetType") != "derivative":
                raise input_error(
                    self.description_path,
                    "exists and is not a derivative dataset description (DatasetType is not"
                    " 'derivative'); move it or pass -o",
                )
        folder = self.output.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise input_error(self.output, f"cannot create the derivative folder in {folder}")

    @contextlib.contextmanager
    def created(self, command: str) -> Iterator[None]:
        """Makes the output's folders and (when absent) the description; on an error in
        the block removes the description it wrote and the folders it made, if empty."""
        made = []
        folder = self.output.parent
        while not folder.exists():
            made.append(folder)
            folder = folder.parent
        for path in reversed(made):
            path.mkdir(exist_ok=True)
        wrote = False
        try:
            if not os.path.lexists(self.description_path):
                text = json.dumps(self.description(command), indent=2) + "\n"
                with contextlib.suppress(OutputExistsError):  # a concurrent run wrote it
                    with atomic_output(self.description_path) as temporary:
                        temporary.write_text(text, encoding="utf-8")
                    wrote = True
            yield
        except BaseException:
            inside = [path for path in made if self.root in path.parents]
            for path in inside:  # deepest first; a folder another run filled stays
                with contextlib.suppress(OSError):
                    path.rmdir()
            if wrote and [*self.root.iterdir()] == [self.description_path]:
                self.description_path.unlink(missing_ok=True)
            for path in made[len(inside) :]:
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise


def _source_description(root: Path) -> dict:
    try:
        value = json.loads((root / DESCRIPTION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def bids_output(input_path: Path, bids: bool | None) -> BidsDerivative | None:
    """The BIDS derivative of ``input_path``, or None to use the plain output rules.

    ``bids``: True (``--bids``) requires a BIDS input (a MedsrError says why it is not);
    None (default) uses BIDS when the input is a NIfTI file at
    ``sub-X[/ses-Y]/<datatype>/`` of a dataset with a ``dataset_description.json``;
    False (``--no-bids``) never does. An input that has a ``desc`` entity already (a
    derivative, ``desc-preproc``) gets ``desc-sr`` instead; its sidecar's ``Sources``
    names the input.
    """
    if bids is False:
        return None
    root = find_root(input_path)
    name, problem = _layout_problem(input_path, root)
    if problem is not None or name is None or root is None:
        if bids:
            raise input_error(input_path, f"--bids: {problem}")
        return None
    relative = Path(os.path.abspath(input_path)).relative_to(root)
    derivative_root = root / "derivatives" / PIPELINE
    output = derivative_root / relative.parent / str(name.with_entity("desc", DESC))
    return BidsDerivative(root, derivative_root, output, relative)


def current_command() -> str:
    """This process's command line, as a shell would take it (``medsr enhance ...``;
    ``python -m medsr.cli`` shows as ``medsr``)."""
    if not sys.argv:
        return "medsr"
    program = Path(sys.argv[0]).name
    program = "medsr" if program in ("cli.py", "__main__.py") else program
    return shlex.join([program, *sys.argv[1:]])


__all__ = [
    "BidsDerivative",
    "BidsName",
    "bids_output",
    "current_command",
    "find_root",
    "parse_name",
]
