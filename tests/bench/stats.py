"""Summaries of repeated measurements: median and min-max, and paired ratios between systems.

Ratios are computed per run (RazorFS run i against the peer's run i, taken back to back) and then
summarised, so slow drift of the shared machine cancels out instead of landing on one system.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


def summarize(values: Sequence[float]) -> Summary | None:
    finite = [v for v in values if v == v]  # NaN marks a failed run; it must not skew the median
    if not finite:
        return None
    return Summary(statistics.median(finite), min(finite), max(finite), len(finite))


def paired_ratios(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """ours[i] / theirs[i] for every run where both systems produced a usable figure."""
    ratios: list[float] = []
    for a, b in zip(ours, theirs, strict=False):
        if a == a and b == b and b != 0:
            ratios.append(a / b)
    return ratios


def ratio_summary(ours: Sequence[float], theirs: Sequence[float]) -> Summary | None:
    return summarize(paired_ratios(ours, theirs))
