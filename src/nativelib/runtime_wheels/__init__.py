"""Runtime wheels: build ``nativelib-*`` wheels from upstream binary packages.

Data flow: a source package (conda, RPM, deb, PyPI wheel, local file) is downloaded
(``download``), read safely (``archive``), the recipe's sonames are picked and read with
``nativelib.elf`` (``builder``), and a reproducible wheel is written (``wheel``).
Nothing here is imported by ``import nativelib``.
"""
