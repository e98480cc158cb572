"""Write src/nativelib/_openmp.py (the loader's OpenMP families) from the catalog.

The loader reads no TOML; this table is generated from nativelib/catalog/openmp.toml and
the recipes' ``openmp`` fields, and tests/catalog/test_openmp.py fails when it drifts.

    python scripts/gen_openmp_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))

from nativelib.catalog import load_catalog, loader_openmp_table  # noqa: E402


def main() -> int:
    (SRC / "nativelib/_openmp.py").write_text(loader_openmp_table(load_catalog()), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
