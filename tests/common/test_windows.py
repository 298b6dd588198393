"""The one window planner (common.inference.windows): exact reads and cores."""

from __future__ import annotations

import pytest
from srkit.common.inference.windows import WindowError, plan_windows


def _axis(windows, axis):
    seen = []
    for w in windows:
        pair = ((w.read[axis].start, w.read[axis].stop), (w.core[axis].start, w.core[axis].stop))
        if pair not in seen:
            seen.append(pair)
    return seen


def test_exact_plan_with_a_slid_and_merged_last_read():
    windows = plan_windows((8, 30), (8, 10), (0, 3))
    assert _axis(windows, 0) == [((0, 8), (0, 8))]
    assert _axis(windows, 1) == [
        ((0, 10), (0, 4)),
        ((1, 11), (4, 8)),
        ((5, 15), (8, 12)),
        ((9, 19), (12, 16)),
        ((13, 23), (16, 20)),
        ((17, 27), (20, 24)),
        ((20, 30), (24, 28)),  # slid inwards: both last cores read [20, 30)
        ((20, 30), (28, 30)),
    ]
    assert [w.core_in_read[1] for w in windows][:2] == [slice(0, 4), slice(3, 7)]
    assert windows[1].output((2, 2)) == (slice(0, 16), slice(8, 16))
    assert windows[1].core_in_output_of_read((2, 2)) == (slice(0, 16), slice(6, 14))


@pytest.mark.parametrize(
    "size, tile, halo, align",
    [(100, 40, 5, 16), (257, 64, 7, 1), (33, 20, 4, 8), (1000, 300, 20, 128), (5, 64, 2, 1)],
)
def test_cores_partition_align_and_keep_their_halo(size, tile, halo, align):
    pairs = _axis(plan_windows((size,), tile, halo, align), 0)
    cores = [c for _, c in pairs]
    assert cores[0][0] == 0 and cores[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))  # a partition, in order
    assert all(c[0] % align == 0 for c in cores)
    lengths = {r[1] - r[0] for r, _ in pairs}
    assert len(lengths) == 1 and lengths.pop() <= max(tile, align + 2 * halo)
    for (r0, r1), (c0, c1) in pairs:
        assert r0 <= c0 < c1 <= r1 and 0 <= r0 and r1 <= size
        assert c0 - r0 >= halo or r0 == 0
        assert r1 - c1 >= halo or r1 == size


def test_windows_are_the_product_of_the_axes():
    windows = plan_windows((20, 30), 12, 2)
    assert len(windows) == len(_axis(windows, 0)) * len(_axis(windows, 1)) == 3 * 4


def test_a_tile_that_cannot_hold_its_halo_is_an_error():
    with pytest.raises(WindowError, match="tile 6 is too small for halo 3"):
        plan_windows((50,), 6, 3)
    with pytest.raises(WindowError, match="tile needs 1 or 2"):
        plan_windows((50, 50), (10, 10, 10), 1)
