"""Shared fixtures for the medsr tests: generated NIfTI files, a DICOM series, real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.dicom import write_series
from tests.data.nifti import write_fixtures

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def nifti_files(tmp_path_factory) -> dict[str, Path]:
    """The generated NIfTI fixtures (see tests/data/nifti.py); read-only for tests."""
    return write_fixtures(tmp_path_factory.mktemp("nifti"))


@pytest.fixture(scope="session")
def mr_series(tmp_path_factory) -> dict:
    """A shuffled oblique 6-slice MR series with a README and a DICOMDIR beside it."""
    return write_series(tmp_path_factory.mktemp("dicom") / "mr")


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder ../shared/data, or skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (shared data collection absent)")
    return SHARED_DATA
