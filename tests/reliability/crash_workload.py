"""The workload the crash tests kill the mount daemon under, run as its own process:

    python -m tests.reliability.crash_workload ROOT LOG --seed N [--ops N] [--large-at N]

A seeded random mix of the operations a program does to a tree: mkdir, rmdir, whole-file writes
(some fsync'd, some above the multipart threshold), appends, truncate(2), unlink, chmod, renames of
files (across directories, replacing a file or not) and of directories. Each operation is recorded
in LOG before it starts (a JSON line with what it will make true) and acknowledged once its last
system call returned (`{"ack": id}`), LOG flushed after every line, so the test knows exactly what
was acknowledged when the daemon died and which one operation was in flight (each line carries
its start on the system-wide monotonic clock). It stops at the first
error (the daemon is gone) and exits 0 either way."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from tests.reliability.workload import KiB, MiB, digest, write_file

LARGE_BYTES = 24 * MiB  # above the 16 MiB multipart threshold: three 8 MiB parts
FILE_MODE = 0o644  # what write_file creates with, under UMASK
DIR_MODE = 0o755
UMASK = 0o022
FILE_MODES = (0o600, 0o640, 0o644, 0o664, 0o755)
DIR_MODES = (0o700, 0o750, 0o755, 0o775)
MAX_DEPTH = 3
# Relative weights of the operations; writes dominate so there is content to rename and delete.
OP_WEIGHTS = {
    "write": 30,
    "append": 10,
    "truncate": 6,
    "unlink": 6,
    "chmod": 6,
    "mkdir": 10,
    "rmdir": 4,
    "rename": 12,
    "rename_dir": 5,
}


def choose_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.02:
        return LARGE_BYTES + rng.randint(0, MiB)
    if roll < 0.55:
        return rng.randint(0, 8 * KiB)
    return rng.randint(8 * KiB, 768 * KiB)


class Recorder:
    def __init__(self, log: IO[str]) -> None:
        self.log = log
        self.next_id = 0

    def begin(self, **record: Any) -> int:
        self.next_id += 1
        # CLOCK_MONOTONIC is one clock for every process: the test compares it with its kill time.
        self.write({"id": self.next_id, "t": time.monotonic(), **record})
        return self.next_id

    def ack(self, op_id: int) -> None:
        self.write({"ack": op_id})

    def write(self, record: dict[str, Any]) -> None:
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()


class TreeWorkload:
    """The tree as this process made it (file contents, directories) and the next operation."""

    def __init__(self, root: Path, recorder: Recorder, seed: int, large_at: int | None) -> None:
        self.root = root
        self.rec = recorder
        self.seed = seed
        self.rng = random.Random(seed)
        self.large_at = large_at
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {""}
        self.step = 0

    # -- choosing -------------------------------------------------------------------------------

    def _fresh_name(self, prefix: str) -> str:
        parent = self.rng.choice(sorted(d for d in self.dirs if d.count("/") < MAX_DEPTH))
        name = f"{prefix}{self.step:04d}"
        return f"{parent}/{name}" if parent else name

    def _empty_dirs(self) -> list[str]:
        used = {p.rsplit("/", 1)[0] for p in [*self.files, *self.dirs] if "/" in p}
        return sorted(d for d in self.dirs if d and d not in used)

    def _data(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def one_step(self) -> None:
        self.step += 1
        if self.large_at is not None and self.step == self.large_at:
            return self.op_write(LARGE_BYTES + self.rng.randint(0, MiB), fsync=False)
        kinds = list(OP_WEIGHTS)
        kind = self.rng.choices(kinds, weights=[OP_WEIGHTS[k] for k in kinds])[0]
        if kind in ("append", "truncate", "unlink", "chmod", "rename") and not self.files:
            kind = "write"
        if kind == "rmdir" and not self._empty_dirs():
            kind = "mkdir"
        if kind == "rename_dir" and len(self.dirs) < 2:
            kind = "mkdir"
        return getattr(self, f"op_{kind}")()

    # -- operations: record, do, acknowledge -------------------------------------------------

    def op_write(self, size: int | None = None, fsync: bool | None = None) -> None:
        overwrite = self.files and self.rng.random() < 0.25
        path = self.rng.choice(sorted(self.files)) if overwrite else self._fresh_name("f")
        data = self._data(choose_size(self.rng) if size is None else size)
        fsync = self.rng.random() < 0.25 if fsync is None else fsync
        op_id = self.rec.begin(op="write", path=path, sha=digest(data), size=len(data), fsync=fsync)
        write_file(self.root / path, data, fsync=fsync)
        self.rec.ack(op_id)
        self.files[path] = data

    def op_append(self) -> None:
        path = self.rng.choice(sorted(self.files))
        extra = self._data(self.rng.randint(1, 64 * KiB))
        after = self.files[path] + extra
        op_id = self.rec.begin(op="append", path=path, sha=digest(after), size=len(after))
        fd = os.open(self.root / path, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(extra)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self.rec.ack(op_id)
        self.files[path] = after

    def op_truncate(self) -> None:
        path = self.rng.choice(sorted(self.files))
        current = self.files[path]
        size = self.rng.randint(0, len(current) + 32 * KiB)
        after = current[:size] + bytes(max(0, size - len(current)))
        op_id = self.rec.begin(op="truncate", path=path, sha=digest(after), size=size)
        os.truncate(self.root / path, size)
        self.rec.ack(op_id)
        self.files[path] = after

    def op_unlink(self) -> None:
        path = self.rng.choice(sorted(self.files))
        op_id = self.rec.begin(op="unlink", path=path)
        os.unlink(self.root / path)
        self.rec.ack(op_id)
        del self.files[path]

    def op_chmod(self) -> None:
        dirs = sorted(d for d in self.dirs if d)
        if dirs and self.rng.random() < 0.3:
            path, mode = self.rng.choice(dirs), self.rng.choice(DIR_MODES)
        else:
            path, mode = self.rng.choice(sorted(self.files)), self.rng.choice(FILE_MODES)
        op_id = self.rec.begin(op="chmod", path=path, mode=mode)
        os.chmod(self.root / path, mode)
        self.rec.ack(op_id)

    def op_mkdir(self) -> None:
        path = self._fresh_name("d")
        op_id = self.rec.begin(op="mkdir", path=path)
        os.mkdir(self.root / path, DIR_MODE)
        self.rec.ack(op_id)
        self.dirs.add(path)

    def op_rmdir(self) -> None:
        path = self.rng.choice(self._empty_dirs())
        op_id = self.rec.begin(op="rmdir", path=path)
        os.rmdir(self.root / path)
        self.rec.ack(op_id)
        self.dirs.discard(path)

    def op_rename(self) -> None:
        src = self.rng.choice(sorted(self.files))
        others = sorted(set(self.files) - {src})
        dst = self.rng.choice(others) if others and self.rng.random() < 0.3 else self._fresh_name("r")
        op_id = self.rec.begin(op="rename", src=src, dst=dst)
        os.rename(self.root / src, self.root / dst)
        self.rec.ack(op_id)
        self.files[dst] = self.files.pop(src)

    def op_rename_dir(self) -> None:
        src = self.rng.choice(sorted(d for d in self.dirs if d))
        parents = sorted(d for d in self.dirs if d != src and not d.startswith(src + "/") and d.count("/") < 2)
        parent = self.rng.choice(parents)
        dst = f"{parent}/m{self.step:04d}" if parent else f"m{self.step:04d}"
        op_id = self.rec.begin(op="rename_dir", src=src, dst=dst)
        os.rename(self.root / src, self.root / dst)
        self.rec.ack(op_id)
        moved = lambda p: dst + p[len(src) :] if p == src or p.startswith(src + "/") else p  # noqa: E731
        self.files = {moved(p): data for p, data in self.files.items()}
        self.dirs = {moved(d) for d in self.dirs}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--ops", type=int, default=2000, help="upper bound; the kill normally ends the run")
    parser.add_argument("--large-at", type=int, help="the step that writes a file above the multipart threshold")
    args = parser.parse_args(argv)
    os.umask(UMASK)
    with open(args.log, "a") as log:
        recorder = Recorder(log)
        workload = TreeWorkload(args.root, recorder, args.seed, args.large_at)
        try:
            args.root.mkdir(parents=True, exist_ok=True)
            for _ in range(args.ops):
                workload.one_step()
            recorder.write({"done": True})
        except OSError as err:  # the daemon died under us: the expected end of a crash run
            # The first failure of the operation: a close() in a `finally` after a failed fsync()
            # raises its own error (ENOTCONN, the connection is gone) over the fsync's.
            first = err
            while isinstance(first.__context__, OSError):
                first = first.__context__
            recorder.write({"error": f"{type(first).__name__}: {first.strerror}", "errno": first.errno})
    return 0


if __name__ == "__main__":
    sys.exit(main())
