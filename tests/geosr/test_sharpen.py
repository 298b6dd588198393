"""geosr sharpen: grid nesting, exact output grid, detail injection, the guided CNN,
nodata propagation and one-line refusals (generated scenes, tests/data/guided.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from click.testing import CliRunner
from srkit.common.models import build_model, load_model, save_model
from srkit.geosr.cli import main
from srkit.geosr.errors import GeosrError
from srkit.geosr.guided import degrade, fit_injection, sharpen_arrays
from srkit.geosr.guided_train import WaldScene, train_items, train_model
from srkit.geosr.sharpen import nest_grid, sharpen

from tests.data.guided import make_guided_scene

GUIDE = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 4500000.0)


def _crop(array, scene, offset):
    ox, oy = int(np.ceil(offset[0])), int(np.ceil(offset[1]))
    h, w = scene.truth.shape[1:]
    return array[..., oy : oy + h, ox : ox + w]


@pytest.mark.parametrize(
    ("ratio", "col", "row", "rows", "cols"),
    [
        (2, 0, 0, (0, 10), (0, 10)),
        (3, 4, -6, (2, 10), (0, 10)),  # the first 2 coarse rows lie above the guide
        (6, -12, 7, (0, 5), (2, 10)),  # 7 + 5 * 6 = 37 <= 40 < 43
    ],
)
def test_nest_grid_finds_ratio_offset_and_footprint(ratio, col, row, rows, cols):
    coarse = GUIDE @ Affine.translation(col, row) @ Affine.scale(ratio)
    nesting = nest_grid(coarse, (10, 10), GUIDE, (40, 50), "c.tif")
    assert (nesting.ratio, nesting.col, nesting.row) == (ratio, col, row)
    assert (nesting.rows, nesting.cols) == (slice(*rows), slice(*cols))
    grows, gcols = nesting.footprint()
    assert grows == slice(row + rows[0] * ratio, row + rows[1] * ratio)
    assert gcols == slice(col + cols[0] * ratio, col + cols[1] * ratio)


@pytest.mark.parametrize(
    ("coarse", "message"),
    [
        (GUIDE @ Affine.translation(0.5, 0) @ Affine.scale(2), "offset by (0.5, 0) guide pixels"),
        (GUIDE @ Affine.scale(2.5), "2.5 x 2.5 guide pixels"),
        (GUIDE @ Affine.rotation(10) @ Affine.scale(2), "rotated or flipped"),
        (GUIDE, "at least 2x coarser"),
        (GUIDE @ Affine.translation(500, 0) @ Affine.scale(2), "no coarse pixel"),
    ],
)
def test_nest_grid_refuses_with_the_numbers(coarse, message):
    with pytest.raises(GeosrError, match=message.replace("(", r"\(").replace(")", r"\)")):
        nest_grid(coarse, (10, 10), GUIDE, (40, 50), "c.tif")


@pytest.mark.parametrize(("ratio", "offset"), [(2, (0.0, 0.0)), (3, (2.0, 5.0))])
def test_output_on_the_guide_grid_and_metadata_kept(tmp_path, ratio, offset):
    scene = make_guided_scene(tmp_path, ratio=ratio, offset=offset, dtype="uint16")
    out = tmp_path / "out.tif"
    result = sharpen(scene.coarse, scene.guide, out, method="detail-injection")
    with rasterio.open(scene.guide) as g, rasterio.open(out) as o:
        assert o.crs == g.crs and o.transform == g.transform  # exact, not approximately
        assert (o.width, o.height) == (g.width, g.height)
        assert o.dtypes == ("uint16",) and o.count == 1
        assert o.descriptions == ("swir",) and o.tags(1)["WAVELENGTH"] == "1610"
        assert o.tags()["SENSOR"] == "synthetic" and o.tags()["SR_METHOD"] == "detail-injection"
        data = o.read(1)
    assert result.ratios == [ratio]
    # outside the coarse footprint (the offset strips): invalid (0, no nodata, uint16)
    if offset[1]:
        assert (data[: int(offset[1])] == 0).all()
    inside = _crop(data, scene, offset).astype(float) / 10000
    assert np.abs(inside - scene.truth[0]).max() < 2e-3  # uint16 rounding + linear mix


@pytest.mark.parametrize("ratio", [2, 3])
def test_detail_injection_recovers_a_linear_mix_of_the_guides(tmp_path, ratio):
    scene = make_guided_scene(tmp_path, ratio=ratio, coarse_size=(30, 40), offset=(3.0, 0.0))
    out_big, out_small = tmp_path / "big.tif", tmp_path / "small.tif"
    sharpen(scene.coarse, scene.guide, out_big, method="detail-injection")
    sharpen(scene.coarse, scene.guide, out_small, method="detail-injection", window=16)
    with rasterio.open(out_big) as a, rasterio.open(out_small) as b:
        big, small = a.read(1), b.read(1)
    error = np.abs(_crop(big, scene, (3, 0)) - scene.truth[0])
    assert error.max() < 1e-3
    bicubic = sharpen_arrays(degrade(scene.truth, ratio), scene.truth, ratio, "bicubic")
    assert np.abs(bicubic - scene.truth).max() > 0.03  # the guides did the work
    np.testing.assert_allclose(small, big, atol=1e-5, equal_nan=True)  # windows don't matter


def test_fit_recovers_the_mixing_weights(tmp_path):
    scene = make_guided_scene(tmp_path, ratio=2)
    fit = fit_injection(degrade(scene.truth, 2), scene.guides[:, :48, :64], 2)
    np.testing.assert_allclose(fit.bands[0].weights, [0.5, -0.3, 0.6], atol=1e-4)
    assert fit.bands[0].intercept == pytest.approx(0.2, abs=1e-4)
    assert fit.bands[0].r2 > 0.9999


def _train_scene(seed, relation, ratio=2, size=(48, 48)):
    from tests.data.guided import guide_bands, linear_band, nonlinear_band

    guides = guide_bands(seed, 3, size[0] * ratio, size[1] * ratio)
    truth = (nonlinear_band if relation == "nonlinear" else linear_band)(guides)
    valid = np.ones(truth.shape[1:], dtype=bool)
    return WaldScene(f"s{seed}", degrade(truth, ratio), guides, truth, valid, ratio)


def test_guided_cnn_beats_detail_injection_on_a_nonlinear_band(tmp_path):
    """A small guided CNN trained briefly on other generated scenes (raw guides included)
    beats detail injection on a held-out scene where the band is nonlinear in the guides."""
    torch.manual_seed(0)
    model = build_model(
        "guided_resnet", dims=2, channels=1, scale=1, guide_channels=5, width=16, depth=2
    )
    items = train_items([_train_scene(seed, "nonlinear") for seed in (1, 2, 3)], model)
    train_model(model, items, 400, batch=8, patch=40, lr=2e-3, log=None)
    weights = tmp_path / "guided.safetensors"
    save_model(model, weights, model.card.replace(name="guided_test", domain="rs"))
    scene = make_guided_scene(tmp_path, relation="nonlinear", coarse_size=(40, 48))
    outputs = {}
    for method in ("detail-injection", "cnn", "bicubic"):
        out = tmp_path / f"{method}.tif"
        sharpen(scene.coarse, scene.guide, out, method=method, model=str(weights))
        with rasterio.open(out) as o:
            outputs[method] = o.read(1)[4:-4, 4:-4]
    truth = scene.truth[0][4:-4, 4:-4]
    rmse = {m: float(np.sqrt(((v - truth) ** 2).mean())) for m, v in outputs.items()}
    assert rmse["detail-injection"] < rmse["bicubic"]
    assert rmse["cnn"] < 0.8 * rmse["detail-injection"], rmse


def test_untrained_injection_init_is_detail_injection_and_reloads(tmp_path):
    model = build_model("guided_resnet", dims=2, channels=1, scale=1, guide_channels=2)
    scene = make_guided_scene(tmp_path, relation="nonlinear")
    coarse = degrade(scene.truth, 2)
    guides = scene.guides
    np.testing.assert_allclose(
        sharpen_arrays(coarse, guides, 2, "cnn", model),
        sharpen_arrays(coarse, guides, 2, "detail-injection"),
        atol=1e-5,
    )
    torch.nn.init.normal_(model.tail.weight, std=0.1)
    path = save_model(model, tmp_path / "m.safetensors", model.card.replace(name="m"))
    again = load_model(path)
    x = torch.randn(2, 3, 20, 20)
    torch.testing.assert_close(again(x), model(x))
    r = model.receptive_radius[0]
    y = torch.randn(1, 3, 41, 41)
    z = y.clone()
    z[0, :, 20, 20 + r + 1] += 5.0  # just outside the receptive radius of the centre
    assert torch.equal(model(y)[0, 0, 20, 20], model(z)[0, 0, 20, 20])
    z[0, :, 20, 20 + r] += 5.0
    assert not torch.equal(model(y)[0, 0, 20, 20], model(z)[0, 0, 20, 20])


def test_nodata_and_invalid_guides_propagate(tmp_path):
    scene = make_guided_scene(
        tmp_path,
        dtype="uint16",
        coarse_nodata=65535,
        nodata_box=(slice(4, 8), slice(10, 14)),
    )
    with rasterio.open(scene.guide, "r+") as g:  # NaN guide pixels: invalid guides
        data = g.read()
        data[:, 30:34, 2:6] = np.nan
        g.write(data)
    out = tmp_path / "out.tif"
    sharpen(scene.coarse, scene.guide, out, method="detail-injection")
    with rasterio.open(out) as o:
        assert o.nodata == 65535
        values = o.read(1)
        mask = o.read_masks(1)
    invalid = np.zeros(values.shape, dtype=bool)
    invalid[8:16, 20:28] = True  # the coarse box, upsampled x2
    invalid[30:34, 2:6] = True
    assert ((values == 65535) == invalid).all()
    assert ((mask == 0) == invalid).all()
    # valid pixels next to the holes are still right (the fill kept nodata out)
    good = ~invalid
    assert np.abs(values[good] / 10000 - scene.truth[0][good]).max() < 0.02


def _run(args):
    return CliRunner().invoke(main, ["sharpen", *map(str, args)])


def _one_line_exit_2(result, needle, out):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


def test_cli_writes_and_includes_the_guides(tmp_path):
    scene = make_guided_scene(tmp_path)
    out = tmp_path / "out.tif"
    result = _run(
        [scene.coarse, "--guide", scene.guide, "-o", out, "--method", "bicubic",
         "--include-guide", "--no-progress"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as o:
        assert o.count == 4 and o.descriptions == ("swir", "blue", "green", "red")
        np.testing.assert_array_equal(o.read([2, 3, 4]), scene.guides)
    again = _run([scene.coarse, "--guide", scene.guide, "-o", out, "--method", "bicubic"])
    assert again.exit_code == 2 and "exists" in again.output


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"coarse_crs": "EPSG:32617"}, "differs from the guide"),
        ({"pixel_ratio": 2.5}, "the ratio must be one integer"),
        ({"offset": (0.5, 0.0)}, "offset by (0.5, 0)"),
    ],
)
def test_cli_refuses_bad_grids_in_one_line(tmp_path, kwargs, needle):
    scene = make_guided_scene(tmp_path, **kwargs)
    out = tmp_path / "out.tif"
    result = _run([scene.coarse, "--guide", scene.guide, "-o", out, "--method", "bicubic"])
    _one_line_exit_2(result, needle, out)


def test_cli_refuses_missing_bands_and_files(tmp_path):
    scene = make_guided_scene(tmp_path)
    model = build_model("guided_resnet", dims=2, channels=1, scale=1, guide_channels=7)
    weights = save_model(model, tmp_path / "g.safetensors", model.card.replace(name="g"))
    out = tmp_path / "out.tif"
    result = _run([scene.coarse, "--guide", scene.guide, "-o", out, "--model", weights])
    _one_line_exit_2(result, "takes 7 guide planes", out)
    result = _run([scene.coarse, "--guide", tmp_path / "missing.tif", "-o", out])
    _one_line_exit_2(result, "missing.tif: no such file", out)
    enhance_model = tmp_path / "edsr.safetensors"
    edsr = build_model("edsr", dims=2, channels=1, scale=2, width=4, depth=1)
    save_model(edsr, enhance_model, edsr.card.replace(name="e"))
    result = _run([scene.coarse, "--guide", scene.guide, "-o", out, "--model", enhance_model])
    _one_line_exit_2(result, "not a guided model", out)


def test_self_supervised_falls_back_on_a_tiny_scene(tmp_path):
    scene = make_guided_scene(tmp_path, coarse_size=(24, 32))
    out = tmp_path / "out.tif"
    result = sharpen(scene.coarse, scene.guide, out, self_supervised=True, budget=1.0)
    assert len(result.notes) == 1 and "too small" in result.notes[0]
    plain = tmp_path / "plain.tif"
    sharpen(scene.coarse, scene.guide, plain)
    with rasterio.open(out) as a, rasterio.open(plain) as b:
        np.testing.assert_array_equal(a.read(), b.read())  # the pretrained model was used


def test_self_supervised_fine_tuning_helps_on_a_nonlinear_scene(tmp_path):
    scene = make_guided_scene(tmp_path, relation="nonlinear", coarse_size=(64, 64))
    tuned, plain = tmp_path / "tuned.tif", tmp_path / "plain.tif"
    result = sharpen(scene.coarse, scene.guide, tuned, self_supervised=True, budget=6.0)
    sharpen(scene.coarse, scene.guide, plain)
    assert "lowered the reduced-resolution L1" in result.notes[0], result.notes
    truth = scene.truth[0][8:-8, 8:-8]
    with rasterio.open(tuned) as a, rasterio.open(plain) as b:
        rmse_tuned = np.sqrt(((a.read(1)[8:-8, 8:-8] - truth) ** 2).mean())
        rmse_plain = np.sqrt(((b.read(1)[8:-8, 8:-8] - truth) ** 2).mean())
    print(rmse_tuned, rmse_plain)
    assert rmse_tuned < rmse_plain


@pytest.mark.parametrize(
    ("level", "baseline"), [("L2A", "05.09"), ("L1C", "04.00"), ("L2A", "03.01")]
)
def test_sentinel2_safe_offsets_bands_and_reflectance(tmp_path, level, baseline):
    from tests.data.safe import make_safe

    scene = make_safe(tmp_path, level=level, baseline=baseline)
    out = tmp_path / "out.tif"
    result = sharpen(scene.path, None, out, method="detail-injection")
    expected = ["B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09"]
    if level == "L1C":
        expected.append("B10")
    else:
        assert any("no B10" in note for note in result.notes)
    assert result.ratios == [2] * 6 + [6] * (len(expected) - 6)
    with rasterio.open(out) as o:
        assert list(o.descriptions) == expected and o.res == (10.0, 10.0)
        assert o.dtypes[0] == "uint16" and o.nodata == 0
        offset = scene.offset / 10000
        assert o.scales == (1e-4,) * len(expected) and o.offsets == (offset,) * len(expected)
        for index, band in enumerate(expected, start=1):
            reflectance = o.read(index) * o.scales[index - 1] + o.offsets[index - 1]
            error = np.abs(reflectance - scene.truth[band])[6:-6, 6:-6]
            assert error.max() < 5e-4, (band, error.max())


def test_sentinel2_safe_without_offsets_from_baseline_04_is_refused(tmp_path):
    from tests.data.safe import make_safe

    scene = make_safe(tmp_path, level="L2A", baseline="05.09")
    metadata = scene.path / "MTD_MSIL2A.xml"
    text = metadata.read_text()
    metadata.write_text(text[: text.index("<OFFSETS>")] + text[text.index("</OFFSETS>") + 10 :])
    out = tmp_path / "out.tif"
    result = _run([scene.path, "-o", out, "--method", "bicubic"])
    _one_line_exit_2(result, "needs BOA_ADD_OFFSET for every band", out)


def test_landsat_folder_is_sharpened_by_its_pan(tmp_path):
    from tests.data.guided import make_landsat_folder

    folder = make_landsat_folder(tmp_path)
    out = tmp_path / "out.tif"
    result = sharpen(folder, None, out, method="detail-injection")
    assert any("resampled (cubic)" in note for note in result.notes)
    with rasterio.open(folder / f"{folder.name}_B2.TIF") as ms, rasterio.open(out) as o:
        assert o.transform == ms.transform @ Affine.scale(0.5)  # nests in the MS grid
        assert (o.width, o.height) == (2 * ms.width, 2 * ms.height)
        assert list(o.descriptions) == [f"B{b}" for b in range(1, 8)]
        data = o.read()
    assert (data[:, :-2, :-2] > 0).all()  # valid except where the pan does not reach


# --------------------------------------------------------------------------- batch


def _products(tmp_path):
    from tests.data.guided import make_landsat_folder
    from tests.data.safe import make_safe

    safe = make_safe(tmp_path / "a", level="L2A").path
    landsat = make_landsat_folder(tmp_path / "b")
    made = make_safe(tmp_path / "c", level="L2A", seed=1).path
    broken = made.rename(made.with_name(made.name.replace("S2A_", "S2B_")))
    metadata = broken / "MTD_MSIL2A.xml"
    text = metadata.read_text()
    metadata.write_text(text[: text.index("<OFFSETS>")] + text[text.index("</OFFSETS>") + 10 :])
    return safe, landsat, broken


def test_batch_of_products_matches_single_runs_and_resumes(tmp_path):
    from srkit.geosr.batch import sharpen_target

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    safe, landsat, broken = _products(tmp_path)
    out = tmp_path / "out"
    result = _run([safe, landsat, broken, "-o", out, "--method", "detail-injection", "--report"])
    assert result.exit_code == 2, result.output  # the broken product fails alone
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "BOA_ADD_OFFSET" in errors[0] and broken.name in errors[0]
    assert "Traceback" not in result.output
    assert not sharpen_target(broken, out).exists()
    report = (out / "batch_report.csv").read_text()
    assert report.count("\n") == 4 and report.count(",failed,") == 1
    for product in (safe, landsat):
        single = tmp_path / f"{product.name}.tif"
        sharpen(product, None, single, method="detail-injection")
        with rasterio.open(single) as a, rasterio.open(sharpen_target(product, out)) as b:
            assert (a.transform, a.crs, a.descriptions) == (b.transform, b.crs, b.descriptions)
            assert np.array_equal(a.read(), b.read())
            assert "SR_BATCH" in b.tags()
    done = {p: sharpen_target(p, out).stat().st_mtime_ns for p in (safe, landsat)}
    again = _run([safe, landsat, "-o", out, "--method", "detail-injection"])
    assert again.exit_code == 0, again.output
    assert again.output.count("up to date") == 2
    assert {p: sharpen_target(p, out).stat().st_mtime_ns for p in (safe, landsat)} == done
    changed = _run([safe, "-o", out, "--method", "bicubic", "--workers", "1"])
    assert changed.exit_code == 2 and "several .SAFE" in changed.output  # one product
    twin = tmp_path / "twin" / safe.name
    shutil.copytree(safe, twin)
    clash = _run([safe, twin, "-o", tmp_path / "out2", "--method", "bicubic"])
    assert clash.exit_code == 2 and "same output" in clash.output, clash.output
    assert not (tmp_path / "out2").exists()


def test_batch_of_products_on_a_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    from srkit.geosr.batch import sharpen_target

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    safe, landsat, _ = _products(tmp_path)
    out = tmp_path / "out"
    result = _run([safe, landsat, "-o", out, "--method", "detail-injection", "--workers", "2"])
    assert result.exit_code == 0, result.output
    for product in (safe, landsat):
        single = tmp_path / f"{product.name}.tif"
        sharpen(product, None, single, method="detail-injection")
        with rasterio.open(single) as a, rasterio.open(sharpen_target(product, out)) as b:
            assert np.array_equal(a.read(), b.read())
    rows = (out / "batch_report.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",ok," in row for row in rows[1:])


def test_self_supervised_fine_tuning_takes_a_crop_not_divisible_by_the_ratio():
    """A 61 x 62 coarse crop at ratio 3 (the benchmark's held-out scenes are any size): the
    reduced grid is cut to whole pixels instead of failing on mismatched shapes."""
    from srkit.common.models import load_model
    from srkit.geosr.sharpen import self_supervised_arrays

    rng = np.random.default_rng(0)
    r = 3
    guides = rng.random((2, 61 * r, 62 * r)).astype(np.float32)
    coarse = guides[:, ::r, ::r][:1].copy()
    valid = np.ones(coarse.shape, bool)
    model = load_model("rs_guided")
    tuned, note = self_supervised_arrays(
        coarse, valid, guides, np.ones(guides.shape[1:], bool), r, model, budget=0.5
    )
    assert "too small" not in note and tuned is not None
