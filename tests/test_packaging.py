"""One installed import name, ``srkit``: neither a user's ``common.py`` nor PyPI's unrelated
``common`` package can shadow or overwrite the toolkit (docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = (
    "import srkit; "
    "from srkit.medsr import enhance_image; from srkit.geosr import enhance_array; "
    "print(len(srkit.list_models()), srkit.medsr.__name__, srkit.geosr.__name__)"
)


def _probe(cwd: Path, env_extra: dict | None = None) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(env_extra or {})
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_packages_listed_in_pyproject_are_exactly_the_package_folders():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {"srkit"}
    for top in ("common", "medsr", "geosr"):
        for init in (REPO / top).rglob("__init__.py"):
            found.add("srkit." + ".".join(init.parent.relative_to(REPO).parts))
    assert set(config["packages"]) == found
    assert config["package-dir"] == {
        "srkit": "srkit",
        "srkit.common": "common",
        "srkit.medsr": "medsr",
        "srkit.geosr": "geosr",
    }


def test_a_common_py_in_the_users_folder_does_not_shadow_srkit(tmp_path):
    (tmp_path / "common.py").write_text("raise ImportError('the user common.py was imported')\n")
    n, medsr_name, geosr_name = _probe(tmp_path)
    assert int(n) >= 13
    assert (medsr_name, geosr_name) == ("srkit.medsr", "srkit.geosr")


def test_a_top_level_common_package_on_the_path_does_not_break_srkit(tmp_path):
    """What installing PyPI's ``common`` (0.1.2) puts in site-packages: a ``common``
    package, first on the path here so it would win any ``import common``."""
    site = tmp_path / "site"
    (site / "common").mkdir(parents=True)
    (site / "common" / "__init__.py").write_text("raise ImportError('pypi common')\n")
    n, *_ = _probe(tmp_path, {"PYTHONPATH": str(site)})
    assert int(n) >= 13


@pytest.mark.slow
def test_the_wheel_installs_only_srkit_and_ships_the_licence(tmp_path):
    """Nothing outside ``srkit/`` (so PyPI's ``common`` can neither overwrite nor, when
    uninstalled, delete our files), the weights and cards inside, and LICENSE."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip(f"cannot build a wheel here: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("srkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"srkit"}
    assert "srkit/common/weights/rs_edsr_x2.safetensors" in names
    assert "srkit/common/weights/rs_edsr_x2.json" in names
    assert "srkit/medsr/cli.py" in names and "srkit/geosr/cli.py" in names
    licence = [n for n in names if n.endswith("LICENSE") and ".dist-info/" in n]
    assert licence, names
    assert b"Apache License" in zipfile.ZipFile(wheel).read(licence[0])
