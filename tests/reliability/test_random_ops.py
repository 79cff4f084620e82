"""fsx through the mount: random operations on a small tree (files up to 512 KiB and a few large
ones up to 40 MiB, five multipart parts; nested directories, symlinks, chmod and utime; reads past
the page cache) checked against an in-memory model after every step, then the bucket checked
against the model after a flush. Short mode: 4 concurrent runs of 5,000 operations on one mount
(20,000), from a fresh seed (printed and in every failure; `RAZORFS_FSX_SEED=N` replays each run's
operations, not the interleaving of the four); `make soak`: 100,000 (bounded by
RAZORFS_SOAK_SECONDS). And two mounts of one prefix taking turns on one tree, close-to-open: what
one flushed, the other sees in full once the metadata TTL has passed."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.reliability import soak
from tests.reliability.conftest import MountFactory
from tests.reliability.fs_machine import MountStateMachine
from tests.reliability.fsx import FsxRun
from tests.reliability.s3_contents import objects_under

pytestmark = [pytest.mark.s3, pytest.mark.fuse]

FSX_WORKERS = 4  # concurrent runs on one mount, each in its own directory with its own seed
FSX_OPERATIONS = int(os.environ.get("RAZORFS_FSX_OPERATIONS", "5000"))  # per worker
REPLAYED_SEED = os.environ.get("RAZORFS_FSX_SEED")
# Listings and attributes cached 30 s: lookups revalidate now and then, not before every step.
FSX_METADATA_TTL = os.environ.get("RAZORFS_FSX_TTL", "30s")


def fresh_seed() -> int:
    return int(REPLAYED_SEED) if REPLAYED_SEED else random.SystemRandom().randrange(2**32)


def run_fsx_and_compare_with_s3(
    mount_factory: MountFactory, s3_client: Any, bucket: str, operations: int, seed: int, workers: int = 1
) -> list[FsxRun]:
    """`workers` concurrent runs (seeds seed, seed+1, ...) in fsx-0/, fsx-1/, ... of one mount: their
    closes share the daemon's sync rounds, as concurrent programs' do."""
    print(f"fsx: seed {seed}; replay with RAZORFS_FSX_SEED={seed}", flush=True)
    mount = mount_factory(prefix="vol", metadata_ttl=FSX_METADATA_TTL)
    runs = [FsxRun(mount.mountpoint / f"fsx-{i}", seed=seed + i) for i in range(workers)]
    budget = soak.Budget()
    failures: list[BaseException] = []

    def drive(run: FsxRun) -> None:
        try:
            while budget.keep_going(run.step, operations) and not failures:
                run.run(1000 if soak.TIMED else min(1000, operations - run.step))
            run.check_all()
        except BaseException as err:  # re-raised by the test's thread below
            failures.append(err)

    threads = [threading.Thread(target=drive, args=(run,), name=f"fsx-{i}") for i, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    mount.flush()
    for index, run in enumerate(runs):
        in_s3 = objects_under(s3_client, bucket, f"vol/fsx-{index}/")
        expected = run.expected_objects()
        assert sorted(in_s3) == sorted(expected), f"seed {run.seed}: keys in S3 differ from the model"
        for name, content in expected.items():
            assert in_s3[name] == content, f"seed {run.seed}: S3 object {name} differs from the model"
        soak.report(operations=run.step, bytes_in_s3=sum(len(c) for c in expected.values()))
        print(f"fsx: seed {run.seed}: {run.step} operations {dict(sorted(run.counts.items()))}", flush=True)
    assert mount.alive(), mount.log_tail()
    budget.report_time()
    return runs


@pytest.mark.timeout(600)
def test_twenty_thousand_random_operations_match_the_model_and_s3(
    mount_factory: MountFactory, s3_client: Any, bucket: str
) -> None:
    runs = run_fsx_and_compare_with_s3(mount_factory, s3_client, bucket, FSX_OPERATIONS, fresh_seed(), FSX_WORKERS)
    assert [run.step for run in runs] == [FSX_OPERATIONS] * FSX_WORKERS
    for run in runs:
        assert all(run.counts.get(kind, 0) > 0 for kind in ("write", "read", "symlink", "mkdir", "utime")), run.counts
    largest = max(len(content) for run in runs for content in run.model.values())
    assert largest > 16 * 1024 * 1024, f"no file crossed the multipart threshold (largest {largest} bytes)"


@pytest.mark.timeout(240)
def test_hypothesis_state_machine_on_the_mount_matches_its_model_and_s3(
    mount_factory: MountFactory, s3_client: Any, bucket: str
) -> None:
    mount = mount_factory(prefix="vol")
    (mount.mountpoint / "hyp").mkdir()
    finals: dict[str, dict[str, bytes]] = {}
    machine = type("Machine", (MountStateMachine,), {"base": mount.mountpoint / "hyp", "final_models": finals})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=soak.pick(12, 300),
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    mount.flush()
    in_s3 = objects_under(s3_client, bucket, "vol/hyp/")
    expected = {f"{d}/{name}": data for d, model in finals.items() for name, data in model.items()}
    assert sorted(in_s3) == sorted(expected)
    assert all(in_s3[key] == expected[key] for key in expected), "an S3 object differs from its example's model"


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_one_hundred_thousand_random_operations_match_the_model_and_s3(
    mount_factory: MountFactory, s3_client: Any, bucket: str
) -> None:
    run_fsx_and_compare_with_s3(mount_factory, s3_client, bucket, soak.pick(FSX_OPERATIONS, 100_000), fresh_seed())


TURNS = 8  # mount A, then B, then A ...: each turn starts by checking the whole tree there
TWO_MOUNT_TTL_S = 1.0


@pytest.mark.timeout(600)
def test_two_mounts_on_one_prefix_take_turns_and_each_sees_the_others_flushed_tree(
    mount_factory: MountFactory, s3_client: Any, bucket: str
) -> None:
    """Close-to-open across mounts: a turn of random operations on one mount ends with a flush (all
    in S3); after the metadata TTL the other mount must show the whole tree as the model has it:
    names, contents (read past the page cache), modes, mtimes and symlinks, though it has cached
    older versions of many of those files in its own earlier turns."""
    seed = fresh_seed()
    print(f"two mounts: seed {seed}; replay with RAZORFS_FSX_SEED={seed}", flush=True)
    mounts = [mount_factory(prefix="shared", metadata_ttl=f"{TWO_MOUNT_TTL_S}s") for _ in range(2)]
    run = FsxRun(mounts[0].mountpoint / "tree", seed=seed)
    turns = random.Random(seed)
    took: dict[str, float] = {"check": 0.0, "operations": 0.0, "flush": 0.0}
    for turn in range(TURNS):
        mount = mounts[turn % 2]
        run.root = mount.mountpoint / "tree"
        run.last_op = f"turn {turn} begins on mount {'AB'[turn % 2]}"
        started = time.monotonic()
        run.check_all()
        took["check"] += time.monotonic() - started
        started = time.monotonic()
        run.run(turns.randint(30, 100))
        run.check_all()
        took["operations"] += time.monotonic() - started
        started = time.monotonic()
        mount.flush()
        took["flush"] += time.monotonic() - started
        time.sleep(TWO_MOUNT_TTL_S * 1.5)
    run.root = mounts[TURNS % 2].mountpoint / "tree"
    run.check_all()
    in_s3 = objects_under(s3_client, bucket, "shared/tree/")
    assert in_s3 == run.expected_objects(), f"seed {seed}: S3 differs from the model"
    assert all(m.alive() for m in mounts), [m.log_tail() for m in mounts]
    print(f"two mounts: seed {seed}: {run.step} operations {dict(sorted(run.counts.items()))}; "
          f"seconds {({k: round(v, 1) for k, v in took.items()})}", flush=True)
