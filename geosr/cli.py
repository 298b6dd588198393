"""The ``geosr`` command: parsing and error reporting only; the work is in the modules."""

from __future__ import annotations

import contextlib
import glob
import shlex
import sys
import warnings
from pathlib import Path

import click
from srkit.common.batch import cluster_options
from srkit.common.cli import EXIT_USAGE, batch_size_option, make_group, models_command
from srkit.common.clipping import ClipRule
from srkit.common.export import export_command
from srkit.common.inference.backends import backend_option
from srkit.common.training.cli import make_train_command

from .errors import GeosrError

main = make_group("geosr", "Super-resolution of GeoTIFF rasters with georeferencing kept.")
main.add_command(models_command(("rs", "natural")))  # with --json


def _readers():
    from .training import geotiff_readers

    return geotiff_readers()


main.add_command(make_train_command(_readers))

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")


@contextlib.contextmanager
def _warnings_to_stderr():
    """Shows Python warnings as ``warning: ...`` lines on stderr."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            # libraries' deprecation notices (affine's "Use `@` matmul" from rasterio's
            # warp and windows code) are for developers, not users: Python's own default
            for category in (DeprecationWarning, PendingDeprecationWarning):
                warnings.simplefilter("ignore", category)
            yield
    finally:
        warnings.showwarning = previous


def command_line() -> str:
    """This process's command line, shell-quoted (the ``SR_COMMAND`` tag)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def _expand_inputs(inputs: tuple[str, ...]) -> tuple[list[Path], bool]:
    """Files from files, folders and globs; ``batch`` is true unless one plain file was given."""
    files: list[Path] = []
    batch = len(inputs) > 1
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            batch = True
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
        elif glob.has_magic(entry):
            batch = True
            files += sorted(Path(p) for p in glob.glob(entry) if Path(p).is_file())
        else:
            files.append(path)  # a missing file is reported by the reader, with its name
    if batch and not files:
        raise click.ClickException(f"{', '.join(inputs)}: no raster files found")
    return files, batch


@main.command("enhance")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    default=None,
    help="Output file (one input) or folder (batch). Default: <stem>_sr_x<s>.tif next to the input.",
)
@click.option("--scale", default="2", show_default=True, help="Integer upscaling factor.")
@click.option(
    "--model",
    default=None,
    help="Model name or weights file (default: the shipped rs model for the scale, else bicubic).",
)
@click.option("--keep-crs", is_flag=True, help="Keep the source CRS (the default).")
@click.option("--dst-crs", default=None, help="Reproject the result, e.g. EPSG:4326.")
@click.option("--bands", default=None, help="Bands to keep, e.g. 1,2,3 (default all).")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "keep"]),
    default="keep",
    show_default=True,
    help="Output dtype: the input's (rounded and clipped to it), or float32.",
)
@click.option(
    "--clip",
    default="auto",
    show_default=True,
    help="Output range per band, physical units: auto (the valid input range widened by "
    "5 %% of its span), none, or LO,HI.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Run a model whose card domain is not rs or natural (e.g. an MRI model) anyway.",
)
@click.option(
    "--normalize",
    type=click.Choice(["auto", "dtype", "stats", "none"]),
    default="auto",
    show_default=True,
    help="Per-band scaling to the model's range.",
)
@click.option("--cog", is_flag=True, help="Write a Cloud Optimized GeoTIFF with overviews.")
@click.option(
    "--tile",
    type=click.IntRange(min=8),
    default=None,
    help="Input pixels per window and axis, halo included, as in medsr (the core is rounded to whole output blocks).",
)
@batch_size_option()
@backend_option()
@click.option(
    "--device", default=None, help="cpu, cuda, cuda:N or mps (default CUDA when available)."
)
@click.option(
    "--window",
    type=click.IntRange(min=16),
    default=1024,
    show_default=True,
    help="Output window side, pixels (memory vs overhead).",
)
@click.option(
    "--allow-no-crs",
    is_flag=True,
    help="Upscale rasters without a CRS, or without a geotransform, in pixel space "
    "(the output lacks it too).",
)
@click.option(
    "--categorical",
    is_flag=True,
    help="Class or palette-index bands: nearest neighbour, raw values, colour table kept.",
)
@click.option(
    "--max-output-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse outputs with more width*height*bands values "
    "(default $SRKIT_MAX_OUTPUT_PIXELS, else 4e9).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (never an input).")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@cluster_options
@click.option("-v", "--verbose", is_flag=True, hidden=True)
def enhance(
    inputs,
    output,
    scale,
    model,
    keep_crs,
    dst_crs,
    bands,
    dtype,
    clip,
    force,
    normalize,
    cog,
    tile,
    batch_size,
    device,
    window,
    allow_no_crs,
    categorical,
    max_output_pixels,
    overwrite,
    progress,
    backend,
    workers,
    scheduler,
    report_csv,
    verbose,
):
    """Super-resolve INPUTS (files, folders or globs) into tiled, compressed GeoTIFFs.

    A batch goes on past a file that fails: each failure is one ``error:`` line, and the
    exit code is 2 if any file failed. A batch resumes: an output whose SR_BATCH tag
    records the same input, model and options is skipped untouched (``--overwrite``
    redoes it).
    """
    from .enhance import EnhanceOptions, batch_targets, check_device, check_scale

    if keep_crs and dst_crs:
        raise click.ClickException("--keep-crs and --dst-crs contradict each other; pass one")
    factor = check_scale(scale)
    check_device(device)
    ClipRule.parse(clip)
    files, batch = _expand_inputs(inputs)
    options = EnhanceOptions(
        scale=factor,
        model=model,
        bands=bands,
        dtype=None if dtype == "keep" else dtype,
        normalize=normalize,
        cog=cog,
        dst_crs=dst_crs,
        tile=tile,
        batch_size=batch_size,
        device=device,
        window=window,
        allow_no_crs=allow_no_crs,
        categorical=categorical,
        max_output_pixels=max_output_pixels,
        overwrite=overwrite,
        progress=progress is not False,
        log=lambda text: click.echo(text, err=True),
        clip=clip,
        force=force,
        command=command_line(),
    )
    from srkit.common.inference.backends import using_backend

    with _warnings_to_stderr(), using_backend(backend):
        if not batch:
            _enhance_one(files[0], Path(output) if output else None, options, workers, scheduler)
            return
        from .batch import enhance_batch

        targets = batch_targets(files, output, factor)
        results = enhance_batch(
            files,
            targets,
            Path(output) if output else None,
            options,
            workers=workers,
            scheduler=scheduler,
            report_csv=report_csv,
            on_result=_report_file,
        )
        if any(r.failed for r in results):
            sys.exit(EXIT_USAGE)  # each failure was reported on its own line


def _enhance_one(path: Path, target: Path | None, options, workers, scheduler) -> None:
    if workers is not None or scheduler is not None:  # one raster's row bands on Dask
        from .distributed import enhance_raster_distributed

        result = enhance_raster_distributed(
            path, target, options, workers=workers, scheduler=scheduler
        )
    else:
        from .enhance import enhance_raster

        result = enhance_raster(path, target, options)
    click.echo(f"wrote {result.output}")


def _report_file(result) -> None:
    """One line per batch file: ``wrote``, ``up to date`` (resumed) or ``error:``."""
    for message in result.warnings:
        click.echo(f"warning: {message}", err=True)
    if result.failed:
        click.echo(f"error: {result.error}", err=True)
    elif result.status == "skipped":
        click.echo(f"up to date {result.job.output}")
    else:
        click.echo(f"wrote {result.job.output}")


main.add_command(export_command())


@main.command("info")
@click.argument("path")
@click.option("--scale", default="2", show_default=True, help="Scale of the enhance plan shown.")
@click.option("--model", default=None, help="Model of the enhance plan shown.")
@click.option("--bands", default=None, help="Bands of the enhance plan, e.g. 1,2,3.")
@click.option(
    "--normalize",
    type=click.Choice(["auto", "dtype", "stats", "none"]),
    default="auto",
    help="Band scaling: auto, by dtype, by statistics, or none.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-v", "--verbose", is_flag=True, hidden=True)
def info(path, scale, model, bands, normalize, as_json, verbose):
    """Show CRS, resolution, size, bands, nodata, blocks and what enhance would do."""
    from .info import describe_raster, info_json, raster_info

    with _warnings_to_stderr():
        if as_json:
            text = info_json(raster_info(path, scale, model, bands, normalize))
        else:
            text = describe_raster(path, scale, model, bands, normalize)
    click.echo(text)


@main.command("simulate")
@click.argument("hr")
@click.option("-o", "--output", required=True, help="Low-resolution output file.")
@click.option("--factor", default="2", show_default=True, help="Integer downscaling factor.")
@click.option(
    "--kernel",
    type=click.Choice(["bicubic", "gaussian"]),
    default="bicubic",
    show_default=True,
    help="Degradation: bicubic, or a Gaussian MTF.",
)
@click.option(
    "--mtf", type=float, default=0.3, show_default=True, help="Gaussian MTF at the low-res Nyquist."
)
@click.option("--bands", default=None, help="Bands to keep, e.g. 1,2,3.")
@click.option("--allow-no-crs", is_flag=True, help="Accept rasters without a CRS.")
@click.option("-v", "--verbose", is_flag=True, hidden=True)
def simulate(hr, output, factor, kernel, mtf, bands, allow_no_crs, verbose):
    """Write the low-resolution twin of HR on the contract grid (simulate then enhance lands back on HR)."""
    from .simulate import simulate_raster

    with _warnings_to_stderr():
        path = simulate_raster(hr, output, factor, kernel, bands, mtf, allow_no_crs)
    click.echo(f"wrote {path}")


@main.command("evaluate")
@click.argument("pred")
@click.argument("ref")
@click.option("--lr", default=None, help="Low-res input: also score bicubic and report the gain.")
@click.option(
    "--data-range",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="PSNR/SSIM data range in normalized units.",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="SR factor for ERGAS (default: from --lr or the SR_SCALE tag).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output.")
@click.option("-v", "--verbose", is_flag=True, hidden=True)
def evaluate(pred, ref, lr, data_range, scale, as_json, as_csv, verbose):
    """Per-band PSNR/SSIM, SAM and ERGAS of PRED against REF (same grid)."""
    from .evaluate import evaluate_rasters, format_csv, format_json, format_table

    if as_json and as_csv:
        raise click.ClickException("--json and --csv: pass one")
    result = evaluate_rasters(pred, ref, lr, data_range, scale)
    if as_json:
        click.echo(format_json(result))
    elif as_csv:
        click.echo(format_csv(result), nl=False)
    else:
        click.echo(format_table(result))


@main.command("sharpen")
@click.argument("coarse", nargs=-1, required=True)
@click.option("--guide", "guides", multiple=True, help="Finer guide raster(s); none for a product.")
@click.option("-o", "--output", required=True, help="Output GeoTIFF (on the guide's grid).")
@click.option(
    "--method",
    type=click.Choice(["cnn", "detail-injection", "bicubic"]),
    default="cnn",
    show_default=True,
    help="Guided CNN, regression plus detail injection, or plain bicubic.",
)
@click.option("--model", default=None, help="Guided model for --method cnn (default rs_guided).")
@click.option("--include-guide", is_flag=True, help="Append the guide bands to the output.")
@click.option("--mtf", type=float, default=0.3, show_default=True, help="Coarse MTF at Nyquist.")
@click.option("--window", type=int, default=1024, show_default=True, help="Window side, pixels.")
@click.option("--device", default="cpu", show_default=True, help="Torch device of the CNN.")
@click.option(
    "--self-supervised", is_flag=True, help="Fine-tune the CNN on the scene (Wald) first."
)
@click.option(
    "--budget", type=float, default=60.0, show_default=True, help="Fine-tuning seconds per file."
)
@click.option("--cog", is_flag=True, help="Write a Cloud Optimized GeoTIFF with overviews.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (never an input).")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@cluster_options
@click.option("-v", "--verbose", is_flag=True, hidden=True)
def sharpen_command(
    coarse, guides, output, method, model, include_guide, mtf, window, device,
    self_supervised, budget, cog, overwrite, progress, workers, scheduler, report_csv,
    verbose,
):  # fmt: skip
    """Sharpen COARSE bands onto the grid of finer --guide bands of the same scene.

    COARSE may also be one Sentinel-2 .SAFE (L1C/L2A: every 20 m and 60 m band to 10 m) or
    one Landsat collection folder (B1-B7 to 15 m by the pan B8). Several products make a
    batch: -o is then a folder (OUT/<product>_sharp.tif each), one task per product, in
    process or on Dask (--workers, --scheduler), resumed as `geosr enhance DIR` is.
    """
    from .sharpen import SharpenOptions, sharpen

    options = SharpenOptions(
        method=method, model=model, include_guide=include_guide, mtf=mtf, window=window,
        device=device, self_supervised=self_supervised, budget=budget, cog=cog,
        overwrite=overwrite, progress=progress is not False,
        log=lambda line: click.echo(line, err=True),
    )  # fmt: skip
    paths = [Path(c) for c in coarse]
    # several product folders (each read in its own task) make a batch
    batch = len(paths) > 1 and not guides and all(p.is_dir() for p in paths)
    with _warnings_to_stderr():
        if not batch:
            if workers is not None or scheduler is not None:
                raise GeosrError(
                    "--workers/--scheduler run one task per product: give several .SAFE or "
                    "Landsat folders and an output folder"
                )
            result = sharpen(paths, list(guides), output, method, options)
            click.echo(f"wrote {result.output}")
            return
        from .batch import sharpen_batch

        folder = Path(output)
        if folder.exists() and not folder.is_dir():
            raise GeosrError(f"-o {output}: several products need an output folder")
        results = sharpen_batch(
            paths,
            folder,
            options,
            workers=workers,
            scheduler=scheduler,
            report_csv=report_csv,
            on_result=_report_file,
        )
        if any(r.failed for r in results):
            sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
