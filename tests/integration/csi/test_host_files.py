"""What the node writes on the host is private from creation (state, credentials, cache dirs,
the SQLite journal, logs, sockets), and a kubelet path with a symlink in it is refused."""

from __future__ import annotations

import grpc
import pytest

from tests.integration.csi.kubelet_calls import KubeletVolume
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.s3server import S3Server
from tests.reliability.secret_scan import loose_modes

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


def test_every_file_and_dir_the_node_writes_is_owner_only(
    node_plugin: NodePlugin, s3_server: S3Server, bucket: str, fuse_available: None
) -> None:
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "private")
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        volume.stage(node)
        target = volume.publish(node, "pod")
        (target / "small.txt").write_bytes(b"inline in the journal")  # journaled, maybe not yet uploaded
        (target / "big.bin").write_bytes(b"x" * 300_000)
        cache_files = [p.name for p in node_plugin.cache_root.rglob("*")]
        assert "journal.sqlite" in cache_files and "control.sock" in cache_files
        state_files = [p.name for p in node_plugin.state_dir.rglob("*")]
        assert "credentials.json" in state_files and "daemon.log" in state_files
        assert loose_modes(node_plugin.state_dir) == []
        assert loose_modes(node_plugin.cache_root) == []
        volume.unpublish(node, target)
        volume.unstage(node)


def test_a_publish_target_that_is_a_symlink_is_refused(
    node_plugin: NodePlugin, s3_server: S3Server, bucket: str, fuse_available: None
) -> None:
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "linked")
    elsewhere = node_plugin.root / "host-dir"
    elsewhere.mkdir()
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        volume.stage(node)
        target = volume.target_for("pod")
        target.parent.mkdir(parents=True)
        target.symlink_to(elsewhere)
        with pytest.raises(grpc.RpcError) as info:
            volume.publish(node, "pod")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is a symlink" in (info.value.details() or "")
        assert not any(elsewhere.iterdir())
        target.unlink()
        volume.unstage(node)
