"""What a crash run's log says must survive. Replaying the acknowledged operations of the log gives
the tree (every file's content and mode, every directory) the restarted mount must show; the one
operation in flight when the daemon died may have happened or not, so its paths have two allowed
states, before and after it.

A directory rename is not atomic (its objects move one by one), and converges to this documented
state when the daemon dies during it: every file below the directory is found under the old name,
under the new one, or under both (copied, not yet deleted), always with its acknowledged content
and mode; none is lost; either directory may exist, with its mode or the mount's default. The same
log gives every content ever written whole, so an object holding anything else (a half-written or
mixed upload) is caught."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.crash_workload import DIR_MODE, FILE_MODE

ABSENT = "<absent>"
ANY_DIR = "dir:*"  # a directory, whatever its mode (inside a directory rename cut short)
State = dict[str, str]  # path -> "file:<sha>:<mode>" or "dir:<mode>", modes in octal


def file_state(sha: str, mode: int) -> str:
    return f"file:{sha}:{mode:o}"


def dir_state(mode: int) -> str:
    return f"dir:{mode:o}"


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def apply(state: State, op: dict[str, Any]) -> None:
    """Changes `state` as the acknowledged operation `op` did."""
    kind = op["op"]
    if kind == "write":
        old = state.get(op["path"], "")
        mode = int(old.split(":")[2], 8) if old.startswith("file:") else FILE_MODE
        state[op["path"]] = file_state(op["sha"], mode)
    elif kind in ("append", "truncate"):
        mode = state[op["path"]].split(":")[2]
        state[op["path"]] = f"file:{op['sha']}:{mode}"
    elif kind in ("unlink", "rmdir"):
        del state[op["path"]]
    elif kind == "mkdir":
        state[op["path"]] = dir_state(DIR_MODE)
    elif kind == "chmod":
        old = state[op["path"]]
        is_dir = old.startswith("dir:")
        state[op["path"]] = dir_state(op["mode"]) if is_dir else file_state(old.split(":")[1], op["mode"])
    elif kind == "rename":
        state[op["dst"]] = state.pop(op["src"])
    elif kind == "rename_dir":
        src, dst = op["src"], op["dst"]
        for path in sorted(p for p in state if _under(p, src)):
            state[dst + path[len(src) :]] = state.pop(path)
    else:
        raise ValueError(f"unknown operation {kind!r}")


@dataclass
class CrashModel:
    acked: State = field(default_factory=dict)
    fsynced: dict[str, str] = field(default_factory=dict)  # file path -> sha known to be in S3
    written: set[str] = field(default_factory=set)  # every sha ever written whole
    pending: dict[str, Any] | None = None  # the operation begun but not acknowledged
    acked_ops: int = 0
    ops_by_kind: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # "done" / "error" lines

    @classmethod
    def from_log(cls, log_path: Path) -> CrashModel:
        model = cls()
        begun: dict[int, dict[str, Any]] = {}
        for line in log_path.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if "id" in record:
                begun[record["id"]] = record
                if "sha" in record:
                    model.written.add(record["sha"])
                model.pending = record
            elif "ack" in record:
                model._acknowledge(begun[record["ack"]])
                model.pending = None
            else:
                model.events.append(record)
        return model

    def _acknowledge(self, op: dict[str, Any]) -> None:
        self._forget_fsynced(op)
        apply(self.acked, op)
        if op["op"] == "write" and op["fsync"]:
            self.fsynced[op["path"]] = op["sha"]
        self.acked_ops += 1
        self.ops_by_kind[op["op"]] = self.ops_by_kind.get(op["op"], 0) + 1

    def _forget_fsynced(self, op: dict[str, Any]) -> None:
        """A change acknowledged once journaled (not once in S3) makes its paths' S3 state unknown."""
        if op["op"] == "chmod":
            return  # content unchanged
        for path in list(self.fsynced):
            if any(_under(path, p) for p in self.paths_of(op)):
                del self.fsynced[path]

    @staticmethod
    def paths_of(op: dict[str, Any]) -> list[str]:
        return [op["path"]] if "path" in op else [op["src"], op["dst"]]

    @property
    def ended_in_error(self) -> bool:
        return any("error" in e for e in self.events)

    # -- what is allowed after the crash ----------------------------------------------------------

    def allowed_states(self) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
        """Per path, the states (or ABSENT) that are correct after the crash; and the pairs of
        paths of which at least one must exist (a file inside a directory rename cut short)."""
        before = dict(self.acked)
        allowed = {path: {state} for path, state in before.items()}
        op = self.pending
        if op is None:
            return allowed, []
        if op["op"] == "rename_dir":
            return self._allowed_in_dir_rename(before, op)
        after = dict(before)
        apply(after, op)
        for path in set(before) | set(after):
            allowed[path] = {before.get(path, ABSENT), after.get(path, ABSENT)}
        if op["op"] == "rmdir":
            allowed[op["path"]] = {ABSENT, ANY_DIR}
        return allowed, []

    def _allowed_in_dir_rename(
        self, before: State, op: dict[str, Any]
    ) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
        src, dst = op["src"], op["dst"]
        allowed = {path: {state} for path, state in before.items() if not _under(path, src)}
        one_of = []
        for path, state in before.items():
            if not _under(path, src):
                continue
            target = dst + path[len(src) :]
            if state.startswith("dir:"):
                allowed[path] = {ABSENT, ANY_DIR}
                allowed[target] = {ABSENT, ANY_DIR}
            else:
                allowed[path] = {ABSENT, state}
                allowed[target] = {ABSENT, state}
                one_of.append((path, target))
        return allowed, one_of

    def touched_by_pending(self) -> list[str]:
        return [] if self.pending is None else self.paths_of(self.pending)

    def violations(
        self, found: State, server_ghost: Callable[[str], bool] | None = None, files_only: bool = False
    ) -> list[str]:
        """Compares `found` (path -> state) with what the log allows. `server_ghost(path)`: whether
        an unexpected empty directory is only the S3 server's memory of an emptied prefix.
        `files_only`: `found` holds files alone (S3 objects: "file:<sha>", content compared)."""
        problems = []
        allowed, one_of = self.allowed_states()
        if files_only:
            allowed = {
                path: {_content_only(s) for s in states if not s.startswith("dir:")} | ({ABSENT} if any(
                    s.startswith("dir:") for s in states) else set())
                for path, states in allowed.items()
            }
        for path, states in sorted(allowed.items()):
            got = found.get(path, ABSENT)
            if got not in states and not (got.startswith("dir:") and ANY_DIR in states):
                problems.append(f"{path}: found {_short(got)}, allowed {sorted(_short(s) for s in states)}")
        for path in sorted(set(found) - set(allowed)):
            if server_ghost is not None and found[path] == dir_state(DIR_MODE) and server_ghost(path):
                continue
            problems.append(f"{path}: {_short(found[path])} present but never acknowledged nor in flight")
        for old, new in one_of:
            if old not in found and new not in found:
                problems.append(f"{old}: lost by the directory rename cut short (neither it nor {new} exists)")
        return problems

    def half_written(self, found_shas: dict[str, str]) -> list[str]:
        """Objects whose content was never written whole by the workload (a partial upload)."""
        return [
            f"{path}: content {sha[:12]} was never written whole"
            for path, sha in sorted(found_shas.items())
            if sha not in self.written
        ]


def _content_only(state: str) -> str:
    return state if state == ABSENT else "file:" + state.split(":")[1]


def _short(state: str) -> str:
    if state.startswith("file:"):
        parts = state.split(":")
        return f"file:{parts[1][:10]}" + (f":{parts[2]}" if len(parts) > 2 else "")
    return state
