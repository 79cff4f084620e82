"""The mount pod a node plugin creates: pinned, unprivileged, no credentials in its spec, and
seeing the node only through its mount's own directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from razorfs.csi.mount_pods import MountPods, MountPodTemplate, pod_argv, pod_name
from razorfs.csi.state_store import VolumeRecord

CACHE_ROOT = Path("/var/lib/razorfs/cache")


def template(**overrides: object) -> MountPodTemplate:
    fields: dict[str, object] = {
        "namespace": "razorfs-system",
        "node_name": "node-a",
        "image": "example/razorfs:1",
        "host_cache_root": Path("/srv/razorfs/cache"),
        "cache_root": CACHE_ROOT,
    }
    fields.update(overrides)
    return MountPodTemplate(**fields)  # type: ignore[arg-type]


def record() -> VolumeRecord:
    mount_dir = CACHE_ROOT / "v-0123"
    return VolumeRecord(
        volume_id="ns/vol",
        staging_path="/var/lib/kubelet/plugins/kubernetes.io/csi/razorfs.csi.io/abc/globalmount",
        cache_dir=str(mount_dir / "cache"),
        argv=["mount", "s3://b/p", "/staging", "--cache-dir", str(mount_dir / "cache"),
              "--ca-bundle", str(mount_dir / "ca-bundle.pem")],
    )  # fmt: skip


def test_a_mount_pod_is_pinned_unprivileged_and_sees_only_its_own_directory() -> None:
    manifest = MountPods(template(), api=None).manifest(record())
    spec = manifest["spec"]
    assert spec["nodeName"] == "node-a" and spec["restartPolicy"] == "OnFailure"
    assert "ownerReferences" not in manifest["metadata"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 65532
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["privileged"] is False and context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True and context["capabilities"] == {"drop": ["ALL"]}
    host_paths = [v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v]
    assert host_paths == ["/srv/razorfs/cache/v-0123"], "the node's path of the mount's own directory, nothing else"
    assert not [e for e in container["env"] if e["name"].startswith("AWS_")]
    assert container["command"] == ["razorfs", "serve", "--handover-socket", "/razorfs/handover.sock"]
    assert manifest["metadata"]["name"] == pod_name("node-a", "v-0123")
    assert manifest["metadata"]["labels"]["razorfs.io/mount"] == "v-0123"


def test_the_mounts_paths_are_handed_over_as_the_pod_sees_them() -> None:
    argv = pod_argv(record().argv, CACHE_ROOT / "v-0123")
    assert argv == ["mount", "s3://b/p", "/staging", "--cache-dir", "/razorfs/cache",
                    "--ca-bundle", "/razorfs/ca-bundle.pem"]  # fmt: skip


def test_one_pod_name_per_node_and_mount() -> None:
    assert pod_name("node-a", "v-1") == pod_name("node-a", "v-1")
    assert len({pod_name("node-a", "v-1"), pod_name("node-b", "v-1"), pod_name("node-a", "v-2")}) == 3


def test_the_template_file_the_chart_writes_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mount-pod.json"
    path.write_text(json.dumps({
        "namespace": "razorfs", "image": "example/razorfs:2", "imagePullPolicy": "Never",
        "hostCacheRoot": "/var/lib/razorfs/cache", "runAsUser": 1234, "priorityClassName": "high",
        "tolerations": [{"operator": "Exists"}], "metricsPort": 9813, "resources": {"limits": {"memory": "1Gi"}},
        "env": {"RAZORFS_LOG_LEVEL": "INFO"}, "labels": {"team": "storage"},
    }))  # fmt: skip
    loaded = MountPodTemplate.from_file(path, "node-a", CACHE_ROOT)
    manifest = MountPods(loaded, api=None).manifest(record())
    assert manifest["spec"]["priorityClassName"] == "high"
    assert manifest["spec"]["securityContext"]["runAsUser"] == 1234
    assert manifest["spec"]["containers"][0]["ports"][0]["containerPort"] == 9813
    assert manifest["metadata"]["labels"]["team"] == "storage"
    assert manifest["metadata"]["namespace"] == "razorfs"


def test_a_volumes_own_mount_pod_settings_replace_the_templates() -> None:
    own = record()
    own.mount_pod = json.dumps({
        "resources": {"limits": {"memory": "3Gi"}}, "priorityClassName": "volumes",
        "tolerations": [{"key": "storage", "operator": "Exists"}],
    })  # fmt: skip
    manifest = MountPods(template(priority_class_name="system-node-critical"), api=None).manifest(own)
    assert manifest["spec"]["containers"][0]["resources"] == {"limits": {"memory": "3Gi"}}
    assert manifest["spec"]["priorityClassName"] == "volumes"
    assert manifest["spec"]["tolerations"] == [{"key": "storage", "operator": "Exists"}]
    plain = MountPods(template(priority_class_name="system-node-critical"), api=None).manifest(record())
    assert plain["spec"]["priorityClassName"] == "system-node-critical"


def test_the_plugin_records_a_mount_pods_mount_for_its_razorfs_cli(tmp_path: Path, monkeypatch: Any) -> None:
    from razorfs.csi.daemon_launcher import DaemonLauncher
    from razorfs.csi.staged_volume import StagedVolume
    from razorfs.csi.state_store import StateStore
    from razorfs.mount import registry

    monkeypatch.setenv("RAZORFS_RUN_DIR", str(tmp_path / "run"))
    launcher = DaemonLauncher(StateStore(tmp_path / "state"), MountPods(template(), api=None))
    launcher.register(StagedVolume(record()))
    (found,) = registry.list_records()
    assert found.mountpoint == record().staging_path
    assert found.control_socket == str(CACHE_ROOT / "v-0123" / "cache" / "control.sock")
