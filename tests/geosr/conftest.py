"""Fixtures of the geosr tests: generated rasters (seeded) in a session folder."""

from __future__ import annotations

import warnings

import pytest

from tests.data.geotiff import write_all


@pytest.fixture(scope="session")
def rasters(tmp_path_factory):
    """``{stem: path}`` of every generated fixture (tests/data/geotiff.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_all(tmp_path_factory.mktemp("geotiff"))
