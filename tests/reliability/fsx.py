"""An fsx-style exerciser: a seeded sequence of write / append / truncate / read / rename / unlink
/ fsync operations on a few files under one directory of a mount, each checked against an
in-memory model of what every file must contain. Any difference raises `Mismatch` naming the step,
the operation and the first differing byte, so a failing seed can be replayed."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_BYTES = 512 * 1024
MAX_IO_BYTES = 64 * 1024
FULL_CHECK_EVERY = 200


class Mismatch(AssertionError):
    pass


@dataclass
class FsxRun:
    root: Path  # a directory on the mount, created empty
    seed: int
    file_count: int = 6
    model: dict[str, bytearray] = field(default_factory=dict, repr=False)
    step: int = 0
    last_op: str = ""
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.root.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        return [f"f{i}" for i in range(self.file_count)]

    def run(self, operations: int) -> None:
        for _ in range(operations):
            self.one_step()

    def one_step(self) -> None:
        self.step += 1
        existing = sorted(self.model)
        kinds = ["write", "write", "append", "read", "read", "truncate", "rename", "fsync_write"]
        if existing and self.rng.random() < 0.03:
            kinds = ["unlink"]
        kind = self.rng.choice(kinds)
        if kind in ("read", "truncate", "rename", "unlink", "append") and not existing:
            kind = "write"
        name = (
            self.rng.choice(existing)
            if kind in ("read", "rename", "unlink", "append", "truncate")
            else self.rng.choice(self.names())
        )
        getattr(self, f"_op_{kind}")(name)
        if self.step % FULL_CHECK_EVERY == 0:
            self.check_all()

    # -- operations (each updates the model, then checks the files it touched) -----------------

    def _data(self, length: int) -> bytes:
        return self.rng.randbytes(length)

    def _op_write(self, name: str, sync: bool = False) -> None:
        current = self.model.get(name, bytearray())
        offset = self.rng.randint(0, min(len(current) + MAX_IO_BYTES, MAX_FILE_BYTES - 1))
        data = self._data(self.rng.randint(1, min(MAX_IO_BYTES, MAX_FILE_BYTES - offset)))
        self.last_op = f"write {name} offset={offset} len={len(data)} sync={sync}"
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _write_all(fd, data, offset)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if offset > len(current):
            current.extend(bytes(offset - len(current)))
        current[offset : offset + len(data)] = data
        self.model[name] = current
        self.check_file(name)

    def _op_fsync_write(self, name: str) -> None:
        self._op_write(name, sync=self.rng.random() < 0.3)

    def _op_append(self, name: str) -> None:
        current = self.model[name]
        room = MAX_FILE_BYTES - len(current)
        if room <= 0:
            return self._op_truncate(name)
        data = self._data(self.rng.randint(1, min(MAX_IO_BYTES, room)))
        self.last_op = f"append {name} len={len(data)} at={len(current)}"
        fd = os.open(self.root / name, os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise Mismatch(f"step {self.step}: short append {written}/{len(data)}")
        finally:
            os.close(fd)
        current.extend(data)
        self.check_file(name)
        return None

    def _op_truncate(self, name: str) -> None:
        current = self.model[name]
        size = self.rng.randint(0, min(MAX_FILE_BYTES, len(current) + MAX_IO_BYTES))
        self.last_op = f"truncate {name} {len(current)}->{size}"
        os.truncate(self.root / name, size)
        if size < len(current):
            del current[size:]
        else:
            current.extend(bytes(size - len(current)))
        self.check_file(name)

    def _op_read(self, name: str) -> None:
        current = self.model[name]
        offset = self.rng.randint(0, len(current) + 10)
        length = self.rng.randint(1, MAX_IO_BYTES)
        self.last_op = f"read {name} offset={offset} len={length}"
        fd = os.open(self.root / name, os.O_RDONLY)
        try:
            got = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        want = bytes(current[offset : offset + length])
        if got != want:
            raise Mismatch(f"step {self.step} ({self.last_op}, seed {self.seed}): {_first_difference(got, want)}")

    def _op_rename(self, name: str) -> None:
        target = self.rng.choice(self.names())
        self.last_op = f"rename {name} -> {target}"
        os.rename(self.root / name, self.root / target)
        if target != name:
            self.model[target] = self.model.pop(name)
        self.check_file(target)
        if target != name and (self.root / name).exists():
            raise Mismatch(f"step {self.step} ({self.last_op}): {name} still exists after the rename")

    def _op_unlink(self, name: str) -> None:
        self.last_op = f"unlink {name}"
        os.unlink(self.root / name)
        del self.model[name]
        if (self.root / name).exists():
            raise Mismatch(f"step {self.step} ({self.last_op}): {name} still exists")

    # -- checks ---------------------------------------------------------------------------------

    def check_file(self, name: str) -> None:
        want = bytes(self.model[name])
        size = os.stat(self.root / name).st_size
        got = (self.root / name).read_bytes()
        if size != len(want) or got != want:
            raise Mismatch(
                f"step {self.step} ({self.last_op}, seed {self.seed}): {name} st_size={size} "
                f"model={len(want)}; {_first_difference(got, want)}"
            )

    def check_all(self) -> None:
        listed = sorted(os.listdir(self.root))
        if listed != sorted(self.model):
            raise Mismatch(f"step {self.step} (seed {self.seed}): listing {listed} != model {sorted(self.model)}")
        for name in self.model:
            self.check_file(name)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


def _first_difference(got: bytes, want: bytes) -> str:
    if got == want:
        return "equal"
    for index, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"first difference at byte {index} (got {a:#04x}, want {b:#04x}); lengths {len(got)}/{len(want)}"
    return f"one is a prefix of the other; lengths got={len(got)} want={len(want)}"
