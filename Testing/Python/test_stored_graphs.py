"""Trained RheumTexture bundles carry their ONNX graphs (texture folds quantised to int8 where they agree with
eager PyTorch), scoring uses them without exporting, the scores stay within the documented tolerance of eager,
and the contour localiser runs once per radiograph."""

from __future__ import annotations

import json

import numpy as np
import torch

from RheumImagingLib import runtime

FOLD_FILES = ("model.pt", *[f"model_fold{k}.pt" for k in range(1, 5)])


def _no_export(*args, **kwargs):
    raise AssertionError("exported at scoring time although the trained bundle has its graphs")


def test_trained_bundles_hold_their_graphs_with_their_checkpoints_sha256(trained_bundles):
    from RheumImagingLib.bundle import sha256_of

    texture, contour = trained_bundles / "ra_bone_texture" / "models", trained_bundles / "metacarpal_contour" / "models"
    for weights in [texture / name for name in FOLD_FILES] + [contour / "model.pt", contour / "curvegcn.pt"]:
        graph = runtime.stored_path(weights)
        assert graph.is_file(), graph
        assert json.loads(graph.with_name(graph.name + ".json").read_text())["key"] == sha256_of(weights)


def test_scoring_uses_the_stored_graphs_and_agrees_with_eager_within_tolerance(trained_bundles, monkeypatch):
    """A held-out hand (phantom seed 64; the bundles trained on seeds 21 and 31) through the whole pipeline with
    the stored graphs (the exporter would fail) and with eager PyTorch: bone scores within SCORE_TOLERANCE, each
    fold's probability within twice that (docs/benchmarks.md: 0.0043 and 0.0103 at most on held-out phantoms)."""
    from RheumImagingDemo.hand_phantom import render_hand
    from RheumTextureLib.pipeline import HandScorer
    from RheumTextureLib.texture import SCORE_TOLERANCE

    pixels = render_hand(64, 1)[0].astype(np.float32)
    eager = HandScorer(trained_bundles, runtime="torch").analyse(pixels, (0.25, 0.25))
    with monkeypatch.context() as patch:
        patch.setattr(runtime, "_export", _no_export)
        scorer = HandScorer(trained_bundles, runtime="onnxruntime")  # refuses to fall back to eager
        fast = scorer.analyse(pixels, (0.25, 0.25))
    for bone, score in eager["scores"].items():
        assert abs(fast["scores"][bone]["score"] - score["score"]) <= SCORE_TOLERANCE, bone
        assert np.abs(np.subtract(fast["scores"][bone]["fold_probabilities"],
                                  score["fold_probabilities"])).max() <= 2 * SCORE_TOLERANCE, bone
    assert fast["qc"] == eager["qc"]


def test_int8_graph_is_kept_only_within_tolerance_else_fp32(texture_bundle_trained, tmp_path, monkeypatch):
    """The training-end step checks each fold's int8 graph on the fold's held-out patches: within the tolerance it
    is stored (and named in the provenance); a tolerance no graph can meet stores fp32 graphs instead."""
    import shutil

    from RheumTextureLib import texture

    copy = shutil.copytree(texture_bundle_trained, tmp_path / "bundle", symlinks=True)
    summary = texture.store_graphs(copy)
    assert set(summary) == {runtime.stored_path(name).name for name in FOLD_FILES}
    for name, fold in summary.items():
        assert fold["largest_difference"] <= texture.SCORE_TOLERANCE or fold["graph"] == "fp32", name
    int8 = [name for name, fold in summary.items() if fold["graph"] == "int8"]
    assert int8, summary  # the tiny bundle's folds quantise within the tolerance
    record = json.loads((copy / "models" / (int8[0] + ".json")).read_text())
    assert record["int8"]["calibration_inputs"] > 0
    monkeypatch.setattr(texture, "SCORE_TOLERANCE", -1.0)
    assert {fold["graph"] for fold in texture.store_graphs(copy).values()} == {"fp32"}
    monkeypatch.setattr(runtime, "_export", _no_export)
    ensemble = texture.TextureEnsemble(copy, runtime="onnxruntime")
    assert ensemble.provenance()["runtime"].startswith("onnxruntime") and "int8" not in ensemble.provenance()["runtime"]


def test_the_localiser_runs_once_per_radiograph(trained_bundles):
    """The contours and the quality control's confidence come from one localiser forward."""
    from RheumImagingDemo.hand_phantom import render_hand
    from RheumTextureLib.pipeline import HandScorer

    scorer = HandScorer(trained_bundles)
    predictor = scorer.contourer.predictor
    calls = []

    class Counted(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            calls.append(tuple(x.shape))
            return self.inner(x)

    predictor.localiser = Counted(predictor.localiser)
    confidence, checked = scorer.quality.localiser_confidence, []

    def checking(pixels, logits=None):
        checked.append(logits)
        return confidence(pixels, logits)

    scorer.quality.localiser_confidence = checking
    scorer.analyse(render_hand(65, 0)[0].astype(np.float32), (0.25, 0.25))
    assert len(calls) == 1
    assert len(checked) == 1 and checked[0] is not None  # the confidence was checked, on the contours' logits
