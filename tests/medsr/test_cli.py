"""The medsr commands end to end, and bad input: one ``error:`` line, exit 2, nothing left."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from srkit.medsr.cli import main
from srkit.medsr.io import read_volume

from tests.data.nifti import oblique_affine, write_nifti


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def hr_file(tmp_path):
    """A smooth 24x20x32 'brain' at 1 mm with an oblique affine."""
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in (24, 20, 32)], indexing="ij")
    r2 = grid[0] ** 2 + grid[1] ** 2 + grid[2] ** 2
    data = np.where(r2 < 0.8, 400 + 300 * np.cos(3 * grid[2]) * np.sin(2 * grid[0]), 0.0)
    return write_nifti(tmp_path / "hr.nii.gz", data, oblique_affine(), dtype=np.float32)


def test_simulate_enhance_evaluate_round_trip(hr_file, tmp_path):
    lr = tmp_path / "lr.nii.gz"
    result = run("simulate", hr_file, "-o", lr, "--axis", "z", "--factor", "4", "--profile", "box")
    assert result.exit_code == 0, result.output
    low = read_volume(lr)
    assert low.shape == (24, 20, 8)
    np.testing.assert_allclose(low.spacing, [1, 1, 4], atol=1e-6)
    hr = read_volume(hr_file)
    np.testing.assert_allclose(low.data[..., 1], hr.data[..., 4:8].mean(axis=2), atol=1e-4)
    sr = tmp_path / "sr.nii.gz"
    result = run("enhance", lr, "-o", sr, "--model", "bspline", "--clip", "none")
    assert result.exit_code == 0, result.output
    assert "with bspline" in result.output
    out = read_volume(sr)
    assert out.shape == hr.shape
    np.testing.assert_allclose(out.affine, hr.affine, atol=1e-5)  # lands exactly on the HR grid
    result = run("evaluate", sr, hr_file, "--lr", lr, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["data_range"] > 0 and scores["mask_voxels"] > 1000
    assert scores["model"]["psnr"] > 15
    # B-spline enhance *is* the baseline: same numbers as evaluate computes from LR
    assert scores["gain_db"] == pytest.approx(0.0, abs=0.01)
    assert len(scores["model"]["slices"]) > 20
    csv = run("evaluate", sr, hr_file, "--csv").output.splitlines()
    assert csv[0] == "method,scope,psnr,ssim" and csv[1].startswith("model,3d,")


def test_in_plane_simulate_and_enhance_land_on_the_hr_grid(hr_file, tmp_path):
    lr = tmp_path / "lr.nii.gz"
    result = run(
        "simulate", hr_file, "-o", lr, "--axis", "x,y", "--factor", "2", "--profile", "box"
    )
    assert result.exit_code == 0, result.output
    low, hr = read_volume(lr), read_volume(hr_file)
    assert low.shape == (12, 10, 32)
    np.testing.assert_allclose(low.spacing, [2, 2, 1], atol=1e-6)
    np.testing.assert_allclose(low.data[3, 4], hr.data[6:8, 8:10].mean(axis=(0, 1)), atol=1e-4)
    sr = tmp_path / "sr.nii.gz"
    result = run("enhance", lr, "-o", sr, "--scale", "2,2,1", "--model", "bspline")
    assert result.exit_code == 0, result.output
    out = read_volume(sr)
    assert out.shape == hr.shape
    np.testing.assert_allclose(out.affine, hr.affine, atol=1e-5)


def test_evaluate_exact_psnr_with_mask_and_range(tmp_path):
    ref = np.zeros((8, 8, 8), np.float32)
    ref[2:6, 2:6, 2:6] = 100
    pred = ref.copy()
    pred[2:6, 2:6, 2:6] += 10  # MSE 100 inside the mask
    affine = oblique_affine()
    write_nifti(tmp_path / "ref.nii", ref, affine, dtype=np.float32)
    write_nifti(tmp_path / "pred.nii", pred, affine, dtype=np.float32)
    write_nifti(tmp_path / "mask.nii", (ref > 0).astype(np.uint8), affine, dtype=np.uint8)
    result = run(
        "evaluate", tmp_path / "pred.nii", tmp_path / "ref.nii", "--mask", tmp_path / "mask.nii",
        "--data-range", "100", "--json",
    )  # fmt: skip
    scores = json.loads(result.output)
    assert scores["mask_voxels"] == 64
    assert scores["model"]["psnr"] == pytest.approx(20.0, abs=1e-9)  # 10 log10(100^2 / 100)
    text = run(
        "evaluate", tmp_path / "pred.nii", tmp_path / "ref.nii", "--mask", tmp_path / "mask.nii",
        "--data-range", "100",
    ).output.splitlines()  # fmt: skip
    assert text[0] == "data range 100, mask 64 voxels, slices along axis z"
    assert text[1].startswith("model     PSNR 20.000 dB")
    assert "per-slice PSNR median 20.00 (min 20.00) over 4 slices" in text[1]


def test_evaluate_slice_whose_mask_is_only_in_the_ssim_border(tmp_path):
    """A slice whose mask lies only in its SSIM border gets SSIM null, not a crash."""
    ref = np.zeros((8, 8, 8), np.float32)
    ref[2:6, 2:6, 2:6] = 100
    pred = ref + 10
    mask = ref > 0
    mask[0, 0, 7] = True  # slice z=7: one corner pixel, inside the 3-pixel border of a 7-tap window
    affine = oblique_affine()
    write_nifti(tmp_path / "ref.nii", ref, affine, dtype=np.float32)
    write_nifti(tmp_path / "pred.nii", pred, affine, dtype=np.float32)
    write_nifti(tmp_path / "mask.nii", mask.astype(np.uint8), affine, dtype=np.uint8)
    result = run(
        "evaluate", tmp_path / "pred.nii", tmp_path / "ref.nii", "--mask", tmp_path / "mask.nii",
        "--data-range", "100", "--json",
    )  # fmt: skip
    slices = {row["slice"]: row for row in json.loads(result.output)["model"]["slices"]}
    assert sorted(slices) == [2, 3, 4, 5, 7]
    assert slices[7]["ssim"] is None and slices[7]["psnr"] == pytest.approx(20.0, abs=1e-9)
    assert all(slices[k]["ssim"] is not None for k in (2, 3, 4, 5))


def test_info_reports_plan(nifti_files, mr_series):
    result = run("info", nifti_files["aniso"], "--json")
    info = json.loads(result.output)
    assert info["shape"] == [16, 16, 8] and info["spacing_mm"] == [0.9, 0.9, 3.0]
    assert info["thick_axis"] == "z" and info["enhance_scale"] == [1, 1, 3]
    assert len(info["orientation"]) == 3
    text = run("info", mr_series["folder"]).output
    assert "DICOM Modality" in text and "mri" in text


def test_enhance_dicom_cli_default_output(mr_series, tmp_path):
    folder = tmp_path / "dcm"
    shutil.copytree(mr_series["folder"], folder)
    result = run("enhance", folder, "--scale", "2")
    assert result.exit_code == 0, result.output
    out = read_volume(tmp_path / "dcm_sr")
    assert out.shape == (20, 24, 6)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in mr_series["folder"].iterdir()
    )  # input untouched


def test_batch_continues_after_a_bad_file(tmp_path, nifti_files):
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(nifti_files["iso"], batch / "a.nii.gz")
    shutil.copy(nifti_files["aniso"], batch / "b.nii.gz")
    (batch / "c.nii.gz").write_bytes(b"garbage")
    out = tmp_path / "out"
    result = run("enhance", batch, "-o", out)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {batch / 'c.nii.gz'}: not a readable NIfTI/MGZ file")
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.nii.gz", "b.json", "b.nii.gz"]
    assert nib.load(out / "b.nii.gz").shape == (16, 16, 24)
    glob_out = tmp_path / "g"
    ok = run("enhance", str(batch / "[ab].nii.gz"), "-o", glob_out)
    assert ok.exit_code == 0 and "2 of 2 file(s) enhanced" in ok.output


def _truncated(tmp_path, nifti_files):
    data = gzip.decompress(nifti_files["iso"].read_bytes())
    path = tmp_path / "trunc.nii"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("case", "extra", "expected"),
    [
        ("missing", [], "missing.nii.gz: no such file or folder"),
        ("empty_file", [], "empty.nii.gz: empty file"),
        ("garbage", [], "garbage.nii.gz: not a readable NIfTI/MGZ file"),
        ("truncated", [], "trunc.nii: "),
        ("empty_dir", [], "emptydir: empty folder (no files)"),
        ("flat", [], "flat.nii.gz: 2D image (shape (16, 16, 1)); medsr needs a 3D volume"),
        ("four_d", [], "four_d.nii.gz: 4D image with 3 volumes"),
        ("mismatch", [], "sform and qform disagree by 2 mm"),
        ("iso", ["--scale", "0"], "iso.nii.gz: --scale: factors must be integers >= 1, got '0'"),
        ("iso", ["--scale", "-2"], "iso.nii.gz: --scale: factors must be integers >= 1"),
        ("iso", ["--scale", "abc"], "iso.nii.gz: --scale: 'abc' is not a number"),
        ("iso", ["--axis", "w"], "iso.nii.gz: axis must be x, y, z"),
        ("iso", ["--target-spacing", "-1"], "iso.nii.gz: --target-spacing must be > 0 mm"),
        ("iso", ["--model", "nosuchmodel"], "iso.nii.gz: unknown model 'nosuchmodel'"),
        (
            "iso",
            ["--tile", "2", "--model", "bspline"],
            "iso.nii.gz: tile (2, 2, 2) is too small for halo",
        ),
        ("iso", ["--target-spacing", "5"], "iso.nii.gz: --target-spacing 5.0 mm is not finer"),
        ("same", [], "output is the input; refusing to overwrite it"),
        ("text", [], "notes.txt: not a NIfTI/MGZ file"),
    ],
)
def test_bad_input_is_one_line_error_and_leaves_nothing(
    tmp_path, nifti_files, case, extra, expected
):
    work = tmp_path / "work"
    work.mkdir()
    paths = {
        "missing": work / "missing.nii.gz",
        "empty_file": work / "empty.nii.gz",
        "garbage": work / "garbage.nii.gz",
        "empty_dir": work / "emptydir",
        "text": work / "notes.txt",
    }
    paths["empty_file"].write_bytes(b"")
    paths["garbage"].write_bytes(b"\x1f\x8bthis is not gzip data at all")
    paths["empty_dir"].mkdir()
    paths["text"].write_text("hello")
    if case == "truncated":
        source = _truncated(work, nifti_files)
    elif case in paths:
        source = paths[case]
    else:
        source = work / nifti_files["iso" if case == "same" else case].name
        shutil.copy(nifti_files["iso" if case == "same" else case], source)
    before = sorted(p.name for p in work.iterdir())
    output = source if case == "same" else work / "out.nii.gz"
    result = run("enhance", source, "-o", output, *extra)
    assert_one_line_error(result, expected)
    assert sorted(p.name for p in work.iterdir()) == before  # no output, no temporary file


def test_verbose_adds_traceback(tmp_path):
    result = CliRunner().invoke(main, ["--verbose", "enhance", str(tmp_path / "none.nii")])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_trust_override_cli(nifti_files, tmp_path):
    result = run(
        "enhance", nifti_files["mismatch"], "-o", tmp_path / "o.nii.gz", "--trust", "qform"
    )
    assert result.exit_code == 0, result.output
    out = read_volume(tmp_path / "o.nii.gz")
    qform = nib.load(nifti_files["mismatch"]).get_qform()
    np.testing.assert_allclose(out.affine[:3, :3] @ [0.5, 0.5, 0.0] + out.affine[:3, 3],
                               qform[:3, 3], atol=1e-5)  # fmt: skip


def test_non_divisible_slices_evaluate_on_the_common_grid(tmp_path):
    data = np.zeros((12, 10, 18), np.float32)  # 18 = 4 * 4 + 2 trailing slices
    data[3:9, 2:8, 2:16] = np.linspace(100, 500, 14)[None, None, :]
    hr = write_nifti(tmp_path / "hr.nii.gz", data, oblique_affine(), dtype=np.float32)
    assert run("simulate", hr, "-o", tmp_path / "lr.nii.gz", "--factor", "4").exit_code == 0
    folder = tmp_path / "out"
    folder.mkdir()
    result = run("enhance", tmp_path / "lr.nii.gz", "-o", folder, "--model", "bspline")
    # (an existing folder: write into it)
    assert result.exit_code == 0, result.output
    sr = folder / "lr_sr.nii.gz"
    assert read_volume(sr).shape == (12, 10, 16)
    scores = json.loads(
        run("evaluate", sr, hr, "--lr", tmp_path / "lr.nii.gz", "--json").output
    )  # the reference is cut to the first 16 slices, the grid the LR covers
    assert scores["gain_db"] == pytest.approx(0.0, abs=0.01)


def test_missing_output_folder_is_an_error(nifti_files):
    result = run("enhance", nifti_files["iso"], "-o", "/nonexistent/x.nii.gz")
    assert_one_line_error(result, "x.nii.gz: the output's folder does not exist")


def test_dicom_provenance_hashes_the_series_files(mr_series, tmp_path):
    import hashlib

    result = run("enhance", mr_series["folder"], "-o", tmp_path / "o.nii.gz", "--scale", "2")
    assert result.exit_code == 0, result.output
    side = json.loads((tmp_path / "o.json").read_text())
    slices = sorted(p for p in mr_series["folder"].iterdir() if p.name.startswith("s"))
    digest = hashlib.sha256()
    for path in slices:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    assert side["input_sha256"] == digest.hexdigest() and side["input_files"] == 6


def test_ibp_beats_bspline_end_to_end(hr_file, tmp_path):
    lr, sr = tmp_path / "lr.nii.gz", tmp_path / "sr.nii.gz"
    assert run("simulate", hr_file, "-o", lr, "--factor", "4").exit_code == 0
    result = run("enhance", lr, "-o", sr, "--model", "ibp")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "sr.json").read_text())["model"]["name"] == "ibp"
    scores = json.loads(run("evaluate", sr, hr_file, "--lr", lr, "--json").output)
    assert scores["gain_db"] > 0.5, scores["gain_db"]


def test_shipped_model_beats_bspline_end_to_end_on_a_real_brain(tmp_path):
    """simulate -> enhance (no options: the shipped through-plane model) -> evaluate, on
    nibabel's bundled 2 mm brain MRI (never trained on), with both slice profiles."""
    brain = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    hr = tmp_path / "hr.nii.gz"  # crop y (41 voxels) to a multiple of 4
    image = nib.load(brain)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :40], image.affine), hr)
    for profile, min_gain in (("gaussian", 0.3), ("box", 0.2)):
        lr, sr = tmp_path / f"lr_{profile}.nii.gz", tmp_path / f"sr_{profile}.nii.gz"
        result = run("simulate", hr, "-o", lr, "--axis", "y", "--factor", "4", "--profile", profile)
        assert result.exit_code == 0, result.output
        result = run("enhance", lr, "-o", sr)
        assert result.exit_code == 0, result.output
        provenance = json.loads(sr.with_name(f"sr_{profile}.json").read_text())
        assert provenance["model"]["name"] == "mri_smore_x4"
        assert provenance["method"] == "2d-smore"
        assert read_volume(sr).shape == read_volume(hr).shape
        scores = json.loads(run("evaluate", sr, hr, "--lr", lr, "--json").output)
        assert scores["gain_db"] > min_gain, (profile, scores["gain_db"])
        assert scores["model"]["ssim"] > scores["baseline"]["ssim"]


def test_nifti_to_dicom_folder_with_format_dicom(nifti_files, tmp_path):
    result = run(
        "enhance",
        nifti_files["ct"],
        "-o",
        tmp_path / "ct_dicom",
        "--format",
        "dicom",
        "--model",
        "bspline",
    )
    assert result.exit_code == 0, result.output
    back = read_volume(tmp_path / "ct_dicom")
    assert back.modality == "ct" and back.shape == (32, 32, 16)
    sr = read_volume(nifti_files["ct"])  # HU kept: int16 with slope 1 stores rounded HU
    assert np.median(back.data) == -1024.0 and np.array_equal(back.data, np.round(back.data))
    assert abs(back.data.mean() - sr.data.mean()) < 0.02 * abs(sr.data.mean())


def test_models_json_lists_every_mri_and_ct_card():
    from srkit.common import list_models

    result = run("models", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    expected = sorted(c.name for c in list_models() if c.domain in ("mri", "ct"))
    assert len(expected) == 8
    assert sorted(card["name"] for card in record["models"]) == expected
    by_name = {card["name"]: card for card in record["models"]}
    assert by_name["mri_smore_x4"]["domain"] == "mri"
    assert by_name["ct_inplane_x2"]["axis_scale"] == [2, 2]
    assert [card["name"] for card in record["baselines"]] == [
        "bicubic",
        "bspline",
        "lanczos",
        "nearest",
    ]
    assert list(record["methods"]) == ["ibp"]


def test_enhance_has_the_shared_option_grammar():
    help_text = run("enhance", "--help").output
    for option in (
        "--overwrite",
        "--progress / --no-progress",
        "--dtype [float32|keep]",
        "--tile",
        "--batch-size",
        "--device",
        "--clip",
        "--force",
        "--format [nifti|dicom]",
    ):
        assert option in help_text, option
    assert "--json" in run("info", "--help").output
