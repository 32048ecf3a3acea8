"""What a newcomer sees: a console that tells the story (stages, one bar per long stage, the
detail with --verbose, all of it in training.log), and `score` taking what a user gives it."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import warnings

import pytest

from RheumImagingLib.cohort_folder import resolve_score_inputs
from RheumImagingLib.errors import InputError

QUIET_MAX_LINES = 24  # "a few dozen" at most, whatever the number of iterations


@pytest.fixture
def logging_restored():
    """The CLI configures the root logger; give the next test the state it had."""
    from RheumImagingLib import console

    root = logging.getLogger()
    handlers, level, verbose = list(root.handlers), root.level, console._verbose
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    console._verbose = verbose


def _lines(text: str) -> list[str]:
    """Lines as a terminal keeps them: a bar redrawn with carriage returns is one line."""
    return [line for line in text.split("\n") if line.strip()]


# ---------------------------------------------------------------------------- score's inputs
@pytest.fixture
def cohort_dir(tmp_path):
    """A cohort folder as the phantom generators write it: cohort.csv + images/ with each DICOM's
    PNG twin and truth JSON beside it (the files' contents do not matter to the resolution)."""
    root = tmp_path / "cohort"
    (root / "images").mkdir(parents=True)
    rows = [("RA0001", "1"), ("HC0001", "0"), ("RA0002", "1")]
    with open(root / "cohort.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", "image", "label"])
        for pid, label in rows:
            writer.writerow([pid, f"images/{pid}.dcm", label])
            for suffix in (".dcm", ".png", ".json"):
                (root / "images" / f"{pid}{suffix}").write_bytes(b"x")
    return root


def _named(result):
    return [p.name for p in result.images]


def test_cohort_folder_alone_or_with_its_cohort_gives_the_listed_images(cohort_dir):
    expected = ["RA0001.dcm", "HC0001.dcm", "RA0002.dcm"]  # the table's order
    for inputs, cohort in (([str(cohort_dir)], None), ([str(cohort_dir)], str(cohort_dir / "cohort.csv")),
                           ([str(cohort_dir / "cohort.csv")], None), ([], str(cohort_dir / "cohort.csv"))):
        result = resolve_score_inputs(inputs, cohort)
        assert _named(result) == expected, (inputs, cohort)
        assert result.cohort.resolve() == (cohort_dir / "cohort.csv").resolve()
        row, column = result.rows[(cohort_dir / "images" / "HC0001.dcm").resolve()]
        assert (row["patient_id"], row["label"], column) == ("HC0001", "0", "image")


def test_images_folder_finds_the_cohort_beside_it_and_leaves_out_png_twins(cohort_dir):
    result = resolve_score_inputs([str(cohort_dir / "images")])
    assert sorted(_named(result)) == ["HC0001.dcm", "RA0001.dcm", "RA0002.dcm"]
    assert result.cohort.resolve() == (cohort_dir / "cohort.csv").resolve()


def test_images_folder_holding_its_cohort_csv_uses_it(cohort_dir):
    images = cohort_dir / "images"
    (images / "cohort.csv").write_text("patient_id,image,label\nHC0001,HC0001.dcm,0\n")
    result = resolve_score_inputs([str(images)])
    assert _named(result) == ["HC0001.dcm"] and result.cohort == images / "cohort.csv"


def test_images_folder_without_a_cohort_is_one_image_per_name(cohort_dir):
    (cohort_dir / "cohort.csv").unlink()
    result = resolve_score_inputs([str(cohort_dir / "images")])
    assert _named(result) == ["HC0001.dcm", "RA0001.dcm", "RA0002.dcm"] and result.cohort is None


def test_files_keep_their_labels_and_an_unlisted_file_is_scored_with_a_warning(cohort_dir, tmp_path, caplog):
    other = tmp_path / "visitor.dcm"
    other.write_bytes(b"x")
    files = [str(cohort_dir / "images" / "RA0002.dcm"), str(other)]
    with caplog.at_level(logging.WARNING):
        result = resolve_score_inputs(files, str(cohort_dir / "cohort.csv"))
    assert _named(result) == ["RA0002.dcm", "visitor.dcm"]
    assert result.rows[(cohort_dir / "images" / "RA0002.dcm").resolve()][0]["label"] == "1"
    assert other.resolve() not in result.rows
    assert "1 image(s) not in" in caplog.text and "visitor.dcm" in caplog.text


def test_folder_and_cohort_that_do_not_match_say_what_was_found_and_expected(cohort_dir, tmp_path):
    other = tmp_path / "other"
    (other / "scans").mkdir(parents=True)
    (other / "cohort.csv").write_text("patient_id,image,label\nP9,scans/P9.dcm,1\n")
    with pytest.raises(InputError) as err:
        resolve_score_inputs([str(cohort_dir / "images")], str(other / "cohort.csv"))
    message = str(err.value)
    assert str(other / "cohort.csv") in message and str(cohort_dir / "images") in message
    assert "none of the 3 image(s)" in message and "1 image(s) in " + str(other / "scans") in message


def test_a_folder_with_neither_images_nor_cohort_names_the_cohort_folder_inside(cohort_dir):
    with pytest.raises(InputError) as err:
        resolve_score_inputs([str(cohort_dir.parent)])
    assert "no images" in str(err.value) and f"{cohort_dir} is a cohort folder" in str(err.value)


def test_ultrasound_cohort_rows_name_patient_and_site_of_each_image(tmp_path):
    from SjogrenUSLib.score_cli import studies_from_inputs

    root = tmp_path / "us"
    (root / "images").mkdir(parents=True)
    (root / "cohort.csv").write_text("patient_id,label,mucosa_image,parotid_left_image\n"
                                     "PSS1,1,images/PSS1_m.dcm,images/PSS1_p.dcm\nHC1,0,images/HC1_m.dcm,\n")
    for name in ("PSS1_m", "PSS1_p", "HC1_m"):
        (root / "images" / f"{name}.dcm").write_bytes(b"x")
        (root / "images" / f"{name}_labels.png").write_bytes(b"x")
    for inputs in ([str(root)], [str(root / "images")], [str(root / "cohort.csv")]):
        studies = {pid: (label, {site: p.name for site, p in paths.items()})
                   for pid, label, paths, _ in studies_from_inputs(inputs)}
        assert studies == {"PSS1": ("1", {"mucosa": "PSS1_m.dcm", "parotid_left": "PSS1_p.dcm"}),
                           "HC1": ("0", {"mucosa": "HC1_m.dcm"})}, inputs


# ---------------------------------------------------------------------------- the console of a run
def test_training_progress_reports_every_iteration_with_epoch_and_running_loss():
    import torch
    from ignite.engine import Engine

    from RheumImagingLib.bundle import EpochProgress

    calls, statuses = [], []

    class Recorder:
        def __call__(self, stage, fraction):
            calls.append((stage, fraction))

        def status(self, text):
            statuses.append(text)

    # as MONAI's trainers give it: a decollated batch, the loss repeated in each item
    engine = Engine(lambda e, batch: [{"loss": torch.tensor(float(batch))}, {"loss": torch.tensor(float(batch))}])
    EpochProgress("fold 1/5", Recorder()).attach(engine)
    engine.run([1, 2, 3, 4], max_epochs=2)
    assert calls == [("fold 1/5", k / 8) for k in range(1, 9)]
    assert statuses[3] == "epoch 1/2, loss 2.5000" and statuses[4] == "epoch 2/2, loss 1.0000"  # mean of 1..4; 1

    # a trainer that does not decollate (sjogren_us_segmentation) gives the batch's output, its loss still in the graph
    statuses.clear()
    weight = torch.ones((), requires_grad=True)
    engine = Engine(lambda e, batch: {"loss": weight * float(batch), "pred": torch.zeros(2, 4)})
    EpochProgress("segmentation", Recorder()).attach(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "converting a tensor with requires_grad=True to a scalar"
        engine.run([1, 2, 3, 4], max_epochs=1)
    assert statuses[3] == "epoch 1/1, loss 2.5000"


@pytest.fixture(scope="module")
def us_tiny(tmp_path_factory):
    """Two ultrasound phantom patients and a copy of the bundle with a one-epoch config."""
    from SjogrenUSLib.segmentation import BUNDLE_DIR
    from SjogrenUSLib.sjogrenus_cli import main

    root = tmp_path_factory.mktemp("console_us")
    assert main(["phantom", str(root / "cohort"), "--patients", "2", "--seed", "41"]) == 0
    source = root / "source_bundle"
    shutil.copytree(BUNDLE_DIR, source, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    (source / "configs" / "tiny.json").write_text(json.dumps(
        {"max_epochs": 1, "val_interval": 1, "patch_size": [64, 64], "samples_per_image": 2, "batch_size": 4,
         "num_workers": 0}))
    return root


def _train(us_tiny, out, *flags):
    from SjogrenUSLib.sjogrenus_cli import main

    return main([*flags, "train", "--cohort", str(us_tiny / "cohort" / "cohort.csv"), "--out", str(out),
                 "--bundle", str(us_tiny / "source_bundle"), "--config", "tiny"])


def test_quiet_train_and_score_tell_the_story_and_the_log_keeps_every_iteration(us_tiny, tmp_path, capfd,
                                                                               logging_restored):
    from SjogrenUSLib.sjogrenus_cli import main

    assert _train(us_tiny, tmp_path / "bundle") == 0
    out, err = capfd.readouterr()
    console = _lines(out + err)
    assert len(console) <= QUIET_MAX_LINES, "\n".join(console)
    assert not any("Iter:" in line or "nvImageCodec" in line or "Loading dataset" in line for line in console)
    assert "segmentation:" in err and "val_mean_dice" in err  # the stage's bar with the validation metric
    log = (tmp_path / "bundle" / "training.log").read_text()
    # 1 training patient of 2 (val_fraction 0.2 leaves one for validation): 5 images, 2 per batch
    assert [line.split("Iter: ")[1].split(" ")[0] for line in log.splitlines() if "Iter: " in line] == [
        "1/3", "2/3", "3/3"]
    assert f"full log {tmp_path / 'bundle' / 'training.log'}" in out

    cohort = us_tiny / "cohort"
    assert main(["score", str(cohort), "--cohort", str(cohort / "cohort.csv"), "--bundle", str(tmp_path / "bundle"),
                 "--out", str(tmp_path / "scores.csv")]) == 0
    out, err = capfd.readouterr()
    assert len(_lines(out + err)) <= 4 and f"wrote 2 patients to {tmp_path / 'scores.csv'}" in out
    with open(cohort / "cohort.csv") as f:
        truth = {r["patient_id"]: r["label"] for r in csv.DictReader(f)}
    with open(tmp_path / "scores.csv") as f:
        assert {r["patient_id"]: r["label"] for r in csv.DictReader(f)} == truth


def test_verbose_train_shows_every_iteration_as_the_log_does(us_tiny, tmp_path, capfd, logging_restored):
    assert _train(us_tiny, tmp_path / "bundle", "--verbose") == 0
    out, err = capfd.readouterr()
    shown = [line for line in _lines(out + err) if "Iter: " in line]
    logged = [line for line in (tmp_path / "bundle" / "training.log").read_text().splitlines() if "Iter: " in line]
    assert len(shown) == len(logged) == 3
    assert [line.split("Iter: ")[1] for line in shown] == [line.split("Iter: ")[1] for line in logged]
    assert "Epoch[1] Metrics" in err  # MONAI's validation line, as before


def test_rheumtexture_score_takes_a_cohort_folder_with_its_cohort(trained_bundles, tmp_path, capfd, logging_restored):
    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumTextureLib.rheumtexture_cli import main

    cohort = generate_cohort(tmp_path / "cohort", 2, seed=43).parent
    out = tmp_path / "scores.csv"
    assert main(["score", str(cohort), "--cohort", str(cohort / "cohort.csv"), "--bundle", str(trained_bundles),
                 "--out", str(out)]) == 0
    stdout, stderr = capfd.readouterr()
    assert len(_lines(stdout + stderr)) <= 4 and "scored 2 image(s), skipped 0" in stdout
    with open(cohort / "cohort.csv") as f:
        truth = {r["patient_id"]: r["label"] for r in csv.DictReader(f)}
    with open(out) as f:
        assert {r["patient_id"]: r["label"] for r in csv.DictReader(f)} == truth


def test_rheumtexture_score_mismatch_is_one_line(cohort_dir, tmp_path, capsys, logging_restored):
    from RheumTextureLib.rheumtexture_cli import main

    other = tmp_path / "other"
    other.mkdir()
    (other / "cohort.csv").write_text("patient_id,image,label\nP9,P9.dcm,1\n")
    assert main(["score", str(cohort_dir / "images"), "--cohort", str(other / "cohort.csv"),
                 "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lists none of the 3 image(s) found in" in err


def test_demo_with_too_few_patients_says_why_in_one_line(tmp_path, capsys):
    from RheumImagingDemo.rheumtexture_demo_cli import main

    assert main(["--out", str(tmp_path), "--train-patients", "3", "--test-patients", "2"]) == 2
    err = capsys.readouterr().err
    assert "rheumtexture demo: error: " in err and "needs at least 5 annotated patients of each label" in err
    assert "Traceback" not in err


def test_train_refuses_a_qc_held_out_share_outside_0_1(tmp_path, capsys):
    from RheumTextureLib.rheumtexture_cli import main

    assert main(["train", "--cohort", str(tmp_path / "cohort.csv"), "--out", str(tmp_path / "b"),
                 "--qc-held-out", "1"]) == 2
    assert "--qc-held-out must lie between 0 and 1 (got 1.0)" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
