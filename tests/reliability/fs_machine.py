"""A hypothesis state machine for the mount: write / append / truncate / rename / unlink rules on
three names in a fresh directory per example, with the whole directory compared against an
in-memory model after every step. Each example's final model is kept so the test can check S3."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

NAMES = st.sampled_from(["a", "b", "c"])
_example_numbers = itertools.count()


class MountStateMachine(RuleBasedStateMachine):
    base: Path  # set by the test before running: a directory on the mount
    final_models: dict[str, dict[str, bytes]]  # example dir name -> model at the end of the example

    def __init__(self) -> None:
        super().__init__()
        self.dir_name = f"ex-{next(_example_numbers):04d}"
        self.root = self.base / self.dir_name
        self.root.mkdir()
        self.model: dict[str, bytearray] = {}
        self.final_models[self.dir_name] = {}

    def _record(self) -> None:
        self.final_models[self.dir_name] = {name: bytes(data) for name, data in self.model.items()}

    @rule(name=NAMES, offset=st.integers(0, 70_000), data=st.binary(min_size=1, max_size=6_000))
    def write(self, name: str, offset: int, data: bytes) -> None:
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            assert os.pwrite(fd, data, offset) == len(data)
        finally:
            os.close(fd)
        current = self.model.setdefault(name, bytearray())
        if offset > len(current):
            current.extend(bytes(offset - len(current)))
        current[offset : offset + len(data)] = data
        self._record()

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 2), data=st.binary(min_size=1, max_size=6_000))
    def append(self, pick: int, data: bytes) -> None:
        name = sorted(self.model)[pick % len(self.model)]
        with open(self.root / name, "ab") as handle:
            handle.write(data)
        self.model[name].extend(data)
        self._record()

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 2), size=st.integers(0, 90_000))
    def truncate(self, pick: int, size: int) -> None:
        name = sorted(self.model)[pick % len(self.model)]
        os.truncate(self.root / name, size)
        current = self.model[name]
        if size < len(current):
            del current[size:]
        else:
            current.extend(bytes(size - len(current)))
        self._record()

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 2), new_name=NAMES)
    def rename(self, pick: int, new_name: str) -> None:
        name = sorted(self.model)[pick % len(self.model)]
        os.rename(self.root / name, self.root / new_name)
        if new_name != name:
            self.model[new_name] = self.model.pop(name)
        self._record()

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 2))
    def unlink(self, pick: int) -> None:
        name = sorted(self.model)[pick % len(self.model)]
        os.unlink(self.root / name)
        del self.model[name]
        self._record()

    @invariant()
    def directory_matches_the_model(self) -> None:
        assert sorted(os.listdir(self.root)) == sorted(self.model)
        for name, data in self.model.items():
            assert os.stat(self.root / name).st_size == len(data), name
            assert (self.root / name).read_bytes() == bytes(data), name
