"""Long work in a separate process, so that Slicer stays responsive (Qt-free; pytest covers it).

As SlicerMONAIAuto3DSeg does, the work runs as a console process started with
``slicer.util.launchConsoleProcess`` (Base/Python/slicer/util.py v5.8.1 line 3787; it returns a
``subprocess.Popen`` with stdout piped, text mode). A reader thread collects its output lines, so the
widget can poll on a timer: the last line is the current stage, a progress bar's ``NN%|`` its fraction.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import queue
import re
import subprocess
import threading
from pathlib import Path

#: ``tool`` name -> the package whose ``cli`` runs it (the same commands as on the command line).
TOOLS = {"rheumtexture": "RheumTextureLib", "sjogrenus": "SjogrenUSLib"}
_PERCENT = re.compile(r"(\d{1,3})%\|")


def package_paths() -> list[str]:
    """Folders that hold this project's packages (source tree: three; installed extension: one)."""
    paths = []
    for package in ("RheumImagingLib", *TOOLS.values()):
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            folder = str(Path(spec.origin).resolve().parents[1])
            if folder not in paths:
                paths.append(folder)
    return paths


def train_command(python: str, tool: str, cohort_csv, out_dir) -> tuple[list[str], dict[str, str]]:
    """``(argv, environment update)`` that run ``<tool> train`` with the given interpreter."""
    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {sorted(TOOLS)}, not {tool!r}")
    argv = [python, "-m", f"{TOOLS[tool]}.cli", "train", "--cohort", str(cohort_csv), "--out", str(out_dir)]
    return argv, {"PYTHONPATH": os.pathsep.join(package_paths())}


def new_output_folder(parent, prefix: str) -> Path:
    """A folder name under ``parent`` that does not exist yet (nothing the user had is overwritten)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, n = Path(parent) / f"{prefix}-{stamp}", 1
    while candidate.exists():
        n += 1
        candidate = Path(parent) / f"{prefix}-{stamp}-{n}"
    return candidate


class BackgroundRun:
    """A started process whose output is read on a thread; ``poll`` never blocks."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))

    def poll(self) -> tuple[str | None, float | None, int | None]:
        """``(latest stage text, its fraction if a bar shows one, exit code once finished)``."""
        while not self._queue.empty():
            line = self._queue.get_nowait().strip()
            if line:
                self.lines.append(line)
        code = self.process.poll()
        if code is not None:
            self._reader.join(timeout=1)
            while not self._queue.empty():
                line = self._queue.get_nowait().strip()
                if line:
                    self.lines.append(line)
        stage = self.lines[-1] if self.lines else None
        match = _PERCENT.search(stage or "")
        return stage, (int(match.group(1)) / 100 if match else None), code

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
