"""`rheumtexture score` figures: overhead, interactive re-score, ONNX Runtime vs eager, memory,
scaling and training throughput, on phantom radiographs.

Timing does not depend on the weights' values, so the texture bundles get random weights: the
paper's config (224 px patches, 5 folds) for the per-hand figures, the tests' tiny config (32 px
patches) for the memory and scaling series (370 hands in all), whose subject is the per-image
loop rather than the network. The contour bundle is trained for a few seconds at its demo sizes
(a localiser must find the bones for the pipeline to run at all).
"""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from bench_tools import (Figure, Recorder, bare_forwards, fastest_fresh_process, interleaved, memory_and_scaling,
                         peak_gflops, scaling_series, seconds, training_figure)

from RheumImagingLib.bundle import default_bundle_root
from RheumTextureLib.pipeline import HandScorer
from RheumTextureLib.score_cli import score_images

MODULE = "rheumtexture score"
SCALING = (20, 50, 100, 200)
PER_HAND = 8  # hands timed at the paper's config (about 0.11 s each with ONNX Runtime, 0.33 s eager here)


def _texture_bundle(dest: Path, patch_size: int | None, cohort: Path) -> Path:
    """The ra_bone_texture bundle with five random-weight folds (paper config, or smaller patches), finished as
    training finishes (:func:`RheumTextureLib.texture.store_graphs`: each fold's graph, int8 where it agrees with
    eager, calibrated on ``cohort``'s patches)."""
    import sys

    from RheumTextureLib.datalist import build_datalist
    from RheumTextureLib.texture import store_graphs

    shutil.copytree(default_bundle_root() / "ra_bone_texture", dest, ignore=shutil.ignore_patterns("__pycache__"))
    if patch_size:
        from RheumImagingLib.training_setup import write_into_configs

        write_into_configs(dest, {"patch_size": patch_size})
    sys.path.insert(0, str(dest))
    try:
        from scripts.deepten import DeepTEN

        (dest / "models").mkdir(exist_ok=True)
        for fold in range(5):
            torch.manual_seed(fold)
            name = "model.pt" if fold == 0 else f"model_fold{fold}.pt"
            torch.save(DeepTEN(in_channels=1, D=128, K=32).state_dict(), dest / "models" / name)
    finally:
        sys.path.remove(str(dest))
        for name in [n for n in sys.modules if n == "scripts" or n.startswith("scripts.")]:
            del sys.modules[name]
    build_datalist(cohort, dest / "datalist.json")
    store_graphs(dest)
    return dest


def setup(work: Path, log) -> dict:
    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumTextureLib.contour import BUNDLE_DIR, train_contour_bundle

    start = time.perf_counter()
    cohort = generate_cohort(work / "phantoms", 50, 2020)
    contour_cohort = generate_cohort(work / "contour_training", 8, 7)
    calibration = generate_cohort(work / "texture_calibration", 10, 11)  # 5 per label: 5 folds, none of them scored
    contour = train_contour_bundle(BUNDLE_DIR, contour_cohort, work / "contour", config="demo",
                                   overrides={"stage1#max_epochs": 35, "stage2#max_epochs": 1})
    roots = {}
    for config, patch_size in (("paper", None), ("tiny", 32)):
        root = work / f"bundles_{config}"
        root.mkdir()
        (root / "metacarpal_contour").symlink_to(contour, target_is_directory=True)
        _texture_bundle(root / "ra_bone_texture", patch_size, calibration)
        roots[config] = root
    log(f"set-up (50 phantoms, contour training, bundles): {time.perf_counter() - start:.0f} s")
    return {"cohort": cohort, "images": sorted((cohort.parent / "images").glob("*.dcm")), "roots": roots}


def _networks(scorer) -> list[tuple[object, str, object]]:
    """(owner, attribute or index, network) for every network a hand goes through."""
    predictor = scorer.contourer.predictor
    folds = scorer.ensemble.network.models
    return [(predictor, "localiser", predictor.localiser), (predictor, "curvegcn", predictor.curvegcn),
            *[(folds, k, folds[k]) for k in range(len(folds))]]


def _place(slots, modules) -> None:
    """Put ``modules`` where the scorer calls its networks."""
    for (owner, where, _), module in zip(slots, modules):
        if isinstance(where, int):
            owner[where] = module
        else:
            setattr(owner, where, module)


def _bone_scores(path: Path) -> np.ndarray:
    import csv

    with open(path.with_name(path.stem + "_bones.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r[c]) for c in ("score", *[f"fold_{k}" for k in range(1, 6)])] for r in rows])


def per_hand_figures(data: dict, work: Path, log) -> list[Figure]:
    """Overhead, optimised path vs eager, texture FLOP rate and time to the first score, at the paper's config,
    on the same hands."""
    from RheumTextureLib.texture import SCORE_TOLERANCE

    hands = data["images"][:PER_HAND]
    counter = iter(range(1000))

    def run(scorer, images=hands):
        out = work / "scores" / f"run{next(counter)}.csv"
        result = score_images(images, out, scorer=scorer, progress=False)
        assert result["scored"] == len(images), "every benchmark hand must be scored"
        return out

    fast = HandScorer(data["roots"]["paper"], runtime="onnxruntime")
    slots = _networks(fast)
    recorders = [Recorder(network) for *_, network in slots]
    _place(slots, recorders)
    fast_out = run(fast)  # warm-up, and records every network input of these hands
    _place(slots, [network for *_, network in slots])
    eager = HandScorer(data["roots"]["paper"], runtime="torch")
    run(eager, hands[:1])  # warm-up
    eager_out = []
    best = interleaved({"end_to_end": lambda: seconds(lambda: run(fast)), "bare": lambda: bare_forwards(recorders),
                        "texture": lambda: bare_forwards(recorders[2:]),
                        "eager": lambda: seconds(lambda: eager_out.append(run(eager)))}, rounds=3)
    end_to_end, bare, eager_time = best["end_to_end"], best["bare"], best["eager"]
    log(f"paper config, {len(hands)} hands: end to end {end_to_end:.2f} s, bare forwards {bare:.2f} s "
        f"(texture {best['texture']:.2f} s), eager end to end {eager_time:.2f} s")
    difference = float(np.abs(_bone_scores(eager_out[0]) - _bone_scores(fast_out)).max())
    candidates = _candidates(recorders[2:], eager)
    log(f"bare texture forwards against eager: {candidates}")
    per_hand = end_to_end / len(hands)
    first = _first_score(data, work, log)
    config = {"config": "paper (224 px patches, 5 folds; contour model at demo sizes)", "hands": len(hands)}
    runtime = fast.provenance()["texture_runtime"]
    return [
        Figure(MODULE, "overhead: end to end / bare network forwards", end_to_end / bare, "<=", 1.2,
               detail={**config, "end_to_end_s_per_hand": per_hand, "bare_forwards_s_per_hand": bare / len(hands),
                       "texture_runtime": runtime,
                       "localiser_forwards_per_hand": len(recorders[0].inputs) / len(hands)}),
        Figure(MODULE, "optimised path: eager time / ONNX Runtime time", eager_time / end_to_end, ">=", 2.5,
               detail={**config, "eager_s_per_hand": eager_time / len(hands), "onnxruntime_s_per_hand": per_hand,
                       "texture_runtime": runtime, "bare_texture_forward_speed_vs_eager": candidates}),
        Figure(MODULE, "optimised path: largest score difference from eager", difference, "<=", SCORE_TOLERANCE,
               unit="", detail={**config, "compared": "bone scores and 5 fold probabilities as written (6 decimals)",
                                "weights": "random (timing); on trained weights: docs/benchmarks.md"}),
        _flop_figure(recorders[2:], best["texture"], len(hands), config),
        Figure(MODULE, "first score: fresh process, bundles loaded to first hand scored / steady time per hand",
               first["first_score_s"] / per_hand, "<=", 3, detail={**config, **first, "steady_s_per_hand": per_hand}),
    ]


def _candidates(texture_recorders, eager) -> dict:
    """Speed of the bare texture forwards relative to eager, for each inference path we could ship: a frozen
    TorchScript module (what MONAI's ckpt_export makes), ONNX Runtime fp32 (exported here) and the graphs the
    bundle stored when training ended (int8 where they agreed with eager)."""
    from RheumImagingLib.runtime import prepare

    folds = eager.ensemble.network.models
    inputs = [(k, x) for k, recorder in enumerate(texture_recorders) for x in recorder.inputs[:2]]
    with torch.no_grad():
        example = inputs[0][1]
        scripted = [torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m, example))) for m in folds]
        fp32 = [prepare(m, tuple(example.shape[1:]), key=f"benchmark-fp32-fold{k}", label=f"fp32 fold {k}",
                        runtime="onnxruntime") for k, m in enumerate(folds)]

        def timed(models):
            for k, x in inputs[:len(folds)]:
                models[k](x)  # warm-up (TorchScript optimises on first calls)
            return seconds(lambda: [models[k](x) for k, x in inputs])

        eager_time = timed(folds)
        return {"torchscript_frozen": round(eager_time / timed(scripted), 2),
                "onnxruntime_fp32": round(eager_time / timed(fp32), 2),
                "onnxruntime_stored": round(eager_time / timed([r.inner for r in texture_recorders]), 2)}


def _flop_figure(texture_recorders, texture_seconds: float, hands: int, config: dict) -> Figure:
    """The texture forwards' rate in FLOP (counted by torch on an eager DeepTEN of the bundle's shape) as a fraction
    of the CPU's fp32 peak: how near the machine's limit the radiograph path runs (an int8 graph may pass 1)."""
    import sys

    from torch.utils.flop_counter import FlopCounterMode

    root = str(default_bundle_root() / "ra_bone_texture")
    sys.path.insert(0, root)
    try:
        from scripts.deepten import DeepTEN
    finally:
        sys.path.remove(root)
    x = texture_recorders[0].inputs[0][:1]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        DeepTEN(in_channels=1, D=128, K=32).eval()(x)
    patches = sum(len(x) for recorder in texture_recorders for x in recorder.inputs)
    gflops = counter.get_total_flops() * patches / texture_seconds / 1e9
    peak = peak_gflops()
    return Figure(MODULE, "texture forwards: FLOP rate / fp32 peak of the CPU", gflops / peak, "info", 0, unit="",
                  detail={**config, "gflop_per_patch": counter.get_total_flops() / 1e9, "gflop_per_s": gflops,
                          "peak_gflop_per_s": peak, "patch_forwards_per_hand": patches / hands,
                          "texture_forwards_s_per_hand": texture_seconds / hands})


FIRST_SCORE = """
import json, sys, time
start = time.perf_counter()
from pathlib import Path
import monai.bundle, monai.data, monai.networks.nets, monai.transforms, onnxruntime, pydicom, scipy.ndimage
from RheumTextureLib.pipeline import HandScorer
from RheumTextureLib.score_cli import score_images
imported = time.perf_counter()
scorer = HandScorer(sys.argv[1])
loaded = time.perf_counter()
score_images([Path(sys.argv[2])], Path(sys.argv[3]), scorer=scorer, progress=False)
done = time.perf_counter()
print(json.dumps({"imports_s": imported - start, "load_s": loaded - imported, "first_score_s": done - imported,
                  "texture_runtime": scorer.provenance()["texture_runtime"]}))
"""


def _first_score(data: dict, work: Path, log) -> dict:
    """Seconds from loading the bundles in a fresh process to the first hand's scores written, with an empty export
    cache (the graphs the bundles stored must suffice); the fastest of 3 such processes. The imports of the libraries
    the pipeline uses (MONAI's transforms, networks and bundle parser, ONNX Runtime, pydicom, SciPy) come before and
    are reported apart."""
    import json
    import os
    import subprocess
    import sys

    def run_once(k: int) -> dict:
        cache = work / f"fresh_cache{k}"
        result = subprocess.run([sys.executable, "-c", FIRST_SCORE, str(data["roots"]["paper"]),
                                 str(data["images"][0]), str(work / f"first{k}" / "scores.csv")],
                                env={**os.environ, "RHEUM_IMAGING_CACHE": str(cache)}, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"the fresh scoring process failed:\n{result.stderr[-3000:]}")
        return {**json.loads(result.stdout.strip().splitlines()[-1]), "exported_at_scoring": cache.exists()}

    first, runs = fastest_fresh_process(run_once)
    first["exported_at_scoring"] = any(r["exported_at_scoring"] for r in runs)
    log(f"fresh process: imports {first['imports_s']:.1f} s, then bundles loaded {first['load_s']:.2f} s, first "
        f"hand scored {first['first_score_s']:.2f} s (exported at scoring: {first['exported_at_scoring']})")
    return first


def rescore_figure(data: dict, log) -> Figure:
    """Re-scoring one edited bone in the module logic against 5 bare ResNet18 forwards (same runtime)."""
    from monai.networks.nets import resnet18

    from RheumImagingLib.geometry import control_points_ras, set_control_points_ras
    from RheumImagingLib.runtime import prepare
    from RheumImagingLib.scene import new_scene
    from RheumTextureLib.logic import RheumTextureLogic

    scorer = HandScorer(data["roots"]["paper"])
    logic = RheumTextureLogic(new_scene(), scorer=scorer)
    volume = logic.load_radiograph(data["images"][0])
    logic.process(volume)
    curve = logic.curve_node(volume, "MC3")
    points, steps = control_points_ras(curve), itertools.count(1)

    def edit_and_rescore():
        moved = points.copy()
        moved[5, 0] += 0.1 * next(steps)  # the user drags one control point
        set_control_points_ras(curve, moved)
        logic.rescore_bone(volume, "MC3")

    edit_and_rescore()
    rescore = seconds(edit_and_rescore, repeats=5)
    torch.manual_seed(0)
    net = resnet18(spatial_dims=2, n_input_channels=1, num_classes=1)
    bare = prepare(net, (1, 224, 224), key="benchmark-resnet18", label="bare ResNet18")
    x = torch.rand(1, 1, 224, 224)
    with torch.no_grad():
        bare(x)
        five = seconds(lambda: [bare(x) for _ in range(5)], repeats=5)
    log(f"re-score {rescore * 1000:.0f} ms, 5 bare ResNet18 forwards {five * 1000:.0f} ms")
    return Figure(MODULE, "interactive re-score of one bone / 5 bare ResNet18 forwards", rescore / five, "<=", 1.2,
                  detail={"config": "paper (224 px)", "rescore_ms": rescore * 1000, "five_resnet18_ms": five * 1000,
                          "runtime": scorer.provenance()["texture_runtime"]})


def cohort_figures(data: dict, work: Path, log) -> list[Figure]:
    """Memory and scaling: the same scorer on 20, 50, 100 and 200 hands (the 50 phantoms repeated)."""
    scorer = HandScorer(data["roots"]["tiny"])
    images = [data["images"][i % len(data["images"])] for i in range(max(SCALING))]
    score_images(images[:2], work / "scaling" / "warmup.csv", scorer=scorer, progress=False)
    runs = itertools.count()

    def run(n):
        result = score_images(images[:n], work / "scaling" / f"run{next(runs)}.csv", scorer=scorer, progress=False)
        assert result["scored"] == n

    times, peaks = scaling_series(run, SCALING, log)
    config = {"config": "tiny (32 px patches, 5 folds)", "runtime": scorer.provenance()["texture_runtime"]}
    return memory_and_scaling(MODULE, times, peaks, config)


def training(data: dict, work: Path, log) -> Figure:
    from RheumImagingLib.bundle import Bundle
    from RheumTextureLib.datalist import build_datalist

    root = work / "texture_training"
    shutil.copytree(default_bundle_root() / "ra_bone_texture", root, ignore=shutil.ignore_patterns("__pycache__"))
    lines = data["cohort"].read_text().splitlines()
    subset = data["cohort"].with_name("cohort_training.csv")  # 25 patients: 60 distal thirds per training epoch
    subset.write_text("\n".join(lines[:26]) + "\n")
    build_datalist(subset, root / "datalist.json")
    bundle = Bundle(root, ["train", "demo"], {"fold": 0, "max_epochs": 5, "val_interval": 1000})
    return training_figure(MODULE, bundle, "demo (128 px, batch 8), fold 0 of 25 phantoms", log)


def run(work: Path, log) -> list[Figure]:
    data = setup(work, log)
    return [*per_hand_figures(data, work, log), rescore_figure(data, log), *cohort_figures(data, work, log),
            training(data, work, log)]
