"""RheumTexture logic on an MRML scene given by the caller (Slicer's or a test's).

One radiograph -> a closed-curve markups node per metacarpal (MC2, MC3, MC4, 40 editable
control points), an oriented ROI node showing each distal third, and a table node with
each fold's RA probability, the per-bone score, the hand score and its ``qc`` (``ok`` or the
reasons to distrust it). Either hand, in any quarter turn: curves and ROIs are in the
image as loaded (see ``orientation.py``). Everything is linked
to the input volume by node references, so a saved and reloaded scene can be re-scored.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import vtk

from RheumImagingLib.geometry import control_points_ras, pixel_to_ras, ras_to_pixel, set_control_points_ras
from RheumImagingLib.scene import place_under_patient, provenance, set_provenance, table_row

BONES = ("MC2", "MC3", "MC4")
STUDY_THRESHOLD = 0.43  # EULAR 2020 SAT0564: OR 3.42 for a texture score > 0.43
HAND_ROW = "hand"
N_FOLDS = 5

_CURVE_ROLE = "RheumTexture.{bone}.Contour"
_ROI_ROLE = "RheumTexture.{bone}.DistalThird"
_TABLE_ROLE = "RheumTexture.Scores"


def _patient(volume) -> str:
    return volume.GetAttribute("RheumImaging.PatientID") or volume.GetName()


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
        from RheumImagingLib.imageio import ATTR, ORIENTATION_KEYS, array_from_volume, spacing_mm

        from .pipeline import qc_text

        if self.scorer is None:
            self.load_bundles()
        report = progress or (lambda stage, fraction: None)
        self.adopt_dicom_source(volume)
        pixels = array_from_volume(volume).astype(np.float32)
        report("Contouring metacarpals 2-4 and scoring their distal thirds", 0.1)
        metadata = {key: volume.GetAttribute(ATTR + key) for key in ORIENTATION_KEYS}
        result = self.scorer.analyse(pixels, spacing_mm(volume), metadata)
        contours, scores = result["contours"], result["scores"]
        patient = _patient(volume)
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        info = dict(self.scorer.provenance(), time=stamp, input=volume.GetAttribute("RheumImaging.SourceFile") or "")
        for bone in BONES:
            curve = self._curve_node(volume, bone)
            set_control_points_ras(curve, pixel_to_ras(volume, contours[bone]["control_points"]))
            set_provenance(curve, **info)
            self._update_roi(volume, bone, contours[bone]["control_points"], info)
            place_under_patient(self.scene, curve, patient, near=volume)
        table = self._table_node(volume)
        set_provenance(table, **info, threshold=threshold, age=age, sex=sex,
                       orientation=result["orientation"].describe())
        place_under_patient(self.scene, table, patient, near=volume)
        place_under_patient(self.scene, volume, patient, near=volume)
        for bone in BONES:
            self._write_bone_row(table, bone, scores[bone]["fold_probabilities"])
        self._write_hand_row(table, threshold)
        table.SetCellText(table_row(table, HAND_ROW), 3 + N_FOLDS, qc_text(result["qc"]))
        for bone in BONES:
            table.SetCellText(table_row(table, bone), 3 + N_FOLDS, qc_text(result["bone_qc"][bone]))
        report("Done", 1.0)
        return table

    def rescore_bone(self, volume, bone: str) -> float:
        """Re-cut and re-score one bone after its control points moved; other bones untouched."""
        from RheumImagingLib.imageio import array_from_volume, spacing_mm

        if self.scorer is None:
            self.load_bundles()
        curve = self.curve_node(volume, bone)
        table = self.table_node(volume)
        if curve is None or table is None:
            raise ValueError(f"{volume.GetName()} has no RheumTexture results to update; run process first")
        control_points = ras_to_pixel(volume, control_points_ras(curve))
        pixels = array_from_volume(volume).astype(np.float32)
        result = self.scorer.score(pixels, {bone: control_points}, spacing_mm(volume))[bone]
        info = provenance(table)
        info["time"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        set_provenance(curve, edited="true", time=info["time"])
        self._update_roi(volume, bone, control_points, info)
        self._write_bone_row(table, bone, result["fold_probabilities"])
        self._write_hand_row(table, float(info.get("threshold", STUDY_THRESHOLD)))
        return result["score"]

    # ------------------------------------------------------------------ reading results
    def curve_node(self, volume, bone: str):
        return volume.GetNodeReference(_CURVE_ROLE.format(bone=bone))

    def roi_node(self, volume, bone: str):
        return volume.GetNodeReference(_ROI_ROLE.format(bone=bone))

    def table_node(self, volume):
        return volume.GetNodeReference(_TABLE_ROLE)

    def qc(self, volume, row: str = HAND_ROW) -> str:
        """The hand's (or a bone's) ``qc``: ``ok`` or ``;``-separated reasons (e.g. spacing unknown)."""
        table = self.table_node(volume)
        return table.GetCellText(table_row(table, row), 3 + N_FOLDS) or "ok"

    def orientation(self, volume) -> str:
        """How the hand was found (side, source, turn), as recorded when it was processed."""
        return provenance(self.table_node(volume)).get("orientation", "")

    def scores(self, volume) -> dict[str, dict]:
        """The table's content: row name -> fold probabilities, score, above threshold."""
        table = self.table_node(volume)
        result = {}
        for row in range(table.GetNumberOfRows()):
            name = table.GetCellText(row, 0)
            folds = [float(table.GetCellText(row, 1 + k)) for k in range(N_FOLDS)]
            result[name] = {"fold_probabilities": folds, "score": float(table.GetCellText(row, 1 + N_FOLDS)),
                            "above_threshold": table.GetCellText(row, 2 + N_FOLDS) == "yes"}
        return result

    # ------------------------------------------------------------------ nodes
    def _curve_node(self, volume, bone):
        node = self.curve_node(volume, bone)
        if node is None:
            node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", f"{volume.GetName()} {bone}")
            node.SetAttribute("RheumTexture.Bone", bone)
            volume.SetNodeReferenceID(_CURVE_ROLE.format(bone=bone), node.GetID())
        return node

    def _update_roi(self, volume, bone, control_points, info):
        """Show the texture patch as an ROI box oriented along the bone's long axis."""
        from RheumImagingLib.imageio import spacing_mm

        frame = self.scorer.distal_third_frame(control_points, spacing_mm(volume))
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
            for name in ["bone", *[f"fold_{k + 1}" for k in range(N_FOLDS)], "score", "above_threshold", "qc"]:
                table.AddColumn().SetName(name)
            for row in (*BONES, HAND_ROW):
                index = table.AddEmptyRow()
                table.SetCellText(index, 0, row)
            volume.SetNodeReferenceID(_TABLE_ROLE, table.GetID())
        return table

    def _write_bone_row(self, table, bone, folds):
        row = table_row(table, bone)
        for k, p in enumerate(folds):
            table.SetCellText(row, 1 + k, f"{p:.6f}")
        table.SetCellText(row, 1 + N_FOLDS, f"{float(np.mean(folds)):.6f}")
        table.SetCellText(row, 2 + N_FOLDS, "")

    def _write_hand_row(self, table, threshold):
        """Hand score = mean over bones of the ensemble score (per fold: mean over bones)."""
        folds = np.array([[float(table.GetCellText(table_row(table, b), 1 + k)) for k in range(N_FOLDS)] for b in BONES])
        row = table_row(table, HAND_ROW)
        for k, p in enumerate(folds.mean(axis=0)):
            table.SetCellText(row, 1 + k, f"{p:.6f}")
        hand = float(folds.mean())
        table.SetCellText(row, 1 + N_FOLDS, f"{hand:.6f}")
        table.SetCellText(row, 2 + N_FOLDS, "yes" if hand > threshold else "no")
        table.Modified()
