"""Training from the Slicer module runs as a separate process (the command-line tool's own code), read
without blocking, with its progress and a working cancel."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

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
    assert argv[1:5] == ["-m", "SjogrenUSLib.sjogrenus_cli", "train", "--cohort"]
    # The child finds the packages through the given PYTHONPATH alone, and the command exists.
    help_text = subprocess.run([sys.executable, "-m", "SjogrenUSLib.sjogrenus_cli", "train", "-h"], env={"PATH": "", **env},
                               capture_output=True, text=True, cwd=tmp_path)
    assert help_text.returncode == 0 and "--cohort" in help_text.stdout


def test_output_folder_never_reuses_an_existing_one(tmp_path):
    first = new_output_folder(tmp_path, "bundles")
    first.mkdir()
    second = new_output_folder(tmp_path, "bundles")
    assert second != first and not second.exists()


def test_panel_buttons_follow_the_work():
    from RheumImagingLib.background import PanelState

    state = PanelState()
    assert state.buttons(has_input=False) == {"apply": False, "cancel": False, "add_to_cohort": False}
    assert state.buttons(has_input=True) == {"apply": True, "cancel": False, "add_to_cohort": True}
    state.start("apply")
    assert state.buttons(has_input=True) == {"apply": False, "cancel": True, "add_to_cohort": False}
    assert "Cancel" in state.status_tip(True, "ready", "choose")
    with pytest.raises(RuntimeError):
        state.start("apply")  # a second Apply while one runs is refused
    state.cancelled()
    assert state.buttons(has_input=True)["apply"] and state.running is None


def test_a_dragged_bone_is_rescored_once_after_the_drag():
    from RheumImagingLib.background import PanelState

    state = PanelState()
    assert state.bone_edited("MC3") == "MC3"  # idle: re-score now
    assert state.bone_edited("MC3") is None and state.bone_edited("MC2") is None  # busy: they wait
    assert state.bone_edited("MC3") is None  # the same bone again: still one re-score
    assert state.finished() == "MC3" and state.finished() == "MC2" and state.finished() is None
    state.start("apply")
    assert state.bone_edited("MC4") is None  # Apply re-contours every bone: the edit is dropped
    assert state.finished() is None


def test_cancel_ends_the_worker_and_leaves_nothing_behind(scene):
    """A cancelled ultrasound run: the process ends, its task folder is gone, the scene has no results."""
    import numpy as np

    from RheumImagingLib.background import Job

    job = Job("sjogrenus", {"scoring_system": "salaffi_0_4", "bundle": "", "spacing_mm": {"mucosa": [0.1, 0.1]}},
              {"mucosa": np.zeros((32, 32), np.float32)}, python=sys.executable)
    end = time.time() + 60
    while not (job.folder / "worker.pid").is_file() and job.run.process.poll() is None and time.time() < end:
        time.sleep(0.05)
    job.cancel()
    assert job.run.poll()[2] is not None and not job.folder.exists()
    assert scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == 0


def test_background_ultrasound_run_gives_the_rows_of_the_in_process_run(scene, us_segmentation_trained):
    """The panel's path (work_cli in a process, then apply_patient) and process_patient agree."""
    from RheumImagingDemo.us_phantom import render_mucosa
    from RheumImagingLib.background import Job
    from RheumImagingLib.imageio import volume_from_array
    from SjogrenUSLib.logic import SjogrenUSLogic
    from SjogrenUSLib.results import SiteResult

    px, _, truth = render_mucosa(5, 0.3, "homogeneous")
    logic = SjogrenUSLogic(scene)
    logic.load_segmenter(us_segmentation_trained)
    inline = volume_from_array(scene, px, truth["spacing_mm"], "inline", "US region")
    expected = logic.patient_row(logic.process_patient({"mucosa": inline}, "P-inline"))

    volume = volume_from_array(scene, px, truth["spacing_mm"], "background", "US region")
    inputs = logic.prepare_patient({"mucosa": volume})
    job = Job("sjogrenus", {"scoring_system": "salaffi_0_4", "bundle": str(us_segmentation_trained),
                            "spacing_mm": {s: list(sp) for s, (_, sp) in inputs.items()}},
              {s: px for s, (px, _) in inputs.items()}, python=sys.executable)
    end, outcome, stages = time.time() + 120, None, set()
    while outcome is None and time.time() < end:
        stage, _, outcome = job.poll()
        stages.add(stage)
        time.sleep(0.1)
    assert outcome is not None and outcome[0] == "done", outcome
    assert any(s and "Segmenting and measuring mucosa" in s for s in stages) or job.run.lines
    (result, labels) = outcome[1]
    measured = {s: (labels[s], SiteResult(**v)) for s, v in result["sites"].items()}
    table = logic.apply_patient({"mucosa": volume}, "P-background", measured, bundle_provenance=result["provenance"])
    assert logic.patient_row(table) == dict(expected, patient_id="P-background")
    assert not job.folder.exists()


def test_training_holds_the_panel_and_then_releases_a_waiting_bone():
    from RheumImagingLib.background import PanelState

    state = PanelState()
    assert state.training_changed(True) is None and not state.buttons(has_input=True)["apply"]
    assert state.bone_edited("MC2") is None  # waits for the training
    assert state.training_changed(False) == "MC2" and state.running == "rescore MC2"
