"""Explicit credentials at stage: a volume signs with its Secret's keys or fails; the node's own
credentials (environment, AWS files in HOME) are used only when the volume asks for them by
name. Checked at the wire: a proxy in front of S3 records which key signed every request."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from razorfs_wire.razorfs.v1 import node_admin_pb2
from tests.integration.csi.kubelet_calls import KubeletVolume
from tests.integration.csi.plugin import ADMIN_TOKEN, NodePlugin
from tests.integration.csi.signing_proxy import SigningProxy
from tests.realparts.s3server import S3Server

AUTH = [("authorization", f"Bearer {ADMIN_TOKEN}")]

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


@pytest.fixture
def plugin_with_node_credentials(plugin_root: Path, s3_server: S3Server) -> Iterator[NodePlugin]:
    """A plugin whose own environment and HOME hold S3 credentials that work (the node's role)."""
    home = plugin_root / "home"
    (home / ".aws").mkdir(parents=True)
    profile = home / ".aws" / "credentials"
    profile.write_text(
        f"[default]\naws_access_key_id={s3_server.access_key}\naws_secret_access_key={s3_server.secret_key}\n"
    )
    plugin = NodePlugin(
        plugin_root,
        extra_env={
            "HOME": str(home),
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        },
    )
    try:
        plugin.start()
        yield plugin
    finally:
        plugin.cleanup()
        profile.unlink()  # the secret scan of the session's files must not find it here


def _volume_via(proxy: SigningProxy, plugin: NodePlugin, s3: S3Server, bucket: str, prefix: str) -> KubeletVolume:
    volume = KubeletVolume.on_s3(plugin.kubelet_dir, s3, bucket, prefix)
    volume.context["endpoint"] = proxy.endpoint_url
    return volume


@pytest.mark.parametrize(
    ("secrets", "named"),
    [({}, "accessKeyID and secretAccessKey"), ({"accessKeyID": "AKIDONLY"}, "secretAccessKey")],
)
def test_stage_with_an_emptied_secret_fails_and_nothing_is_signed_with_the_nodes_credentials(
    plugin_with_node_credentials: NodePlugin,
    signing_proxy: SigningProxy,
    s3_server: S3Server,
    bucket: str,
    fuse_available: None,
    secrets: dict[str, str],
    named: str,
) -> None:
    plugin = plugin_with_node_credentials
    volume = _volume_via(signing_proxy, plugin, s3_server, bucket, "emptied")
    volume.secrets = secrets
    with plugin.channel() as channel, pytest.raises(grpc.RpcError) as info:
        volume.stage(plugin.node(channel))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"lack {named}" in (info.value.details() or "")
    assert signing_proxy.signers == []
    assert plugin.daemon_pids() == []


def test_a_volume_signs_with_its_secret_and_with_the_node_identity_only_when_it_asks_by_name(
    plugin_with_node_credentials: NodePlugin,
    signing_proxy: SigningProxy,
    s3_server: S3Server,
    bucket: str,
    fuse_available: None,
) -> None:
    plugin = plugin_with_node_credentials
    with plugin.channel() as channel:
        node = plugin.node(channel)
        on_node = _volume_via(signing_proxy, plugin, s3_server, bucket, "node-role")
        on_node.context["authentication"] = "node"
        on_node.secrets = {}
        on_node.stage(node)
        assert signing_proxy.signers and set(signing_proxy.signers) == {s3_server.access_key}
        on_node.unstage(node)

        # Wrong keys in the Secret: the stage fails with them, the node's working keys unused.
        before = len(signing_proxy.signers)
        wrong = _volume_via(signing_proxy, plugin, s3_server, bucket, "wrong-secret")
        wrong.secrets = {"accessKeyID": "AKIDWRONGVOLUMEKEY", "secretAccessKey": "wrong-secret-value-9"}
        with pytest.raises(grpc.RpcError):
            wrong.stage(node)
        used = signing_proxy.signers[before:]
        assert used and set(used) == {"AKIDWRONGVOLUMEKEY"}
    assert plugin.daemon_pids() == []


def test_keys_handed_to_a_running_daemon_sign_its_next_requests(
    node_plugin: NodePlugin,
    signing_proxy: SigningProxy,
    s3_server: S3Server,
    s3_client: Any,
    bucket: str,
    fuse_available: None,
) -> None:
    s3_client.put_object(Bucket=bucket, Key="rotated/a/one.txt", Body=b"1")
    s3_client.put_object(Bucket=bucket, Key="rotated/b/two.txt", Body=b"2")
    volume = _volume_via(signing_proxy, node_plugin, s3_server, bucket, "rotated")
    with node_plugin.channel() as channel, node_plugin.admin_channel() as admin_channel:
        node = node_plugin.node(channel)
        admin = node_plugin.admin(admin_channel)
        volume.stage(node)

        def update(secrets: dict[str, str]) -> int:
            request = node_admin_pb2.UpdateCredentialsRequest(volume_id=volume.volume_id, secrets=secrets)
            reply = admin.UpdateCredentials(request, metadata=AUTH, timeout=10)
            return int(reply.daemons_updated)

        # What the operator does when the volume's Secret changes.
        assert update({"accessKeyID": "AKIDROTATEDKEY0001", "secretAccessKey": "rotated-secret-1"}) == 1
        before = len(signing_proxy.signers)
        with contextlib.suppress(OSError):  # the rotated keys are not known to S3: EIO or EACCES
            os.listdir(volume.staging_path / "a")
        after = signing_proxy.signers[before:]
        # A request already signed before the swap may still arrive; from the first request with
        # the new keys on, every one carries them.
        assert "AKIDROTATEDKEY0001" in after, after
        first = after.index("AKIDROTATEDKEY0001")
        assert set(after[first:]) == {"AKIDROTATEDKEY0001"}, after
        stored = list(node_plugin.state_dir.glob("volumes/*/credentials.json"))
        assert len(stored) == 1 and "AKIDROTATEDKEY0001" in stored[0].read_text(), "kept for the next daemon start"

        with pytest.raises(grpc.RpcError) as refused:
            update({"accessKeyID": "AKIDONLYHALF"})
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "secretAccessKey" in (refused.value.details() or "")
        assert update({"accessKeyID": s3_server.access_key, "secretAccessKey": s3_server.secret_key}) == 1
        assert os.listdir(volume.staging_path / "b") == ["two.txt"]
        volume.unstage(node)
