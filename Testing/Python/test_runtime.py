"""The optimised inference path: ONNX Runtime gives the scores eager PyTorch gives on phantoms,
is exported once per checkpoint, and without onnxruntime the eager network runs with a warning."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys

import numpy as np
import pytest
import torch

from RheumImagingLib import runtime
from RheumImagingLib.errors import InputError


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rheumtexture_scores_equal_with_onnxruntime_and_eager(trained_bundles, tmp_path):
    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumTextureLib.pipeline import HandScorer
    from RheumTextureLib.score_cli import score_images
    from RheumTextureLib.texture import SCORE_TOLERANCE

    cohort = generate_cohort(tmp_path / "phantoms", 3, seed=41)
    images = sorted((cohort.parent / "images").glob("*.dcm"))
    tables = {}
    for name in ("onnxruntime", "torch"):
        scorer = HandScorer(trained_bundles, runtime=name)
        assert scorer.provenance()["texture_runtime"].startswith(name)
        assert scorer.provenance()["contour_runtime"].startswith(name)
        score_images(images, tmp_path / name / "scores.csv", scorer=scorer, progress=False)
        tables[name] = _rows(tmp_path / name / "scores_bones.csv")
    assert len(tables["torch"]) == 3 * len(images)
    columns = ["score"] + [f"fold_{k}" for k in range(1, 6)]
    fast = np.array([[float(r[c]) for c in columns] for r in tables["onnxruntime"]])
    eager = np.array([[float(r[c]) for c in columns] for r in tables["torch"]])
    assert np.abs(fast - eager).max() <= SCORE_TOLERANCE  # the trained bundle's folds may be int8 (texture.py)
    assert fast[:, 0].std() > 0  # real, varying scores were compared


def test_sjogrenus_scores_equal_with_onnxruntime_and_eager(us_segmentation_trained, tmp_path):
    from SjogrenUSLib.score_cli import score_studies, studies_from_inputs
    from SjogrenUSLib.scoring import load_system
    from SjogrenUSLib.segmentation import USSegmenter
    from SjogrenUSLib.sjogrenus_cli import main

    assert main(["phantom", str(tmp_path / "phantoms"), "--patients", "2", "--seed", "13"]) == 0
    studies = studies_from_inputs([str(tmp_path / "phantoms" / "cohort.csv")])
    system = load_system("salaffi_0_4")
    rows, labels = {}, {}
    for name in ("onnxruntime", "torch"):
        segmenter = USSegmenter(us_segmentation_trained, runtime=name)
        assert segmenter.provenance()["runtime"].startswith(name)
        score_studies(studies, tmp_path / f"{name}.csv", segmenter, system, progress=False)
        rows[name] = _rows(tmp_path / f"{name}.csv")
        labels[name] = segmenter.predict(_first_mucosa_pixels(tmp_path / "phantoms"))
    assert np.mean(labels["onnxruntime"] == labels["torch"]) > 0.999
    for fast, eager in zip(rows["onnxruntime"], rows["torch"]):
        for column, value in eager.items():
            if column.startswith("thickness") and value and column not in ("thickness_status", "thickness_source"):
                assert abs(float(fast[column]) - float(value)) <= 1e-4
            else:
                assert fast[column] == value, column


def test_score_uses_onnxruntime_by_default(us_segmentation_trained, caplog, tmp_path):
    from SjogrenUSLib.sjogrenus_cli import main

    assert main(["phantom", str(tmp_path / "phantoms"), "--patients", "1", "--seed", "3"]) == 0
    caplog.set_level(logging.WARNING, logger="RheumImagingLib.runtime")
    assert main(["score", str(tmp_path / "phantoms" / "cohort.csv"), "--bundle", str(us_segmentation_trained),
                 "--out", str(tmp_path / "scores.csv")]) == 0
    from SjogrenUSLib.segmentation import USSegmenter

    assert USSegmenter(us_segmentation_trained).provenance()["runtime"].startswith("onnxruntime")
    assert not [r for r in caplog.records if r.name == "RheumImagingLib.runtime"]  # no fallback happened


def _first_mucosa_pixels(folder):
    from RheumImagingLib.imageio import read_image

    return read_image(sorted((folder / "images").glob("*_mucosa.dcm"))[0]).pixels


def _tiny_network():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))


def test_export_is_cached_per_key_and_outputs_match(tmp_path, monkeypatch):
    monkeypatch.setenv("RHEUM_IMAGING_CACHE", str(tmp_path))
    net = _tiny_network()
    fast = runtime.prepare(net, (1, 16, 16), key="sha-a", label="tiny", runtime="onnxruntime")
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(fast(x), net(x), atol=1e-5)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1

    def no_export(*args):
        raise AssertionError("exported again although cached")

    monkeypatch.setattr(runtime, "_export", no_export)
    again = runtime.prepare(_tiny_network(), (1, 16, 16), key="sha-a", label="tiny", runtime="onnxruntime")
    assert torch.allclose(again(x), fast(x))
    with pytest.raises(ValueError, match=r"tiny was exported for inputs \(N, 1, 16, 16\)"):
        fast(torch.rand(1, 1, 32, 32))


def test_stored_graph_is_used_as_it_is_only_for_its_own_weights(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RHEUM_IMAGING_CACHE", str(tmp_path / "cache"))
    x = torch.rand(2, 1, 16, 16)
    net, checkpoint, stored = _stored_graph(tmp_path, (1, 16, 16))
    assert stored == tmp_path / "model.onnx"
    assert json.loads(stored.with_name("model.onnx.json").read_text())["optimised"].endswith(
        " extended, CPUExecutionProvider")

    def never(*args):
        raise AssertionError("exported or built at scoring time although the bundle has the graph")

    with monkeypatch.context() as m:
        m.setattr(runtime, "_export", never)
        fast, sha256 = runtime.load(never, checkpoint, (1, 16, 16), label="tiny", runtime="onnxruntime")
        with torch.no_grad():
            assert torch.allclose(fast(x), net(x), atol=1e-5)
    assert sha256 == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert not (tmp_path / "cache").exists()

    retrained = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    torch.save(retrained.state_dict(), checkpoint)  # new weights under the old name, graph left from before
    with caplog.at_level(logging.INFO, logger="RheumImagingLib.runtime"):
        other, new_sha256 = runtime.load(_untrained, checkpoint, (1, 16, 16), label="tiny", runtime="onnxruntime")
    assert "is not the ONNX graph of these weights" in caplog.text
    assert new_sha256 == hashlib.sha256(checkpoint.read_bytes()).hexdigest() != sha256
    with torch.no_grad():
        assert torch.allclose(other(x), retrained(x), atol=1e-5)  # the stale graph was not used
        assert not torch.allclose(other(x), net(x), atol=1e-3)


def test_a_damaged_stored_graph_is_exported_again_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RHEUM_IMAGING_CACHE", str(tmp_path / "cache"))
    x = torch.rand(2, 1, 8, 8)
    net, checkpoint, graph = _stored_graph(tmp_path, (1, 8, 8))
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # truncated; its record still matches
    with caplog.at_level(logging.WARNING):
        fast, _ = runtime.load(_untrained, checkpoint, (1, 8, 8), label="tiny", runtime="onnxruntime")
        with torch.no_grad():
            assert torch.allclose(fast(x), net(x), atol=1e-5)
    assert f"ignoring unreadable ONNX model {graph}" in caplog.text
    assert runtime.runtime_name(fast).startswith("onnxruntime")  # the fresh export runs, from the cache
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1


def test_a_checkpoint_is_hashed_again_when_its_file_changed_under_the_same_size(tmp_path):
    _, checkpoint, _ = _stored_graph(tmp_path, (1, 8, 8))
    recorded = runtime.checkpoint_sha256(checkpoint)
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 1  # same size, other bytes, a later modification time
    checkpoint.write_bytes(bytes(data))
    os.utime(checkpoint, ns=(checkpoint.stat().st_atime_ns, checkpoint.stat().st_mtime_ns + 1_000_000))
    assert runtime.checkpoint_sha256(checkpoint) == hashlib.sha256(bytes(data)).hexdigest() != recorded


def test_a_failed_export_at_training_end_warns_and_keeps_the_weights(tmp_path, monkeypatch, caplog):
    checkpoint = tmp_path / "model.pt"
    torch.save(_tiny_network().state_dict(), checkpoint)
    monkeypatch.setattr(runtime, "_export", lambda *a: (_ for _ in ()).throw(RuntimeError("unsupported operator")))
    with caplog.at_level(logging.WARNING):
        assert runtime.store_or_warn(_tiny_network(), (1, 8, 8), checkpoint=checkpoint, what="the tiny net") is None
    assert "no ONNX graph stored for the tiny net (RuntimeError: unsupported operator)" in caplog.text
    assert checkpoint.is_file() and not runtime.stored_path(checkpoint).exists()


def test_stored_graph_is_optimised_for_the_cpu_provider_with_the_same_outputs(tmp_path):
    """The stored graph has ONNX Runtime's CPU fusions already applied (the convolution and its ReLU are one fused
    operator), and its outputs are those of the plain export to the bit."""
    import onnx
    import onnxruntime as ort

    net, _, stored = _stored_graph(tmp_path, (1, 16, 16))
    ops = {(node.domain, node.op_type) for node in onnx.load(str(stored)).graph.node}
    assert ("com.microsoft", "FusedConv") in ops and ("", "Relu") not in ops
    x = np.random.default_rng(2).random((3, 1, 16, 16), dtype=np.float32)
    plain = ort.InferenceSession(runtime._export(net, (1, 16, 16)), runtime._session_options(ort),
                                 providers=["CPUExecutionProvider"])
    optimised = ort.InferenceSession(str(stored), runtime._session_options(ort), providers=["CPUExecutionProvider"])
    assert np.array_equal(optimised.run(None, {"input": x})[0], plain.run(None, {"input": x})[0])


def _stored_graph(folder, input_shape):
    """A trained network, its checkpoint and the graph the training-end step stored beside it."""
    net, checkpoint = _tiny_network(), folder / "model.pt"
    torch.save(net.state_dict(), checkpoint)
    return net, checkpoint, runtime.store(net, input_shape, checkpoint=checkpoint)


def _untrained():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))


def test_unreadable_cache_file_is_exported_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RHEUM_IMAGING_CACHE", str(tmp_path))
    runtime.prepare(_tiny_network(), (1, 8, 8), key="k", label="tiny", runtime="onnxruntime")
    (cached,) = (tmp_path / "onnx").glob("*.onnx")
    cached.write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING):
        fast = runtime.prepare(_tiny_network(), (1, 8, 8), key="k", label="tiny", runtime="onnxruntime")
    assert "ignoring unreadable cached model" in caplog.text
    assert fast(torch.rand(1, 1, 8, 8)).shape == (1, 2, 8, 8)
    assert cached.stat().st_size > 100  # replaced by a real export


def test_without_onnxruntime_eager_runs_with_a_warning(texture_bundle_trained, monkeypatch, caplog):
    from RheumTextureLib.texture import TextureEnsemble

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with caplog.at_level(logging.WARNING):
        ensemble = TextureEnsemble(texture_bundle_trained)
    assert ensemble.provenance()["runtime"] == f"torch {torch.__version__}"
    assert "onnxruntime is not installed; running eager PyTorch instead" in caplog.text
    with pytest.raises(InputError, match="cannot run .* with ONNX Runtime: onnxruntime is not installed"):
        TextureEnsemble(texture_bundle_trained, runtime="onnxruntime")


def test_unknown_runtime_is_a_clear_error():
    with pytest.raises(InputError, match="unknown runtime 'tensorrt'"):
        runtime.prepare(_tiny_network(), (1, 8, 8), key="k", label="tiny", runtime="tensorrt")
