"""srkit.common.io: the one atomic-output helper every writer goes through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from srkit.common.errors import OutputError, OutputExistsError, SRKitError
from srkit.common.io import (
    OutputTarget,
    TerminatedBySignal,
    atomic_output,
    atomic_outputs,
    atomic_write_text,
    check_targets,
    umask_mode,
)

REPO = Path(__file__).resolve().parents[2]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_renames_into_place_and_leaves_nothing_else(tmp_path):
    out, side = tmp_path / "scan_sr.nii.gz", tmp_path / "scan_sr.json"
    with atomic_outputs([out, side]) as (tmp_out, tmp_side):
        assert tmp_out.parent == tmp_path and tmp_out.name.endswith(".partial.nii.gz")
        assert tmp_out.name.startswith(".scan_sr.nii.gz.")
        assert tmp_side.name.endswith(".partial.json")
        tmp_out.write_bytes(b"volume")
        tmp_side.write_text("{}")
        assert not out.exists()  # nothing final before the block ends
    assert out.read_bytes() == b"volume" and side.read_text() == "{}"
    assert _listing(tmp_path) == ["scan_sr.json", "scan_sr.nii.gz"]


def test_exception_half_way_leaves_no_output_and_no_temporary(tmp_path):
    out, side = tmp_path / "a.tif", tmp_path / "a.json"
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_outputs([out, side]) as (tmp_out, _):
            tmp_out.write_bytes(b"half")
            tmp_out.with_name(tmp_out.name + ".aux.xml").write_text("<PAM/>")  # GDAL side file
            raise RuntimeError("disk on fire")
    assert _listing(tmp_path) == []


def test_keyboard_interrupt_cleans_up(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "x.nii") as tmp:
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert _listing(tmp_path) == []


def test_existing_target_refused_before_the_block_runs(tmp_path):
    (tmp_path / "b.json").write_text("input's own sidecar")
    ran = []
    with pytest.raises(OutputExistsError, match=r"b\.json: exists; pass --overwrite"):
        with atomic_outputs([tmp_path / "b.nii", tmp_path / "b.json"]):
            ran.append(True)
    assert ran == []
    assert (tmp_path / "b.json").read_text() == "input's own sidecar"
    assert _listing(tmp_path) == ["b.json"]


def test_no_clobber_of_a_file_that_appears_during_the_run(tmp_path):
    out = tmp_path / "c.tif"
    with pytest.raises(OutputExistsError, match="appeared while this run was writing"):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"second run")
            out.write_bytes(b"first run")  # a concurrent run committed first
    assert out.read_bytes() == b"first run"
    assert _listing(tmp_path) == ["c.tif"]


def test_overwrite_replaces(tmp_path):
    out = tmp_path / "d.nii"
    out.write_bytes(b"old")
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and _listing(tmp_path) == ["d.nii"]


def test_missing_or_unwritable_folder_is_an_output_error_naming_the_output(tmp_path):
    with pytest.raises(
        OutputError, match=r"nowhere[/\\]e\.nii: the output's folder .* does not exist"
    ):
        check_targets([tmp_path / "nowhere" / "e.nii"])
    if os.geteuid() == 0:
        pytest.skip("root can write in a read-only folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            with atomic_output(locked / "f.nii"):
                pass
    finally:
        locked.chmod(0o755)


def test_file_target_that_is_a_folder_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "g.nii").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_targets([tmp_path / "g.nii"], overwrite=True)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_modes_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert umask_mode() == 0o666 & ~umask
        series = tmp_path / "series"
        with atomic_outputs([tmp_path / "h.nii", OutputTarget(series, directory=True)]) as (f, d):
            f.write_bytes(b"x")
            (d / "IM0001.dcm").write_bytes(b"y")
    finally:
        os.umask(old)
    assert (tmp_path / "h.nii").stat().st_mode & 0o777 == 0o666 & ~umask
    assert series.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (series / "IM0001.dcm").stat().st_mode & 0o777 == 0o666 & ~umask


def test_folder_target_replaced_only_with_overwrite(tmp_path):
    series = tmp_path / "out_dcm"
    series.mkdir()
    (series / "old.dcm").write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        with atomic_output(series, directory=True):
            pass
    with atomic_output(series, overwrite=True, directory=True) as tmp:
        (tmp / "new.dcm").write_bytes(b"new")
    assert _listing(series) == ["new.dcm"]
    assert _listing(tmp_path) == ["out_dcm"]  # no .old folder left behind


def test_atomic_write_text(tmp_path):
    path = atomic_write_text(tmp_path / "card.json", '{"a": 1}')
    assert path.read_text() == '{"a": 1}'


def test_errors_are_value_errors_for_old_callers():
    assert issubclass(OutputExistsError, OutputError)
    assert issubclass(OutputError, SRKitError) and issubclass(SRKitError, ValueError)


def test_sigterm_during_a_write_removes_the_temporary(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from srkit.common.io import atomic_output, TerminatedBySignal
        try:
            with atomic_output({str(tmp_path / "big.tif")!r}) as tmp:
                tmp.write_bytes(b"partial")
                print("writing", flush=True)
                time.sleep(60)
        except TerminatedBySignal as exc:
            print(exc, flush=True)
            sys.exit(128 + exc.signum)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert proc.stdout.readline().strip() == "writing"
    assert len(_listing(tmp_path)) == 1  # the temporary exists while writing
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "terminated by signal SIGTERM" in out
    assert _listing(tmp_path) == []


def test_signal_handlers_are_restored_after_the_block(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with atomic_output(tmp_path / "i.nii") as tmp:
        assert signal.getsignal(signal.SIGTERM) is not before
        tmp.write_bytes(b"x")
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(TerminatedBySignal, BaseException)
    assert not issubclass(TerminatedBySignal, Exception)  # `except Exception` can't swallow it
