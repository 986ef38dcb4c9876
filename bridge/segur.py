"""The Ségur automatic-feeding report: per document type and month, how many eligible documents
were received and how many reached the DMP, against the 90 % target."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.jobs import JobState

SEGUR_TARGET = 0.90


@dataclass(frozen=True)
class FedDocument:
    """One received document, as the report sees it."""

    received_at: dt.datetime
    type_code: str
    type_label: str
    auto_feed: bool
    state: JobState


@dataclass(frozen=True)
class ReportLine:
    """Eligible vs fed for one type in one month."""

    month: str  # YYYY-MM
    type_code: str
    type_label: str
    eligible: int
    fed: int

    @property
    def ratio(self) -> float:
        return self.fed / self.eligible if self.eligible else 0.0

    @property
    def meets_target(self) -> bool:
        return self.eligible > 0 and self.ratio >= SEGUR_TARGET


def segur_report(documents: Iterable[FedDocument]) -> list[ReportLine]:
    """Lines sorted by month then type; only documents the matrix marks `auto_feed` count."""
    counts: dict[tuple[str, str], list[int]] = {}
    labels: dict[str, str] = {}
    for doc in documents:
        if not doc.auto_feed:
            continue
        key = (doc.received_at.strftime("%Y-%m"), doc.type_code)
        labels[doc.type_code] = doc.type_label
        eligible_fed = counts.setdefault(key, [0, 0])
        eligible_fed[0] += 1
        if doc.state is JobState.DONE:
            eligible_fed[1] += 1
    return [ReportLine(month, code, labels[code], eligible, fed)
            for (month, code), (eligible, fed) in sorted(counts.items())]


def report_csv(lines: Iterable[ReportLine]) -> str:
    """The report as CSV (French headers, ';' separated as French spreadsheets expect)."""
    rows = ["mois;type;libellé;éligibles;alimentés;taux;objectif 90 % atteint"]
    for line in lines:
        label = line.type_label.replace(";", ",")
        rows.append(f"{line.month};{line.type_code};{label};{line.eligible};{line.fed};"
                    f"{line.ratio:.0%};{'oui' if line.meets_target else 'non'}")
    return "\n".join(rows) + "\n"
