"""OpenMP runtime families, for the loader. Generated from nativelib/catalog/openmp.toml
and the recipes' ``openmp`` fields by scripts/gen_openmp_table.py: do not edit.
"""

#: (label, runtime distribution or None, MKL_THREADING_LAYER value or None, sonames)
FAMILIES: tuple[tuple[str, str | None, str | None, tuple[str, ...]], ...] = (
    ("GNU (libgomp)", "nativelib-gomp", "GNU", ("libgomp.so.1",)),
    ("Intel (libiomp5)", "nativelib-iomp", "INTEL", ("libiomp5.so",)),
    ("LLVM (libomp)", None, None, ("libomp.so", "libomp.so.5")),
)
