from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures.build import Fixtures, build


@pytest.fixture(scope="session")
def elf_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    """The ELF fixtures of tests/fixtures/build.py, compiled once per test session."""
    return build(tmp_path_factory.mktemp("elf-fixtures"))
