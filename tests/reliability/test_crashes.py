"""kill -9 of the mount daemon at seeded random points of a workload (at any moment, during the
multipart upload of a large file, during a rename), then `razorfs mount` again on the same cache
dir; every fourth run is killed once more while the journal replay uploads. Against the
workload's log of what was acknowledged: nothing acknowledged is lost or corrupt (through the
mount and in S3), fsync'd content is in S3 even before the restart, and no object ever holds
content that was not written whole under its name. Short mode: 4 runs; soak: 50, every fifth
through the fault proxy at 5% faults."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.realparts.faultproxy import FaultProxy
from tests.reliability import soak
from tests.reliability.conftest import MountFactory
from tests.reliability.crash_model import CrashModel
from tests.reliability.s3_contents import objects_under
from tests.reliability.workload import digest

pytestmark = [pytest.mark.s3, pytest.mark.fuse]

KILL_MOMENTS = ("random", "multipart", "rename")
REPO = Path(__file__).resolve().parents[2]


def wait_for_log_event(log_path: Path, wanted: str, stop: threading.Event) -> bool:
    """Waits until the workload log shows the moment `wanted` ("multipart": a large file's close was
    acknowledged, so its upload is starting; "rename": a rename has begun)."""
    while not stop.is_set():
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        records = [json.loads(line) for line in lines if line.strip()]
        begun = {r["id"]: r for r in records if "id" in r}
        for record in records:
            if wanted == "rename" and record.get("op") == "rename":
                return True  # the rename of the large, fsync'd file has begun
            if wanted == "multipart" and "ack" in record and begun[record["ack"]].get("path") == "large.bin":
                return True  # the large file's close returned: its multipart upload runs now
        if any("done" in r or "error" in r for r in records):
            return False
        time.sleep(0.005)
    return False


def found_through_mount(root: Path) -> dict[str, str]:
    return {p.name: digest(p.read_bytes()) for p in sorted(root.iterdir()) if p.is_file()}


def crash_run(
    mount_factory: MountFactory,
    s3_client: Any,
    bucket: str,
    run_index: int,
    tmp: Path,
    endpoint_url: str | None = None,
) -> CrashModel:
    seed = soak.BASE_SEED * 100 + run_index
    rng = random.Random(seed)
    moment = KILL_MOMENTS[run_index % len(KILL_MOMENTS)]
    prefix = f"run{run_index:03d}"
    mount = mount_factory(prefix=prefix, endpoint_url=endpoint_url)
    log_path = tmp / f"crash-{run_index:03d}.jsonl"
    workload = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.crash_workload",
            str(mount.mountpoint / "w"),
            str(log_path),
            "--seed",
            str(seed),
            "--ops",
            str(soak.pick(30, 60)),
            "--opening",
            moment,
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stop = threading.Event()
    try:
        if moment == "random":
            time.sleep(rng.uniform(0.3, 4.0))
        elif wait_for_log_event(log_path, moment, stop):
            time.sleep(rng.uniform(0.0, 0.8 if moment == "multipart" else 0.03))
        mount.kill9()
        _, stderr = workload.communicate(timeout=60)
        assert workload.returncode == 0, stderr.decode(errors="replace")
    finally:
        stop.set()
        if workload.poll() is None:
            workload.kill()
            workload.wait()

    model = CrashModel.from_log(log_path)
    context = f"run {run_index} (seed {seed}, kill {moment}, pending {model.pending}, end {model.events})"
    in_s3 = {k: digest(v) for k, v in objects_under(s3_client, bucket, f"{prefix}/w/").items()}
    assert model.half_written(in_s3) == [], f"{context}: half-written objects right after the crash"
    untouched_fsynced = {n: s for n, s in model.fsynced.items() if n not in model.touched_by_pending()}
    missing_fsynced = {n for n, sha in untouched_fsynced.items() if in_s3.get(n) != sha}
    assert missing_fsynced == set(), f"{context}: fsync'd files not in S3 at the crash"

    mount.start()  # same cache dir: replays the journal
    if run_index % 4 == 3:  # and a second crash while the replayed uploads run
        time.sleep(rng.uniform(0.0, 0.5))
        mount.kill9()
        mount.start()
    through_mount = found_through_mount(mount.mountpoint / "w") if (mount.mountpoint / "w").exists() else {}
    assert model.violations(through_mount) == [], f"{context}: through the restarted mount"
    mount.flush(timeout_s=300)
    in_s3 = {k: digest(v) for k, v in objects_under(s3_client, bucket, f"{prefix}/w/").items()}
    assert model.half_written(in_s3) == [], f"{context}: half-written objects after the restart"
    assert model.violations(in_s3) == [], f"{context}: in S3 after the restart and a flush"
    mount.umount()
    mount.cleanup()
    return model


@pytest.mark.timeout(300)
def test_kill_9_at_random_points_loses_no_acknowledged_write(
    mount_factory: MountFactory, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    acknowledged = 0
    for run_index in range(4):
        acknowledged += len(crash_run(mount_factory, s3_client, bucket, run_index, tmp_path).acked)
    assert acknowledged > 0, "no write was ever acknowledged before a kill: the runs proved nothing"


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_fifty_kill_9_runs_lose_no_acknowledged_write(
    mount_factory: MountFactory, s3_client: Any, bucket: str, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    budget = soak.Budget()
    fault_proxy.set_chaos(0.05, seed=soak.BASE_SEED)
    for run_index in range(soak.pick(4, 50)):
        if budget.exhausted():
            break
        # Every fifth run goes through the fault proxy: crash and replay while S3 also misbehaves.
        endpoint = fault_proxy.endpoint_url if run_index % 5 == 4 else None
        crash_run(mount_factory, s3_client, bucket, run_index, tmp_path, endpoint)


@pytest.mark.timeout(120)
def test_restart_right_after_a_kill_9_replaces_the_dead_mount(mount_factory: MountFactory) -> None:
    mount = mount_factory()
    (mount.mountpoint / "w").mkdir()
    (mount.mountpoint / "w" / "kept.txt").write_bytes(b"acknowledged\n")
    os.stat(mount.mountpoint)  # the kernel now holds fresh attributes of the root
    mount.kill9()
    mount.start()  # at once, as the CSI plugin's supervisor would
    assert (mount.mountpoint / "w" / "kept.txt").read_bytes() == b"acknowledged\n"
