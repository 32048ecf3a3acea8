"""The one error type users see for bad input: it names the file and the reason."""

from __future__ import annotations

import os


class InputError(ValueError):
    """Bad user input (image, table, bundle folder). The message names the file and why."""

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)
