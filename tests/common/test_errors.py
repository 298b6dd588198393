"""The CLI contract: a user's mistake is one ``error:`` line and exit 2; a bug is a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from srkit.common.cli import EXIT_BUG, EXIT_USAGE
from srkit.common.errors import SRKitError, first_line, path_error

GROUP = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import click
    from srkit.common.cli import make_group
    from srkit.common.errors import OutputError

    group = make_group("demo", "demo")

    @group.command()
    @click.argument("what")
    def run(what):
        if what == "user":
            raise OutputError("out.nii: exists; pass --overwrite\\nsecond line")
        if what == "oserror":
            open("/nonexistent/folder/file")
        if what == "bug":
            {{}}["missing"]
        if what == "valueerror":
            raise ValueError("plain ValueError from a library")
        click.echo("fine")

    group()
    """
)


def _run(*args: str):
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    return subprocess.run(
        [sys.executable, "-c", GROUP.format(repo=repo), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_user_error_is_one_line_exit_2_without_traceback():
    result = _run("run", "user")
    assert result.returncode == EXIT_USAGE == 2
    assert result.stderr == "error: out.nii: exists; pass --overwrite\n"


def test_verbose_adds_the_traceback_to_a_user_error():
    result = _run("--verbose", "run", "user")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == "error: out.nii: exists; pass --overwrite"


def test_os_error_is_a_user_error():
    result = _run("run", "oserror")
    assert result.returncode == 2
    assert result.stderr.startswith("error: [Errno 2] No such file or directory")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("what", ["bug", "valueerror"])
def test_anything_else_is_a_bug_with_its_traceback(what):
    result = _run("run", what)
    assert result.returncode == EXIT_BUG == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "internal error in demo" in result.stderr and "please report" in result.stderr


def test_usage_error_exit_2():
    result = _run("run")
    assert result.returncode == 2
    assert result.stderr.startswith("error: Missing argument")


def test_success_exit_0():
    result = _run("run", "ok")
    assert result.returncode == 0 and result.stdout == "fine\n" and result.stderr == ""


def test_helpers():
    err = path_error("scan.nii.gz", "sform is singular")
    assert isinstance(err, SRKitError) and str(err) == "scan.nii.gz: sform is singular"
    assert first_line(ValueError("\n  first\nsecond")) == "first"
    assert first_line(KeyError()) == "KeyError"
