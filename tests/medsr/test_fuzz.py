"""Fuzzing ``medsr enhance`` over NIfTI header fields: a valid output or a clean error.

Each example writes one tiny NIfTI file whose header fields are drawn by hypothesis
(shape with 0/1 sizes and 2D-5D, voxel type, scl_slope/inter, pixdim, sform/qform codes
and matrices) and whose voxels may hold NaN/Inf, then runs
``medsr enhance FILE -o OUT.nii.gz --model bicubic``. The property: either exit 0 with a
readable output on a finite affine whose shape is the input's times the plan's factors
(as the sidecar says), or exit 2 with exactly one ``error:`` line naming the file and
nothing left behind. Exit 1 (a bug) never.

The header is written byte for byte (``binaryblock`` then the raw voxels) rather than
through ``nib.save``, which would rewrite scl_slope/inter and the dimensions.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from srkit.medsr.cli import main

RGB = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
DTYPES = {
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "complex64": np.dtype(np.complex64),
    "RGB": RGB,
}
NAN, INF = float("nan"), float("inf")
FLOAT_VALUES = [NAN, INF, -INF, 0.0, -0.0, 1e-45, 3e38, -3e38]


def mostly(
    usual: st.SearchStrategy, unusual: st.SearchStrategy, percent: int = 10
) -> st.SearchStrategy:
    """``unusual`` about ``percent`` % of the time, so that most files get deep into the
    pipeline (with every field hostile at once, almost every file is refused at reading)."""
    return st.sampled_from([False] * (100 - percent) + [True] * percent).flatmap(
        lambda odd: unusual if odd else usual
    )


sides = mostly(st.integers(2, 12), st.sampled_from([0, 1]), percent=5)
SCALING_VALUES = [0.0, 1.0, 2.5, -1.0, 1e-30, 1e30, NAN, INF, -INF]
scalings = mostly(  # (scl_slope, scl_inter); NaN/0 slope means unscaled, as writers store it
    st.sampled_from([(NAN, NAN), (1.0, 0.0), (0.0, 0.0), (2.5, -100.0), (NAN, 0.0)]),
    st.tuples(st.sampled_from(SCALING_VALUES), st.sampled_from(SCALING_VALUES)),
    percent=25,
)
spacings = mostly(st.floats(0.2, 6.0), st.sampled_from([0.0, -1.0, NAN, INF]))
matrix_kinds = mostly(
    st.sampled_from(["diagonal", "oblique"]),
    st.sampled_from(["random", "singular", "zero_row", "zero_column", "nan", "inf"]),
    percent=20,
)


# quatern_b, c, d: a rotation (b^2 + c^2 + d^2 <= 1), or not one (> 1, NaN)
quaternions = mostly(
    st.tuples(*[st.floats(-0.57, 0.57)] * 3),
    st.tuples(*[st.sampled_from([0.0, 0.9, 1.5, NAN])] * 3),
    percent=30,
)


@st.composite
def shapes(draw) -> tuple[int, ...]:
    """2D to 5D, mostly 3D; axes past the third are mostly 1 (a 3D volume stored as 4D/5D)."""
    ndim = draw(mostly(st.just(3), st.sampled_from([2, 4, 5]), percent=25))
    spatial = [draw(sides) for _ in range(min(ndim, 3))]
    extra = [draw(mostly(st.just(1), st.sampled_from([0, 2]))) for _ in range(ndim - 3)]
    return tuple(spatial + extra)


@st.composite
def matrices(draw, spacing: tuple[float, float, float]) -> np.ndarray:
    """A 3x4 sform-like matrix: plausible, degenerate or non-finite."""
    kind = draw(matrix_kinds)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    origin = rng.uniform(-50, 50, 3)
    if kind == "random":
        return np.column_stack([rng.uniform(-3, 3, (3, 3)), origin])
    sizes = np.nan_to_num(np.abs(spacing), nan=1.0, posinf=1.0) + 0.1
    if kind == "oblique":
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        linear = q @ np.diag(sizes)
    else:
        linear = np.diag(sizes)
    if kind == "singular":
        linear[:, 1] = linear[:, 0]
    elif kind == "zero_row":
        linear[draw(st.integers(0, 2)), :] = 0
    elif kind == "zero_column":
        linear[:, draw(st.integers(0, 2))] = 0
    elif kind in ("nan", "inf"):
        linear[draw(st.integers(0, 2)), draw(st.integers(0, 2))] = NAN if kind == "nan" else INF
    return np.column_stack([linear, origin])


@st.composite
def nifti_cases(draw) -> dict:
    """The header fields and voxel data of one NIfTI file.

    ``qform``: ``"none"`` (qform_code 0), ``"sform"`` (the sform's rotation and offset,
    as a consistent writer stores it) or ``"drawn"`` (quaternion, qfac and offset drawn).
    """
    shape = draw(shapes())
    where = st.tuples(*(st.integers(0, max(n - 1, 0)) for n in shape))
    spacing = tuple(draw(spacings) for _ in range(3))
    return {
        "version": draw(st.sampled_from([1, 1, 2])),
        "gzip": draw(st.booleans()),
        "shape": shape,
        "dtype": draw(
            mostly(
                st.sampled_from(["uint8", "int16", "float32", "float64"]),
                st.sampled_from(["complex64", "RGB"]),
            )
        ),
        "scaling": draw(scalings),
        "pixdim": spacing,
        "sform_code": draw(mostly(st.sampled_from([1, 2]), st.sampled_from([0, 4, 7]))),
        "sform": draw(matrices(spacing)),
        "qform": draw(st.sampled_from(["none", "sform", "drawn"])),
        "qform_code": draw(mostly(st.sampled_from([1, 2]), st.sampled_from([0, 5]))),
        "qfac": draw(st.sampled_from([1.0, -1.0, 0.0, 2.0])),
        "quatern": draw(quaternions),
        "qoffset": tuple(draw(st.sampled_from([0.0, -10.5, NAN])) for _ in range(3)),
        "seed": draw(st.integers(0, 2**16)),
        # (value, voxel index): hypothesis favours the corners, where kernels overshoot
        "specials": draw(st.lists(st.tuples(st.sampled_from(FLOAT_VALUES), where), max_size=4)),
    }


def voxels(case: dict) -> np.ndarray:
    """Seeded voxel values of the case's dtype, with its special values put in."""
    shape, dtype = case["shape"], DTYPES[case["dtype"]]
    rng = np.random.default_rng(case["seed"])
    if dtype == RGB:
        data = np.zeros(shape, dtype=RGB)
        for name in "RGB":
            data[name] = rng.integers(0, 256, shape)
        return data
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    data = (rng.standard_normal(shape) * 300 + 500).astype(dtype)
    if data.size:
        for value, index in case["specials"]:
            data[index] = value
        if dtype.kind == "c":
            data.flat[0] = complex(1.0, 2.0)
    return data


def write_case(case: dict, folder: Path) -> Path:
    """Writes the case's header bytes exactly as drawn, then the voxels (Fortran order)."""
    header = nib.Nifti2Header() if case["version"] == 2 else nib.Nifti1Header()
    header.set_data_dtype(DTYPES[case["dtype"]])
    shape = case["shape"]
    dim = np.ones(8, dtype=np.int64)
    dim[0] = len(shape)
    dim[1 : len(shape) + 1] = shape
    header["dim"] = dim
    pixdim = np.ones(8)
    pixdim[1:4] = case["pixdim"]
    header["pixdim"] = pixdim
    header["scl_slope"], header["scl_inter"] = case["scaling"]
    header["xyzt_units"] = 2  # mm
    header["sform_code"] = case["sform_code"]
    header["srow_x"], header["srow_y"], header["srow_z"] = case["sform"]
    if case["qform"] == "sform" and np.isfinite(case["sform"]).all():
        try:
            header.set_qform(np.vstack([case["sform"], [0, 0, 0, 1]]), code=case["qform_code"])
        except Exception:  # nibabel cannot make a quaternion of it: leave the qform unset
            header["qform_code"] = 0
    elif case["qform"] == "drawn":
        header["qform_code"] = case["qform_code"]
        header["pixdim"][0] = case["qfac"]
        header["quatern_b"], header["quatern_c"], header["quatern_d"] = case["quatern"]
        header["qoffset_x"], header["qoffset_y"], header["qoffset_z"] = case["qoffset"]
    else:
        header["qform_code"] = 0
    offset = 544 if case["version"] == 2 else 352
    header["vox_offset"] = offset
    block = header.binaryblock
    payload = block + b"\0" * (offset - len(block)) + voxels(case).tobytes(order="F")
    name = "scan.nii.gz" if case["gzip"] else "scan.nii"
    path = folder / name
    path.write_bytes(gzip.compress(payload) if case["gzip"] else payload)
    return path


PLAIN = {  # a valid 4x4x4 float32 file at 1 mm: the examples below change one field
    "version": 1,
    "gzip": False,
    "shape": (4, 4, 4),
    "dtype": "float32",
    "scaling": (NAN, NAN),
    "pixdim": (1.0, 1.0, 1.0),
    "sform_code": 1,
    "sform": np.column_stack([np.eye(3), np.zeros(3)]),
    "qform": "sform",
    "qform_code": 1,
    "qfac": 1.0,
    "quatern": (0.0, 0.0, 0.0),
    "qoffset": (0.0, 0.0, 0.0),
    "seed": 0,
    "specials": [],
}


def volume_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The 3D shape medsr works on: trailing singleton axes past the third dropped."""
    shape = tuple(shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=nifti_cases())
@example(case={**PLAIN, "qform": "drawn", "quatern": (0.9, 0.9, 0.9)})  # not a rotation
def test_enhance_gives_a_valid_output_or_one_clean_error(case):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = write_case(case, folder)
        note(f"header fields: {case}")
        out = folder / "out.nii.gz"
        result = CliRunner().invoke(
            main, ["enhance", str(src), "-o", str(out), "--model", "bicubic"]
        )
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output, result.output
        left = sorted(p.name for p in folder.iterdir())
        event(f"exit {result.exit_code}")
        if result.exit_code == 2:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith("error: "), lines[0]
            assert src.name in lines[0], lines[0]
            event("error: " + lines[0].split(": ", 2)[-1][:40])
            assert left == [src.name], f"left behind {left}"
            return
        assert left == sorted([src.name, "out.json", "out.nii.gz"]), left
        prov = json.loads((folder / "out.json").read_text(encoding="utf-8"))
        image = nib.load(str(out))
        data = np.asarray(image.dataobj)
        affine = np.asarray(image.affine)
        expected = tuple(n * f for n, f in zip(volume_shape(case["shape"]), prov["scale"]))
        assert len(expected) == 3 and max(prov["scale"]) >= 2, prov["scale"]
        assert tuple(prov["shape_before"]) == volume_shape(case["shape"])
        assert tuple(prov["shape_after"]) == expected
        assert tuple(image.shape) == expected, image.shape
        assert np.isfinite(affine).all(), affine
        np.testing.assert_allclose(affine, prov["affine_after"], atol=1e-4)
        assert not np.isinf(data).any(), "infinite voxels in the output"
