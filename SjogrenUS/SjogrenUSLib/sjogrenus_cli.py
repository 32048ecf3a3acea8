"""``sjogrenus``: salivary gland and buccal mucosa ultrasound in primary Sjogren's syndrome."""

from __future__ import annotations

import sys

from RheumImagingLib import agreement_cli, scene_cli
from RheumImagingLib.commands import demo_command, run_cli

from . import analyze_cli, score_cli, train_cli

COMMANDS = (scene_cli, demo_command("us_phantom_cli"), train_cli, score_cli, analyze_cli, agreement_cli)


def main(argv=None) -> int:
    return run_cli("sjogrenus", __doc__.split(":", 1)[1].strip(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
