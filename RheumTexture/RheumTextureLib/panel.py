"""The RheumTexture panel's decisions and messages, Qt-free so that pytest covers them."""

from __future__ import annotations

import numpy as np

from RheumImagingLib.widget_support import COHORT_LABELS, cohort_folder, training_cohort

from .results import BONES


def hand_task(prepared, bundle) -> tuple[dict, dict]:
    """``(task, arrays)`` for ``RheumTextureLib.work_cli`` from ``logic.prepare(volume)``."""
    pixels, spacing, metadata = prepared
    return ({"kind": "hand", "bundle_root": str(bundle) if bundle else "",
             "spacing_mm": list(spacing) if spacing else None, "metadata": metadata}, {"pixels": pixels})


def bone_task(prepared, bundle, bone: str, control_points) -> tuple[dict, dict]:
    """``(task, arrays)`` that re-score one edited bone."""
    task, arrays = hand_task(prepared, bundle)
    task.update(kind="bone", bone=bone)
    return task, dict(arrays, control_points=np.asarray(control_points, float))


def add_to_cohort(logic, volume, cohort_dir, *, patient_id: str, label: str, age=None, sex=None,
                  cohort_module=None) -> dict:
    """The radiograph and its MC2-4 curves as they are now into the training cohort (Contract E)."""
    folder = cohort_folder(cohort_dir)
    curves = {bone: logic.curve_node(volume, bone) for bone in BONES}
    missing = [bone for bone, curve in curves.items() if curve is None]
    if missing:
        raise ValueError(f"{volume.GetName()} has no contour of {', '.join(missing)}: Apply first, then correct "
                         "the curves if needed")
    module = cohort_module or training_cohort()
    return module.add_hand(folder, volume_node=volume, curves=curves, patient_id=patient_id,
                           label=COHORT_LABELS[label], age=age or None, sex=sex or None,
                           file_for_instance=logic.file_for_instance)
