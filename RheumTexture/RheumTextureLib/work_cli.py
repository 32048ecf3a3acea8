"""The RheumTexture panel's background work: ``python -m RheumTextureLib.work_cli TASK_DIR``.

Started by the module with ``slicer.util.launchConsoleProcess`` (see ``RheumImagingLib.background``) so
that loading the bundles (the first use exports them to ONNX), contouring and the five-fold ensemble
never freeze Slicer. Reads ``task.json`` and ``pixels.npy``, writes ``result.json``; no MRML here.
"""

from __future__ import annotations

import sys

from RheumImagingLib.background import report_stage, run_worker


def compute(task: dict, arrays: dict) -> tuple[dict, dict]:
    from .logic import compute_bone, compute_hand
    from .pipeline import HandScorer

    report_stage("Loading the bundles (the first use also exports them to ONNX)", 0.05)
    scorer = HandScorer(task["bundle_root"] or None)
    spacing = tuple(task["spacing_mm"]) if task["spacing_mm"] else None
    if task["kind"] == "hand":
        report_stage("Contouring metacarpals 2-4 and scoring their distal thirds (five-fold ensemble)", 0.4)
        return compute_hand(scorer, arrays["pixels"], spacing, task["metadata"]), {}
    report_stage(f"Re-scoring {task['bone']} (five-fold ensemble)", 0.5)
    return compute_bone(scorer, arrays["pixels"], spacing, task["bone"], arrays["control_points"]), {}


def main(argv=None) -> int:
    return run_worker(sys.argv[1:] if argv is None else argv, compute)


if __name__ == "__main__":
    sys.exit(main())
