"""``medsr enhance`` on files: output naming, the output checks, sidecars and batches.

The in-memory work is :func:`medsr.enhance.enhance_volume`; this module reads the input,
decides and checks every path a run writes (the output and its provenance sidecar), and
writes them together through :func:`common.io.atomic_outputs`: both land or neither.

The output rules, checked before any work:

- the format never depends on what exists on disk, so a rerun gives the same result
  (:func:`resolve_output`): ``output_format`` (``--format``) decides; without it a
  ``.nii``/``.nii.gz`` path is NIfTI, a folder ``-o`` is a DICOM series for a DICOM input
  and ``<stem>_sr.nii.gz`` inside that (existing) folder for a NIfTI input;
- the output is ``.nii``/``.nii.gz`` (NIfTI) or a folder name without an extension (a
  derived DICOM series); any other extension is an error listing those;
- the output (or its sidecar) is never the input, never inside a DICOM input's folder and
  never a folder that contains the input, through symlinks and hard links too;
- the sidecar is never the input's own sidecar (``sub-01_T1w.json`` of a BIDS input);
- without ``overwrite`` neither the output nor its sidecar may exist; with it, an existing
  folder is replaced only when it holds exactly a previous DICOM output of medsr (its
  sidecar says so and it holds only ``.dcm`` files), never any other folder.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from srkit.common import __version__
from srkit.common.batch import (
    Job,
    JobResult,
    report_path,
    run_batch,
    sha256_file,
    use_model_cache,
    write_report,
)
from srkit.common.errors import SRKitError, first_line
from srkit.common.io import OutputTarget, atomic_outputs, check_not_input, check_targets, is_within

from .bids import bids_output, current_command
from .enhance import EnhanceResult, check_options, enhance_planned, fmt_scale, plan_volume
from .errors import MedsrError, input_error
from .io import (
    NIFTI_SUFFIXES,
    check_uid_root,
    is_nifti_path,
    read_volume,
    save_dicom_series,
    save_nifti,
    sha256_of,
)

NIFTI_OUTPUTS = (".nii", ".nii.gz")
OUTPUT_FORMATS = ("nifti", "dicom")
SIDECAR_TOOL = "medsr enhance"
OUTPUT_HASH_RULE = (
    "sha256 of the NIfTI file; of a DICOM folder: sha256 over its files sorted by relative"
    " path, each contributing 'path\\0' and its own sha256 hex (common.batch.sha256_file)"
)


def default_output(path: Path) -> Path:
    """``scan.nii.gz -> scan_sr.nii.gz``; a DICOM folder (or file) ``d -> d_sr/``."""
    if is_nifti_path(path):
        name = path.name
        for suffix in NIFTI_SUFFIXES:
            if name.lower().endswith(suffix):
                stem = name[: -len(suffix)]
                return path.with_name(
                    f"{stem}_sr{'.nii.gz' if suffix in ('.mgz', '.mgh') else suffix}"
                )
    folder = path if path.is_dir() else path.parent
    return folder.with_name(folder.name + "_sr")


def sidecar_path(output: Path) -> Path:
    """The provenance JSON beside an output: ``x.nii.gz -> x.json``, ``folder -> folder.json``."""
    name = output.name
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh"):
        if name.lower().endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".json")
    return output.with_name(name + ".json")


def output_kind(output: Path) -> str:
    """``"nifti"`` or ``"dicom"`` for an output path; any other extension is an error."""
    name = output.name.lower()
    if name.endswith(NIFTI_OUTPUTS):
        return "nifti"
    if name.endswith((".mgz", ".mgh")):
        raise input_error(output, "writing MGZ is not supported; use .nii or .nii.gz")
    if output.suffix and not output.is_dir():
        raise input_error(
            output,
            f"unknown output extension {output.suffix!r}; use .nii or .nii.gz (NIfTI) or a"
            " folder name without an extension (a DICOM series)",
        )
    return "dicom"


def _previous_dicom_output(folder: Path) -> bool:
    """True when ``folder`` holds exactly a previous medsr DICOM output (sidecar + .dcm)."""
    try:
        prov = json.loads(sidecar_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(prov, dict) or prov.get("tool") != SIDECAR_TOOL:
        return False
    if Path(str(prov.get("output", ""))).name != folder.name:
        return False
    entries = list(folder.iterdir())
    return all(e.is_file() and not e.is_symlink() and e.suffix == ".dcm" for e in entries)


def resolve_output(
    input_path: Path,
    output: str | os.PathLike | None,
    *,
    dicom: bool,
    output_format: str | None = None,
) -> Path:
    """The output path of one scan, from the command alone (never from what exists), so
    rerunning a command (with ``--overwrite``) replaces the first run's output.

    - ``output_format`` ``"nifti"``/``"dicom"`` decides the format; a folder ``-o`` then
      gets ``<stem>_sr.nii.gz`` inside it (NIfTI) or is the series folder (DICOM);
    - without it: a ``.nii``/``.nii.gz`` path is NIfTI; a folder ``-o`` is the DICOM series
      itself for a DICOM input, and ``<stem>_sr.nii.gz`` inside it for a NIfTI input;
    - no ``-o``: :func:`default_output` (in the chosen format when one is given).

    NIfTI goes only into an existing folder, and never into a previous medsr DICOM output.
    """
    if output_format not in (None, *OUTPUT_FORMATS):
        raise MedsrError(f"--format must be nifti or dicom, got {output_format!r}")
    beside = default_output(input_path)
    if dicom:
        nifti_name, dicom_name = beside.name + ".nii.gz", beside.name
    else:
        nifti_name = beside.name
        dicom_name = nifti_name[: -len(".nii.gz")] if nifti_name.endswith(".nii.gz") else None
        dicom_name = dicom_name or nifti_name[: -len(".nii")]
    if output is None:
        if output_format is None:
            return beside
        return beside.with_name(nifti_name if output_format == "nifti" else dicom_name)
    out = Path(output)
    if out.name in ("", ".", ".."):  # "-o ." names a folder by its path
        out = Path(os.path.abspath(out))
    if out.name.lower().endswith(NIFTI_OUTPUTS):
        if output_format == "dicom":
            raise input_error(
                out, "--format dicom writes a folder; give a folder name, not a NIfTI file name"
            )
        return out
    if output_format == "dicom" or (output_format is None and dicom):
        return out
    if out.suffix and not out.is_dir():
        return out  # an unknown extension: check_output says which ones are accepted
    if not out.is_dir():
        raise input_error(
            out,
            "no such folder: NIfTI output goes into an existing folder as"
            f" {nifti_name}; create it, give a .nii.gz name, or pass --format dicom",
        )
    if _previous_dicom_output(out):
        raise input_error(
            out,
            "is a previous medsr DICOM output; pass --format dicom to replace it (with"
            " --overwrite), or choose another folder for NIfTI output",
        )
    return out / nifti_name


def check_output(
    input_path: Path,
    output: Path,
    overwrite: bool = False,
    *,
    dicom: bool = False,
    sources: Sequence[Path] = (),
) -> Path:
    """Applies the module's output rules to ``output`` and its sidecar; returns the sidecar.

    ``dicom``: the input is a DICOM series (a folder, or one file standing for its folder).
    ``sources``: every input file (the DICOM slices); hard links to them are refused too.
    """
    kind = output_kind(output)
    sidecar = sidecar_path(output)
    src = input_path.resolve()
    series_folder = (src if src.is_dir() else src.parent) if dicom else None
    for path in (output, sidecar):
        if series_folder is not None and is_within(path.resolve(), series_folder):
            raise input_error(path, "output is in the input DICOM folder; choose another path")
        check_not_input(path, [src, *sources], error=MedsrError)
    if not dicom and is_nifti_path(input_path) and sidecar.resolve() == sidecar_path(src):
        raise input_error(sidecar, "is the input's own sidecar; choose another output name")
    if not output.parent.is_dir():
        raise input_error(output, "the output's folder does not exist")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise input_error(output, f"the output's folder {output.parent} is not writable")
    if os.path.lexists(output):
        if not overwrite:
            raise input_error(
                output, "output already exists; pass --overwrite or choose another path"
            )
        if kind == "nifti" and output.is_dir():
            raise input_error(output, "is a folder; give a .nii/.nii.gz file name")
        if kind == "dicom" and not (output.is_dir() and not output.is_symlink()):
            raise input_error(output, "exists and is not a folder; a DICOM output is a folder")
        if kind == "dicom" and not _previous_dicom_output(output):
            raise input_error(
                output,
                "exists and is not a previous medsr DICOM output (no matching sidecar, or"
                " files other than .dcm); remove it yourself or choose another path",
            )
    if os.path.lexists(sidecar) and not overwrite:
        raise input_error(
            sidecar, "the output's sidecar already exists; pass --overwrite or choose another path"
        )
    return sidecar


def enhance_file(
    input_path: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    scale: Sequence[int] | None = None,
    axis: int | None = None,
    target_spacing: float | None = None,
    model: str | None = None,
    modality: str = "auto",
    dtype: str = "float32",
    trust: str | None = None,
    series: str | None = None,
    clip: str | None = "auto",
    force: bool = False,
    output_format: str | None = None,
    device: str | None = None,
    tile: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    uid_root: str | None = None,
    bids: bool | None = None,
    command_line: Sequence[str] | None = None,
    batch_record: dict[str, Any] | None = None,
    self_supervised: bool = False,
    budget: str | float | None = None,
    profile: str | None = "auto",
    save_model: str | os.PathLike | None = None,
) -> EnhanceResult:
    """Reads, enhances and writes one scan; returns the result with ``output``/``sidecar``.

    ``self_supervised``: first adapt the model to the scan (:func:`medsr.self_supervised.
    adapt`, within ``budget``, with ``profile``; ``model`` is then the model to start
    from) and record the adaptation in the sidecar; ``save_model`` also writes the model
    used (``.safetensors`` plus its card), checked like the output before any work.

    The output path and format: :func:`resolve_output` (``output_format``, else the path
    and the input's format). ``clip``, ``force``: as :func:`medsr.enhance.enhance_volume`.
    ``command_line``: recorded in the sidecar (the CLI passes its arguments). ``dtype``: ``"float32"`` or ``"keep"`` (the input's stored
    type, rounded and clipped; DICOM output always keeps the source bit depth). The output
    and its sidecar are written to temporaries and renamed together: nothing is left
    behind on error, and without ``overwrite`` nothing existing is replaced.
    ``batch_record``: stored as the sidecar's ``batch`` entry (a batch's resume record,
    :func:`common.batch.job_record`). ``uid_root``: root of the UIDs of a DICOM output
    (:func:`medsr.io.dicom_write.check_uid_root`). ``bids``: without ``output``, write a
    BIDS derivative (:func:`medsr.bids.bids_output`: True requires a BIDS input, None
    when the input is one, False never).
    """
    input_path = Path(input_path)
    if dtype not in ("float32", "keep"):
        raise MedsrError(f"--dtype must be float32 or keep, got {dtype!r}")
    check_uid_root(uid_root)
    check_options(modality=modality, clip=clip, device=device)  # before any work
    if self_supervised:  # so do bad --budget/--profile values
        from .self_supervised import parse_budget
        from .slice_profile import parse_profile

        parse_budget(budget)
        parse_profile(profile)
    volume = read_volume(input_path, trust=trust, series=series)
    dicom = volume.format == "dicom"
    if bids and output_format == "dicom":
        raise input_error(input_path, "--bids writes NIfTI derivatives; drop --format dicom")
    # BIDS derivatives are NIfTI: --format dicom (like -o) turns the automatic BIDS rule off
    automatic = output is None and output_format != "dicom"
    derivative = bids_output(input_path, bids) if automatic else None
    if derivative is not None:
        out = derivative.output
        derivative.check()
    else:
        out = resolve_output(input_path, output, dicom=dicom, output_format=output_format)
    if derivative is None or out.parent.is_dir():
        side = check_output(input_path, out, overwrite, dicom=dicom, sources=volume.source_files)
    else:  # a new derivative folder: nothing in it can exist or be the input
        side = sidecar_path(out)
    plan = plan_volume(volume, input_path, scale=scale, axis=axis, target_spacing=target_spacing)
    if not self_supervised and (budget is not None or save_model is not None):
        raise MedsrError("--budget and --save-model go with --self-supervised")
    if not self_supervised and profile not in (None, "auto"):
        raise MedsrError("--profile goes with --self-supervised")
    model_targets = _model_targets(save_model, input_path, volume, overwrite)
    input_hash = sha256_of(input_path, list(volume.source_files) if dicom else None)
    reason = None
    if self_supervised:
        from .self_supervised import adapt

        try:
            model = adapt(
                volume,
                plan,
                budget=budget if budget is not None else "10m",
                profile=profile,
                model=model,
                modality=modality,
                source_sha256=input_hash,
                progress=progress,
            )
        except SRKitError as exc:
            if str(exc).startswith(str(input_path)):
                raise
            raise input_error(input_path, first_line(exc)) from None
        record = model.adaptation
        if record.get("fallback"):
            reason = "self-supervised adaptation did not help on held-out slices; start model"
        elif record.get("steps"):
            reason = "adapted to this scan (self-supervised)"
        else:
            reason = f"self-supervised with budget 0: {record['start']}"
    result = enhance_planned(
        volume,
        plan,
        input_path,
        model=model,
        model_reason=reason,
        modality=modality,
        clip=clip,
        force=force,
        device=device,
        tile=tile,
        batch_size=batch_size,
        progress=progress,
    )
    prov = result.provenance
    prov["command_line"] = list(command_line) if command_line is not None else None
    prov["input_sha256"] = input_hash
    if self_supervised:
        prov["self_supervised"] = model.adaptation
        if save_model is not None:
            prov["saved_model"] = str(save_model)
    if dicom:
        prov["input_files"] = len(volume.source_files)
    prov["output"] = str(out)
    prov["sidecar"] = str(side)
    if batch_record is not None:
        prov["batch"] = batch_record
    if derivative is not None:
        prov.update(derivative.sidecar_fields())
    derivation = (
        f"medsr {__version__} {prov['model']['name']} x{fmt_scale(prov['total_scale'])}"
        f" ({prov['method']})"
    )
    kind = output_kind(out)
    targets = [OutputTarget(out, directory=kind == "dicom"), OutputTarget(side)]
    folders = derivative.created(current_command()) if derivative else nullcontext()
    with folders, atomic_outputs(targets, overwrite=overwrite) as (temporary, temporary_side):
        if kind == "nifti":
            save_nifti(result.volume, temporary, keep_dtype=dtype == "keep")
        else:
            save_dicom_series(
                result.volume,
                temporary,
                template=volume,
                derivation=derivation,
                name=out,
                uid_root=uid_root,
            )
        prov["output_sha256"] = sha256_file(temporary)
        prov["output_sha256_rule"] = OUTPUT_HASH_RULE
        temporary_side.write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
    if model_targets:
        from srkit.common.models.weights import save_model as save_weights

        save_weights(model, model_targets[0], model.card)
    return result


def _model_targets(
    save_model: str | os.PathLike | None, input_path: Path, volume, overwrite: bool
) -> list[Path]:
    """The weights file and card ``--save-model`` will write, checked before any work."""
    if save_model is None:
        return []
    from srkit.common.models.weights import card_path_for

    path = Path(save_model)
    if path.suffix != ".safetensors":
        raise input_error(path, "--save-model writes .safetensors (plus a .json card beside it)")
    targets = [path, card_path_for(path)]
    for target in targets:
        check_not_input(target, [input_path.resolve(), *volume.source_files], error=MedsrError)
    try:
        check_targets(targets, overwrite=overwrite)
    except SRKitError as exc:
        raise MedsrError(first_line(exc)) from None
    return targets


def expand_inputs(spec: str) -> list[Path]:
    """A batch: the NIfTI/MGZ files of a folder, or the matches of a glob pattern."""
    path = Path(spec)
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec))
        if not files:
            raise MedsrError(f"{spec}: no files match")
        return files
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and is_nifti_path(p))
    return [path]


def is_batch(spec: str) -> bool:
    """True for a glob pattern or a folder that holds NIfTI/MGZ files."""
    if any(ch in spec for ch in "*?["):
        return True
    path = Path(spec)
    return path.is_dir() and any(p.is_file() and is_nifti_path(p) for p in path.iterdir())


def batch_output_name(file: Path) -> str:
    """The output name of one batch file: the same name, ``.mgz``/``.mgh`` as ``.nii.gz``."""
    if file.name.lower().endswith((".mgz", ".mgh")):
        return file.name[:-4] + ".nii.gz"
    return file.name


class EnhanceTask:
    """One file of a ``medsr enhance`` batch (:class:`common.batch.BatchTask`)."""

    resumable = True

    def run(self, job: Job, overwrite: bool, record: Mapping[str, Any]) -> None:
        from . import methods

        use_model_cache(methods)  # one load per worker process
        options = dict(job.options)
        if options.get("scale") is not None:
            options["scale"] = tuple(options["scale"])
        try:
            enhance_file(
                job.input, job.output, overwrite=overwrite, batch_record=dict(record), **options
            )
        except (SRKitError, OSError):
            raise
        except ValueError as exc:  # a ValueError from a reader: this file's problem
            raise input_error(job.input, first_line(exc)) from None

    def recorded(self, output: Path) -> Mapping[str, Any] | None:
        prov = json.loads(sidecar_path(output).read_text(encoding="utf-8"))
        return prov.get("batch") if isinstance(prov, dict) else None

    def targets(self, job: Job) -> list[Path]:
        return [job.output, sidecar_path(job.output)]


def batch_jobs(files: Sequence[Path], out_dir: Path, options: Mapping[str, Any]) -> list[Job]:
    """One job per file: same name in ``out_dir``, plain options (tuples as lists)."""
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    return [Job(file, out_dir / batch_output_name(file), plain) for file in files]


def enhance_batch(
    spec: str,
    out_dir: str | os.PathLike | None,
    report: Callable[[JobResult], None] | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    report_csv: bool | None = None,
    progress: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> list[JobResult]:
    """Enhances every file of a batch into ``out_dir`` (same file names).

    Runs through :func:`common.batch.run_batch`: in process, on a LocalCluster of
    ``workers`` or on the Dask ``scheduler``. Each file's user error fails that file
    alone (``report`` is called with each result as it ends); a file whose output and
    sidecar record the same input hash, model and options is skipped untouched unless
    ``overwrite``. ``out_dir`` defaults to ``<folder>_sr`` for a folder (required for a
    glob). ``report_csv`` (default: on for Dask runs) writes ``out_dir/batch_report.csv``.
    A folder this call created is removed again when no file could be written into it.
    """
    if options.get("bids"):
        raise MedsrError("--bids applies to one input file; a batch writes into its -o folder")
    check_uid_root(options.get("uid_root"))
    if options.get("output_format") == "dicom":
        raise MedsrError(f"{spec}: a batch writes NIfTI files; --format dicom needs one input")
    check_options(
        modality=options.get("modality", "auto"),
        clip=options.get("clip", "auto"),
        device=options.get("device"),
    )
    files = expand_inputs(spec)
    if out_dir is None:
        if not Path(spec).is_dir():
            raise MedsrError(f"{spec}: a glob batch needs an output folder (-o DIR)")
        out_dir = Path(spec).with_name(Path(spec).name + "_sr")
    out_dir = Path(out_dir)
    if is_nifti_path(out_dir):
        raise MedsrError(f"{out_dir}: a batch needs an output folder, not a file name")
    if any(file.resolve().parent == out_dir.resolve() for file in files):
        raise MedsrError(f"{out_dir}: output folder is the input folder; choose another")
    if not out_dir.parent.is_dir():
        raise MedsrError(f"{out_dir}: the output's folder {out_dir.parent} does not exist")
    if report_csv is None:
        report_csv = workers is not None or scheduler is not None
    jobs = batch_jobs(files, out_dir, {**options, "progress": False})
    created = not out_dir.exists()
    out_dir.mkdir(exist_ok=True)
    try:
        results = run_batch(
            EnhanceTask(),
            jobs,
            workers=workers,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=progress,
            on_result=report,
        )
        if report_csv:
            write_report(report_path([], out_dir), results)
    finally:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
    return results
