"""A hypothesis state machine drives a RazorFS mount and an in-memory model of files with the
same random operations (write, append, overwrite in the middle, truncate, rename, unlink, read);
every read and listing must match the model. Short here; RAZORFS_SOAK=1 runs it longer."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.integration.fs.conftest import MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

SOAK = os.environ.get("RAZORFS_SOAK") == "1"
NAMES = st.sampled_from(["a", "b", "c", "d"])
DATA = st.binary(max_size=3000)


def test_filesystem_behaves_like_an_in_memory_model(razorfs_mount: MountFactory) -> None:
    vol = razorfs_mount()

    class FilesMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.root: Path = vol.mountpoint / uuid.uuid4().hex[:8]
            self.root.mkdir()
            self.model: dict[str, bytes] = {}

        @rule(name=NAMES, data=DATA)
        def write_whole(self, name: str, data: bytes) -> None:
            (self.root / name).write_bytes(data)
            self.model[name] = data

        @rule(name=NAMES, data=DATA)
        def append(self, name: str, data: bytes) -> None:
            with open(self.root / name, "ab") as f:
                f.write(data)
            self.model[name] = self.model.get(name, b"") + data

        @rule(name=NAMES, data=DATA, offset=st.integers(0, 4000))
        def overwrite_at(self, name: str, data: bytes, offset: int) -> None:
            if name not in self.model:
                return
            with open(self.root / name, "r+b") as f:
                f.seek(offset)
                f.write(data)
            if not data:
                return  # a write of nothing does not extend a file
            old = self.model[name]
            padded = old + bytes(max(0, offset - len(old)))
            self.model[name] = padded[:offset] + data + padded[offset + len(data) :]

        @rule(name=NAMES, size=st.integers(0, 5000))
        def truncate(self, name: str, size: int) -> None:
            if name not in self.model:
                return
            os.truncate(self.root / name, size)
            old = self.model[name]
            self.model[name] = old[:size] + bytes(max(0, size - len(old)))

        @rule(src=NAMES, dst=NAMES)
        def rename(self, src: str, dst: str) -> None:
            if src not in self.model or src == dst:
                return
            os.rename(self.root / src, self.root / dst)
            self.model[dst] = self.model.pop(src)

        @rule(name=NAMES)
        def unlink(self, name: str) -> None:
            if name not in self.model:
                return
            os.unlink(self.root / name)
            del self.model[name]

        @rule()
        def flush(self) -> None:
            vol.flush(timeout=30)

        @invariant()
        def contents_match(self) -> None:
            assert sorted(os.listdir(self.root)) == sorted(self.model)
            for name, data in self.model.items():
                assert (self.root / name).read_bytes() == data, name

    run_state_machine_as_test(
        FilesMachine,
        settings=settings(
            max_examples=60 if SOAK else 6,
            stateful_step_count=40 if SOAK else 15,
            deadline=None,
            database=None,
            derandomize=True,
            # Each step is real FUSE and S3 work; shrinking would replay it many times.
            phases=[Phase.generate],
        ),
    )
