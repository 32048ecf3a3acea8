"""What both modules share about typed results: the model kept on its table and the warning a panel shows.

Each tool keeps its results as one typed model (``RheumTextureLib.results``, ``SjogrenUSLib.results``),
stored in the scene as JSON on the results table; the table and the CSV rows are views rendered from it.
"""

from __future__ import annotations

import json


#: Table attribute holding the typed results model (JSON), so corrections survive save and reload; outside the
#: provenance prefix ``RheumImaging.`` (scene.PROVENANCE_PREFIX), so provenance never carries the results.
MODEL_ATTRIBUTE = "RheumImagingResults"


def qc_warning(qc_cells) -> str | None:
    """The panel's warning when any result's ``qc`` is not ok (None when all are), naming each reason once."""
    reasons = []
    for cell in qc_cells:
        for reason in (cell or "ok").split(";"):
            if reason and reason != "ok" and reason not in reasons:
                reasons.append(reason)
    return None if not reasons else "Check before use: " + "; ".join(reasons)


def store_model(table, model: dict) -> None:
    """Keep the typed model on the table node (saved with the scene)."""
    table.SetAttribute(MODEL_ATTRIBUTE, json.dumps(model))


def stored_model(table) -> dict | None:
    text = table.GetAttribute(MODEL_ATTRIBUTE) if table is not None else None
    return json.loads(text) if text else None


def render_table(table, columns, rows) -> None:
    """Write ``rows`` (lists of cell values, first = row name) into ``table`` with ``columns``; the table is a
    view: its cells are replaced as a whole, never read back for computing."""
    if table.GetNumberOfColumns() != len(columns) or [table.GetColumnName(j) for j in range(len(columns))] != list(
            columns):
        table.RemoveAllColumns()
        for name in columns:
            table.AddColumn().SetName(name)
    while table.GetNumberOfRows() > len(rows):
        table.RemoveRow(table.GetNumberOfRows() - 1)
    while table.GetNumberOfRows() < len(rows):
        table.AddEmptyRow()
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            table.SetCellText(i, j, "" if value is None else str(value))
    table.Modified()
