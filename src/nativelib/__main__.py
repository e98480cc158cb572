"""``python -m nativelib`` and the ``nativelib`` console script: :func:`nativelib.cli.main`,
except that ``nativelib config``'s pkg-config style queries are answered first by
:mod:`nativelib.config.query`, before the command line's ``argparse`` and ``logging`` are
imported (a build runs one such process per query)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["config"]:
        from nativelib.config.query import main as query  # noqa: PLC0415

        code = query(args[1:])
        if code is not None:
            return code
    from nativelib.cli import main as cli_main  # noqa: PLC0415

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
