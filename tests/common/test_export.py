"""ONNX export: every shipped model and baseline runs in ONNX Runtime as it does in torch,
with dynamic batch/spatial axes and its card as metadata; the CLI's errors are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from srkit.common.export import (
    ExportError,
    export_onnx,
    input_channels,
    main,
    metadata,
    onnx_bytes,
    prepare,
    read_metadata,
    weights_digest,
)
from srkit.common.inference.planes import Planewise
from srkit.common.models import BASELINES, load_model
from srkit.common.models.registry import available_shipped

ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (srkit[onnx])")
pytest.importorskip("onnx", reason="onnx is not installed (srkit[onnx])")

TOLERANCE = 1e-4


def _session(data: bytes):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _torch(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(x)).numpy()


def _check_shapes(model, shapes, rng) -> None:
    """ONNX Runtime equals torch on several input shapes through one exported graph."""
    session = _session(onnx_bytes(model))
    for shape in shapes:
        x = rng.random(shape, dtype=np.float32)
        expected = _torch(model, x)
        got = session.run(None, {"input": x})[0]
        assert (
            got.shape
            == expected.shape
            == (
                shape[0],
                model.channels or shape[1],
                *(n * s for n, s in zip(shape[2:], model.scale)),
            )
        )
        assert np.abs(got - expected).max() < TOLERANCE, model.card.name


def test_every_shipped_model_is_tested():
    assert len(available_shipped()) >= 13


@pytest.mark.parametrize("name", available_shipped())
def test_shipped_model_onnx_equals_torch(name):
    model = load_model(name)
    c = input_channels(model)
    # two shapes (one not square, batch 2) through the same graph: the axes are dynamic
    _check_shapes(model, [(1, c, 23, 19), (2, c, 12, 30)], np.random.default_rng(0))


@pytest.mark.parametrize("kind", BASELINES)
@pytest.mark.parametrize(("dims", "scale"), [(2, (2, 3)), (3, (1, 2, 3))])
def test_baseline_onnx_equals_torch_any_channels(kind, dims, scale):
    model = prepare(kind, scale=scale, dims=dims)
    spatial = (7, 9) if dims == 2 else (3, 7, 9)
    # baselines take any channel count: the channel axis is dynamic too; 5 pixels is
    # below the B-spline's 14-pixel radius (the symmetric extension wraps)
    _check_shapes(
        model,
        [(1, 1, *spatial), (2, 3, *spatial[:-1], 5)],
        np.random.default_rng(1),
    )


def test_planewise_export_of_a_2d_model():
    model = prepare("mri_smore_x4", dims=3)
    assert isinstance(model, Planewise) and model.scale == (1, 4, 1)
    _check_shapes(model, [(1, 1, 3, 11, 13), (2, 1, 1, 9, 6)], np.random.default_rng(2))


def test_metadata_round_trip(tmp_path):
    model = load_model("rs_edsr_x4")
    path = export_onnx("rs_edsr_x4", tmp_path / "rs.onnx")
    info = read_metadata(path)
    assert info["card"] == model.card
    assert info["name"] == "rs_edsr_x4"
    assert info["scale"] == [4, 4]
    assert info["dims"] == 2 and info["channels"] == info["input_channels"] == 1
    assert info["input_range"] == [0.0, 3.0]
    assert info["receptive_radius"] == info["halo"] == list(model.receptive_radius) == [11, 11]
    assert info["layout"] == "NCHW"
    assert info["weights_sha256"] == weights_digest(model)
    # the raw entries are strings with the srkit. prefix, JSON where structured
    import onnx

    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(props["srkit.card"])["name"] == "rs_edsr_x4"
    assert props == metadata(model)


def test_weights_digest_tracks_the_weights():
    a, b = load_model("ct_smore_x2"), load_model("ct_smore_x2")
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        next(b.parameters())[0].add_(1e-3)
    assert weights_digest(a) != weights_digest(b)
    assert weights_digest(load_model("ct_smore_x3")) != weights_digest(a)


def test_baseline_metadata_3d(tmp_path):
    path = export_onnx("bspline", tmp_path / "b.onnx", scale=(1, 1, 4), dims=3)
    info = read_metadata(path)
    assert info["dims"] == 3 and info["channels"] == 0 and info["layout"] == "NCDHW"
    assert info["scale"] == [1, 1, 4]
    assert info["halo"] == [0, 0, 14]


def test_export_errors(tmp_path):
    with pytest.raises(ExportError, match=r"must end in \.onnx"):
        export_onnx("bicubic", tmp_path / "model.pt")
    with pytest.raises(ExportError, match="trained for scale"):
        export_onnx("rs_edsr_x2", tmp_path / "a.onnx", scale=3)
    with pytest.raises(ExportError, match="no srkit metadata"):
        import onnx

        graph = onnx.helper.make_graph([], "empty", [], [])
        empty = tmp_path / "plain.onnx"
        onnx.save(onnx.helper.make_model(graph), empty)
        read_metadata(empty)
    assert not (tmp_path / "a.onnx").exists()


def _cli(argv, capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "m.onnx"
    code, out, _ = _cli(["natural_srcnn_x3", "-o", str(target)], capsys)
    assert code == 0 and target.is_file()
    assert "natural_srcnn_x3 2D x3x3, halo [4, 4]" in out
    before = target.read_bytes()
    code, _, err = _cli(["rs_edsr_x2", "-o", str(target)], capsys)
    assert code == 2
    assert err.startswith("error: ") and "--overwrite" in err and err.count("\n") == 1
    assert target.read_bytes() == before  # untouched
    code, _, _ = _cli(["rs_edsr_x2", "-o", str(target), "--overwrite"], capsys)
    assert code == 0 and read_metadata(target)["name"] == "rs_edsr_x2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no_such_model", "-o", "x.onnx"], "unknown model 'no_such_model'"),
        (["bicubic", "-o", "x.txt"], "must end in .onnx"),
        (["rs_edsr_x2", "--scale", "3", "-o", "x.onnx"], "trained for scale"),
        (["bicubic", "--scale", "two", "-o", "x.onnx"], "not an integer"),
        (["bicubic"], "Missing option '-o'"),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_front_end_export_commands(tmp_path):
    from click.testing import CliRunner
    from srkit.geosr.cli import main as geosr_main
    from srkit.medsr.cli import main as medsr_main

    runner = CliRunner()
    done = runner.invoke(medsr_main, ["export", "mri_inplane_x2", "-o", str(tmp_path / "m.onnx")])
    assert done.exit_code == 0, done.output
    done = runner.invoke(geosr_main, ["export", "rs_edsr_x2", "-o", str(tmp_path / "g.onnx")])
    assert done.exit_code == 0, done.output
    assert read_metadata(tmp_path / "m.onnx")["name"] == "mri_inplane_x2"
    assert read_metadata(tmp_path / "g.onnx")["input_range"] == [0.0, 3.0]
