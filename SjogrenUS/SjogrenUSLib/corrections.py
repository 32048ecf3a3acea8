"""Which of the panel's correction controls are real corrections (Qt-free, so pytest covers it)."""

from __future__ import annotations


def pending_corrections(cells: dict, imaged_sites, grades: dict, echogenicity: str | None):
    """The grades and echogenicity the user changed, for sites that were imaged.

    ``cells`` is ``SjogrenUSLogic.results(table)``; ``grades`` the panel's grade per gland.
    A gland that was never imaged keeps an empty row: its spin box (always some number) is not a
    grade the user gave, so it is ignored. Returns ``({site: grade}, echogenicity or None)``.
    """
    imaged = set(imaged_sites)
    changed = {site: int(grade) for site, grade in grades.items()
               if site in imaged and str(int(grade)) != cells[site]["grade"]}
    measured_echo = cells["mucosa"]["echogenicity"]
    echo = echogenicity if "mucosa" in imaged and measured_echo and echogenicity != measured_echo else None
    return changed, echo
