"""The SjogrenUS panel's background work: ``python -m SjogrenUSLib.work_cli TASK_DIR``.

Started by the module with ``slicer.util.launchConsoleProcess`` (see ``RheumImagingLib.background``) so
that loading the segmentation bundle and segmenting each image never freeze Slicer. Reads ``task.json``
and ``<site>.npy``, writes per site the labels and the typed site result; no MRML here.
"""

from __future__ import annotations

import sys
from dataclasses import asdict

from RheumImagingLib.background import report_stage, run_worker


def compute(task: dict, arrays: dict) -> tuple[dict, dict]:
    from .logic import SjogrenUSLogic
    from .results import site_from_image

    report_stage("Loading the segmentation bundle", 0.02)
    logic = SjogrenUSLogic(None, system=task["scoring_system"])
    logic.load_segmenter(task["bundle"] or None)
    sites, labels = {}, {}
    for k, (site, spacing) in enumerate(task["spacing_mm"].items()):
        report_stage(f"Segmenting and measuring {site}", 0.05 + 0.9 * k / len(task["spacing_mm"]))
        result = logic.measure_site(site, arrays[site], tuple(spacing) if spacing else None)
        sites[site], labels[site] = asdict(site_from_image(result)), result.labels
    return {"sites": sites, "provenance": logic.segmenter.provenance()}, labels


def main(argv=None) -> int:
    return run_worker(sys.argv[1:] if argv is None else argv, compute)


if __name__ == "__main__":
    sys.exit(main())
