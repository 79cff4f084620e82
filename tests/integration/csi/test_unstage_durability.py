"""Unstage never drops data: with S3 refusing uploads it answers UNAVAILABLE and the volume keeps
serving with its dirty data; once S3 is back, the retried unstage uploads everything."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.integration.csi.kubelet_calls import KubeletVolume
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.faultproxy import Fault, FaultProxy
from tests.realparts.fusemount import is_mounted
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


def test_unstage_while_s3_refuses_uploads_fails_and_keeps_the_data_until_s3_is_back(
    plugin_root: Any, s3_server: S3Server, s3_client: Any, bucket: str, fault_proxy: FaultProxy, fuse_available: None
) -> None:
    plugin = NodePlugin(plugin_root, extra_args=["--unstage-flush-timeout", "3"])
    try:
        plugin.start()
        volume = KubeletVolume.on_s3(plugin.kubelet_dir, s3_server, bucket, "durable")
        volume.context["endpoint"] = fault_proxy.endpoint_url
        with plugin.channel() as channel:
            node = plugin.node(channel)
            volume.stage(node)
            target = volume.publish(node, "pod")
            # Every upload fails from now on (reads still work): close() is local, so it succeeds.
            fault_proxy.add_rule(Fault.ERROR_500, times=None, method="PUT")
            fault_proxy.add_rule(Fault.ERROR_500, times=None, method="POST")
            (target / "precious.txt").write_bytes(b"must reach S3")
            volume.unpublish(node, target)
            with pytest.raises(grpc.RpcError) as info:
                volume.unstage(node)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "kept" in (info.value.details() or "")
            assert is_mounted(volume.staging_path)
            assert (volume.staging_path / "precious.txt").read_bytes() == b"must reach S3"
            fault_proxy.clear()
            volume.unstage(node)
        body = s3_client.get_object(Bucket=bucket, Key="durable/precious.txt")["Body"].read()
        assert body == b"must reach S3"
        assert not is_mounted(volume.staging_path)
    finally:
        plugin.cleanup()
