"""Training from the Slicer module runs as a separate process (the command-line tool's own code), read
without blocking, with its progress and a working cancel."""

from __future__ import annotations

import subprocess
import sys
import time

from RheumImagingLib.background import BackgroundRun, new_output_folder, train_command


def _start(code):
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(run, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        stage, fraction, code = run.poll()
        if code is not None:
            return stage, fraction, code
        time.sleep(0.05)
    raise AssertionError("the process did not finish")


def test_stage_and_fraction_from_the_output():
    run = BackgroundRun(_start("import sys; print('Training ra_bone_texture'); "
                               "sys.stdout.write('epochs:  40%|####      | 2/5\\r'); print()"))
    stage, fraction, code = _wait(run)
    assert code == 0 and fraction == 0.4 and stage.startswith("epochs:")
    assert run.lines[0] == "Training ra_bone_texture"


def test_cancel_stops_the_process():
    run = BackgroundRun(_start("import time; print('working', flush=True); time.sleep(60)"))
    start = time.time()
    run.cancel()
    assert run.poll()[2] is not None and time.time() - start < 15


def test_train_command_runs_the_cli_of_this_tree(tmp_path):
    argv, env = train_command(sys.executable, "sjogrenus", tmp_path / "cohort.csv", tmp_path / "out")
    assert argv[1:5] == ["-m", "SjogrenUSLib.cli", "train", "--cohort"]
    # The child finds the packages through the given PYTHONPATH alone, and the command exists.
    help_text = subprocess.run([sys.executable, "-m", "SjogrenUSLib.cli", "train", "-h"], env={"PATH": "", **env},
                               capture_output=True, text=True, cwd=tmp_path)
    assert help_text.returncode == 0 and "--cohort" in help_text.stdout


def test_output_folder_never_reuses_an_existing_one(tmp_path):
    first = new_output_folder(tmp_path, "bundles")
    first.mkdir()
    second = new_output_folder(tmp_path, "bundles")
    assert second != first and not second.exists()
