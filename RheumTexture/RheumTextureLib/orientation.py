"""Hand orientation: bring any PA hand radiograph into the trained convention (a right hand,
fingers up, thumb at the image left) and map results back to the image as it was given.

Laterality comes from DICOM first (``ImageLaterality``, ``Laterality``, then words such as
LEFT/RIGHT in ``SeriesDescription``); an AP view (``ViewPosition`` AP) is the mirror image of
a PA one. When DICOM says nothing, the thumb side is read from the hand silhouette: the
thumb is the digit that stands apart from the palm at the level of the metacarpals.
Rotation by 90 or 180 degrees is read from the silhouette: scanlines across the fingers
cross several digits, scanlines across the palm or wrist one. Both image rules were checked
on phantoms (see the README); when their evidence is weak the image gets a ``qc`` note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

_LEFT = re.compile(r"\b(LEFT|LT|LINKS?|LINKE|GAUCHE|SINISTRA|SIN)\b")
_RIGHT = re.compile(r"\b(RIGHT|RT|RECHTS?|RECHTE|DROITE|DEXTRA|DEX)\b")
ROTATION_MARGIN = 0.5  # fewer extra digit crossings than this between the best and next direction: uncertain
THUMB_MARGIN = 0.03  # thumb-side rows (fraction of the hand's height) below this: uncertain


@dataclass(frozen=True)
class Orientation:
    """``quarter_turns``: np.rot90 turns (counter-clockwise on screen) that bring the fingers up;
    then ``mirrored``: flip left-right (a left hand in PA, or a right hand in AP)."""

    quarter_turns: int = 0
    mirrored: bool = False
    laterality: str = ""  # "left", "right" or "" (unknown)
    source: str = ""  # where the laterality came from
    qc: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        turned = f"turned {90 * self.quarter_turns} deg" if self.quarter_turns else "upright"
        side = f"{self.laterality or 'unknown'} hand ({self.source})"
        return f"{side}, {turned}" + (", mirrored" if self.mirrored else "")


def laterality_from_dicom(metadata: dict) -> tuple[str, str]:
    """("left"|"right"|"", the attribute that said so) from the DICOM attributes in ``metadata``."""
    for key in ("ImageLaterality", "Laterality"):
        value = str(metadata.get(key) or "").strip().upper()
        if value in ("L", "R"):
            return ("left" if value == "L" else "right"), key
    text = str(metadata.get("SeriesDescription") or "").upper()
    left, right = bool(_LEFT.search(text)), bool(_RIGHT.search(text))
    if left != right:
        return ("left" if left else "right"), "SeriesDescription"
    return "", ""


def detect(pixels, metadata: dict | None = None) -> Orientation:
    """The orientation of a hand radiograph (bone bright) with its DICOM attributes."""
    metadata = metadata or {}
    qc = []
    mask = _silhouette(pixels)
    turns, margin = _quarter_turns(mask)
    if margin < ROTATION_MARGIN:
        qc.append("orientation uncertain")
    upright = np.rot90(mask, turns)
    laterality, source = laterality_from_dicom(metadata)
    ap = str(metadata.get("ViewPosition") or "").strip().upper() == "AP"
    if not laterality:
        thumb = _thumb_side(upright)  # > 0: thumb at the left as seen = a right hand in PA
        if abs(thumb) < THUMB_MARGIN:
            qc.append("laterality unknown")
        laterality = "right" if (thumb >= 0) != ap else "left"
        source = "image"
    return Orientation(turns, (laterality == "left") != ap, laterality, source + (", AP view" if ap else ""),
                       tuple(qc))


def to_convention(pixels, orientation: Orientation) -> np.ndarray:
    """The image turned and mirrored into the trained convention (a view, no copy)."""
    out = np.rot90(np.asarray(pixels), orientation.quarter_turns)
    return out[:, ::-1] if orientation.mirrored else out


def points_from_convention(points_xy, orientation: Orientation, shape) -> np.ndarray:
    """(N, 2) (x, y) pixel points of the convention image -> the original image's pixels.
    ``shape``: the original image's (rows, cols). The point order is kept."""
    pts = np.array(points_xy, dtype=float).reshape(-1, 2)
    k = orientation.quarter_turns % 4
    shapes = [tuple(shape) if j % 2 == 0 else tuple(shape)[::-1] for j in range(k + 1)]  # shape after j turns
    if orientation.mirrored:
        pts[:, 0] = shapes[k][1] - 1 - pts[:, 0]
    for j in range(k, 0, -1):  # np.rot90: out(x', y') = in(W - 1 - y', x'), W the columns before the turn
        cols_before = shapes[j - 1][1]
        pts = np.stack([cols_before - 1 - pts[:, 1], pts[:, 0]], axis=1)
    return pts


def _silhouette(pixels) -> np.ndarray:
    """The hand (soft tissue and bone) as the largest bright region, on a grid of <= ~256 px,
    cropped to its bounding box. Air / tissue threshold: the lower of three-class Otsu."""
    from skimage.filters import threshold_multiotsu

    image = np.asarray(pixels, dtype=np.float32)
    step = max(1, int(np.ceil(max(image.shape) / 256)))
    # gaussian_filter(image, step / 2)[::step, ::step], its column pass run on the kept rows only (the same values)
    rows = ndimage.gaussian_filter1d(image, step / 2.0, axis=0)[::step]
    small = ndimage.gaussian_filter(ndimage.gaussian_filter1d(rows, step / 2.0, axis=1)[:, ::step], 1.5)
    try:
        low = threshold_multiotsu(small, 3)[0]
    except ValueError:  # fewer than three grey levels
        return np.ones((2, 2), bool)
    mask = ndimage.binary_opening(small > low, iterations=2)
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.ones((2, 2), bool)
    hand = labels == 1 + int(np.argmax(np.bincount(labels.reshape(-1))[1:]))  # the largest region
    rows, cols = np.nonzero(hand)
    return hand[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _runs(rows: np.ndarray) -> np.ndarray:
    """The number of separate runs of True in each row."""
    return (np.diff(rows.astype(np.int8), axis=1, prepend=0) == 1).sum(axis=1)


def _quarter_turns(mask) -> tuple[int, float]:
    """(turns that put the fingers up, the evidence margin over the next best direction)."""
    scores = []
    for k in range(4):
        m = np.rot90(mask, k)
        h = m.shape[0]
        top, bottom = m[int(0.05 * h):max(int(0.3 * h), 1)], m[int(0.7 * h):max(int(0.95 * h), 1)]
        scores.append((_runs(top).mean() if len(top) else 0.0) - (_runs(bottom).mean() if len(bottom) else 0.0))
    order = np.argsort(scores)[::-1]
    return int(order[0]), float(scores[order[0]] - scores[order[1]])


def _thumb_side(upright) -> float:
    """(rows with a digit apart on the left of the palm - rows with one on the right) / height:
    > 0 when the thumb is at the image left. Palm rows: a run wider than 40 % of the hand (its longest run, the
    leftmost of equals)."""
    width = upright.shape[1]
    edges = np.diff(np.pad(np.asarray(upright, np.int8), ((0, 0), (1, 1))), axis=1)
    rows, starts = np.nonzero(edges == 1)  # every run, row by row, left to right
    if not len(rows):
        return 0.0
    lengths = np.nonzero(edges == -1)[1] - starts
    first_of_row = np.searchsorted(rows, rows, side="left")
    runs_in_row = np.searchsorted(rows, rows, side="right") - first_of_row
    order = np.lexsort((starts, -lengths, rows))  # each row's longest run first
    palm = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
    palm = palm[lengths[palm] >= 0.4 * width]
    position = palm - first_of_row[palm]  # runs left of the palm
    left, right = np.count_nonzero(position > 0), np.count_nonzero(position < runs_in_row[palm] - 1)
    return (left - right) / max(upright.shape[0], 1)
