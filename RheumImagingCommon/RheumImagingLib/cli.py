"""Command-line plumbing shared by ``rheumtexture`` and ``sjogrenus``.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
a parser and sets ``func``. Bad input ends with one line naming the file and the
reason (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType
from typing import Sequence

from .errors import InputError


def run_cli(prog: str, description: str, commands: Sequence[ModuleType], argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        module.register(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
