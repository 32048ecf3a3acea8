"""Command-line plumbing shared by ``rheumtexture`` and ``sjogrenus``.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
a parser and sets ``func``. Bad input ends with one line naming the file and the
reason (exit status 2), never a traceback. The console shows stages, bars and warnings;
``-v``/``--verbose`` (before or after the command) adds every INFO line, MONAI's included.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Sequence

from . import console
from .errors import InputError


def run_cli(prog: str, description: str, commands: Sequence[ModuleType], argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every detail (MONAI's per-iteration lines) instead of progress bars")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        module.register(subparsers)
    for subparser in subparsers.choices.values():  # also accepted after the command
        subparser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                               help="log every detail instead of progress bars")
    args = parser.parse_args(argv)
    console.configure(args.verbose)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
