"""The kubelet harness uses the kubelet's own path conventions and rewrites only whole mount paths in
a pod's command: pure functions, checked without a cluster."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.realparts.csiclient import publish_path, staging_path
from tests.realparts.kubelet import substitute_mount_paths


def test_staging_path_is_the_sha256_of_the_volume_handle_under_the_drivers_plugin_dir() -> None:
    path = staging_path(Path("/var/lib/kubelet"), "razorfs.csi.io", "vol-1")
    digest = hashlib.sha256(b"vol-1").hexdigest()
    assert path == Path(f"/var/lib/kubelet/plugins/kubernetes.io/csi/razorfs.csi.io/{digest}/globalmount")


def test_publish_path_is_the_pods_csi_volume_mount_dir() -> None:
    path = publish_path(Path("/var/lib/kubelet"), "uid-1", "pv-1")
    assert path == Path("/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/pv-1/mount")


def test_mount_paths_are_replaced_as_whole_components_only() -> None:
    mounts = {"/data": Path("/k/pods/u/data"), "/data/logs": Path("/k/pods/u/logs")}
    command = "echo x > /data/a; cat /data/logs/b; ls /database /data2 /mnt/data '/data' /data"
    assert substitute_mount_paths(command, mounts) == (
        "echo x > /k/pods/u/data/a; cat /k/pods/u/logs/b; ls /database /data2 /mnt/data '/k/pods/u/data' /k/pods/u/data"
    )


def test_a_host_path_containing_the_mount_path_is_not_rewritten_twice() -> None:
    mounts = {"/data": Path("/data/razorfs/.dev/kubelet/pods/u/mount")}
    assert substitute_mount_paths("ls /data/x", mounts) == "ls /data/razorfs/.dev/kubelet/pods/u/mount/x"
