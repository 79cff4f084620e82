"""kill -9 of the mount daemon under a tree workload (crash_workload: mkdir, rmdir, writes with and
without fsync, a file above the multipart threshold, appends, truncate, unlink, chmod, renames of
files and directories), then `razorfs mount` again on the same cache dir; about one run in four is
killed once more while the journal replay uploads. Each run draws a fresh seed (printed and in
every failure message; `RAZORFS_CRASH_SEED=N` replays it: the same operations and kill point) and
kills at one of four moments: after a random number of acknowledged operations, after a random
time, during the multipart upload of a large file, during a directory rename. Every run asserts
that the kill landed while an operation was in flight (the daemon is stopped, then killed, while
the workload waits for its answer, and that operation failed), then checks the restarted mount and the
bucket against the model of the acknowledged operations (crash_model). Short mode: 20 runs;
`make soak`: 50, every fifth through the fault proxy at 5% faults."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from razorfs.fs.dir_marker import FOLDER_SUFFIX
from tests.realparts.faultproxy import FaultProxy
from tests.reliability import soak
from tests.reliability.conftest import MountFactory
from tests.reliability.crash_model import CrashModel, State, dir_state, file_state
from tests.reliability.crash_workload import LARGE_BYTES
from tests.reliability.mount_process import MountProcess
from tests.reliability.s3_contents import objects_under
from tests.reliability.workload import digest

pytestmark = [pytest.mark.s3, pytest.mark.fuse]

KILL_MOMENTS = ("count", "time", "multipart", "dir_rename")
CRASH_RUNS = 20
REPO = Path(__file__).resolve().parents[2]
LOG_POLL_S = 0.005
REPLAYED_SEED = os.environ.get("RAZORFS_CRASH_SEED")


@dataclass(frozen=True)
class KillPlan:
    """Where a run kills, all drawn from its seed."""

    seed: int
    moment: str
    after_acks: int  # "count": this many acknowledged operations
    after_s: float  # "time": seconds after the first operation began
    large_at: int | None  # the step writing a file above the multipart threshold
    delay_s: float  # "count"/"multipart"/"dir_rename": after the event, before the kill
    kill_during_replay: bool
    replay_delay_s: float

    @classmethod
    def draw(cls, seed: int, moment: str) -> KillPlan:
        rng = random.Random(seed)
        return cls(
            seed=seed,
            moment=moment,
            after_acks=rng.randint(3, 45),
            after_s=rng.uniform(0.2, 2.5),
            large_at=rng.randint(2, 12) if moment == "multipart" or rng.random() < 0.3 else None,
            delay_s=rng.uniform(0.0, 0.8) if moment == "multipart" else rng.uniform(0.0, 0.02),
            kill_during_replay=rng.random() < 0.25,
            replay_delay_s=rng.uniform(0.0, 0.5),
        )


def fresh_seed() -> int:
    return int(REPLAYED_SEED) if REPLAYED_SEED else random.SystemRandom().randrange(2**32)


def read_log(log_path: Path) -> list[dict[str, Any]]:
    try:
        text = log_path.read_text()
    except FileNotFoundError:
        return []
    # The last line may be half written while the workload runs.
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def wait_for_kill_point(log_path: Path, plan: KillPlan, workload: subprocess.Popen[bytes]) -> str:
    """Polls the workload's log until the plan's moment; returns what was waited for."""
    started: float | None = None
    while workload.poll() is None:
        records = read_log(log_path)
        begun = {r["id"]: r for r in records if "id" in r}
        acks = [begun[r["ack"]] for r in records if "ack" in r]
        if started is None and begun:
            started = time.monotonic()
        if plan.moment == "count" and len(acks) >= plan.after_acks:
            return f"{len(acks)} acknowledged operations"
        if plan.moment == "time" and started is not None and time.monotonic() - started >= plan.after_s:
            return f"{plan.after_s:.2f} s after the first operation"
        if plan.moment == "multipart" and any(op.get("size", 0) >= LARGE_BYTES for op in acks if op["op"] == "write"):
            return "the close() of a file above the multipart threshold returned"
        if plan.moment == "dir_rename" and any(op["op"] == "rename_dir" for op in begun.values()):
            return "a directory rename began"
        time.sleep(LOG_POLL_S)
    return "the workload ended before the kill point"


def freeze_daemon_with_a_request_in_flight(mount: MountProcess, workload_pid: int, timeout_s: float = 30.0) -> bool:
    """Stops the daemon (SIGSTOP, every thread) at a moment the workload sleeps in a system call
    waiting for its answer (the kernel's `request_wait_answer`), so the kill that follows lands
    inside an operation, not between two (a large file's bytes are generated between operations):
    a stopped daemon answers nothing more. False if that moment never came."""
    pid = mount.pid()
    deadline = time.monotonic() + timeout_s
    while pid is not None and time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        while not all_threads_stopped(pid):
            time.sleep(0.0005)
        try:
            if Path(f"/proc/{workload_pid}/wchan").read_text() == "request_wait_answer":
                return True
        except OSError:
            return False  # the workload ended
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.001)
    return False


def all_threads_stopped(pid: int) -> bool:
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if (task / "stat").read_text().split(") ")[-1][:1] not in "TtZX":
                return False
        except OSError:
            continue
    return True


def tree_through_mount(root: Path) -> State:
    """Every directory and file below `root`: its mode, and a file's content digest."""
    found: State = {}
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = Path(dirpath, name)
            found[str(path.relative_to(root))] = dir_state(stat.S_IMODE(path.stat().st_mode))
        for name in filenames:
            path = Path(dirpath, name)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = file_state(sha, stat.S_IMODE(path.stat().st_mode))
    return found


def server_ghost_dirs(s3_client: Any, bucket: str, prefix: str) -> Callable[[str], bool]:
    """Whether a directory the mount lists is only SeaweedFS's memory of an emptied directory (a
    common prefix with no object at or below it, nor a companion; docs/architecture.md lists the
    quirk): the mount shows it as an empty directory with the default mode, as any S3 client would."""
    keys = [
        obj["Key"][len(prefix) :]
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    return lambda path: not any(k == path + FOLDER_SUFFIX or k.startswith(path + "/") for k in keys)


def shas_in_s3(s3_client: Any, bucket: str, prefix: str) -> dict[str, str]:
    return {key: digest(body) for key, body in objects_under(s3_client, bucket, prefix).items()}


def crash_run(
    mount_factory: MountFactory,
    s3_client: Any,
    bucket: str,
    run_index: int,
    tmp: Path,
    moment: str,
    endpoint_url: str | None = None,
) -> CrashModel:
    plan = KillPlan.draw(fresh_seed(), moment)
    replay = f"RAZORFS_CRASH_SEED={plan.seed} (kill {moment})"
    print(f"crash run {run_index}: seed {plan.seed}; replay with {replay}", flush=True)
    prefix = f"run{run_index:03d}"
    mount = mount_factory(prefix=prefix, endpoint_url=endpoint_url)
    log_path = tmp / f"crash-{run_index:03d}.jsonl"
    command = [sys.executable, "-m", "tests.reliability.crash_workload", str(mount.mountpoint / "w"), str(log_path)]
    command += ["--seed", str(plan.seed)] + (["--large-at", str(plan.large_at)] if plan.large_at else [])
    workload = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        waited_for = wait_for_kill_point(log_path, plan, workload)
        time.sleep(plan.delay_s if moment != "time" else 0.0)
        waiting = freeze_daemon_with_a_request_in_flight(mount, workload.pid)
        mount.kill9()
        _, stderr = workload.communicate(timeout=60)
        assert workload.returncode == 0, stderr.decode(errors="replace")
    finally:
        if workload.poll() is None:
            workload.kill()
            workload.wait()

    model = CrashModel.from_log(log_path)
    context = f"run {run_index} ({replay}; killed after {waited_for}; in flight {model.pending}; end {model.events})"
    # The daemon was stopped, then killed, while the workload waited for its answer: the request
    # belonged to the last operation begun, which therefore failed (its errno, ECONNABORTED or
    # ENOTCONN, depends on which request of the system call met the dead connection).
    in_flight = waiting and model.pending is not None and model.ended_in_error
    assert in_flight, f"{context}: the kill did not land while an operation was in flight"
    check_bucket_right_after_the_crash(model, s3_client, bucket, prefix, context)

    mount.start()  # same cache dir: replays the journal
    if plan.kill_during_replay:
        time.sleep(plan.replay_delay_s)
        mount.kill9()
        mount.start()
    ghosts = server_ghost_dirs(s3_client, bucket, f"{prefix}/w/")
    problems = model.violations(tree_through_mount(mount.mountpoint / "w"), ghosts)
    assert problems == [], f"{context}: through the restarted mount: {problems}"
    check_bucket_after_flush(mount, model, s3_client, bucket, prefix, context)
    mount.umount()
    mount.cleanup()
    return model


def check_bucket_right_after_the_crash(
    model: CrashModel, s3_client: Any, bucket: str, prefix: str, context: str
) -> None:
    in_s3 = shas_in_s3(s3_client, bucket, f"{prefix}/w/")
    assert model.half_written(in_s3) == [], f"{context}: half-written objects right after the crash"
    touched = model.touched_by_pending()
    untouched = {
        path: sha
        for path, sha in model.fsynced.items()
        if not any(path == t or path.startswith(t + "/") for t in touched)
    }
    missing = sorted(path for path, sha in untouched.items() if in_s3.get(path) != sha)
    assert missing == [], f"{context}: fsync'd files not in S3 at the crash: {missing}"


def check_bucket_after_flush(
    mount: MountProcess, model: CrashModel, s3_client: Any, bucket: str, prefix: str, context: str
) -> None:
    mount.flush(timeout_s=300)
    in_s3 = shas_in_s3(s3_client, bucket, f"{prefix}/w/")
    assert model.half_written(in_s3) == [], f"{context}: half-written objects after the restart"
    as_states = {path: f"file:{sha}" for path, sha in in_s3.items()}
    problems = model.violations(as_states, files_only=True)
    assert problems == [], f"{context}: in S3 after the restart and a flush: {problems}"


# Part of `make test` (about 2.5 min for the 20 runs). They were `-m slow` while they found open
# bugs, all fixed since, each with a deterministic test: a crash inside the rename of a dirty file
# that has an older upload left the older content under the new name (FileCache.move journals the
# rename first; test_rename_crash); a daemon killed as it started (as the kill during the replay
# may be) did not end, held by its own stat of the mountpoint (the daemon never touches its
# mountpoint; test_daemon_lifecycle); an overwrite (O_TRUNC, or truncate and writes) of a file
# whose acknowledged version was not yet uploaded, killed before its close(), replayed the old
# row's size and ranges over the new bytes (the acknowledged content is preserved before the first
# change, docs/architecture.md "Changes to an acknowledged file before its upload";
# test_overwrite_crash, test_overwrite_before_upload; it was RAZORFS_CRASH_SEED=2122977980 or
# 2059232886 with the kill "multipart").
@pytest.mark.timeout(150)
@pytest.mark.parametrize("run_index", range(CRASH_RUNS), ids=lambda i: f"run{i:02d}-{KILL_MOMENTS[i % 4]}")
def test_kill_9_at_a_random_point_loses_no_acknowledged_operation(
    mount_factory: MountFactory, s3_client: Any, bucket: str, tmp_path: Path, run_index: int
) -> None:
    model = crash_run(mount_factory, s3_client, bucket, run_index, tmp_path, KILL_MOMENTS[run_index % 4])
    assert model.acked_ops > 0 or KILL_MOMENTS[run_index % 4] == "time", "nothing was acknowledged before the kill"


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_fifty_kill_9_runs_lose_no_acknowledged_operation(
    mount_factory: MountFactory, s3_client: Any, bucket: str, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    budget = soak.Budget()
    fault_proxy.set_chaos(0.05, seed=soak.BASE_SEED)
    done = 0
    while budget.keep_going(done, soak.pick(4, 50)):
        # Every fifth run goes through the fault proxy: crash and replay while S3 also misbehaves.
        endpoint = fault_proxy.endpoint_url if done % 5 == 4 else None
        model = crash_run(mount_factory, s3_client, bucket, done, tmp_path, KILL_MOMENTS[done % 4], endpoint)
        soak.report(crashes=1, operations=model.acked_ops)
        done += 1
    budget.report_time()


@pytest.mark.timeout(120)
def test_restart_right_after_a_kill_9_replaces_the_dead_mount(mount_factory: MountFactory) -> None:
    mount = mount_factory()
    (mount.mountpoint / "w").mkdir()
    (mount.mountpoint / "w" / "kept.txt").write_bytes(b"acknowledged\n")
    os.stat(mount.mountpoint)  # the kernel now holds fresh attributes of the root
    mount.kill9()
    mount.start()  # at once, as the CSI plugin's supervisor would
    assert (mount.mountpoint / "w" / "kept.txt").read_bytes() == b"acknowledged\n"
