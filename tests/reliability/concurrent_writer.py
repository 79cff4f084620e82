"""One of several processes sharing a mount in the concurrency test, run as

    python -m tests.reliability.concurrent_writer ROOT MARKERS --writer I --writers N --files K --seed S

It writes ROOT/wI/file-J (contents from `content_for`), and after each close() drops a marker
MARKERS/wI-J outside the mount; between its own writes it reads every other writer's files whose
markers exist (closed files) and checks their contents. Exit 0 when all files of all writers were
read back intact, 1 (reasons on stderr) otherwise."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.reliability.workload import KiB, content_for, write_file

DEADLINE_S = 150.0


def file_name(writer: int, index: int) -> str:
    return f"w{writer}/file-{index:03d}"


def size_of(seed: int, writer: int, index: int) -> int:
    return random.Random(f"{seed}:{writer}:{index}").choice([0, 100, 4 * KiB, 64 * KiB, 700 * KiB, 3 * 1024 * KiB])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("markers", type=Path)
    parser.add_argument("--writer", type=int, required=True)
    parser.add_argument("--writers", type=int, required=True)
    parser.add_argument("--files", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    me = args.writer
    (args.root / f"w{me}").mkdir(exist_ok=True)
    others = [(w, i) for w in range(args.writers) if w != me for i in range(args.files)]
    verified: set[tuple[int, int]] = set()
    failures: list[str] = []
    deadline = time.monotonic() + DEADLINE_S

    def read_closed_files_of_others() -> None:
        for w, i in others:
            if (w, i) in verified or not (args.markers / f"w{w}-{i}").exists():
                continue
            name = file_name(w, i)
            got = (args.root / name).read_bytes()
            if got != content_for(args.seed, name, size_of(args.seed, w, i)):
                failures.append(f"writer {me}: {name} differs from what writer {w} closed ({len(got)} bytes)")
            verified.add((w, i))

    for index in range(args.files):
        name = file_name(me, index)
        write_file(args.root / name, content_for(args.seed, name, size_of(args.seed, me, index)))
        (args.markers / f"w{me}-{index}").touch()
        read_closed_files_of_others()
    while len(verified) < len(others) and time.monotonic() < deadline:
        read_closed_files_of_others()
        time.sleep(0.05)
    if len(verified) < len(others):
        failures.append(f"writer {me}: only {len(verified)}/{len(others)} files of others were closed in time")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
