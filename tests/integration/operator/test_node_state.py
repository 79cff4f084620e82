"""Per-node state and warmup through the NodeAdmin gRPC API. The node side is played by a test peer
implementing razorfs.v1.NodeAdmin from the same generated stubs (the real `razorfs-node` serves the
same proto); node plugin pods are real Pod objects whose status carries the peer's loopback IP."""

from __future__ import annotations

import base64
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from razorfs_wire.razorfs.v1 import node_admin_pb2, node_admin_pb2_grpc
from tests.realparts.processes import free_port

from .conftest import (
    GROUP,
    PLURAL,
    VERSION,
    OperatorProcess,
    ProtectionStandIn,
    delete_razorvolumes,
    eventually,
    razorvolume,
    start_operator,
)

pytestmark = [pytest.mark.kube, pytest.mark.s3]
TOKEN = "node-admin-token-for-tests"


@dataclass
class NodePeer(node_admin_pb2_grpc.NodeAdminServicer):  # type: ignore[misc]
    node_id: str
    staged: dict[str, tuple[int, int]] = field(default_factory=dict)  # volume_id -> (cached, dirty)
    warm_requests: list[tuple[str, list[str]]] = field(default_factory=list)
    tokens_seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Per warmed path: how long it takes and how many bytes it is; a warm-up of a path in
    # `failing_paths` ends with UNAVAILABLE after the paths before it.
    warm_path_s: float = 0.0
    warm_path_bytes: int = 0
    failing_paths: set[str] = field(default_factory=set)
    credentials_updates: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def _authorize(self, context: Any) -> None:
        header = dict(context.invocation_metadata()).get("authorization", "")
        with self.lock:
            self.tokens_seen.append(header)
        if header != f"Bearer {TOKEN}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")

    def ListVolumes(self, request: Any, context: Any) -> Any:
        self._authorize(context)
        with self.lock:
            volumes = [
                node_admin_pb2.VolumeState(volume_id=vid, state="Mounted", cached_bytes=cached, dirty_bytes=dirty)
                for vid, (cached, dirty) in self.staged.items()
            ]
        return node_admin_pb2.ListVolumesResponse(node_id=self.node_id, volumes=volumes)

    def UpdateCredentials(self, request: Any, context: Any) -> Any:
        self._authorize(context)
        with self.lock:
            self.credentials_updates.append((request.volume_id, dict(request.secrets)))
        return node_admin_pb2.UpdateCredentialsResponse(daemons_updated=1)

    def WarmVolume(self, request: Any, context: Any) -> Iterator[Any]:
        self._authorize(context)
        with self.lock:
            self.warm_requests.append((request.volume_id, list(request.paths)))
        total = len(request.paths)
        for done, path in enumerate(request.paths, start=1):
            if path in self.failing_paths:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"S3 did not answer for {path}")
            time.sleep(self.warm_path_s)
            yield node_admin_pb2.WarmVolumeProgress(
                files_done=done,
                files_total=total,
                bytes_done=done * self.warm_path_bytes,
                bytes_total=total * self.warm_path_bytes,
                current_path=path,
            )


@pytest.fixture
def node_peers() -> Iterator[tuple[int, dict[str, NodePeer], dict[str, grpc.Server]]]:
    """NodeAdmin peers for node-a (127.0.0.1) and node-b (127.0.0.2) on one port; node-c
    (127.0.0.3) has a pod but nothing listening."""
    port = free_port()
    peers = {"node-a": NodePeer("node-a"), "node-b": NodePeer("node-b")}
    servers: dict[str, grpc.Server] = {}
    try:
        for node, ip in (("node-a", "127.0.0.1"), ("node-b", "127.0.0.2")):
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            node_admin_pb2_grpc.add_NodeAdminServicer_to_server(peers[node], server)
            server.add_insecure_port(f"{ip}:{port}")
            server.start()
            servers[node] = server
        yield port, peers, servers
    finally:
        for server in servers.values():
            server.stop(grace=None)


def _node_pod(core_api: Any, namespace: str, node: str, ip: str) -> None:
    labels = {"app.kubernetes.io/name": "razorfs", "app.kubernetes.io/component": "node"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"razorfs-node-{node}", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "node", "image": "razorfs"}]},
    }
    core_api.create_namespaced_pod(namespace, pod)
    core_api.patch_namespaced_pod_status(
        pod["metadata"]["name"], namespace, {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}
    )


@pytest.fixture
def operator_with_nodes(
    kube_apiserver: Any,
    core_api: Any,
    razorvolume_crd: Any,
    node_peers: tuple[int, dict[str, NodePeer], dict[str, grpc.Server]],
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    from kubernetes import client

    port, _, _ = node_peers
    system_namespace = f"razorfs-system-{uuid.uuid4().hex[:6]}"
    core_api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=system_namespace)))
    for node, ip in (("node-a", "127.0.0.1"), ("node-b", "127.0.0.2"), ("node-c", "127.0.0.3")):
        _node_pod(core_api, system_namespace, node, ip)
    env = {
        "RAZORFS_OPERATOR_NODE_NAMESPACE": system_namespace,
        "RAZORFS_OPERATOR_NODE_ADMIN_PORT": str(port),
        "RAZORFS_OPERATOR_NODE_ADMIN_TIMEOUT_S": "1",
        "RAZORFS_OPERATOR_RESYNC_INTERVAL_S": "1",
        "RAZORFS_NODE_ADMIN_TOKEN": TOKEN,
        # Node state every second, S3 usage at most once an hour.
        "RAZORFS_OPERATOR_USAGE_INTERVAL_S": "3600",
    }
    operator = start_operator(kube_apiserver.kubeconfig, tmp_path / "operator", extra_env=env)
    try:
        yield operator
    finally:
        operator.kill(signal.SIGTERM)
        assert TOKEN not in operator.log(), "the NodeAdmin token leaked into the operator's log"
        for pod in core_api.list_namespaced_pod(system_namespace).items:
            core_api.delete_namespaced_pod(pod.metadata.name, system_namespace, grace_period_seconds=0)
        core_api.delete_namespace(system_namespace)


def _nodes(custom_api: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    rv = custom_api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    found: list[dict[str, Any]] = (rv.get("status") or {}).get("nodes") or []
    return found


def test_node_state_and_warmup_come_from_nodes_that_have_the_volume_staged(
    custom_api: Any,
    core_api: Any,
    kube_api_client: Any,
    kube_namespace: str,
    s3_server: Any,
    bucket: str,
    s3_secret: str,
    node_peers: tuple[int, dict[str, NodePeer], dict[str, grpc.Server]],
    operator_with_nodes: OperatorProcess,
) -> None:
    _, peers, servers = node_peers
    spec = {
        "s3": {"endpoint": s3_server.endpoint_url, "bucket": bucket, "prefix": "vol", "secretRef": {"name": s3_secret}},
        "cache": {"warmup": {"paths": ["models/", "index.db"]}},
    }
    created = custom_api.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, razorvolume("nv", spec)
    )
    handle = f"razorfs-{created['metadata']['uid']}"
    with peers["node-a"].lock:
        peers["node-a"].staged[handle] = (4096, 512)
    with peers["node-b"].lock:
        peers["node-b"].staged["some-other-volume"] = (1, 1)

    def node_a_warmed() -> list[dict[str, Any]] | None:
        nodes = _nodes(custom_api, kube_namespace, "nv")
        return nodes if nodes and nodes[0].get("warmedPaths") else None

    nodes = eventually(node_a_warmed, 30, "node-a reported and warmed")
    assert nodes == [
        {
            "name": "node-a",
            "state": "Mounted",
            "cachedBytes": 4096,
            "dirtyBytes": 512,
            "lastError": "",
            "warmedPaths": ["index.db", "models/"],
            "warmup": {
                "state": "Warmed",
                "filesDone": 2,
                "filesTotal": 2,
                "bytesDone": 0,
                "bytesTotal": 0,
                "percent": 100,
                "message": "",
            },
        }
    ]
    assert peers["node-a"].warm_requests == [(handle, ["models/", "index.db"])]
    assert peers["node-b"].warm_requests == []
    assert set(peers["node-a"].tokens_seen) == {f"Bearer {TOKEN}"}

    # Node state keeps refreshing every tick while the S3 listing is not repeated.
    rv = custom_api.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "nv")
    first_scan = rv["status"]["usage"]
    s3_server.client().put_object(Bucket=bucket, Key="vol/new-file", Body=b"12345")
    with peers["node-a"].lock:
        peers["node-a"].staged[handle] = (8192, 0)
    eventually(lambda: _nodes(custom_api, kube_namespace, "nv")[0]["cachedBytes"] == 8192, 15, "cachedBytes refresh")
    rv = custom_api.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "nv")
    assert rv["status"]["usage"] == first_scan

    # A node that stops answering is kept in the status as Unreachable, with the error.
    servers["node-a"].stop(grace=None)

    def node_a_unreachable() -> dict[str, Any] | None:
        nodes = _nodes(custom_api, kube_namespace, "nv")
        return nodes[0] if nodes and nodes[0]["state"] == "Unreachable" else None

    unreachable = eventually(node_a_unreachable, 30, "node-a Unreachable")
    assert "UNAVAILABLE" in unreachable["lastError"] or "DEADLINE_EXCEEDED" in unreachable["lastError"]
    assert [n["name"] for n in _nodes(custom_api, kube_namespace, "nv")] == ["node-a"]
    with ProtectionStandIn(kube_api_client):
        delete_razorvolumes(custom_api, core_api, kube_namespace)


def _wide_columns(kube_apiserver: Any, namespace: str, name: str) -> dict[str, str]:
    """`kubectl get razorvolume NAME -o wide` as {column header: cell}."""
    from tests.realparts.kubeapi import test_binary  # imported here: pytest would collect test_*

    argv = [str(test_binary("kubectl")), "--kubeconfig", str(kube_apiserver.kubeconfig)]
    argv += ["get", "razorvolumes", name, "-n", namespace, "-o", "wide"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    header, row = result.stdout.splitlines()
    return dict(zip(header.split(), row.split(), strict=True))


def test_kubectl_get_wide_shows_nodes_cache_dirty_bytes_and_warmup_progress(
    kube_apiserver: Any,
    custom_api: Any,
    core_api: Any,
    kube_api_client: Any,
    kube_namespace: str,
    s3_server: Any,
    bucket: str,
    s3_secret: str,
    node_peers: tuple[int, dict[str, NodePeer], dict[str, grpc.Server]],
    operator_with_nodes: OperatorProcess,
) -> None:
    _, peers, _ = node_peers
    paths = [f"data/part-{i}" for i in range(6)]
    for node in ("node-a", "node-b"):
        peers[node].warm_path_s = 0.7  # 4 s per warm-up: the operator reports it as it goes
        peers[node].warm_path_bytes = 1 << 20
    peers["node-b"].failing_paths = {"data/part-3"}
    s3 = {"endpoint": s3_server.endpoint_url, "bucket": bucket, "prefix": "wide", "secretRef": {"name": s3_secret}}
    spec = {
        "s3": s3,
        "cache": {"warmup": {"paths": paths}},
    }
    created = custom_api.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, razorvolume("wide", spec)
    )
    handle = f"razorfs-{created['metadata']['uid']}"
    with peers["node-a"].lock:
        peers["node-a"].staged[handle] = (3 << 20, 4096)

    def status() -> dict[str, Any]:
        rv = custom_api.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "wide")
        found: dict[str, Any] = rv.get("status") or {}
        return found

    # While node-a warms, the status shows it partway, and so does the Warmup column.
    def partway() -> dict[str, Any] | None:
        warmup = status().get("warmup") or {}
        return warmup if warmup.get("state") == "Warming" and 0 < warmup.get("percent", 0) < 100 else None

    midway = eventually(partway, 30, "warm-up progress partway")
    assert midway["bytesTotal"] == 6 << 20 and midway["filesTotal"] == 6
    assert midway["bytesDone"] == midway["filesDone"] << 20

    eventually(lambda: (status().get("warmup") or {}).get("state") == "Warmed", 30, "warm-up done")
    columns = _wide_columns(kube_apiserver, kube_namespace, "wide")
    assert columns["PHASE"] == "Ready" and columns["READY"] == "True"
    assert (columns["NODES"], columns["CACHEDBYTES"], columns["DIRTYBYTES"]) == ("1", str(3 << 20), "4096")
    assert (columns["WARMUP"], columns["WARMED%"]) == ("Warmed", "100")
    assert status()["warmup"] == {
        "state": "Warmed",
        "filesDone": 6,
        "filesTotal": 6,
        "bytesDone": 6 << 20,
        "bytesTotal": 6 << 20,
        "percent": 100,
        "message": "",
    }

    # A second node: its figures add up, and its failing warm-up fails the volume's warm-up (it is
    # retried at every resync, so Failed and Warming take turns: judge one snapshot at a time).
    with peers["node-b"].lock:
        peers["node-b"].staged[handle] = (1 << 20, 100)

    def failed() -> dict[str, Any] | None:
        snapshot = status()
        return snapshot if (snapshot.get("warmup") or {}).get("state") == "Failed" else None

    snapshot = eventually(failed, 30, "node-b's warm-up failed")
    assert snapshot["warmup"]["message"] == "node node-b: UNAVAILABLE: S3 did not answer for data/part-3"
    nodes = {node["name"]: node for node in snapshot["nodes"]}
    assert nodes["node-a"]["warmup"]["state"] == "Warmed"
    assert nodes["node-b"]["warmup"]["state"] == "Failed" and nodes["node-b"]["warmup"]["filesDone"] == 3
    assert (snapshot["mountedNodes"], snapshot["cachedBytes"], snapshot["dirtyBytes"]) == (2, 4 << 20, 4196)
    columns = eventually(
        lambda: (c := _wide_columns(kube_apiserver, kube_namespace, "wide"))["WARMUP"] == "Failed" and c,
        30,
        "Warmup column Failed",
    )
    assert (columns["NODES"], columns["CACHEDBYTES"], columns["DIRTYBYTES"]) == ("2", str(4 << 20), "4196")
    with ProtectionStandIn(kube_api_client):
        delete_razorvolumes(custom_api, core_api, kube_namespace)


def test_a_rotated_secret_reaches_the_nodes_that_have_the_volume_mounted(
    custom_api: Any,
    core_api: Any,
    kube_api_client: Any,
    kube_namespace: str,
    s3_server: Any,
    bucket: str,
    s3_secret: str,
    node_peers: tuple[int, dict[str, NodePeer], dict[str, grpc.Server]],
    operator_with_nodes: OperatorProcess,
) -> None:
    _, peers, _ = node_peers
    s3 = {"endpoint": s3_server.endpoint_url, "bucket": bucket, "prefix": "rot", "secretRef": {"name": s3_secret}}
    volume = razorvolume("rot", {"s3": s3})
    created = custom_api.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, volume)
    handle = f"razorfs-{created['metadata']['uid']}"
    with peers["node-a"].lock:
        peers["node-a"].staged[handle] = (0, 0)

    def updates() -> list[tuple[str, dict[str, str]]]:
        with peers["node-a"].lock:
            return [u for u in peers["node-a"].credentials_updates if u[0] == handle]

    try:
        first = eventually(lambda: updates() or None, 30, "node-a handed the volume's keys")
        assert first[0][1]["accessKeyID"] == s3_server.access_key
        time.sleep(3)  # three resyncs: the same keys are not handed over again
        assert len(updates()) == 1
        rotated = {"secretAccessKey": base64.b64encode(b"rotated-secret-value-2").decode()}
        core_api.patch_namespaced_secret(s3_secret, kube_namespace, {"data": rotated})
        second = eventually(lambda: updates()[1:] or None, 30, "node-a handed the rotated keys")
        assert second[0][1]["secretAccessKey"] == "rotated-secret-value-2"
        with peers["node-b"].lock:
            assert not [u for u in peers["node-b"].credentials_updates if u[0] == handle], "only nodes that mount it"
        assert "rotated-secret-value-2" not in operator_with_nodes.log()
    finally:
        with ProtectionStandIn(kube_api_client):
            delete_razorvolumes(custom_api, core_api, kube_namespace)
