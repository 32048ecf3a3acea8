"""RheumTexture logic on an MRML scene given by the caller (Slicer's or a test's).

One radiograph -> a closed-curve markups node per metacarpal (MC2, MC3, MC4, 40 editable
control points), an oriented ROI node showing each distal third, and a table node with
each fold's RA probability, the per-bone score, the hand score and its ``qc`` (``ok`` or the
reasons to distrust it). The record is the typed model of ``results.py``, stored as JSON on the
table; the table is its view. Either hand, in any quarter turn: curves and ROIs are in the
image as loaded (see ``orientation.py``). Everything is linked
to the input volume by node references, so a saved and reloaded scene can be re-scored.

Processing is split so that a panel can compute off the main thread (``work_cli``): ``prepare`` reads
the scene, ``compute_hand``/``compute_bone`` need no MRML, ``apply_hand``/``apply_bone`` write the scene.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import vtk

from RheumImagingLib.geometry import control_points_ras, pixel_to_ras, ras_to_pixel, set_control_points_ras
from RheumImagingLib.stats.flow import qc_text
from RheumImagingLib.results import render_table, store_model, stored_model
from RheumImagingLib.scene import place_under_patient, provenance, set_provenance

from .results import BONES, COLUMNS, HAND_ROW, N_FOLDS, HandResult, scores_view, table_rows  # noqa: F401

STUDY_THRESHOLD = 0.43  # EULAR 2020 SAT0564: OR 3.42 for a texture score > 0.43

_CURVE_ROLE = "RheumTexture.{bone}.Contour"
_ROI_ROLE = "RheumTexture.{bone}.DistalThird"
_TABLE_ROLE = "RheumTexture.Scores"


def _patient(volume) -> str:
    return volume.GetAttribute("RheumImaging.PatientID") or volume.GetName()


def _plain(value):
    """JSON-able copy of a scorer's output (arrays to lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def compute_hand(scorer, pixels, spacing, metadata) -> dict:
    """Contours, fold probabilities and ROI frames of one radiograph; no MRML (runs in ``work_cli``)."""
    result = scorer.analyse(pixels, spacing, metadata)
    points = {b: np.asarray(result["contours"][b]["control_points"], float) for b in BONES}
    return {"control_points": _plain(points), "scores": _plain(result["scores"]),
            "frames": {b: _plain(scorer.distal_third_frame(points[b], spacing)) for b in BONES},
            "orientation": result["orientation"].describe(), "qc": list(result["qc"]),
            "bone_qc": {b: list(result["bone_qc"][b]) for b in BONES},
            "provenance": scorer.provenance()}


def compute_bone(scorer, pixels, spacing, bone: str, control_points) -> dict:
    """One bone re-scored from its (edited) control points; no MRML."""
    result = scorer.score(pixels, {bone: np.asarray(control_points, float)}, spacing)[bone]
    return {"bone": bone, "control_points": _plain(np.asarray(control_points, float)),
            "scores": _plain(result), "frame": _plain(scorer.distal_third_frame(control_points, spacing))}


class RheumTextureLogic:
    """Works on ``scene``; the Slicer module hands it ``slicer.mrmlScene``.

    ``scorer`` is a :class:`RheumTextureLib.pipeline.HandScorer` (models loaded once);
    ``load_bundles`` makes one from a bundle folder.
    """

    def __init__(self, scene, scorer=None, file_for_instance=None):
        self.scene = scene
        self.scorer = scorer
        #: instance UID -> file, for volumes from Slicer's DICOM browser (``slicer.dicomDatabase.fileForInstance``)
        self.file_for_instance = file_for_instance

    def adopt_dicom_source(self, volume) -> bool:
        """Calibration, age and sex of a DICOM-browser volume, read from its file (see imageio)."""
        from RheumImagingLib.imageio import adopt_dicom_source

        return adopt_dicom_source(volume, self.file_for_instance)

    def load_radiograph(self, path, frame: int | None = None):
        """Load a hand radiograph (DICOM CR/DX/SC, PNG, TIFF) as a calibrated volume node."""
        from RheumImagingLib.imageio import load_volume

        return load_volume(self.scene, path, frame=frame)

    def load_bundles(self, bundle_root=None, device: str = "cpu"):
        """Load the contour and texture bundles once; reused for every image and edit."""
        from .pipeline import HandScorer

        from RheumImagingLib.bundle import default_bundle_root

        # No folder means the extension's own bundles, not whichever were loaded last.
        root = Path(bundle_root or default_bundle_root()).resolve()
        if self.scorer is None or getattr(self.scorer, "bundle_root", None) != root:
            self.scorer = HandScorer(root, device=device)
        return self.scorer

    # ------------------------------------------------------------------ processing
    def process(self, volume, *, age: float | None = None, sex: str | None = None,
                threshold: float = STUDY_THRESHOLD, progress: Callable[[str, float], None] | None = None):
        """Contour MC2-4, cut and score each distal third; returns the results table node."""
        if self.scorer is None:
            self.load_bundles()
        report = progress or (lambda stage, fraction: None)
        pixels, spacing, metadata = self.prepare(volume)
        report("Contouring metacarpals 2-4 and scoring their distal thirds", 0.1)
        table = self.apply_hand(volume, compute_hand(self.scorer, pixels, spacing, metadata),
                                age=age, sex=sex, threshold=threshold)
        report("Done", 1.0)
        return table

    def prepare(self, volume):
        """On the main thread: (pixels, spacing_mm, orientation metadata) copied out of the scene."""
        from RheumImagingLib.imageio import ATTR, ORIENTATION_KEYS, array_from_volume, spacing_mm

        self.adopt_dicom_source(volume)
        metadata = {key: volume.GetAttribute(ATTR + key) for key in ORIENTATION_KEYS}
        return array_from_volume(volume).astype(np.float32), spacing_mm(volume), metadata

    def edited_points(self, volume, bone: str) -> np.ndarray:
        """The bone's control points as the user left them, in pixels."""
        curve, table = self.curve_node(volume, bone), self.table_node(volume)
        if curve is None or table is None:
            raise ValueError(f"{volume.GetName()} has no RheumTexture results to update; run process first")
        return ras_to_pixel(volume, control_points_ras(curve))

    def apply_hand(self, volume, computed: dict, *, age=None, sex=None, threshold: float = STUDY_THRESHOLD):
        """Write a :func:`compute_hand` result into the scene: curves, ROIs, the model and its table."""
        patient = _patient(volume)
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        info = dict(computed["provenance"], time=stamp, input=volume.GetAttribute("RheumImaging.SourceFile") or "")
        for bone in BONES:
            curve = self._curve_node(volume, bone)
            set_control_points_ras(curve, pixel_to_ras(volume, computed["control_points"][bone]))
            set_provenance(curve, **info)
            self._update_roi(volume, bone, computed["frames"][bone], info)
            place_under_patient(self.scene, curve, patient, near=volume)
        table = self._table_node(volume)
        set_provenance(table, **info, threshold=threshold, age=age, sex=sex, orientation=computed["orientation"])
        place_under_patient(self.scene, table, patient, near=volume)
        place_under_patient(self.scene, volume, patient, near=volume)
        from RheumImagingLib.annotations import spacing_source_of

        hand = HandResult.from_scores(computed["scores"], threshold, computed["qc"], computed["orientation"],
                                      spacing_source_of(volume), computed["bone_qc"])
        self._render(table, hand)
        return table

    def rescore_bone(self, volume, bone: str) -> float:
        """Re-cut and re-score one bone after its control points moved; other bones untouched."""
        if self.scorer is None:
            self.load_bundles()
        points = self.edited_points(volume, bone)
        pixels, spacing, _ = self.prepare(volume)
        return self.apply_bone(volume, compute_bone(self.scorer, pixels, spacing, bone, points))

    def apply_bone(self, volume, computed: dict) -> float:
        """Write a :func:`compute_bone` result: that bone's ROI and scores; the hand score follows."""
        bone, table = computed["bone"], self.table_node(volume)
        info = provenance(table)
        info["time"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        set_provenance(self.curve_node(volume, bone), edited="true", time=info["time"])
        self._update_roi(volume, bone, computed["frame"], info)
        hand = self.hand_result(volume)
        hand.set_bone(bone, computed["scores"]["fold_probabilities"], computed["scores"]["score"])
        if bone not in hand.edited:
            hand.edited.append(bone)
        self._render(table, hand)
        return hand.bones[bone]["score"]

    # ------------------------------------------------------------------ reading results
    def curve_node(self, volume, bone: str):
        return volume.GetNodeReference(_CURVE_ROLE.format(bone=bone))

    def roi_node(self, volume, bone: str):
        return volume.GetNodeReference(_ROI_ROLE.format(bone=bone))

    def table_node(self, volume):
        return volume.GetNodeReference(_TABLE_ROLE)

    def hand_result(self, volume) -> HandResult:
        """The typed results model stored on the volume's table."""
        data = stored_model(self.table_node(volume))
        if data is None:
            raise ValueError(f"{volume.GetName()} has no RheumTexture results model; run process again")
        return HandResult.from_dict(data)

    def qc(self, volume, row: str = HAND_ROW) -> str:
        """The hand's (or a bone's) ``qc``: ``ok`` or ``;``-separated reasons (e.g. spacing unknown)."""
        hand = self.hand_result(volume)
        return qc_text(hand.qc if row == HAND_ROW else hand.bone_qc.get(row, []))

    def orientation(self, volume) -> str:
        """How the hand was found (side, source, turn), as recorded when it was processed."""
        return self.hand_result(volume).orientation

    def scores(self, volume) -> dict[str, dict]:
        """Row name -> fold probabilities, score, above threshold (from the model, full precision)."""
        return scores_view(self.hand_result(volume))

    # ------------------------------------------------------------------ nodes
    def _curve_node(self, volume, bone):
        node = self.curve_node(volume, bone)
        if node is None:
            node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", f"{volume.GetName()} {bone}")
            node.SetAttribute("RheumTexture.Bone", bone)
            volume.SetNodeReferenceID(_CURVE_ROLE.format(bone=bone), node.GetID())
        return node

    def _update_roi(self, volume, bone, frame, info):
        """Show the texture patch (``frame``: the scorer's distal-third rectangle) as an ROI box oriented
        along the bone's long axis."""
        roi = self.roi_node(volume, bone)
        if roi is None:
            roi = self.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", f"{volume.GetName()} {bone} distal third")
            roi.SetAttribute("RheumTexture.Bone", bone)
            volume.SetNodeReferenceID(_ROI_ROLE.format(bone=bone), roi.GetID())
            place_under_patient(self.scene, roi, _patient(volume), near=volume)

        centre, axis, across = (pixel_to_ras(volume, [frame["centre"], np.add(frame["centre"], frame["axis"]),
                                                      np.add(frame["centre"], frame["across"])]))
        u = (axis - centre) / np.linalg.norm(axis - centre)
        v = (across - centre) / np.linalg.norm(across - centre)
        w = np.cross(u, v)
        matrix = vtk.vtkMatrix4x4()
        for r in range(3):
            matrix.SetElement(r, 0, v[r])
            matrix.SetElement(r, 1, u[r])
            matrix.SetElement(r, 2, w[r])
            matrix.SetElement(r, 3, centre[r])
        # The matrix's translation is the ROI centre: SetXYZ/SetCenter would overwrite it
        # (Modules/Loadable/Markups/MRML/vtkMRMLMarkupsROINode.cxx v5.8.1 lines 550-557, 619-646, 1112-1116).
        roi.SetAndObserveObjectToNodeMatrix(matrix)
        # ROI sizes are in mm: pixel lengths times the spacing along each direction
        length_mm = np.linalg.norm(pixel_to_ras(volume, [[0, 0], frame["axis"]])[1] - pixel_to_ras(volume, [[0, 0]])[0])
        width_mm = np.linalg.norm(pixel_to_ras(volume, [[0, 0], frame["across"]])[1] - pixel_to_ras(volume, [[0, 0]])[0])
        roi.SetSize(frame["width"] * width_mm, frame["length"] * length_mm, 1.0)
        set_provenance(roi, **info)

    def _table_node(self, volume):
        table = self.table_node(volume)
        if table is None:
            table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{volume.GetName()} texture scores")
            volume.SetNodeReferenceID(_TABLE_ROLE, table.GetID())
        return table

    def _render(self, table, hand: HandResult) -> None:
        """The model is stored on the table and the table re-rendered from it (the one MRML view)."""
        store_model(table, hand.to_dict())
        render_table(table, COLUMNS, table_rows(hand))
