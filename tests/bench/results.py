"""The results of one suite run: every figure of every run, failures, and where it ran.

Figures are stored per run index so that ratios can pair the runs that were taken back to back;
a run that failed keeps NaN in its slot and an entry in `errors`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunError:
    workload: str
    system: str
    run: int
    error: str


@dataclass
class ResultSet:
    sizes: str
    runs: int
    systems: list[str]
    labels: dict[str, str]
    machine: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: list[RunError] = field(default_factory=list)
    # Free-form figures that explain a metric (e.g. RazorFS's own byte counters).
    notes: dict[str, Any] = field(default_factory=dict)

    def record(self, metric: str, system: str, run: int, value: float) -> None:
        slots = self.values.setdefault(metric, {}).setdefault(system, [math.nan] * self.runs)
        slots[run] = float(value)

    def series(self, metric: str, system: str) -> list[float]:
        return self.values.get(metric, {}).get(system, [])

    def fail(self, workload: str, system: str, run: int, error: str) -> None:
        self.errors.append(RunError(workload, system, run, error))

    def to_json(self) -> str:
        def clean(values: list[float]) -> list[float | None]:
            return [None if math.isnan(v) else v for v in values]

        return json.dumps(
            {
                "sizes": self.sizes,
                "runs": self.runs,
                "systems": self.systems,
                "labels": self.labels,
                "machine": self.machine,
                "values": {m: {s: clean(v) for s, v in by.items()} for m, by in self.values.items()},
                "errors": [e.__dict__ for e in self.errors],
                "notes": self.notes,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> ResultSet:
        raw = json.loads(text)
        result = cls(raw["sizes"], raw["runs"], raw["systems"], raw["labels"], raw.get("machine", {}))
        result.values = {
            m: {s: [math.nan if v is None else float(v) for v in vals] for s, vals in by.items()}
            for m, by in raw["values"].items()
        }
        result.errors = [RunError(**e) for e in raw.get("errors", [])]
        result.notes = raw.get("notes", {})
        return result

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())
