"""Writing an analysis: report.json (numbers), ROC PNGs (matplotlib Agg) and a readable report.html."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..errors import InputError  # noqa: E402


def check_writable(out_dir, names, overwrite: bool) -> Path:
    """Refuse (InputError) if any of ``names`` exists in ``out_dir`` and overwrite is False.

    Called before any work so a refusal costs nothing; the folder itself is created only when writing.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise InputError(out, f"already holds {', '.join(existing)}; use --overwrite to replace")
    return out


def _unit_square(path, title: str, xlabel: str, ylabel: str, legend: str, draw, diagonal: str | None = None) -> None:
    """One 5x5 in PNG on [0, 1] x [0, 1] with the dashed diagonal; ``draw(ax)`` adds the data."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    draw(ax)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label=diagonal)
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc=legend)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_roc(path, curves, title: str) -> None:
    """``curves``: list of (label, fpr, tpr). Writes one PNG with the chance diagonal."""
    def draw(ax):
        for label, fpr, tpr in curves:
            ax.step(fpr, tpr, where="post", label=label)

    _unit_square(path, title, "1 - specificity", "sensitivity", "lower right", draw)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return html.escape(str(v))


def _rows(d: dict, prefix="") -> list[str]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += _rows(v, key + " / ")
        else:
            rows.append(f"<tr><th>{html.escape(key)}</th><td>{_fmt(v)}</td></tr>")
    return rows


def write_report(out: Path, report: dict, title: str, images=(), summary_lines=()) -> None:
    """Write report.json and report.html (summary sentences, the images, then every number in a table)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}th{text-align:left;padding-right:1em}"
             "td,th{border-bottom:1px solid #ddd;vertical-align:top}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", "<ul>"]
    parts += [f"<li>{html.escape(s)}</li>" for s in summary_lines]
    parts.append("</ul>")
    if "flow" in report:
        from .flow import html_table

        parts.append(html_table(report["flow"]))
    parts += [f"<img src='{html.escape(name)}' alt='{html.escape(name)}'>" for name in images]
    parts += ["<h2>All numbers (report.json)</h2><table>", *_rows(report), "</table></body></html>"]
    (out / "report.html").write_text("\n".join(parts) + "\n")


def plot_bland_altman(path, pairs, title: str) -> None:
    """``pairs``: list of (label, first, second). Difference (second - first) against the mean, with the bias
    and 95% limits of agreement as lines; one panel per pair of readers."""
    from .agreement import bland_altman

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.5), dpi=100, squeeze=False)
    for ax, (label, first, second) in zip(axes[0], pairs):
        ba = bland_altman(first, second)
        mean = (np.asarray(first, float) + np.asarray(second, float)) / 2
        ax.scatter(mean, np.asarray(second, float) - np.asarray(first, float), s=12)
        ax.axhline(ba["bias"], color="k", lw=1, label=f"bias {ba['bias']:.3g}")
        for limit in ba["loa"]:
            ax.axhline(limit, color="k", ls="--", lw=0.8)
        ax.set_xlabel("mean of the two readings")
        ax.set_ylabel(f"difference ({label})")
        ax.legend(loc="best", title=f"95% LoA {ba['loa'][0]:.3g} to {ba['loa'][1]:.3g}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_calibration(path, groups: list[dict], title: str) -> None:
    """Grouped calibration plot: observed proportion (Wilson 95% CI) against mean predicted risk, with the diagonal."""
    err = [[max(0.0, g["observed"] - g["observed_ci95"][0]) for g in groups],  # Wilson bounds can miss 0/1 by rounding
           [max(0.0, g["observed_ci95"][1] - g["observed"]) for g in groups]]

    def draw(ax):
        ax.errorbar([g["mean_predicted"] for g in groups], [g["observed"] for g in groups], yerr=err, fmt="o",
                    capsize=3, label="groups of patients (Wilson 95% CI)")

    _unit_square(path, title, "mean predicted (score)", "observed proportion of cases", "upper left", draw,
                 diagonal="perfect calibration")
