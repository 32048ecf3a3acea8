"""One hand radiograph's texture results as one typed model; the MRML table and the CSV rows are views.

The module logic and ``rheumtexture score`` build the same :class:`HandResult` from the scorer's output;
a re-scored bone changes the model (never re-parsed 6-decimal text), and the hand score is computed from
it at full precision: the mean over bones of each bone's ensemble score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from RheumImagingLib.anatomy import BONES
from RheumImagingLib.stats.flow import qc_text

N_FOLDS = 5
HAND_ROW = "hand"
#: the MRML table's columns (a row per bone, then the hand)
COLUMNS = ("bone", *[f"fold_{k + 1}" for k in range(N_FOLDS)], "score", "above_threshold", "qc")


@dataclass
class HandResult:
    threshold: float
    bones: dict = field(default_factory=dict)  # bone -> {"folds": [p per fold], "score": ensemble mean}
    qc: list = field(default_factory=list)  # reasons to distrust the hand's result (empty: ok)
    bone_qc: dict = field(default_factory=dict)  # bone -> the image's reasons that concern it (quality.py)
    orientation: str = ""
    spacing_source: str = ""  # where the spacing used came from: calibrated, user-given, none
    edited: list = field(default_factory=list)  # bones whose contour the user moved

    @classmethod
    def from_scores(cls, scores: dict, threshold: float, qc=(), orientation: str = "",
                    spacing_source: str = "", bone_qc: dict | None = None) -> "HandResult":
        """From a scorer's ``{bone: {"fold_probabilities", "score"}}`` (``bone_qc``: HandScorer.analyse's)."""
        hand = cls(float(threshold), qc=list(qc), orientation=orientation, spacing_source=spacing_source,
                   bone_qc={b: list(r) for b, r in (bone_qc or {}).items()})
        for bone in BONES:
            hand.set_bone(bone, scores[bone]["fold_probabilities"], scores[bone]["score"])
        return hand

    def set_bone(self, bone: str, folds, score: float) -> None:
        self.bones[bone] = {"folds": [float(p) for p in folds], "score": float(score)}

    def score(self) -> float:
        return float(np.mean([self.bones[b]["score"] for b in BONES]))

    def fold_means(self) -> list[float]:
        return [float(v) for v in np.mean([self.bones[b]["folds"] for b in BONES], axis=0)]

    def above_threshold(self) -> bool:
        return self.score() > self.threshold

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HandResult":
        return cls(**data)


def scores_view(hand: HandResult) -> dict[str, dict]:
    """Row name -> fold probabilities, score, above threshold (full precision)."""
    view = {b: {"fold_probabilities": hand.bones[b]["folds"], "score": hand.bones[b]["score"],
                "above_threshold": hand.bones[b]["score"] > hand.threshold} for b in BONES}
    view[HAND_ROW] = {"fold_probabilities": hand.fold_means(), "score": hand.score(),
                      "above_threshold": hand.above_threshold()}
    return view


def table_rows(hand: HandResult) -> list[list[str]]:
    """The MRML table (COLUMNS): a row per bone, then the hand with its threshold decision and qc."""
    rows = [[b, *[f"{p:.6f}" for p in hand.bones[b]["folds"]], f"{hand.bones[b]['score']:.6f}", "",
             qc_text(hand.bone_qc.get(b, []))] for b in BONES]
    rows.append([HAND_ROW, *[f"{p:.6f}" for p in hand.fold_means()], f"{hand.score():.6f}",
                 "yes" if hand.above_threshold() else "no", qc_text(hand.qc)])
    return rows


def bone_rows(hand: HandResult, ident: dict, image: str) -> list[dict]:
    """The ``<stem>_bones.csv`` rows of one image (``ident``: patient_id, label, age, sex)."""
    return [{**ident, "image": image, "bone": b, "score": f"{hand.bones[b]['score']:.6f}",
             **{f"fold_{k + 1}": f"{p:.6f}" for k, p in enumerate(hand.bones[b]["folds"])},
             "qc": qc_text(hand.bone_qc.get(b, []))} for b in BONES]


def image_row(hand: HandResult, ident: dict, image: str, in_training: str = "") -> dict:
    """The ``<stem>_images.csv`` row of one image."""
    return {**ident, "image": image, "score": f"{hand.score():.6f}",
            **{f"score_{b}": f"{hand.bones[b]['score']:.6f}" for b in BONES},
            "above_threshold": int(hand.above_threshold()), "in_training": in_training,
            "orientation": hand.orientation, "spacing_source": hand.spacing_source, "qc": qc_text(hand.qc)}


def patient_row(hands: list, first_image_row: dict, in_training: str = "") -> dict:
    """The per-patient row (``--out``): the mean of the patient's hand scores, qc the union of reasons."""
    reasons = sorted({q for hand in hands for q in hand.qc})
    return {**{k: first_image_row[k] for k in ("patient_id", "label", "age", "sex")},
            "score": f"{float(np.mean([hand.score() for hand in hands])):.6f}", "n_images": len(hands),
            "in_training": in_training, "qc": qc_text(reasons)}
