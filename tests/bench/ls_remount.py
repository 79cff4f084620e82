"""`python -m tests.bench.ls_remount`: `ls -l` of a folder of many objects another tool wrote,
cold (fresh mount, empty cache dir), warm (right after, same mount) and after a remount on the
same cache dir, with the S3 requests each one sent (HEADs and listings, from the daemon's own
Prometheus counters: a counting proxy in between would add its own CPU to the times).
`--tree A --tree B` compares two checkouts (the daemon is imported from `<tree>/nodeplugin`),
alternating A B A B; one SeaweedFS on loopback, in a temporary directory, serves them all."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.bench.pagecache import drop_page_cache
from tests.bench.s3objects import put_many
from tests.realparts.fusemount import force_unmount, is_mounted
from tests.realparts.processes import free_port
from tests.realparts.s3server import S3Server, start_seaweedfs

BUCKET = "ls-remount"
FOLDER = "listing"
PHASES = ("cold", "warm", "remount")
_REQUESTS_RE = re.compile(r'^razorfs_s3_request_duration_seconds_count\{.*operation="(\w+)".*\} (\S+)$', re.M)


def _ls_long(folder: Path, expected: int) -> float:
    started = time.monotonic()
    out = subprocess.run(["ls", "-l", "--color=never", str(folder)], capture_output=True, check=True)
    elapsed = time.monotonic() - started
    shown = len(out.stdout.splitlines()) - 1  # the "total" line
    if shown != expected:
        raise AssertionError(f"`ls -l` showed {shown} entries, expected {expected}")
    return elapsed


class Mount:
    def __init__(self, tree: Path, server: S3Server, workdir: Path) -> None:
        self.env = {
            **os.environ,
            **server.env(),
            "PYTHONPATH": str(tree / "nodeplugin"),
            "RAZORFS_RUN_DIR": str(workdir / "run"),
        }
        self.server = server
        self.metrics_port = free_port()
        self.mountpoint = workdir / "mnt"
        self.mountpoint.mkdir(parents=True, exist_ok=True)

    def _cli(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "razorfs.mount", *argv], env=self.env, capture_output=True)

    def start(self, cache_dir: Path) -> subprocess.Popen[bytes]:
        args = ["mount", f"s3://{BUCKET}", str(self.mountpoint), "--endpoint-url", self.server.endpoint_url,
                "--region", self.server.region, "--force-path-style", "--cache-dir", str(cache_dir),
                "--metrics-port", str(self.metrics_port), "--foreground"]  # fmt: skip
        log = open(cache_dir.parent / f"{cache_dir.name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen([sys.executable, "-m", "razorfs.mount", *args], env=self.env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while not (is_mounted(self.mountpoint) and self._cli("stats", str(self.mountpoint)).returncode == 0):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (cache_dir.parent / f"{cache_dir.name}.log").read_text(errors="replace")
                raise AssertionError(f"mount did not come up: {log_text[-3000:]}")
            time.sleep(0.1)
        return proc

    def requests(self) -> dict[str, int]:
        """S3 requests the daemon sent so far, by store operation (`head`, `list_pages`, ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return {op: int(float(n)) for op, n in _REQUESTS_RE.findall(text)}

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        self._cli("umount", str(self.mountpoint))
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            force_unmount(self.mountpoint)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process used so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Result = tuple[float, float, int, int]  # wall seconds, daemon CPU seconds, HEADs, LISTs


def measure_tree(mount: Mount, cache_dir: Path, objects: int) -> dict[str, Result]:
    """phase -> Result of one cold / warm / remount sequence."""
    results: dict[str, Result] = {}
    folder = mount.mountpoint / FOLDER

    def timed(phase: str, pid: int) -> None:
        before, cpu = mount.requests(), _cpu_s(pid)
        seconds = _ls_long(folder, objects)
        cpu, after = _cpu_s(pid) - cpu, mount.requests()
        sent = {op: n - before.get(op, 0) for op, n in after.items()}
        results[phase] = (seconds, cpu, sent.get("head", 0), sent.get("list_pages", 0))

    cache_dir.mkdir(parents=True)
    proc = mount.start(cache_dir)
    try:
        drop_page_cache()
        timed("cold", proc.pid)
        timed("warm", proc.pid)
    finally:
        mount.stop(proc)
    proc = mount.start(cache_dir)
    try:
        drop_page_cache()
        timed("remount", proc.pid)
    finally:
        mount.stop(proc)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, required=True, help="a checkout (repeatable)")
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ls-remount-") as tmp:
        work = Path(tmp)
        server = start_seaweedfs(work / "s3")
        try:
            s3 = server.client()  # type: ignore[no-untyped-call]
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key=f"{FOLDER}/", Body=b"")
            put_many(s3, BUCKET, [f"{FOLDER}/obj{i:06d}" for i in range(args.objects)], b"x" * 100)
            time.sleep(2.5)  # older than a second: see cache/saved_heads.py
            rows: dict[Path, list[dict[str, Result]]] = {t: [] for t in args.tree}
            for run in range(args.runs):
                # A B, then B A: a machine getting busier during a run favours neither.
                order = list(enumerate(args.tree))
                for index, tree in order if run % 2 == 0 else reversed(order):
                    mount = Mount(tree, server, work / f"t{index}")
                    result = measure_tree(mount, work / f"t{index}" / f"cache-r{run}", args.objects)
                    rows[tree].append(result)
                    print(f"run {run} {tree}: " + ", ".join(
                        f"{p} {s:.3f}s (cpu {c:.2f}s) {h} HEAD {g} LIST" for p, (s, c, h, g) in result.items()),
                        flush=True)  # fmt: skip
            for tree, results in rows.items():
                for phase in PHASES:
                    times = [r[phase][0] for r in results]
                    cpus = [r[phase][1] for r in results]
                    heads = [r[phase][2] for r in results]
                    print(f"{tree} {phase}: median {statistics.median(times):.3f}s "
                          f"(min {min(times):.3f}, max {max(times):.3f}), daemon cpu median "
                          f"{statistics.median(cpus):.2f}s, HEADs {heads}")  # fmt: skip
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
