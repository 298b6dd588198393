"""Self-supervised SR (medsr.self_supervised, medsr.slice_profile) and its CLI."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from srkit.common.degradation import thick_slice
from srkit.medsr import self_supervised as ss
from srkit.medsr.cli import main
from srkit.medsr.enhance import enhance_volume
from srkit.medsr.errors import MedsrError
from srkit.medsr.io import Volume
from srkit.medsr.plan import plan_enhance
from srkit.medsr.slice_profile import SliceProfile, estimate_profile, parse_profile, profile_matrix

from tests.data.nifti import write_nifti
from tests.data.thick import isotropic_texture, thick_volume

ADAPT_BUDGET = 20.0  # seconds: long enough to learn on the 96^3 texture, short for CI


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    return isotropic_texture(96, seed=1)


# --------------------------------------------------------------------------- profile


def test_profile_matrix_box_equals_thick_slice():
    rng = np.random.default_rng(0)
    lines = rng.random((5, 40))
    for factor, gap in ((4, 0.0), (4, 0.8), (3, 0.6), (2, 0.0)):
        ours = lines @ profile_matrix(40, factor, factor - gap, "box").T
        reference = thick_slice(lines, factor, 1, profile="box", gap=gap)
        np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_profile_matrix_rows_and_non_integer_step():
    matrix = profile_matrix(100, 2.5, 2.5, "gaussian")
    assert matrix.shape == (40, 100)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    # centre of slice k at k * 2.5 + 0.75: the weights' centroid, away from the borders
    centroid = matrix[10:30] @ np.arange(100)
    np.testing.assert_allclose(centroid, np.arange(10, 30) * 2.5 + 0.75, atol=1e-9)


@pytest.mark.parametrize(
    ("factor", "kind", "fwhm"),
    [(4, "gaussian", 4.0), (4, "gaussian", 3.0), (3, "gaussian", 2.4), (4, "box", 3.2)],
)
def test_estimate_profile_recovers_a_known_fwhm(texture, factor, kind, fwhm):
    """Generated isotropic volume, kind known: the FWHM within 10 %."""
    data, affine = thick_volume(texture, factor, kind, fwhm=fwhm)
    estimate = estimate_profile(data, 2, (1.0, 1.0, float(factor)), kind=kind)
    assert estimate.source == "estimated"
    assert estimate.kind == kind
    assert abs(estimate.fwhm_mm / fwhm - 1) <= 0.10, estimate.describe()


def test_estimate_profile_header_and_given(texture):
    data, _ = thick_volume(texture, 4, "gaussian", fwhm=3.0)
    header = estimate_profile(data, 2, (1, 1, 4), kind="gaussian", header_thickness=3.3)
    assert (header.fwhm_mm, header.source) == (3.3, "header")
    given = estimate_profile(data, 2, (1, 1, 4), kind="box", fwhm_mm=2.0)
    assert (given.kind, given.fwhm_mm, given.source, round(given.gap_mm, 6)) == (
        "box",
        2.0,
        "given",
        2.0,
    )
    with pytest.raises(MedsrError, match="too few to estimate"):
        estimate_profile(data[:, :, :5], 2, (1, 1, 4))


def test_parse_profile_and_budget():
    assert parse_profile("auto") == (None, None)
    assert parse_profile("box") == ("box", None)
    assert parse_profile("3.2") == (None, 3.2)
    assert parse_profile("gaussian:2.5") == ("gaussian", 2.5)
    for bad in ("tri", "box:-1", "cone:3", "nan"):
        with pytest.raises(MedsrError):
            parse_profile(bad)
    assert [ss.parse_budget(t) for t in ("10m", "90s", "1.5h", "600", 0, None)] == [
        600.0,
        90.0,
        5400.0,
        600.0,
        0.0,
        600.0,
    ]
    for bad in ("ten minutes", "-5", "5d"):
        with pytest.raises(MedsrError, match="--budget"):
            ss.parse_budget(bad)


# --------------------------------------------------------------------------- adaptation


def _psnr(values: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((values - reference) ** 2)))


def test_adaptation_beats_the_pretrained_model_on_an_unseen_profile(texture):
    """A Gaussian with 50 % overlap (FWHM 6 mm at 4 mm), which the default never saw.

    Also: the budget holds within 10 %, and the record says what happened.
    """
    data, affine = thick_volume(texture, 4, "gaussian", fwhm=6.0)
    volume = Volume(data=data, affine=affine, modality="mri")
    plan = plan_enhance(volume.shape, volume.affine)
    default = enhance_volume(volume, plan)
    assert default.provenance["model"]["name"] == "mri_smore_x4"
    model = ss.adapt(volume, plan, budget=ADAPT_BUDGET, profile="gaussian")
    record = model.adaptation
    assert record["seconds"] <= 1.1 * ADAPT_BUDGET
    assert record["stopped"] != "budget" or record["seconds"] >= 0.8 * ADAPT_BUDGET
    assert record["steps"] > 0 and record["patches"] == record["steps"] * 16
    assert abs(record["profile"]["fwhm_mm"] / 6.0 - 1) <= 0.15
    assert not record["fallback"] and record["holdout_gain_db"] > 0
    assert model.card.name == "mri_smore_x4_selfsup"
    # "auto" precision timed both on this CPU and kept bf16 only where it was faster; a CPU
    # without bf16 kernels (AVX2 only) was not timed in bf16 at all
    timing = record["precision_timing"]
    rates = timing["steps_per_s"]
    assert timing["bf16_kernels"] == ss.cpu_bf16_kernels() == ("bf16" in rates)
    faster = "bf16" in rates and rates["bf16"] >= ss.BF16_MIN_SPEEDUP * rates["fp32"]
    assert record["precision"] == ("bf16 autocast" if faster else "fp32")
    adapted = enhance_volume(volume, plan, model=model)
    gain = _psnr(adapted.volume.data, texture) - _psnr(default.volume.data, texture)
    assert gain >= 0.3, f"self-supervised gain over the default only {gain:.2f} dB"


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_either_precision_adapts_and_returns_an_fp32_model(texture, precision):
    """Forced bf16 autocast (any CPU: slow without native bf16, still right) and fp32."""
    data, affine = thick_volume(texture, 4, "gaussian", fwhm=6.0)
    volume = Volume(data=data, affine=affine, modality="mri")
    plan = plan_enhance(volume.shape, volume.affine)
    emulated = precision == "bf16" and not ss.cpu_bf16_kernels()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ss.adapt(volume, plan, budget=10, profile="gaussian:6", precision=precision)
    slow = [w for w in caught if "no bf16 kernels" in str(w.message)]
    assert len(slow) == emulated  # the warning where bf16 is emulated, and only there
    record = model.adaptation
    assert record["precision"] == {"bf16": "bf16 autocast", "fp32": "fp32"}[precision]
    assert "precision_timing" not in record
    assert not record["fallback"] and record["holdout_gain_db"] > 0.1
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    default = enhance_volume(volume, plan).volume.data
    adapted = enhance_volume(volume, plan, model=model).volume.data
    assert _psnr(adapted, texture) > _psnr(default, texture) + 0.1


@pytest.mark.parametrize("kernels", [False, True])
def test_auto_precision_times_bf16_only_where_the_cpu_has_bf16_kernels(monkeypatch, kernels):
    """Without bf16 kernels (AVX2 only) "auto" never spends budget on emulated bf16 steps."""
    monkeypatch.setattr(ss, "cpu_bf16_kernels", lambda: kernels)
    net = ss.EDSR(dims=2, channels=1, scale=(4, 1), width=8, depth=1, upsampler="direct")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    class Batches:
        def batch(self, size):
            return torch.rand(size, 1, 4, 16), torch.rand(size, 1, 16, 16)

    use, record = ss._choose_precision(net, optimizer, torch.nn.L1Loss(), Batches(), 2)
    assert record["bf16_kernels"] is kernels
    assert set(record["steps_per_s"]) == ({"fp32", "bf16"} if kernels else {"fp32"})
    if not kernels:
        assert use is False and record["calibration_steps"] == 1 + ss.CALIBRATION_STEPS
    else:
        rates = record["steps_per_s"]
        assert use == (rates["bf16"] >= ss.BF16_MIN_SPEEDUP * rates["fp32"])


def test_no_gain_on_held_out_falls_back_to_the_start_model(texture, monkeypatch):
    data, affine = thick_volume(texture, 4, "box")
    volume = Volume(data=data, affine=affine, modality="mri")
    plan = plan_enhance(volume.shape, volume.affine)
    monkeypatch.setattr(ss, "MIN_GAIN_DB", 100.0)  # nothing can pass
    with pytest.warns(UserWarning, match="did not beat shipped mri_smore_x4"):
        model = ss.adapt(volume, plan, budget=3, profile="box:4")
    assert model.adaptation["fallback"] and model.card.name == "mri_smore_x4"
    fallback = enhance_volume(volume, plan, model=model).volume.data
    np.testing.assert_array_equal(fallback, enhance_volume(volume, plan).volume.data)


def test_non_integer_ratio_trains_at_the_output_spacing(texture):
    """0.86 mm pixels, 2.4 mm slices (ratio 2.79): pairs at 2.4 / 3 = 0.8 mm, as enhance."""
    step = 2.4 / 0.86
    matrix = profile_matrix(texture.shape[2], step, 2.4 / 0.86, "gaussian")
    data = np.tensordot(texture, matrix, axes=([2], [1])).astype(np.float32)
    affine = np.diag([0.86, 0.86, 2.4, 1.0])
    volume = Volume(data=data, affine=affine, modality="mri")
    plan = plan_enhance(volume.shape, volume.affine, target_spacing=0.86)
    assert plan.axis_scale == (1, 1, 3) and plan.out_shape[2] == round(data.shape[2] * step)
    model = ss.adapt(volume, plan, budget=15, profile="gaussian:2.4")
    record = model.adaptation
    assert record["factor"] == 3 and record["pair_spacing_mm"] == 0.8
    assert record["steps"] > 0
    out = enhance_volume(volume, plan, model=model)
    assert out.volume.shape == plan.out_shape
    assert out.provenance["method"] == "2d-smore+bspline-remainder"


def test_ct_adapts_in_hu():
    from tests.data.nifti import ct_phantom

    hu = ct_phantom((96, 96, 48))
    data, affine = thick_volume(hu, 4, "box")
    volume = Volume(data=data, affine=affine, modality="ct")
    plan = plan_enhance(volume.shape, volume.affine)
    model = ss.adapt(volume, plan, budget=8)
    record = model.adaptation
    assert record["start"] == "shipped ct_smore_x4"
    assert record["profile"]["kind"] == "box" and record["profile"]["kind_from"] == "ct default"
    out = enhance_volume(volume, plan, model=model).volume.data
    # HU in, HU out: air stays air, the mean stays the input's
    assert abs(float(out.mean()) - float(data.mean())) < 5.0
    assert np.percentile(out, 1) < -900


def test_isotropic_volume_is_refused(texture):
    volume = Volume(data=texture[:32, :32, :32], affine=np.eye(4), modality="mri")
    with pytest.raises(MedsrError, match="one thick axis"):
        ss.adapt(volume, budget=5)


def test_patch_size_sets_the_training_patches(texture):
    data, affine = thick_volume(texture, 4, "box")
    pairs = ss.build_pairs(data, 2, [1.0, 1.0, 4.0], 4, SliceProfile("box", 4.0, 4.0, "given"))
    sampler = ss._Sampler(pairs.train, 4, np.random.default_rng(0), 0.0, patch=32)
    low, high = sampler.batch(3)
    assert tuple(high.shape) == (3, 1, 32, 32) and tuple(low.shape) == (3, 1, 8, 32)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"precision": "fp16"}, "precision must be one of"),
        ({"loss": "l2"}, "loss must be"),
        ({"patch_size": 4}, "patch_size must be at least 8"),
    ],
)
def test_bad_adapt_options_are_errors(texture, options, message):
    data, affine = thick_volume(texture, 4, "box")
    volume = Volume(data=data, affine=affine, modality="mri")
    with pytest.raises(MedsrError, match=message):
        ss.adapt(volume, budget=5, **options)


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def thick_file(tmp_path_factory, texture):
    data, affine = thick_volume(texture[:64, :64], 4, "box", fwhm=3.2)
    path = tmp_path_factory.mktemp("thick") / "thick.nii.gz"
    return write_nifti(path, data * 1000, affine, dtype=np.float32)


def _run(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


def test_budget_zero_is_the_default_output_exactly(thick_file, tmp_path):
    plain = _run("enhance", thick_file, "-o", tmp_path / "plain.nii.gz")
    zero = _run(
        "enhance", thick_file, "-o", tmp_path / "zero.nii.gz", "--self-supervised", "--budget", "0"
    )
    assert plain.exit_code == 0 and zero.exit_code == 0, zero.output
    a = np.asanyarray(nib.load(tmp_path / "plain.nii.gz").dataobj)
    b = np.asanyarray(nib.load(tmp_path / "zero.nii.gz").dataobj)
    np.testing.assert_array_equal(a, b)
    record = json.loads((tmp_path / "zero.json").read_text())["self_supervised"]
    assert record["steps"] == 0 and record["budget_s"] == 0


def test_cli_adapts_records_provenance_and_saves_a_reusable_model(thick_file, tmp_path):
    out, weights = tmp_path / "ss.nii.gz", tmp_path / "adapted.safetensors"
    result = _run(
        "enhance",
        thick_file,
        "-o",
        out,
        "--self-supervised",
        "--budget",
        "15s",
        "--profile",
        "box",
        "--save-model",
        weights,
    )
    assert result.exit_code == 0, result.output
    prov = json.loads((tmp_path / "ss.json").read_text())
    record = prov["self_supervised"]
    assert record["profile"]["kind"] == "box" and record["profile"]["source"] == "estimated"
    assert record["profile"]["spacing_mm"] == 4.0
    assert record["steps"] > 0 and 0 < record["seconds"] <= 16.5
    assert record["source_sha256"] == prov["input_sha256"]
    assert prov["saved_model"] == str(weights)
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["metrics"]["self_supervised"]["source_sha256"] == prov["input_sha256"]
    # the saved model reproduces the run
    again = _run("enhance", thick_file, "-o", tmp_path / "again.nii.gz", "--model", weights)
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(
        np.asanyarray(nib.load(out).dataobj),
        np.asanyarray(nib.load(tmp_path / "again.nii.gz").dataobj),
    )
    # an existing --save-model target is refused before any work
    refused = CliRunner().invoke(
        main,
        ["enhance", str(thick_file), "-o", str(tmp_path / "x.nii.gz"), "--self-supervised"]
        + ["--budget", "5s", "--save-model", str(weights)],
    )
    assert refused.exit_code == 2 and "exists" in refused.output
    assert not (tmp_path / "x.nii.gz").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "5m"], "go with --self-supervised"),
        (["--profile", "box"], "--profile goes with"),
        (["--self-supervised", "--budget", "soon"], "--budget must look like"),
        (["--self-supervised", "--profile", "cone"], "--profile must be"),
        (["--self-supervised", "--save-model", "m.pt"], "writes .safetensors"),
    ],
)
def test_cli_bad_options_are_one_line_errors(thick_file, tmp_path, extra, message):
    out = tmp_path / "o.nii.gz"
    result = CliRunner().invoke(main, ["enhance", str(thick_file), "-o", str(out), *extra])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.output
    assert "Traceback" not in result.output and not out.exists()


def test_save_model_with_a_batch_is_refused(thick_file, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    for name in ("a.nii.gz", "b.nii.gz"):
        (folder / name).write_bytes(thick_file.read_bytes())
    result = CliRunner().invoke(
        main,
        ["enhance", str(folder), "-o", str(tmp_path / "out"), "--self-supervised"]
        + ["--save-model", str(tmp_path / "m.safetensors")],
    )
    assert result.exit_code == 2 and "one input, not a batch" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.safetensors").exists()


def test_self_supervised_batch_adapts_each_file_on_a_local_cluster(thick_file, tmp_path):
    pytest.importorskip("distributed")
    folder = tmp_path / "batch"
    folder.mkdir()
    for name in ("a.nii.gz", "b.nii.gz"):
        (folder / name).write_bytes(thick_file.read_bytes())
    out = tmp_path / "out"
    args = ["enhance", folder, "-o", out, "--self-supervised", "--budget", "8s", "--workers", "2"]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    for name in ("a", "b"):
        prov = json.loads((out / f"{name}.json").read_text())
        record = prov["self_supervised"]
        assert record["steps"] > 0 and record["budget_s"] == 8
        assert record["source_sha256"] == prov["input_sha256"]
    rows = (out / "batch_report.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",ok," in row for row in rows[1:])
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = _run(*args)  # resumed: the same budget and options
    assert again.exit_code == 0 and "2 already up to date" in again.output, again.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix != ".csv"} == {
        k: v for k, v in stamps.items() if not k.endswith(".csv")
    }
