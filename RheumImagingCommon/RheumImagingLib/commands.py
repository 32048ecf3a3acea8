"""Command-line plumbing shared by ``rheumtexture`` and ``sjogrenus``.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
a parser and sets ``func``. The phantom generators' commands come from RheumImagingDemo where it is
installed (pip, the source tree); the Slicer extension does not ship it. Bad input ends with one line
naming the file and the reason (exit status 2), never a traceback. The console shows stages, bars
and warnings; ``-v``/``--verbose`` (before or after the command) adds every INFO line, MONAI's included.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from types import ModuleType
from typing import Sequence

from . import console
from .errors import InputError

DEMO_PACKAGE = "RheumImagingDemo"


def demo_installed() -> bool:
    """Whether RheumImagingDemo (phantoms, demos) can be imported: pip install or source tree, not Slicer."""
    return importlib.util.find_spec(DEMO_PACKAGE) is not None


def demo_command(name: str) -> ModuleType | None:
    """``RheumImagingDemo.<name>``, or None where RheumImagingDemo is not installed (the Slicer extension)."""
    return importlib.import_module(f"{DEMO_PACKAGE}.{name}") if demo_installed() else None


def run_cli(prog: str, description: str, commands: Sequence[ModuleType | None], argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every detail (MONAI's per-iteration lines) instead of progress bars")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        if module is not None:  # a demo command this installation lacks
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
