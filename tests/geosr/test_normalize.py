from __future__ import annotations

import numpy as np
import pytest
from srkit.geosr.normalize import band_scaling, range_warnings, to_output_dtype


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
def test_every_integer_value_round_trips(dtype):
    info = np.iinfo(dtype)
    raw = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    sc = band_scaling(dtype)
    back = to_output_dtype(sc.inverse(sc.forward(raw)), dtype)
    np.testing.assert_array_equal(back, raw)


def test_dtype_rules_and_tags():
    assert band_scaling("uint8").divisor == 255
    assert band_scaling("uint16").divisor == 10000
    assert band_scaling("uint16", mode="dtype").divisor == 65535
    assert band_scaling("int16").divisor == 10000
    f = band_scaling("float32")
    assert (f.offset, f.divisor) == (0.0, 1.0)
    tagged = band_scaling("uint16", scale=0.0001, offset=-0.1)
    assert tagged.forward(np.array([1000, 11000])) == pytest.approx([0.0, 1.0], abs=1e-7)
    stats = band_scaling("uint16", mode="stats", stats=(5000, 25000))
    assert stats.forward(np.array([5000, 25000])) == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match="unknown normalization"):
        band_scaling("uint8", mode="bogus")


def test_output_rounding_clipping_and_nodata_nudge():
    raw = np.array([-3.0, 0.4, 0.5, 1.5, 254.6, 300.0])
    np.testing.assert_array_equal(to_output_dtype(raw, "uint8"), [0, 0, 0, 2, 255, 255])
    valid = np.array([True, True, True, False, True, True])
    out = to_output_dtype(raw, "uint8", valid, nodata=0)
    np.testing.assert_array_equal(out, [1, 1, 1, 2, 255, 255])  # valid pixels never read as nodata
    out = to_output_dtype(raw, "uint8", valid, nodata=255)
    np.testing.assert_array_equal(out, [0, 0, 0, 2, 254, 254])
    f = to_output_dtype(np.array([0.0, 0.5]), "float32", np.array([True, True]), nodata=0.0)
    assert f[0] > 0 and f[1] == 0.5


def test_range_warning_names_band_and_fix():
    msgs = range_warnings(["l8 band 1", "ok"], [(0.5, 2.9), (0.0, 0.9)], (0.0, 1.0), "rs_x2")
    assert len(msgs) == 1
    assert "l8 band 1" in msgs[0] and "[0.5, 2.9]" in msgs[0] and "--normalize" in msgs[0]
    assert range_warnings(["a"], [(-0.2, 1.3)], (0.0, 1.0), "m") == []
