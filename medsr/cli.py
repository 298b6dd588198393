"""The ``medsr`` command: parsing and error reporting only; the work is in the modules."""

from __future__ import annotations

import json
import sys
import warnings

import click
from srkit.common.batch import cluster_options
from srkit.common.cli import batch_size_option, format_models, format_models_json, make_group
from srkit.common.export import export_command
from srkit.common.inference.backends import backend_option
from srkit.common.training.cli import make_train_command

main = make_group("medsr", "Super-resolution of MRI and CT volumes (NIfTI, DICOM).")


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the model cards as JSON.")
def models(as_json: bool) -> None:
    """List the shipped MRI/CT models, the interpolation baselines and medsr's own methods."""
    from .enhance import MEDSR_METHODS

    if as_json:
        click.echo(format_models_json(("mri", "ct"), methods=MEDSR_METHODS))
        return
    click.echo(format_models(("mri", "ct")))
    click.echo("medsr methods (no weights; use with --model):")
    for name, description in MEDSR_METHODS.items():
        click.echo(f"  {name}: {description}")


def _readers():
    from .training import train_readers

    return train_readers()


main.add_command(make_train_command(_readers))


def _command_line() -> list[str]:
    """The command as typed (the program as ``medsr``), for the provenance sidecar."""
    return ["medsr", *sys.argv[1:]]


def _show_warnings(caught: list) -> None:
    for item in caught:
        click.echo(f"warning: {item.message}", err=True)


def _parse_options(target: str, options: dict) -> dict:
    """Turns --scale/--axis text into values; problems become ``<target>: <problem>``."""
    from .enhance import parse_scale
    from .errors import input_error
    from .geometry import parse_axis

    try:
        if options.get("scale") is not None:
            options["scale"] = parse_scale(options["scale"])
        if options.get("axis") is not None:
            options["axis"] = parse_axis(options["axis"])
    except ValueError as exc:
        raise input_error(target, str(exc)) from None
    return options


@main.command("enhance")
@click.argument("input_path", metavar="INPUT")
@click.option(
    "-o",
    "--output",
    default=None,
    help="Output .nii/.nii.gz, a folder (see --format), or a batch folder.",
)
@click.option("--scale", help="In-plane factor S, or per-axis a,b,c.")
@click.option("--axis", help="Thick (through-plane) axis: x, y or z.")
@click.option("--target-spacing", type=float, default=None, help="Voxel size to reach, in mm.")
@click.option(
    "--model",
    default=None,
    help="Model name or path, bicubic/bspline/lanczos/nearest, or ibp (default: a shipped model, else bspline).",
)
@click.option(
    "--modality",
    type=click.Choice(["auto", "mri", "ct"]),
    default="auto",
    help="auto: DICOM Modality, else the value range.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "keep"]),
    default="float32",
    help="NIfTI output type: float32, or the input's stored type (rounded, clipped).",
)
@click.option(
    "--trust",
    type=click.Choice(["sform", "qform"]),
    default=None,
    help="Which NIfTI affine to use when sform and qform disagree.",
)
@click.option("--series", default=None, help="DICOM SeriesInstanceUID (or prefix / SeriesNumber).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["nifti", "dicom"]),
    default=None,
    help="Output format (default: .nii/.nii.gz path -> NIfTI; folder -o -> DICOM for a DICOM"
    " input, <stem>_sr.nii.gz inside it for a NIfTI input).",
)
@click.option(
    "--clip",
    default="auto",
    show_default=True,
    help="Output range in physical units: auto (input range +- 5 % of its span), none, or LO,HI.",
)
@click.option(
    "--force", is_flag=True, help="Run a model trained on another domain than the input (warns)."
)
@click.option(
    "--device", default=None, help="cpu, cuda, cuda:N or mps (default CUDA when available)."
)
@click.option(
    "--tile",
    type=click.IntRange(min=1),
    default=None,
    help="Input voxels per window and axis, halo included, as in geosr.",
)
@batch_size_option()
@backend_option()
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output (never the input).")
@click.option(
    "--uid-root",
    default=None,
    help="DICOM output: root of every UID medsr makes (default: pydicom's 1.2.826.0.1.3680043.8.498.).",
)
@click.option(
    "--bids/--no-bids",
    default=None,
    help="Write a BIDS derivative (derivatives/srkit/..._desc-sr_...); default: when the input is in a BIDS dataset.",
)
@click.option(
    "--self-supervised",
    is_flag=True,
    help="Adapt the model to this scan first, from its own in-plane slices (SMORE-style).",
)
@click.option(
    "--budget",
    default=None,
    help="--self-supervised time budget: 10m (default), 90s, 1h or seconds; 0 = no adaptation.",
)
@click.option(
    "--profile",
    default="auto",
    show_default=True,
    help="--self-supervised slice profile: auto, gaussian, box, FWHM_MM or KIND:FWHM_MM.",
)
@click.option(
    "--save-model",
    default=None,
    help="--self-supervised: also write the adapted model (.safetensors plus card).",
)
@cluster_options
def enhance(
    input_path: str,
    output: str | None,
    progress: bool | None,
    workers: int | None,
    scheduler: str | None,
    report_csv: bool | None,
    **options,
) -> None:
    """Super-resolve a NIfTI/MGZ file, a DICOM series folder, or a batch (folder or glob).

    A batch resumes: a file whose output and sidecar record the same input, model and
    options is skipped untouched (``--overwrite`` redoes it).
    """
    from srkit.common.inference.backends import using_backend

    from .errors import MedsrError
    from .files import enhance_batch, enhance_file, is_batch

    backend = options.pop("backend")
    options = _parse_options(input_path, options)
    if progress is None:
        progress = sys.stderr.isatty()
    with warnings.catch_warnings(record=True) as caught, using_backend(backend):
        warnings.simplefilter("always")
        if is_batch(input_path):
            if options.get("save_model"):
                raise MedsrError(
                    "--save-model writes one model; give it with one input, not a batch"
                )

            def report(result) -> None:
                for message in result.warnings:
                    click.echo(f"warning: {message}", err=True)
                if result.failed:
                    click.echo(f"error: {result.error}", err=True)
                else:
                    click.echo(f"{result.status}: {result.job.input}")

            results = enhance_batch(
                input_path,
                output,
                command_line=_command_line(),
                report=report,
                workers=workers,
                scheduler=scheduler,
                report_csv=report_csv,
                progress=progress,
                **options,
            )
            failed = sum(r.failed for r in results)
            skipped = sum(r.status == "skipped" for r in results)
            note = f" ({skipped} already up to date)" if skipped else ""
            click.echo(f"{len(results) - failed} of {len(results)} file(s) enhanced{note}")
            _show_warnings(caught)
            if failed:
                sys.exit(2)
            return
        if workers is not None or scheduler is not None:
            click.echo(
                "warning: --workers/--scheduler apply to batches; one file runs here", err=True
            )
        result = enhance_file(
            input_path, output, progress=progress, command_line=_command_line(), **options
        )
    _show_warnings(caught)
    prov = result.provenance
    click.echo(
        f"{prov['output']}: {prov['plan']}; method {prov['method']} with {prov['model']['name']}"
        f" ({prov['model']['reason']}); spacing {prov['spacing_before']} -> {prov['spacing_after']} mm"
    )


main.add_command(export_command())


@main.command("simulate")
@click.argument("hr")
@click.option("-o", "--output", required=True, help="Low-res NIfTI to write (.nii/.nii.gz).")
@click.option(
    "--axis",
    default="z",
    show_default=True,
    help="Axis to thicken: x, y or z; or several, e.g. x,y (lower in-plane resolution).",
)
@click.option(
    "--factor", type=int, default=4, show_default=True, help="HR slices per LR slice (>= 2)."
)
@click.option(
    "--profile",
    type=click.Choice(["gaussian", "box"]),
    default="gaussian",
    show_default=True,
    help="Slice profile: Gaussian with FWHM = one thick slice, or box (mean of the slices).",
)
@click.option(
    "--gap", "gap_mm", type=float, default=0.0, show_default=True, help="Gap between slices in mm."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def simulate(
    hr: str, output: str, axis: str, factor: int, profile: str, gap_mm: float, overwrite: bool
) -> None:
    """Simulate thick slices from a high-res volume (grids align under edges-kept)."""
    from .simulate import simulate_file

    axis_index = [_parse_options(hr, {"axis": a})["axis"] for a in axis.split(",")]
    low = simulate_file(
        hr,
        output,
        axis=axis_index,
        factor=factor,
        profile=profile,
        gap_mm=gap_mm,
        overwrite=overwrite,
    )
    click.echo(
        f"{output}: {list(low.shape)} voxels of {[round(float(v), 4) for v in low.spacing]} mm"
    )


@main.command("evaluate")
@click.argument("pred")
@click.argument("ref")
@click.option("--mask", default=None, help="Foreground mask volume (non-zero = inside).")
@click.option(
    "--lr", default=None, help="The low-res input: adds the B-spline baseline and the gain."
)
@click.option(
    "--data-range",
    type=float,
    default=None,
    help="PSNR/SSIM range (default: reference range in the mask).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (3D and per-slice rows).")
def evaluate(
    pred: str,
    ref: str,
    mask: str | None,
    lr: str | None,
    data_range: float | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """PSNR/SSIM of PRED against REF in a foreground mask (Otsu unless --mask)."""
    from .evaluate import evaluate_files, format_csv, format_json, format_text

    result = evaluate_files(pred, ref, mask_path=mask, lr_path=lr, data_range=data_range)
    if as_json:
        click.echo(format_json(result))
    elif as_csv:
        click.echo(format_csv(result), nl=False)
    else:
        click.echo(format_text(result))


@main.command("info")
@click.argument("scan")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--trust",
    type=click.Choice(["sform", "qform"]),
    default=None,
    help="Which NIfTI transform wins when sform and qform disagree.",
)
@click.option("--series", default=None, help="DICOM SeriesInstanceUID (or prefix / SeriesNumber).")
def info(scan: str, as_json: bool, trust: str | None, series: str | None) -> None:
    """Spacing, orientation, shape, modality, thick axis and what enhance would do."""
    from .info import describe, format_info

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        record = describe(scan, trust=trust, series=series)
    click.echo(json.dumps(record, indent=2) if as_json else format_info(record))


if __name__ == "__main__":
    main()
