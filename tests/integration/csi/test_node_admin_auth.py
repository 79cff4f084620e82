"""NodeAdmin as the chart runs it: TLS with the plugin's own self-signed certificate, callers
checked by a TokenReview against a real kube-apiserver, only the operator's ServiceAccount with a
token bound to the NodeAdmin audience accepted. The operator's client is the caller."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from razorfs_operator.cluster import NodePluginPod
from razorfs_operator.node_admin import NodeAdminClient, fetch_server_certificate, tls_channel
from razorfs_wire.razorfs.v1 import node_admin_pb2, node_admin_pb2_grpc
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.kubeapi import ControlPlane
from tests.reliability.secret_scan import register_secret

AUDIENCE = "razorfs-node-admin"
OPERATOR_SA = "razorfs-operator"


def _token(core: Any, namespace: str, account: str, audience: str) -> str:
    from kubernetes import client

    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[audience], expiration_seconds=600)
    )
    token = str(core.create_namespaced_service_account_token(account, namespace, request).status.token)
    register_secret(token)  # the session's scan fails if it shows up in any log
    return token


@pytest.fixture
def tokens(kube_api_client: Any, kube_namespace: str) -> dict[str, str]:
    from kubernetes import client

    core = client.CoreV1Api(kube_api_client)
    for account in (OPERATOR_SA, "intruder"):
        core.create_namespaced_service_account(kube_namespace, client.V1ServiceAccount(metadata={"name": account}))
    return {
        "operator": _token(core, kube_namespace, OPERATOR_SA, AUDIENCE),
        "intruder": _token(core, kube_namespace, "intruder", AUDIENCE),
        "operator-other-audience": _token(core, kube_namespace, OPERATOR_SA, "https://kubernetes.default.svc"),
    }


@pytest.fixture
def tls_plugin(plugin_root: Path, kube_apiserver: ControlPlane, kube_namespace: str) -> Iterator[NodePlugin]:
    plugin = NodePlugin(
        plugin_root,
        admin_auth_args=[
            "--admin-tls",
            "--admin-allowed-service-account",
            f"{kube_namespace}/{OPERATOR_SA}",
            "--kubeconfig",
            str(kube_apiserver.kubeconfig),
        ],
    )
    try:
        plugin.start()
        yield plugin
    finally:
        plugin.cleanup()


def _list(plugin: NodePlugin, token: str | None) -> node_admin_pb2.ListVolumesResponse:
    address = f"127.0.0.1:{plugin.admin_port}"

    async def call() -> node_admin_pb2.ListVolumesResponse:
        async with tls_channel(address, fetch_server_certificate(address)) as channel:
            metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
            stub = node_admin_pb2_grpc.NodeAdminStub(channel)
            reply: node_admin_pb2.ListVolumesResponse = await stub.ListVolumes(
                node_admin_pb2.ListVolumesRequest(), metadata=metadata, timeout=10
            )
            return reply

    return asyncio.run(call())


def test_the_operators_client_lists_volumes_with_its_audience_bound_token(
    tls_plugin: NodePlugin, tokens: dict[str, str]
) -> None:
    async def ask() -> list[Any]:
        client = NodeAdminClient(lambda: tokens["operator"], tls_plugin.admin_port, 10.0, tls=True)
        try:
            pod = NodePluginPod(pod_name="node-pod", node_name="test-node", pod_ip="127.0.0.1")
            return await client.volume_on_nodes([pod], "no-such-volume")
        finally:
            await client.close()

    assert asyncio.run(ask()) == []  # reachable, authorized, nothing staged
    assert _list(tls_plugin, tokens["operator"]).node_id == "test-node"


@pytest.mark.parametrize(
    ("who", "code"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED),
        ("garbage", grpc.StatusCode.UNAUTHENTICATED),
        ("intruder", grpc.StatusCode.PERMISSION_DENIED),
        ("operator-other-audience", grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_calls_without_the_operators_token_are_refused(
    tls_plugin: NodePlugin, tokens: dict[str, str], who: str | None, code: grpc.StatusCode
) -> None:
    token = None if who is None else tokens.get(who, "not-a-jwt")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        _list(tls_plugin, token)
    assert info.value.code() == code


class _Recorder:
    """A TCP relay that keeps every byte it passes, both ways."""

    def __init__(self, upstream_port: int) -> None:
        self.captured = bytearray()
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    self.captured += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self._listener.close()


def test_traffic_on_the_admin_port_is_not_plaintext(tls_plugin: NodePlugin, tokens: dict[str, str]) -> None:
    recorder = _Recorder(tls_plugin.admin_port)
    try:
        relay = NodePlugin(tls_plugin.root, admin_port=recorder.port)  # only its address is used
        reply = _list(relay, tokens["operator"])
        assert reply.node_id == "test-node"
        captured = bytes(recorder.captured)
        assert len(captured) > 500
        assert tokens["operator"].encode() not in captured
        assert b"test-node" not in captured and b"ListVolumes" not in captured and b"authorization" not in captured
        # And a plaintext client gets nowhere.
        with grpc.insecure_channel(f"127.0.0.1:{tls_plugin.admin_port}") as channel, pytest.raises(grpc.RpcError):
            node_admin_pb2_grpc.NodeAdminStub(channel).ListVolumes(
                node_admin_pb2.ListVolumesRequest(), metadata=(("authorization", "Bearer x"),), timeout=5
            )
    finally:
        recorder.close()
