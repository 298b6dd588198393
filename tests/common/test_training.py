"""Training: strict configs, aligned patches, the runner, exact resume and DDP on gloo."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from srkit.common.inference import upscale
from srkit.common.models import load_model
from srkit.common.training import ConfigError, config_from_dict, load_config, run_training
from srkit.common.training.data import Pair, PatchSampler, degrade
from srkit.common.training.loop import evaluate_pairs

REPO = Path(__file__).resolve().parents[2]
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def tiny_config(tmp_path: Path, **train) -> dict:
    """A recipe that trains a small residual ESPCN on generated PNGs in a few seconds."""
    data_dir = tmp_path / "images"
    if not data_dir.exists():
        from tests.data.images import write_textures

        write_textures(data_dir, count=6, size=48, seed=0)
    return {
        "name": "tiny",
        "domain": "natural",
        "output_dir": str(tmp_path / "run"),
        "model": {
            "architecture": "espcn",
            "scale": 2,
            "channels": 1,
            "hparams": {"widths": [8, 8]},
        },
        "data": {
            "root": str(data_dir),
            "train": ["train_*.png"],
            "val": ["val_*.png"],
            "color": "y",
            "patch_size": 16,
        },
        "train": {
            "epochs": 2,
            "iters_per_epoch": 15,
            "batch_size": 4,
            "lr": 3e-3,
            "ema_decay": 0.9,
            **train,
        },
    }


# ---------------------------------------------------------------- configuration


def test_shipped_recipes_load():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(path)
        # one recipe per model; later training stages are <name>_stage<N>
        assert path.stem == cfg.name or re.fullmatch(rf"{cfg.name}_stage\d", path.stem)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"train": {"lerning_rate": 1}}, "train.lerning_rate: unknown key"),
        ({"train": {"epoch": 3}}, "did you mean 'epochs'"),
        (
            {"model": {"architecture": "srcnn", "hparms": {}}},
            "model.hparms: unknown key (did you mean 'hparams'?)",
        ),
        (
            {"data": {"degradation": {"kind": "bicubic", "nosie_sigma": 0.1}}},
            "data.degradation.nosie_sigma",
        ),
        ({"train": {"batch_size": "big"}}, "train.batch_size: expected int"),
        ({"train": {"amp": 1}}, "train.amp: expected bool"),
        ({"domain": "photos"}, "domain: must be one of"),
        ({"train": {"loss": "huber"}}, "train.loss: must be 'mse' or 'l1'"),
    ],
)
def test_config_errors_name_the_key(patch, message):
    data = {"name": "x", "domain": "natural", **patch}
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


def test_config_missing_required_key_and_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="name: required key is missing"):
        config_from_dict({"domain": "natural"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"name": "t", "domain": "mri", "validaton": {}}))
    with pytest.raises(
        ConfigError, match=r"typo.yaml: validaton: unknown key \(did you mean 'validation'\?\)"
    ):
        load_config(typo)


def test_config_types_are_coerced_only_safely():
    cfg = config_from_dict(
        {"name": "x", "domain": "ct", "train": {"lr": 1}, "model": {"scale": [1, 1, 4], "dims": 3}}
    )
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.model.scale == [1, 1, 4]
    assert cfg.output_dir == str(Path("runs") / "x")


# ---------------------------------------------------------------- data


def block_mean(hr: np.ndarray, s: int) -> np.ndarray:
    c, h, w = hr.shape
    return hr.reshape(c, h // s, s, w // s, s).mean(axis=(2, 4))


def test_patches_stay_aligned_under_augmentation():
    """LR pixel i covers HR pixels [i*s, (i+1)*s): block means survive flips and rotations."""
    rng = np.random.default_rng(0)
    hr = rng.random((1, 60, 42)).astype(np.float32)
    pair = Pair(Path("x"), block_mean(hr, 3).astype(np.float32), hr)
    sampler = PatchSampler([pair], (3, 3), 12, augment=True, noise_sigma=0.0, rng=rng)
    for _ in range(40):
        lr, hr_patch = sampler.sample()
        assert lr.shape == (1, 4, 4) and hr_patch.shape == (1, 12, 12)
        np.testing.assert_allclose(lr, block_mean(hr_patch, 3), atol=1e-6)
    lrb, hrb = sampler.batch(5)
    assert tuple(lrb.shape) == (5, 1, 4, 4) and tuple(hrb.shape) == (5, 1, 12, 12)


def test_patch_size_must_divide_by_scale():
    pair = Pair(Path("x"), np.zeros((1, 10, 10), np.float32), np.zeros((1, 30, 30), np.float32))
    with pytest.raises(ValueError, match="divisible by the scale"):
        PatchSampler(
            [pair], (3, 3), 16, augment=False, noise_sigma=0.0, rng=np.random.default_rng(0)
        )


def test_thick_slice_degradation_follows_the_scaled_axis():
    from srkit.common.training.config import DegradationConfig

    hr = np.random.default_rng(1).random((1, 8, 6, 20)).astype(np.float32)
    lr = degrade(hr, (1, 1, 4), DegradationConfig(kind="thick_slice", profile="box"))
    assert lr.shape == (1, 8, 6, 5)
    np.testing.assert_allclose(lr, hr.reshape(1, 8, 6, 5, 4).mean(-1), atol=1e-6)


def test_thick_slice_degradation_on_two_axes_is_an_in_plane_psf():
    from srkit.common.training.config import DegradationConfig

    hr = np.random.default_rng(1).random((1, 8, 6, 5)).astype(np.float32)
    lr = degrade(hr, (2, 2, 1), DegradationConfig(kind="thick_slice", profile="box"))
    assert lr.shape == (1, 4, 3, 5)
    np.testing.assert_allclose(lr, hr.reshape(1, 4, 2, 3, 2, 5).mean((2, 4)), atol=1e-6)
    with pytest.raises(ValueError, match="needs a scaled axis"):
        degrade(hr, (1, 1, 1), DegradationConfig(kind="thick_slice"))


def test_plane_pairs_cover_six_orientations_and_sample_aligned_2d_patches():
    from srkit.common.training.config import DegradationConfig
    from srkit.common.training.data import plane_pairs

    rng = np.random.default_rng(2)
    vol = rng.random((1, 8, 12, 16)).astype(np.float32)
    box = DegradationConfig(kind="thick_slice", profile="box")
    pairs = plane_pairs([Path("v")], lambda _: vol, (4, 1), box)
    # the first axis (the thick one) runs along X, Y and Z in turn, in every pairing
    assert [p.hr.shape[1:] for p in pairs] == [
        (8, 12, 16),
        (12, 8, 16),
        (8, 16, 12),
        (16, 8, 12),
        (12, 16, 8),
        (16, 12, 8),
    ]
    for pair in pairs:
        n0, n1, n2 = pair.hr.shape[1:]
        np.testing.assert_allclose(
            pair.lr, pair.hr.reshape(1, n0 // 4, 4, n1, n2).mean(2), atol=1e-6
        )
    sampler = PatchSampler(
        pairs, (4, 1), [8, 4], augment=True, noise_sigma=0.0, rng=rng, planes=True
    )
    for _ in range(30):
        lr, hr = sampler.sample()
        assert lr.shape == (1, 2, 4) and hr.shape == (1, 8, 4)
        np.testing.assert_allclose(lr, hr.reshape(1, 2, 4, 4).mean(2), atol=1e-6)
    with pytest.raises(ValueError, match="needs 3D volumes"):
        plane_pairs([Path("img")], lambda _: vol[:, 0], (4, 1), box)
    with pytest.raises(ConfigError, match="data.planes: only for 2D models"):
        config_from_dict(
            {
                **tiny_config_min(),
                "model": {"architecture": "srcnn", "dims": 3, "scale": 2},
                "data": {"planes": True},
            }
        )


def _train_on_volumes(tmp_path: Path, **train):
    """A 2D (2, 1) model trained on the planes of three random volumes; v2 is held out."""
    rng = np.random.default_rng(3)
    vols = {f"v{i}.npy": rng.random((1, 16, 16, 16)).astype(np.float32) for i in range(3)}
    for name, vol in vols.items():
        np.save(tmp_path / name, vol)
    cfg = tiny_config(tmp_path, **train)
    cfg["model"].update(scale=[2, 1])
    cfg["data"].update(
        root=str(tmp_path),
        train=["v0.npy", "v1.npy"],
        val=["v2.npy"],
        reader="npy",
        planes=True,
        patch_size=[8, 8],
        degradation={"kind": "thick_slice", "profile": "box"},
    )
    result = run_training(cfg, readers={"npy": lambda p: np.load(p)}, progress=False)
    return result, vols["v2.npy"]


def test_planes_training_validates_on_the_held_out_volume_thick_along_z(tmp_path, monkeypatch):
    """A 2D (2, 1) model learns from the planes of volumes; the card's PSNR is what the
    inference API (``upscale_planes``, as enhance runs it) gives on the held-out volume's
    planes with z as the thick axis, to 1e-6 dB."""
    from srkit.common.inference import upscale_planes
    from srkit.common.inference.planes import Planewise
    from srkit.common.metrics import psnr, shave
    from srkit.common.training.config import DegradationConfig

    calls = []
    forward = Planewise.forward
    monkeypatch.setattr(Planewise, "forward", lambda self, x: calls.append(1) or forward(self, x))
    result, held_out = _train_on_volumes(tmp_path)
    assert calls, "validation did not run through the inference path (upscale_planes)"
    model = load_model(result.weights)
    assert model.card.axis_scale == (2, 1) and model.dims == 2

    hr = held_out.transpose(0, 3, 2, 1)  # (Z, Y, X): thick axis first, planes along X
    lr = degrade(hr, (2, 1, 1), DegradationConfig(kind="thick_slice", profile="box"))
    planes_first = np.ascontiguousarray(np.moveaxis(lr, -1, 1))
    pred = np.moveaxis(upscale_planes(model, planes_first, device="cpu"), 1, -1)
    expected = psnr(shave(pred, 2, spatial_dims=3), shave(hr, 2, spatial_dims=3), data_range=1)
    assert model.card.metrics["psnr"] == pytest.approx(expected, abs=1e-6)
    assert model.card.metrics["baseline"] == "bicubic"


# ---------------------------------------------------------------- runner


def test_training_exports_a_loadable_model_with_card_and_logs(tmp_path):
    result = run_training(tiny_config(tmp_path), progress=False)
    assert result.steps == 30
    rows = list(csv.DictReader((result.output_dir / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    if HAS_TENSORBOARD:  # the optional extra: event files beside the CSV
        assert any((result.output_dir / "tensorboard").iterdir())

    model = load_model(result.weights)
    card = model.card
    assert card.name == "tiny" and card.domain == "natural" and card.scale == 2 and card.dims == 2
    assert card.n_parameters == model.n_parameters() > 0
    assert {"psnr", "ssim", "baseline_psnr", "baseline_ssim", "gain_db"} <= set(card.metrics)
    assert card.metrics["gain_db"] == pytest.approx(
        card.metrics["psnr"] - card.metrics["baseline_psnr"]
    )
    # the card's metric is what evaluating the exported weights gives
    from srkit.common.training.config import DegradationConfig
    from srkit.common.training.data import image_reader, load_pairs

    cfg = config_from_dict(tiny_config(tmp_path))
    pairs = load_pairs(
        sorted((tmp_path / "images").glob("val_*.png")),
        image_reader(cfg.data),
        (2, 2),
        DegradationConfig(),
    )
    again = evaluate_pairs(
        model, pairs, scale=(2, 2), shave_border=2, quantize=False, device=torch.device("cpu")
    )
    assert again["psnr"] == pytest.approx(card.metrics["psnr"], abs=1e-5)


def test_resume_continues_exactly(tmp_path):
    straight = run_training(tiny_config(tmp_path / "a"), progress=False)
    first = run_training(tiny_config(tmp_path / "b"), progress=False, max_epochs=1)
    assert first.steps == 15
    resumed = run_training(tiny_config(tmp_path / "b"), progress=False, resume=True)
    assert resumed.steps == 30
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    rows = list(csv.DictReader((resumed.output_dir / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # the EMA (and its update count) resumes exactly too
    ema_straight, ema_resumed = (
        torch.load(run.output_dir / "last.pt", weights_only=True) for run in (straight, resumed)
    )
    assert ema_straight["ema_n_averaged"] == ema_resumed["ema_n_averaged"] == 30
    for key, value in ema_straight["ema"].items():
        torch.testing.assert_close(ema_resumed["ema"][key], value, rtol=0, atol=0, msg=key)


def test_init_weights_fine_tunes_from_an_exported_model(tmp_path):
    first = run_training(tiny_config(tmp_path / "a"), progress=False)
    # zero steps of learning (lr 0): the fine-tuned export must equal the starting weights
    tuned = run_training(
        tiny_config(tmp_path / "b", init_weights=str(first.weights), lr=0.0, lr_min=0.0),
        progress=False,
    )
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert tuned.metrics["psnr"] == pytest.approx(first.metrics["psnr"], abs=1e-6)

    other = tiny_config(tmp_path / "c", init_weights=str(first.weights))
    other["model"]["hparams"] = {"widths": [8, 4]}
    with pytest.raises(ValueError, match="train.init_weights: .* holds espcn"):
        run_training(other, progress=False)


def test_rescale_adds_downscaled_copies_of_each_item():
    from srkit.common.degradation import imresize
    from srkit.common.training.config import DegradationConfig
    from srkit.common.training.data import load_pairs

    rng = np.random.default_rng(0)
    images = {Path("a.png"): rng.random((1, 40, 30), dtype=np.float32)}
    pairs = load_pairs(list(images), images.__getitem__, (2, 2), DegradationConfig(), [0.5, 0.75])
    assert [p.hr.shape for p in pairs] == [(1, 40, 30), (1, 20, 14), (1, 30, 22)]
    np.testing.assert_array_equal(pairs[1].hr, imresize(images[Path("a.png")], 0.5)[:, :, :14])
    with pytest.raises(ConfigError, match=r"data.rescale: factors must be in \(0, 1\)"):
        config_from_dict({**tiny_config_min(), "data": {"rescale": [1.5]}})


def hide_tensorboard(monkeypatch) -> None:
    """Makes ``import tensorboard`` fail, as in an install without the extra."""
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)


def test_tensorboard_asked_for_but_absent_is_one_line_before_any_work(tmp_path, monkeypatch):
    hide_tensorboard(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        run_training(tiny_config(tmp_path, tensorboard=True), progress=False)
    message = str(caught.value)
    assert message == (
        "train.tensorboard: true, but the tensorboard package is not installed;"
        " pip install 'srkit[tensorboard]' or set train.tensorboard: false"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting", [None, False])
def test_without_tensorboard_the_csv_log_stays(tmp_path, monkeypatch, setting):
    """Unset and the package absent, or ``false``: no event files, the CSV log as always."""
    if setting is None:
        hide_tensorboard(monkeypatch)
    cfg = tiny_config(tmp_path, epochs=1, iters_per_epoch=3, tensorboard=setting)
    result = run_training(cfg, progress=False)
    rows = list(csv.DictReader((result.output_dir / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1]
    assert not (result.output_dir / "tensorboard").exists()


def test_tensorboard_setting_is_typed(tmp_path):
    with pytest.raises(ConfigError, match="train.tensorboard: 'yes' does not fit"):
        config_from_dict(tiny_config(tmp_path, tensorboard="yes"))


def tiny_config_min() -> dict:
    return {"name": "x", "domain": "natural", "model": {"architecture": "srcnn", "scale": 2}}


def test_validation_files_must_not_be_training_files(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["data"]["val"] = ["train_0.png"]
    with pytest.raises(ValueError, match="validation files are also training files"):
        run_training(cfg, progress=False)


def test_crop_region_and_disjointness():
    from srkit.common.training.data import crop_region, regions_disjoint

    array = np.arange(2 * 10 * 8, dtype=np.float32).reshape(2, 10, 8)
    np.testing.assert_array_equal(crop_region(array, [[0, 0.7], [0.25, 1]]), array[:, :7, 2:])
    np.testing.assert_array_equal(crop_region(array, [[0.7, 1]]), array[:, 7:, :])
    assert regions_disjoint([[0, 0.7], [0, 1]], [[0.7, 1], [0, 1]])
    assert not regions_disjoint([[0, 0.7], [0, 1]], [[0.6, 1], [0, 1]])
    assert regions_disjoint([[0, 1], [0, 0.5]], [[0, 1], [0.5, 1]])
    for bad in ([[0.5, 0.5]], [[0, 1.2]], [[0.1]]):
        with pytest.raises(ConfigError, match=r"data.train_region\[0\]: needs \[start, stop\]"):
            config_from_dict({**tiny_config_min(), "data": {"train_region": bad}})


def test_spatial_hold_out_validates_on_the_val_region_only(tmp_path):
    """The same files under train and val: allowed with disjoint regions, and validation
    sees exactly the val region (its baseline PSNR equals bicubic on those crops)."""
    from srkit.common.training.config import DegradationConfig
    from srkit.common.training.data import crop_region, image_reader, load_pairs, region_reader

    cfg = tiny_config(tmp_path)
    cfg["data"]["val"] = ["train_*.png"]
    cfg["data"]["train_region"] = [[0, 0.5], [0, 1]]
    cfg["data"]["val_region"] = [[0.5, 1], [0, 1]]
    cfg["train"]["epochs"] = 1
    result = run_training(cfg, progress=False)
    reader = image_reader(config_from_dict(cfg).data)
    files = sorted((tmp_path / "images").glob("train_*.png"))
    pairs = load_pairs(
        files, region_reader(reader, [[0.5, 1], [0, 1]]), (2, 2), DegradationConfig()
    )
    assert [p.hr.shape for p in pairs] == [crop_region(reader(f), [[0.5, 1]]).shape for f in files]
    baseline = evaluate_pairs(
        load_model("bicubic").with_scale((2, 2)),
        pairs,
        scale=(2, 2),
        shave_border=2,
        quantize=False,
        device=torch.device("cpu"),
    )
    assert result.card.metrics["baseline_psnr"] == pytest.approx(baseline["psnr"], abs=1e-6)
    cfg["data"]["val_region"] = [[0.4, 1], [0, 1]]  # overlaps the training rows
    with pytest.raises(ValueError, match="disjoint data.train_region and data.val_region"):
        run_training(cfg, progress=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    """torchrun with 2 CPU processes: gradients are averaged, so both ranks end identical."""
    cfg = tiny_config(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    script = tmp_path / "ddp_job.py"
    script.write_text(
        "import json, os, sys\n"
        "import torch\n"
        "from srkit.common.training import run_training\n"
        "cfg = json.load(open(sys.argv[1]))\n"
        "res = run_training(cfg, progress=False)\n"
        "flat = torch.cat([p.detach().flatten() for p in res.model.parameters()])\n"
        "out = os.path.join(cfg['output_dir'], 'rank%s.json' % os.environ['RANK'])\n"
        "json.dump({'steps': res.steps, 'world': int(os.environ['WORLD_SIZE']), 'params': flat.tolist()}, open(out, 'w'))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
        str(tmp_path / "cfg.json"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["steps"] == ranks[1]["steps"] == 30
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])
    checkpoint = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert checkpoint["world_size"] == 2 and checkpoint["step"] == 30
    # and the run is not a single-process run in disguise: its weights differ from one
    single = run_training(tiny_config(tmp_path / "single"), progress=False)
    single_flat = torch.cat([p.detach().flatten() for p in single.model.parameters()]).numpy()
    assert not np.allclose(single_flat, ranks[0]["params"])


def test_profile_list_degrades_each_item_once_per_profile():
    from srkit.common.degradation import thick_slice
    from srkit.common.training.config import DegradationConfig
    from srkit.common.training.data import load_pairs

    vol = np.random.default_rng(4).random((1, 6, 5, 16)).astype(np.float32)
    cfg = DegradationConfig(kind="thick_slice", profile=["gaussian", "box"])
    pairs = load_pairs([Path("v")], lambda _: vol, (1, 1, 4), cfg)
    assert len(pairs) == 2
    for pair, profile in zip(pairs, ("gaussian", "box")):
        np.testing.assert_allclose(pair.lr, thick_slice(vol, 4, 3, profile=profile), atol=1e-6)
    with pytest.raises(ConfigError, match="data.degradation.profile: must be gaussian or box"):
        config_from_dict({**tiny_config_min(), "data": {"degradation": {"profile": ["flat"]}}})


def test_kind_list_degrades_each_item_once_per_kind():
    from srkit.common import degradation as deg
    from srkit.common.training.config import DegradationConfig
    from srkit.common.training.data import load_pairs

    image = np.random.default_rng(5).random((2, 12, 16)).astype(np.float32)
    cfg = DegradationConfig(kind=["bicubic", "gaussian_mtf"], mtf_at_nyquist=0.25)
    pairs = load_pairs([Path("r")], lambda _: image, (2, 2), cfg)
    assert len(pairs) == 2
    np.testing.assert_allclose(pairs[0].lr, deg.bicubic_downsample(image, (2, 2), 2), atol=1e-6)
    np.testing.assert_allclose(
        pairs[1].lr, deg.gaussian_mtf_downsample(image, 2, 0.25, spatial_dims=2), atol=1e-6
    )
    assert not np.allclose(pairs[0].lr, pairs[1].lr, atol=1e-3)
    with pytest.raises(ConfigError, match="data.degradation.kind: must be bicubic"):
        config_from_dict({**tiny_config_min(), "data": {"degradation": {"kind": ["sinc"]}}})
    with pytest.raises(ConfigError, match="the list is empty"):
        config_from_dict({**tiny_config_min(), "data": {"degradation": {"kind": []}}})


def test_split_channels_makes_one_channel_items():
    from srkit.common.training.data import split_channels

    hr = np.random.default_rng(6).random((3, 8, 8)).astype(np.float32)
    lr = hr[:, ::2, ::2].copy()
    pairs = split_channels([Pair(Path("a"), lr, hr)])
    assert len(pairs) == 3
    for c, pair in enumerate(pairs):
        np.testing.assert_array_equal(pair.hr, hr[c : c + 1])
        np.testing.assert_array_equal(pair.lr, lr[c : c + 1])


def test_card_input_range_reaches_the_exported_card(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["train"]["epochs"] = 1
    cfg["card"] = {"input_range": [0.0, 3.0]}
    assert run_training(cfg, progress=False).card.input_range == (0.0, 3.0)
    with pytest.raises(ConfigError, match=r"card.input_range: needs \[low, high\]"):
        config_from_dict({**tiny_config_min(), "card": {"input_range": [1.0, 1.0]}})


# ---------------------------------------------------------------- checkpoints and safety


def _ema_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The EMA network's tensors in a ``last.pt`` as saved (either layout)."""
    return {
        key.removeprefix("module."): value
        for key, value in checkpoint["ema"].items()
        if key != "n_averaged"
    }


def test_loading_a_checkpoint_gives_its_ema_weights(tmp_path):
    """``load_model("runs/x/last.pt")`` is the EMA network, not the raw weights."""
    result = run_training(
        tiny_config(tmp_path, epochs=1, iters_per_epoch=3, ema_decay=0.5), progress=False
    )
    checkpoint_path = result.output_dir / "last.pt"
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    ema, raw = _ema_weights(checkpoint), checkpoint["model"]
    loaded = load_model(checkpoint_path).state_dict()
    assert loaded.keys() == ema.keys() == raw.keys()
    for key in loaded:
        torch.testing.assert_close(loaded[key], ema[key], rtol=0, atol=0, msg=key)
    assert any(
        not torch.equal(loaded[key], raw[key]) for key in raw if raw[key].is_floating_point()
    )
    for key, value in result.model.state_dict().items():  # and the raw ones are the model's
        torch.testing.assert_close(raw[key], value.cpu(), rtol=0, atol=0, msg=key)


def test_checkpoint_record_round_trips_and_reads_the_older_layout(tmp_path):
    from srkit.common.models.weights import TrainingCheckpoint, WeightsError
    from srkit.common.training.checkpoint import load_checkpoint, save_checkpoint

    weights = {"w": torch.arange(4.0), "b": torch.ones(2)}
    ema = {"w": torch.arange(4.0) / 2, "b": torch.zeros(2)}
    record = TrainingCheckpoint(
        architecture="srcnn",
        hparams={"widths": [8, 4]},
        model=weights,
        ema=ema,
        ema_n_averaged=7,
        epoch=3,
        step=45,
        best=28.5,
        best_metrics={"psnr": 28.5, "val_files": ["a.png"]},
        rng=np.random.default_rng(1).bit_generator.state,
        torch_rng=torch.get_rng_state(),
        config={"model": {}},
        world_size=2,
    )
    path = save_checkpoint(record, tmp_path / "last.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    back = load_checkpoint(path)
    assert back.best_metrics == record.best_metrics and back.rng == record.rng
    assert (back.epoch, back.step, back.best, back.world_size) == (3, 45, 28.5, 2)
    assert back.ema_n_averaged == 7 and back.inference_state is back.ema
    torch.testing.assert_close(back.ema["w"], ema["w"])
    # the layout written before the record existed: an AveragedModel state dict
    older = record.to_dict() | {
        "ema": {"n_averaged": torch.tensor(5), **{f"module.{k}": v for k, v in ema.items()}},
        "ema_n_averaged": None,
    }
    del older["ema_n_averaged"]
    parsed = TrainingCheckpoint.from_dict(older, "old.pt")
    assert parsed.ema_n_averaged == 5 and sorted(parsed.ema) == ["b", "w"]
    with pytest.raises(WeightsError, match="old.pt: unknown checkpoint key.*ema_model"):
        TrainingCheckpoint.from_dict(older | {"ema_model": {}}, "old.pt")


def test_checkpoint_write_failure_leaves_the_previous_checkpoint_and_no_temporaries(
    tmp_path, monkeypatch
):
    cfg = tiny_config(tmp_path, epochs=2, iters_per_epoch=2)
    run_training(cfg, progress=False, max_epochs=1)
    run_dir = tmp_path / "run"
    before = {p.name for p in run_dir.iterdir()}
    good = (run_dir / "last.pt").read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_training(cfg, progress=False, resume=True)
    assert (run_dir / "last.pt").read_bytes() == good
    assert {p.name for p in run_dir.iterdir()} == before  # no .tmp / .partial left behind


def test_validation_psnr_is_the_inference_api_psnr_on_images(tmp_path):
    """2D images: the card's PSNR equals ``common.inference.upscale`` scored by hand."""
    from srkit.common.metrics import psnr, shave
    from srkit.common.training.config import DegradationConfig
    from srkit.common.training.data import image_reader, load_pairs

    cfg = tiny_config(tmp_path, epochs=1, iters_per_epoch=3)
    result = run_training(cfg, progress=False)
    model = load_model(result.weights)
    reader = image_reader(config_from_dict(cfg).data)
    pairs = load_pairs(
        sorted((tmp_path / "images").glob("val_*.png")), reader, (2, 2), DegradationConfig()
    )
    scores = [
        psnr(
            shave(upscale(model, p.lr, device="cpu"), 2, spatial_dims=2),
            shave(p.hr, 2, spatial_dims=2),
            data_range=1.0,
        )
        for p in pairs
    ]
    assert result.card.metrics["psnr"] == pytest.approx(float(np.mean(scores)), abs=1e-6)


def test_exported_card_carries_the_shared_default_tile_hint(tmp_path):
    from srkit.common.inference import tiling
    from srkit.common.models.card import DEFAULT_TILE_HINT

    result = run_training(tiny_config(tmp_path, epochs=1, iters_per_epoch=2), progress=False)
    assert result.card.tile_hint == DEFAULT_TILE_HINT[2] == tiling.DEFAULT_TILE[2]


@pytest.mark.parametrize("name", ["../../..", "a/b", "..", "a..b", "/abs", ".hidden", "", "x y"])
def test_recipe_name_must_be_a_plain_name(name, tmp_path):
    with pytest.raises(ConfigError, match="name: must be a plain name"):
        config_from_dict({**tiny_config_min(), "name": name})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**tiny_config_min(), "name": name}))
    with pytest.raises(ConfigError, match=r"r.yaml: name: must be a plain name"):
        load_config(recipe)


def test_traversing_recipe_name_writes_nothing_outside_runs(tmp_path, monkeypatch):
    """``name: ../../..`` would put runs/<name> (and <name>.safetensors) two folders up."""
    work = tmp_path / "a" / "b" / "c" / "d"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    cfg = tiny_config(work, epochs=1, iters_per_epoch=1)
    cfg["name"] = "../../.."
    del cfg["output_dir"]
    with pytest.raises(ConfigError, match="name: must be a plain name"):
        run_training(cfg, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c"]


def test_binary_recipe_is_a_config_error(tmp_path):
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(ConfigError, match=r"model.yaml: not a text YAML file"):
        load_config(binary)
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"name: x\x00\x00\n")
    with pytest.raises(ConfigError, match=r"nul.yaml: not a text YAML file"):
        load_config(nul)
