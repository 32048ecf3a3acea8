"""Participant flow (STARD 2015 item 19 style): who was given, who was left out and why, who each analysis used.

Both ``analyze`` commands screen a scores table the same way (contract in the project's OWNERS notes):

* ``qc`` column (optional): rows whose value is not ``ok`` are left out; ``;``-separated reasons are counted
  one by one (a row with two reasons counts under both). An empty cell counts as "qc not recorded".
* ``in_training`` column (optional, ``yes``/``no``/empty for unknown): patients whose score came from a network that saw them
  (yes) are not analysed together with new patients (no) unless ``include_training`` is set. When both are
  present, only the new patients are analysed and the training patients are counted as left out.
* Neither column: every row is analysed, as before.
"""

from __future__ import annotations

import html
from collections import Counter

import pandas as pd

from ..errors import InputError

QC_OK = "ok"
IN_TRAINING = ("yes", "no", "")  # empty: unknown (the bundle records no training list)


def qc_text(reasons) -> str:
    """The ``qc`` cell of a score row: ``ok`` or the reasons joined by ``;`` (what :func:`screen` splits)."""
    return ";".join(reasons) if reasons else QC_OK


def screen(rows: pd.DataFrame, path, include_training: bool = False) -> tuple[pd.DataFrame, dict]:
    """Apply the qc and in_training rules; returns the kept rows and the flow so far (given, excluded, qc reasons)."""
    ids = rows["patient_id"]
    flow = {"unit": "patients", "given": {"patients": int(ids.nunique()), "rows": int(len(rows))}, "excluded": []}
    keep = pd.Series(True, index=rows.index)
    if "qc" in rows.columns:
        qc = rows["qc"].astype(str).str.strip()
        flagged = qc.str.lower() != QC_OK
        reasons = Counter()
        for cell in qc[flagged]:
            parts = [r.strip() for r in cell.split(";") if r.strip()]
            reasons.update(parts or ["qc not recorded"])
        flow["qc_flagged"] = {"rows": int(flagged.sum()), "reasons": dict(reasons.most_common())}
        _exclude(flow, "QC-flagged (qc is not 'ok')", rows, keep, flagged)
        keep &= ~flagged
    if "in_training" in rows.columns:
        value = rows["in_training"].fillna("").astype(str).str.strip().str.lower()
        bad = ~value.isin(IN_TRAINING)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(path, f"column 'in_training', row {i + 1}: {rows['in_training'].iloc[i]!r} is not yes, "
                                   "no or empty (unknown)")
        present = set(value[keep])
        training = value == "yes"
        if "yes" in present and len(present) > 1 and not include_training:
            _exclude(flow, "in the network's training set (in_training = yes; --include-training analyses them too)",
                     rows, keep, training)
            keep &= ~training
            analysed = ("new patients only (in_training = no); training patients left out" if "" not in present else
                        "patients not known to be in the training set (in_training = no or unknown); training patients "
                        "left out")
        elif "yes" in present and len(present) > 1:
            analysed = "training and new patients together (--include-training): scores of training patients are optimistic"
        elif present == {"yes"}:
            analysed = ("training patients only (in_training = yes): optimistic unless these are out-of-fold scores "
                        "(oof_scores.csv from 'rheumtexture train')")
        elif present == {"no"}:
            analysed = "new patients only (in_training = no)"
        else:
            analysed = "training status unknown for some patients (a bundle that records no training list)"
        flow["in_training"] = {"analysed": analysed, "rows_yes": int(training.sum()), "rows_no": int((value == "no").sum()),
                               "rows_unknown": int((value == "").sum())}
    return rows[keep].copy(), flow


def _exclude(flow: dict, reason: str, rows, keep, mask) -> None:
    """Record ``mask`` rows (among those still kept) and the patients left with no row at all."""
    dropped = keep & mask
    if not dropped.any():
        return
    before = set(rows.loc[keep, "patient_id"])
    after = set(rows.loc[keep & ~mask, "patient_id"])
    flow["excluded"].append({"reason": reason, "rows": int(dropped.sum()), "patients": len(before - after)})


def add_analysed(flow: dict, analysed: dict) -> dict:
    """``analysed``: {analysis name: {"patients": n, "cases": n, "controls": n}} appended to the flow."""
    flow["analysed"] = analysed
    return flow


def counts(labels) -> dict:
    labels = pd.Series(labels)
    return {"patients": int(len(labels)), "cases": int((labels == 1).sum()), "controls": int((labels == 0).sum())}


def html_table(flow: dict) -> str:
    """The flow as an HTML table for report.html."""
    def row(label, value, indent=False):
        pad = "&nbsp;&nbsp;&nbsp;&nbsp;" if indent else ""
        return f"<tr><th>{pad}{html.escape(str(label))}</th><td>{html.escape(str(value))}</td></tr>"

    given = flow["given"]
    parts = ["<h2>Participant flow (STARD)</h2><table>",
             row("patients given", f"{given['patients']} ({given['rows']} rows)")]
    for step in flow["excluded"]:
        parts.append(row(f"left out: {step['reason']}", f"{step['patients']} patients ({step['rows']} rows)"))
    for reason, n in flow.get("qc_flagged", {}).get("reasons", {}).items():
        parts.append(row(f"QC reason: {reason}", f"{n} rows", indent=True))
    for name, n in flow.get("measurement", {}).items():
        parts.append(row(name.replace("_", " "), n if not isinstance(n, dict)
                         else ", ".join(f"{k}: {v}" for k, v in n.items())))
    if "in_training" in flow:
        parts.append(row("training status", flow["in_training"]["analysed"]))
    for name, c in flow.get("analysed", {}).items():
        parts.append(row(f"analysed: {name}", f"{c['patients']} patients ({c['cases']} cases, {c['controls']} controls)"))
    parts.append("</table>")
    return "\n".join(parts)
