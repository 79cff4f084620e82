"""fsx through the mount: seeded random write/append/truncate/read/rename/unlink/fsync operations
checked against an in-memory model after every step, then the bucket checked against the model
after a flush. Short mode: 1,500 operations; `make soak`: 100,000 (bounded by RAZORFS_SOAK_SECONDS)."""

from __future__ import annotations

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


def run_fsx_and_compare_with_s3(
    mount_factory: MountFactory, s3_client: Any, bucket: str, operations: int, seed: int
) -> FsxRun:
    mount = mount_factory(prefix="vol")
    run = FsxRun(mount.mountpoint / "fsx", seed=seed)
    budget = soak.Budget()
    done = 0
    while done < operations and not budget.exhausted():
        run.run(min(1000, operations - done))
        done += min(1000, operations - done)
    run.check_all()
    mount.flush()
    in_s3 = objects_under(s3_client, bucket, "vol/fsx/")
    assert sorted(in_s3) == sorted(run.model), f"seed {seed}: keys in S3 differ from the model"
    for name, content in run.model.items():
        assert in_s3[name] == bytes(content), f"seed {seed}: S3 object {name} differs from the model"
    assert mount.alive(), mount.log_tail()
    return run


@pytest.mark.timeout(240)
def test_random_operations_match_the_model_and_s3(mount_factory: MountFactory, s3_client: Any, bucket: str) -> None:
    run = run_fsx_and_compare_with_s3(mount_factory, s3_client, bucket, 1500, soak.BASE_SEED)
    assert run.step == 1500


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
    run_fsx_and_compare_with_s3(mount_factory, s3_client, bucket, soak.pick(1500, 100_000), soak.BASE_SEED + 1)
