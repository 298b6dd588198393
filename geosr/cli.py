"""The ``geosr`` command: parsing and error reporting only; the work is in the modules."""

from __future__ import annotations

import contextlib
import glob
import sys
import warnings
from pathlib import Path

import click

from common.cli import EXIT_USAGE, make_group, models_command
from common.training.cli import make_train_command

main = make_group("geosr", "Super-resolution of GeoTIFF rasters with georeferencing kept.")
main.add_command(models_command(("rs", "natural")))


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
            yield
    finally:
        warnings.showwarning = previous


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
    type=click.Choice(["float32"]),
    default=None,
    help="Output dtype (default: the input's, rounded and clipped).",
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
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Windows per forward pass (default 1); more helps on a GPU, same result.",
)
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
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
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
    no_progress,
    verbose,
):
    """Super-resolve INPUTS (files, folders or globs) into tiled, compressed GeoTIFFs.

    A batch goes on past a file that fails: each failure is one ``error:`` line, and the
    exit code is 2 if any file failed.
    """
    from .enhance import EnhanceOptions, batch_targets, check_device, check_scale

    if keep_crs and dst_crs:
        raise click.ClickException("--keep-crs and --dst-crs contradict each other; pass one")
    factor = check_scale(scale)
    check_device(device)
    files, batch = _expand_inputs(inputs)
    options = EnhanceOptions(
        scale=factor,
        model=model,
        bands=bands,
        dtype=dtype,
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
        progress=not no_progress,
        log=lambda text: click.echo(text, err=True),
    )
    with _warnings_to_stderr():
        if not batch:
            _enhance_one(files[0], Path(output) if output else None, options)
            return
        targets = batch_targets(files, output, factor)
        if _enhance_batch(files, targets, Path(output) if output else None, options):
            sys.exit(EXIT_USAGE)  # each failure was reported on its own line


def _enhance_one(path: Path, target: Path | None, options) -> None:
    from .enhance import enhance_raster

    result = enhance_raster(path, target, options)
    click.echo(f"wrote {result.output}")


def _enhance_batch(files, targets, folder: Path | None, options) -> int:
    """Enhances every file, reporting failures (user errors) as ``error:`` lines.

    Creates ``folder`` if needed and removes it again when it stays empty. Returns the
    number of files that failed; a bug (any other exception) still stops the batch.
    """
    from common.errors import SRKitError, first_line

    created = folder is not None and not folder.exists()
    if created:
        folder.mkdir()
    failures = 0
    try:
        for path, target in zip(files, targets):
            try:
                _enhance_one(path, target, options)
            except (SRKitError, OSError) as exc:
                failures += 1
                message = first_line(exc)
                if path.name not in message:
                    message = f"{path}: {message}"
                click.echo(f"error: {message}", err=True)
    finally:
        if created and not any(folder.iterdir()):
            folder.rmdir()
    return failures


@main.command("info")
@click.argument("path")
@click.option("--scale", default="2", show_default=True, help="Scale of the enhance plan shown.")
@click.option("--model", default=None, help="Model of the enhance plan shown.")
@click.option("--bands", default=None, help="Bands of the enhance plan, e.g. 1,2,3.")
@click.option("--normalize", type=click.Choice(["auto", "dtype", "stats", "none"]), default="auto")
@click.option("-v", "--verbose", is_flag=True, hidden=True)
def info(path, scale, model, bands, normalize, verbose):
    """Show CRS, resolution, size, bands, nodata, blocks and what enhance would do."""
    from .info import describe_raster

    click.echo(describe_raster(path, scale, model, bands, normalize))


@main.command("simulate")
@click.argument("hr")
@click.option("-o", "--output", required=True, help="Low-resolution output file.")
@click.option("--factor", default="2", show_default=True, help="Integer downscaling factor.")
@click.option(
    "--kernel", type=click.Choice(["bicubic", "gaussian"]), default="bicubic", show_default=True
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


if __name__ == "__main__":
    main()
