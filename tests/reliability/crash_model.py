"""What a crash run's log says must survive. Replaying the log gives, per file name, the content
(sha256) acknowledged last; the one operation in flight when the daemon died leaves its names with
two allowed states (before or after). From the same log: every content ever intended for a name,
so an object holding anything else (a half-written upload) is caught."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ABSENT = "<absent>"


@dataclass
class CrashModel:
    acked: dict[str, str] = field(default_factory=dict)  # name -> sha of the last acknowledged content
    fsynced: dict[str, str] = field(default_factory=dict)  # names whose acknowledged content was fsync'd
    intended: dict[str, set[str]] = field(default_factory=dict)  # every sha a name may ever hold
    pending: dict[str, Any] | None = None  # the operation begun but not acknowledged
    events: list[str] = field(default_factory=list)

    @classmethod
    def from_log(cls, log_path: Path) -> CrashModel:
        model = cls()
        records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
        begun: dict[int, dict[str, Any]] = {}
        for record in records:
            if "id" in record:
                begun[record["id"]] = record
                model._intend(record)
                model.pending = record
            elif "ack" in record:
                model._apply(begun[record["ack"]])
                model.pending = None
            else:
                model.events.append(json.dumps(record))
        return model

    def _intend(self, op: dict[str, Any]) -> None:
        if op["op"] == "write":
            self.intended.setdefault(op["path"], set()).add(op["sha"])
        else:
            self.intended.setdefault(op["dst"], set()).update(self.intended.get(op["src"], set()))

    def _apply(self, op: dict[str, Any]) -> None:
        if op["op"] == "write":
            self.acked[op["path"]] = op["sha"]
            if op["fsync"]:
                self.fsynced[op["path"]] = op["sha"]
            else:
                self.fsynced.pop(op["path"], None)
        else:
            self.acked[op["dst"]] = self.acked.pop(op["src"])
            # A rename is acknowledged once journaled, not once in S3: neither name is known to be in S3.
            self.fsynced.pop(op["src"], None)
            self.fsynced.pop(op["dst"], None)

    def allowed_states(self) -> dict[str, set[str]]:
        """Per name, the contents (sha or ABSENT) that are correct after the crash."""
        allowed = {name: {sha} for name, sha in self.acked.items()}
        op = self.pending
        if op is None:
            return allowed
        if op["op"] == "write":
            before = self.acked.get(op["path"], ABSENT)
            allowed[op["path"]] = {before, op["sha"]}
        else:
            src_sha = self.acked[op["src"]]
            allowed[op["src"]] = {src_sha, ABSENT}
            allowed[op["dst"]] = {self.acked.get(op["dst"], ABSENT), src_sha}
        return allowed

    def touched_by_pending(self) -> set[str]:
        if self.pending is None:
            return set()
        return {self.pending["path"]} if self.pending["op"] == "write" else {self.pending["src"], self.pending["dst"]}

    def violations(self, found: dict[str, str]) -> list[str]:
        """Compares `found` (name -> sha of what is there) with what the log allows."""
        problems = []
        allowed = self.allowed_states()
        for name, states in sorted(allowed.items()):
            got = found.get(name, ABSENT)
            if got not in states:
                problems.append(f"{name}: found {got[:12]}, allowed {sorted(s[:12] for s in states)}")
        for name in sorted(set(found) - set(allowed)):
            problems.append(f"{name}: present but never acknowledged nor in flight")
        return problems

    def half_written(self, found: dict[str, str]) -> list[str]:
        """Objects whose content was never intended for their name (a partial or mixed upload)."""
        return [
            f"{name}: content {sha[:12]} was never written under this name"
            for name, sha in sorted(found.items())
            if sha not in self.intended.get(name, set())
        ]
