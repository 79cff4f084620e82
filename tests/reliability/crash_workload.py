"""The workload the crash tests kill the mount daemon under, run as its own process:

    python -m tests.reliability.crash_workload ROOT LOG --seed N --ops N [--opening multipart|rename]

It writes (some with fsync), overwrites and renames files under ROOT (on the mount) and records
each operation in LOG (a JSON line before it starts, `{"ack": id}` once close()/fsync()/rename()
returned), flushing LOG after every line, so the test knows exactly what was acknowledged when the
daemon died. It stops at the first error (the daemon is gone) and exits 0 either way."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from tests.reliability.workload import KiB, MiB, content_for, digest, write_file

LARGE_BYTES = 24 * MiB  # above the 16 MiB multipart threshold: three 8 MiB parts


def choose_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.08:
        return LARGE_BYTES + rng.randint(0, MiB)
    if roll < 0.5:
        return rng.randint(0, 8 * KiB)
    return rng.randint(8 * KiB, 1536 * KiB)


class Recorder:
    def __init__(self, log: IO[str]) -> None:
        self.log = log
        self.next_id = 0

    def begin(self, **record: Any) -> int:
        self.next_id += 1
        self._write({"id": self.next_id, **record})
        return self.next_id

    def ack(self, op_id: int) -> None:
        self._write({"ack": op_id})

    def _write(self, record: dict[str, Any]) -> None:
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()


def open_with(root: Path, recorder: Recorder, seed: int, opening: str, acked: dict[str, int]) -> None:
    """Puts the kill's target moment first: a large file whose close starts a multipart upload, or
    a large file already in S3 (fsync'd) renamed, which is a server-side copy plus a delete."""
    if opening == "random":
        return
    data = content_for(seed, "large", LARGE_BYTES)
    fsync = opening == "rename"
    op_id = recorder.begin(op="write", path="large.bin", sha=digest(data), size=len(data), fsync=fsync)
    write_file(root / "large.bin", data, fsync=fsync)
    recorder.ack(op_id)
    if opening == "rename":
        op_id = recorder.begin(op="rename", src="large.bin", dst="large-renamed.bin", size=len(data))
        os.rename(root / "large.bin", root / "large-renamed.bin")
        recorder.ack(op_id)
        acked["large-renamed.bin"] = len(data)
    else:
        acked["large.bin"] = len(data)


def run(root: Path, recorder: Recorder, seed: int, ops: int, opening: str = "random") -> None:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    acked: dict[str, int] = {}  # path -> size, for choosing rename sources
    open_with(root, recorder, seed, opening, acked)
    for step in range(ops):
        kind = "rename" if acked and rng.random() < 0.25 else "write"
        if kind == "write":
            path = rng.choice(sorted(acked)) if acked and rng.random() < 0.2 else f"f-{step:04d}.bin"
            size = choose_size(rng)
            data = content_for(seed, f"{path}#{step}", size)
            fsync = rng.random() < 0.3
            op_id = recorder.begin(op="write", path=path, sha=digest(data), size=size, fsync=fsync)
            write_file(root / path, data, fsync=fsync)
            recorder.ack(op_id)
            acked[path] = size
        else:
            src = rng.choice(sorted(acked))
            dst = f"r-{step:04d}.bin" if rng.random() < 0.7 else rng.choice(sorted(acked))
            if dst == src:
                continue
            op_id = recorder.begin(op="rename", src=src, dst=dst, size=acked[src])
            os.rename(root / src, root / dst)
            recorder.ack(op_id)
            acked[dst] = acked.pop(src)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--ops", type=int, default=40)
    parser.add_argument("--opening", choices=["random", "multipart", "rename"], default="random")
    args = parser.parse_args(argv)
    with open(args.log, "a") as log:
        recorder = Recorder(log)
        try:
            run(args.root, recorder, args.seed, args.ops, args.opening)
            recorder._write({"done": True})
        except OSError as err:  # the daemon died under us: the expected end of a crash run
            recorder._write({"error": f"{type(err).__name__}: {err.strerror}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
