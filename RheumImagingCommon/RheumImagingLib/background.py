"""Long work in a separate process, so that Slicer stays responsive (Qt-free; pytest covers it).

As SlicerMONAIAuto3DSeg does, the work runs as a console process started with
``slicer.util.launchConsoleProcess`` (Base/Python/slicer/util.py v5.8.1 line 3787; it returns a
``subprocess.Popen`` with stdout piped, text mode; SlicerMONAIAuto3DSeg's
``MONAIAuto3DSeg.py`` starts its inference so and polls the process). A reader thread collects its
output lines, so the widget can poll on a timer: the last line is the current stage, a progress bar's
``NN%|`` or a stage line's ``[NN%]`` its fraction.

Processing in a module (contouring, the five-fold ensemble, the first ONNX export, ultrasound
segmentation) runs so too: the panel writes the pixels it read from the scene into a task folder
(:func:`write_task`), the tool's ``work_cli`` computes from them without MRML and writes
``result.json`` last, and only then does the panel write into the scene. A cancel terminates the process
and deletes the task folder: the scene keeps what it had (:class:`PanelState` holds these decisions).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
import queue
import re
import subprocess
import threading
from pathlib import Path

#: ``tool`` name -> the package whose ``<tool>_cli`` runs it (the same commands as on the command line).
TOOLS = {"rheumtexture": "RheumTextureLib", "sjogrenus": "SjogrenUSLib"}
_PERCENT = re.compile(r"(\d{1,3})%\||^\[(\d{1,3})%\]")
RESULT = "result.json"
WORKER_PID = "worker.pid"


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
    argv = [python, "-m", f"{TOOLS[tool]}.{tool}_cli", "train", "--cohort", str(cohort_csv), "--out", str(out_dir)]
    return argv, {"PYTHONPATH": os.pathsep.join(package_paths())}


def work_command(python: str, tool: str, task_dir) -> tuple[list[str], dict[str, str]]:
    """``(argv, environment update)`` that run the tool's ``work_cli`` on a task folder."""
    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {sorted(TOOLS)}, not {tool!r}")
    return [python, "-m", f"{TOOLS[tool]}.work_cli", str(task_dir)], {"PYTHONPATH": os.pathsep.join(package_paths())}


def write_task(task: dict, arrays: dict) -> Path:
    """A new temporary task folder: ``task.json`` and one ``<name>.npy`` per array."""
    import numpy as np

    folder = Path(tempfile.mkdtemp(prefix="rheumimaging-task-"))
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(array))
    (folder / "task.json").write_text(json.dumps(task))
    return folder


def read_task(folder) -> tuple[dict, dict]:
    import numpy as np

    folder = Path(folder)
    arrays = {p.stem: np.load(p) for p in folder.glob("*.npy")}
    return json.loads((folder / "task.json").read_text()), arrays


def report_stage(stage: str, fraction: float) -> None:
    """A worker's progress line, read by :meth:`BackgroundRun.poll` (``[NN%] stage``)."""
    print(f"[{int(round(100 * min(max(fraction, 0.0), 1.0)))}%] {stage}", flush=True)


def write_result(folder, result: dict, arrays: dict | None = None) -> None:
    """The worker's output: arrays first, ``result.json`` last and atomically, so a half-written result
    is never read."""
    import numpy as np

    folder = Path(folder)
    for name, array in (arrays or {}).items():
        np.save(folder / f"out_{name}.npy", np.asarray(array))
    tmp = folder / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, folder / RESULT)


def read_result(folder) -> tuple[dict, dict]:
    """``(result, arrays)`` a finished worker wrote; an InputError naming the folder when it wrote none."""
    import numpy as np

    from .errors import InputError

    folder = Path(folder)
    if not (folder / RESULT).is_file():
        raise InputError(folder, "the background work wrote no result")
    arrays = {p.stem[len("out_"):]: np.load(p) for p in folder.glob("out_*.npy")}
    return json.loads((folder / RESULT).read_text()), arrays


def run_worker(argv, compute) -> int:
    """A ``work_cli`` main: ``compute(task, arrays) -> (result, out arrays)`` on the task folder ``argv[0]``;
    a bad input is reported as one line (exit 2), never a traceback."""
    from .errors import InputError

    folder = Path(argv[0])
    # The panel kills this pid on cancel: PythonSlicer is a launcher, and terminating the launcher alone
    # leaves its child running (SlicerMONAIAuto3DSeg MONAIAuto3DSegLib/process.py line 106, at 9cdf2df).
    (folder / WORKER_PID).write_text(str(os.getpid()))
    task, arrays = read_task(folder)
    try:
        result, out = compute(task, arrays)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    write_result(folder, result, out)
    report_stage("Done", 1.0)
    return 0


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
        return stage, (int(match.group(1) or match.group(2)) / 100 if match else None), code

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def worker_python() -> str:
    """Slicer's ``PythonSlicer`` (Slicer's Python with its environment), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def plain_launch(argv, environment):
    """``launch`` outside Slicer: what ``slicer.util.launchConsoleProcess`` does (stdout piped, stderr into it,
    text mode; v5.8.1 Base/Python/slicer/util.py line 3826) without Slicer's startup environment."""
    return subprocess.Popen(argv, env={**os.environ, **environment}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


class Job:
    """One piece of a panel's work in a ``work_cli`` process: task folder in, result out, never the scene.

    ``launch(argv, environment) -> Popen``: in Slicer
    ``lambda a, e: slicer.util.launchConsoleProcess(a, updateEnvironment=e)``; :func:`plain_launch` elsewhere.
    """

    def __init__(self, tool: str, task: dict, arrays: dict, launch=plain_launch, python: str | None = None):
        self.folder = write_task(task, arrays)
        argv, environment = work_command(python or worker_python(), tool, self.folder)
        self.run = BackgroundRun(launch(argv, environment))

    def poll(self):
        """``(stage, fraction, outcome)``: outcome None while running, else ``("done", (result, arrays))`` or
        ``("failed", the process's last lines)``; the task folder is removed once it has an outcome."""
        stage, fraction, code = self.run.poll()
        if code is None:
            return stage, fraction, None
        try:
            if code == 0:
                return stage, 1.0, ("done", read_result(self.folder))
            return stage, fraction, ("failed", "\n".join(self.run.lines[-40:]) or f"exit code {code}")
        finally:
            discard(self.folder)

    def cancel(self) -> None:
        """End the worker (and the launcher before it) and remove the task folder: nothing comes back."""
        pid_file = self.folder / WORKER_PID
        if pid_file.is_file() and self.run.process.poll() is None:
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass  # already gone
        self.run.cancel()
        discard(self.folder)


class PanelState:
    """What a module panel may do while background work runs (Qt-free decisions, the widget only mirrors them).

    - Apply and "Add to training cohort" are enabled when an input is chosen and nothing runs.
    - Cancel is enabled while something runs; a cancel ends the process, deletes its task folder and writes
      nothing into the scene (results are applied only after a run finished), so the scene keeps the
      results it had before.
    - A dragged control point re-scores its bone once, after the drag ends (the widget observes the end
      of the interaction, not every point move). A bone edited while work runs waits; edits of the same
      bone collapse into one re-score. A full run re-contours every bone, so edits made during it are
      dropped.
    """

    def __init__(self):
        self.running: str | None = None  # what runs: "apply", "rescore <bone>", "train"
        self.pending: list[str] = []  # bones waiting for a re-score, in edit order

    def buttons(self, has_input: bool) -> dict[str, bool]:
        idle = self.running is None
        return {"apply": has_input and idle, "cancel": not idle, "add_to_cohort": has_input and idle}

    def status_tip(self, has_input: bool, ready_tip: str, missing_tip: str) -> str:
        if self.running is not None:
            return f"Busy ({self.running}); Cancel stops it."
        return ready_tip if has_input else missing_tip

    def start(self, what: str) -> None:
        if self.running is not None:
            raise RuntimeError(f"{self.running} is still running")
        self.running = what
        if what == "apply":
            self.pending.clear()

    def bone_edited(self, bone: str) -> str | None:
        """The bone to re-score now, or None when it waits (work running) or already waits."""
        if self.running == "apply":
            return None
        if self.running is not None:
            if bone not in self.pending:
                self.pending.append(bone)
            return None
        self.running = f"rescore {bone}"
        return bone

    def finished(self) -> str | None:
        """The run ended (done or failed): the next waiting bone to re-score now, if any."""
        self.running = None
        if self.pending:
            bone = self.pending.pop(0)
            self.running = f"rescore {bone}"
            return bone
        return None

    def training_changed(self, training: bool) -> str | None:
        """Training started or ended; when it ended, the next waiting bone to re-score now, if any."""
        if training:
            self.start("train")
        elif self.running == "train":
            return self.finished()
        return None

    def cancelled(self) -> None:
        """A cancel drops what waits too: the user asked to stop."""
        self.running = None
        self.pending.clear()


def discard(folder) -> None:
    """Remove a task folder (after its result was applied, or after a cancel)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
