"""Shared fixtures: the DUIS reference data beside the checkout, a seeded random generator."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DCCSIM_SHARED", REPO.parent / "shared"))
DUIS = SHARED / "duis"


@pytest.fixture(scope="session")
def duis_dir() -> Path:
    if not (DUIS / "DUIS-Schema-V5.4.xsd").is_file():
        pytest.fail(f"DUIS reference data not found at {DUIS}; set DCCSIM_SHARED to the shared folder")
    return DUIS


@pytest.fixture(scope="session")
def duis_schema(duis_dir: Path):
    from dccsim.core.duisxml import load_schema

    return load_schema(str(duis_dir / "DUIS-Schema-V5.4.xsd"))


@pytest.fixture(scope="session")
def templates(duis_dir: Path) -> list[Path]:
    files = sorted((duis_dir / "templates").glob("*.XML"))
    assert len(files) >= 200
    return files


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's id, so a failure reproduces; the seed is recorded."""
    seed = zlib.crc32(request.node.nodeid.encode())
    request.node.user_properties.append(("rng_seed", seed))
    return np.random.default_rng(seed)
